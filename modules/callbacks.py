"""Monitoring callbacks for TensorBoard: gradient norm and sample generations.

Kept out of the LightningModules so the modules stay model + loss + optimiser.
"""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

__all__ = ["GradNormMonitor", "SampleGenerations"]


class GradNormMonitor(Callback):
    """Logs `train/grad_norm`, the global L2 norm of the gradients before each optimiser step.

    Measured before clipping. Under FSDP2 each rank holds a shard of every
    gradient (a DTensor); the norm is then reduced over the ranks (a collective
    that every rank runs here), so the logged value is the whole model's norm,
    the one clipping uses.
    """

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        from torch.distributed.tensor import DTensor

        grads = [p.grad.detach() for p in pl_module.parameters() if p.grad is not None]
        if not grads:
            return
        norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
        if isinstance(norm, DTensor):
            norm = norm.full_tensor()
        pl_module.log("train/grad_norm", norm.float(), on_step=True, on_epoch=False)


class SampleGenerations(Callback):
    """At the end of each validation, greedily completes a few validation prompts
    with the policy and writes prompt + completion to TensorBoard as text.

    Only for `PolicyModule` with a TensorBoard logger and a datamodule that has
    `val_examples` and `tokenizer` (the SFT datamodule). Under FSDP2 every
    forward pass is a collective (each layer is all-gathered), so every rank
    generates, with transformers' `synced_gpus` keeping the ranks in step until
    the last one stops; rank 0 writes. Skipped under Lightning's FSDPStrategy
    (FSDP1), where the wrapped model cannot generate outside its root wrapper.

    Args:
        num_prompts: how many validation prompts to complete.
        max_new_tokens: tokens generated per prompt.
    """

    def __init__(self, num_prompts: int = 2, max_new_tokens: int = 64) -> None:
        self.num_prompts = num_prompts
        self.max_new_tokens = max_new_tokens

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from lightning.pytorch.loggers import TensorBoardLogger
        from lightning.pytorch.strategies import FSDPStrategy

        from modules.fsdp import is_sharded
        from modules.policy import PolicyModule

        dm = trainer.datamodule
        sharded = isinstance(pl_module, PolicyModule) and is_sharded(pl_module.model)
        if (
            trainer.sanity_checking
            or not (trainer.is_global_zero or sharded)
            or not isinstance(pl_module, PolicyModule)
            or not isinstance(trainer.logger, TensorBoardLogger)
            or isinstance(trainer.strategy, FSDPStrategy)
            or not getattr(dm, "val_examples", None)
        ):
            return
        tokenizer = dm.tokenizer
        lines = []
        for example in dm.val_examples[: self.num_prompts]:
            ids = tokenizer(example.prompt, add_special_tokens=False, return_tensors="pt")[
                "input_ids"
            ]
            out = pl_module.model.generate(
                ids.to(pl_module.device),
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                synced_gpus=sharded,
            )
            completion = tokenizer.decode(out[0, ids.size(1) :], skip_special_tokens=False)
            # Markdown code blocks keep the step format readable in TensorBoard.
            lines.append(f"```\n{example.prompt}{completion}\n```")
        if trainer.is_global_zero:
            trainer.logger.experiment.add_text("samples", "\n\n".join(lines), trainer.global_step)
