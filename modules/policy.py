"""The policy SFT LightningModule: a causal LM trained on responses only.

Thin by design: the model, the loss (`losses.response_lm_loss`), the optimiser
(`optim.build_optimizer`). Data, tokenising, generation and export live in the
datamodules, the callbacks and `modules.export`.

A batch is what `datamodules.sft.SFTDataModule` yields: `input_ids` and
`labels` [batch, seq] plus either a 2-D `attention_mask` (padded) or
`position_ids` (packed rows; see `datamodules.packing`).
"""

from __future__ import annotations

import lightning as L
import torch

from modules.fsdp import FSDPConfig, is_sharded, shard_model
from modules.hf import load_backbone
from modules.losses import IGNORE_INDEX, response_lm_loss
from modules.optim import Schedule, build_optimizer

__all__ = ["PolicyModule"]


class PolicyModule(L.LightningModule):
    """Supervised fine-tuning of a causal LM on step-format solutions.

    Args:
        model: hub id or folder of the causal LM to start from.
        vocab_size: the tokenizer's size (linked from the datamodule); the
            embeddings grow to it when the step tokens are new.
        lr: AdamW learning rate (paper: 7e-6).
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        schedule: "linear" (paper, Qwen), "cosine" (paper, Phi) or "constant".
        warmup_steps: optimiser steps of linear warmup from 0.
        min_lr_ratio: the decay ends at `min_lr_ratio * lr`.
        gradient_checkpointing: recompute each decoder layer's activations in the
            backward pass (also under FSDP2, where it is the activation checkpointing).
        dtype: dtype of the loaded weights ("float32" keeps fp32 master weights
            under FSDP2's bf16 policy or `precision: bf16-mixed`; "bfloat16" for
            `bf16-true`).
        attn_implementation: "sdpa", "eager" or "flash_attention_2".
        fsdp: how `configure_model` shards the model under a ModelParallelStrategy
            (`modules.fsdp.FSDPConfig`: layer class, mixed precision, resharding,
            CPU offload); ignored by other strategies.
    """

    def __init__(
        self,
        model: str,
        vocab_size: int | None = None,
        lr: float = 7e-6,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        schedule: Schedule = "linear",
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.0,
        gradient_checkpointing: bool = False,
        dtype: str | None = "float32",
        attn_implementation: str | None = "sdpa",
        fsdp: FSDPConfig | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = load_backbone(
            model,
            head=True,
            vocab_size=vocab_size,
            dtype=dtype,
            attn_implementation=attn_implementation,
            gradient_checkpointing=gradient_checkpointing,
        )

    def configure_model(self) -> None:
        """Shard the causal LM per decoder layer when the strategy gives a device mesh (FSDP2)."""
        if self.device_mesh is None or is_sharded(self.model):
            return
        shard_model(self.model, self.device_mesh["data_parallel"], self.hparams.fsdp)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits [batch, seq, vocab] of a padded or packed batch."""
        return self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch.get("attention_mask"),
            position_ids=batch.get("position_ids"),
            use_cache=False,
        ).logits

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        loss = response_lm_loss(self(batch), batch["labels"])
        tokens = (batch["labels"][:, 1:] != IGNORE_INDEX).sum()
        on_step = stage == "train"
        self.log(
            f"{stage}/loss",
            loss,
            prog_bar=True,
            on_step=on_step,
            on_epoch=not on_step,
            sync_dist=not on_step,
            batch_size=batch["input_ids"].size(0),
        )
        if on_step:
            self.log("train/response_tokens", tokens.float(), on_step=True, reduce_fx="sum")
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """The response loss of the batch (perplexity = exp of it)."""
        return response_lm_loss(self(batch), batch["labels"])

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        return build_optimizer(
            self.parameters(),
            lr=hp.lr,
            weight_decay=hp.weight_decay,
            betas=hp.betas,
            schedule=hp.schedule,
            warmup_steps=hp.warmup_steps,
            min_lr_ratio=hp.min_lr_ratio,
            total_steps=self.trainer.estimated_stepping_batches,
        )
