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

    Measured before clipping. Under FSDP each rank sees its own shard, so the
    logged value is rank 0's shard norm (a lower bound of the global norm).
    """

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        norms = [p.grad.detach().float().norm() for p in pl_module.parameters() if p.grad is not None]
        if norms:
            pl_module.log("train/grad_norm", torch.stack(norms).norm(), on_step=True, on_epoch=False)


class SampleGenerations(Callback):
    """At the end of each validation, greedily completes a few validation prompts
    with the policy and writes prompt + completion to TensorBoard as text.

    Only for `PolicyModule` with a TensorBoard logger and a datamodule that has
    `val_examples` and `tokenizer` (the SFT datamodule). Skipped under FSDP,
    where a forward pass on one rank alone would wait for the others forever.

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

        from modules.policy import PolicyModule

        dm = trainer.datamodule
        if (
            trainer.sanity_checking
            or not trainer.is_global_zero
            or not isinstance(pl_module, PolicyModule)
            or not isinstance(trainer.logger, TensorBoardLogger)
            or isinstance(trainer.strategy, FSDPStrategy)
            or not getattr(dm, "val_examples", None)
        ):
            return
        tokenizer = dm.tokenizer
        lines = []
        for example in dm.val_examples[: self.num_prompts]:
            ids = tokenizer(example.prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
            out = pl_module.model.generate(
                ids.to(pl_module.device), max_new_tokens=self.max_new_tokens, do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            completion = tokenizer.decode(out[0, ids.size(1):], skip_special_tokens=False)
            # Markdown code blocks keep the step format readable in TensorBoard.
            lines.append(f"```\n{example.prompt}{completion}\n```")
        trainer.logger.experiment.add_text("samples", "\n\n".join(lines), trainer.global_step)
