"""The process preference model LightningModule: value model + pairwise loss.

A batch is what `datamodules.pairs.PairDataModule` yields: `input_ids` and
`attention_mask` [2B, seq], the B chosen partial trajectories first, then the
B rejected ones in the same order, and `pair_weight` [B], each pair's Eq. 4
weight. The loss is the weighted Bradley-Terry loss of
`losses.pairwise_preference_loss`; pairwise accuracy (share of pairs with
chosen > rejected) and mean margin are torchmetrics metrics, synchronised
across processes.

`loss` picks the reward model of the paper's ablation, all with the same value
model (so the same export, scorer and search use any of them):

- `pairwise` (default): the PPM, Bradley-Terry over step pairs (batches above);
- `q_regression`: the paper's "PQM", MSE against each step's MCTS Q-value;
- `outcome`: the paper's "ORM", whole trajectories with binary cross-entropy
  on the final answer being right.

The two pointwise ones read `datamodules.values.ValueDataModule` batches
(`input_ids`, `attention_mask` [B, seq], `target` [B]) and log `loss` and
`sign_accuracy` (share of texts whose value has the target's sign).
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from torchmetrics import MeanMetric

from modules.fsdp import FSDPConfig, is_sharded, shard_model
from modules.losses import outcome_loss, pairwise_preference_loss, q_regression_loss
from modules.optim import Schedule, build_optimizer
from modules.value_model import ValueHeadModel
from rstar_pl.errors import UserError

__all__ = ["LOSSES", "PPMModule"]

LOSSES = ("pairwise", "q_regression", "outcome")


class PPMModule(L.LightningModule):
    """Pairwise training of a value model initialised from a policy.

    Args:
        model: hub id or folder of the causal LM (normally the exported policy
            of the same round) whose backbone the PPM starts from.
        vocab_size: the tokenizer's size (linked from the datamodule).
        lr, weight_decay, betas, schedule, warmup_steps, min_lr_ratio: AdamW and
            its schedule (paper: lr 7e-6, linear).
        gradient_checkpointing, dtype, attn_implementation, fsdp: as in
            `PolicyModule`; under FSDP the value head is a group of its own whose
            parameters stay in fp32 whatever `fsdp.param_dtype` says.
        loss: pairwise (the PPM), q_regression or outcome (module docstring).
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
        loss: Literal["pairwise", "q_regression", "outcome"] = "pairwise",
        fsdp: FSDPConfig | None = None,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise UserError(f"model.loss is {loss!r}; allowed: {', '.join(LOSSES)}")
        self.save_hyperparameters()
        self.model = ValueHeadModel.from_backbone(
            model,
            vocab_size=vocab_size,
            dtype=dtype,
            attn_implementation=attn_implementation,
            gradient_checkpointing=gradient_checkpointing,
        )
        self.metrics = torch.nn.ModuleDict(
            {
                f"{stage}_{name}": MeanMetric()
                for stage in ("train", "val", "test")
                for name in ("accuracy", "margin", "sign_accuracy")
            }
        )

    def configure_model(self) -> None:
        """Shard the backbone per decoder layer when the strategy gives a device mesh (FSDP2)."""
        if self.device_mesh is None or is_sharded(self.model):
            return
        shard_model(
            self.model,
            self.device_mesh["data_parallel"],
            self.hparams.fsdp,
            fp32_modules=[self.model.value_head],
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[n, seq] -> [n] values in [-1, 1]."""
        return self.model(input_ids, attention_mask)

    def _pointwise_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        if "target" not in batch:
            raise UserError(
                f"model.loss is {self.hparams.loss!r} but the batch has no 'target' "
                "(pair batches are for loss: pairwise); use data.class_path "
                "datamodules.values.ValueDataModule"
            )
        values = self(batch["input_ids"], batch["attention_mask"])
        targets = batch["target"].to(values.device)
        fn = q_regression_loss if self.hparams.loss == "q_regression" else outcome_loss
        loss = fn(values, targets)
        signs = self.metrics[f"{stage}_sign_accuracy"]
        signs(((values > 0) == (targets > 0)).float())
        on_step = stage == "train"
        kw = {"on_step": on_step, "on_epoch": not on_step, "batch_size": values.size(0)}
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=not on_step, **kw)
        self.log(f"{stage}/sign_accuracy", signs, prog_bar=True, **kw)
        return loss

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        if self.hparams.loss != "pairwise":
            return self._pointwise_step(batch, stage)
        if "target" in batch:
            raise UserError(
                "model.loss is 'pairwise' but the batch holds scored texts, not "
                "pairs; use datamodules.PairDataModule or set model.loss"
            )
        values = self(batch["input_ids"], batch["attention_mask"])
        pairs = values.size(0) // 2
        loss, margins = pairwise_preference_loss(
            values[:pairs], values[pairs:], batch.get("pair_weight")
        )
        accuracy, margin = self.metrics[f"{stage}_accuracy"], self.metrics[f"{stage}_margin"]
        # Calling (not `update`) caches the batch value that `on_step` logging reads.
        accuracy((margins > 0).float())
        margin(margins.detach())
        on_step = stage == "train"
        kw = {"on_step": on_step, "on_epoch": not on_step, "batch_size": pairs}
        self.log(f"{stage}/loss", loss, prog_bar=True, sync_dist=not on_step, **kw)
        self.log(f"{stage}/pair_accuracy", accuracy, prog_bar=True, **kw)
        self.log(f"{stage}/margin", margin, **kw)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Values of every row of the batch ([2B], chosen first, for pairs)."""
        return self(batch["input_ids"], batch["attention_mask"])

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
