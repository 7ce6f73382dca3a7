"""AdamW and its learning-rate schedule, shared by the policy and the PPM.

The paper trains both models with AdamW at lr 7e-6 and a linear schedule for
Qwen (cosine for Phi). The schedule is stepped every optimiser step: an
optional linear warmup from 0, then linear (or cosine) decay to
`min_lr_ratio * lr` at the last step, or a constant rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import torch

from rstar_pl.errors import UserError

__all__ = ["Schedule", "build_optimizer", "lr_factor"]

Schedule = Literal["linear", "cosine", "constant"]


def lr_factor(
    step: int, *, total_steps: int, warmup_steps: int, schedule: Schedule, min_lr_ratio: float = 0.0
) -> float:
    """Multiplier of the base learning rate at optimiser step `step` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    if schedule == "linear":
        decay = 1.0 - progress
    elif schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        raise UserError(f"model.schedule is {schedule!r}; allowed: 'linear', 'cosine', 'constant'")
    return min_lr_ratio + (1.0 - min_lr_ratio) * decay


def build_optimizer(
    params: Iterable[torch.nn.Parameter],
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    schedule: Schedule,
    warmup_steps: int,
    min_lr_ratio: float,
    total_steps: int,
) -> dict:
    """AdamW plus a per-step LambdaLR, in the form `configure_optimizers` returns."""
    if schedule not in ("linear", "cosine", "constant"):
        raise UserError(f"model.schedule is {schedule!r}; allowed: 'linear', 'cosine', 'constant'")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=tuple(betas))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(
            step,
            total_steps=total_steps,
            warmup_steps=warmup_steps,
            schedule=schedule,
            min_lr_ratio=min_lr_ratio,
        ),
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
