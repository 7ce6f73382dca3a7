"""Accuracy as a torchmetrics metric, so that it aggregates across processes.

`AnswerAccuracy` counts correct answers and problems in two summed states;
under DDP (one process per shard of a benchmark) `compute()` syncs both sums
before dividing, so every rank reports the accuracy of the whole benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

__all__ = ["AnswerAccuracy"]


class AnswerAccuracy(Metric):
    """Fraction of problems answered correctly.

    `update(correct)` takes a bool tensor or a sequence of bools (one per
    problem); `compute()` returns correct / total as a float64 scalar tensor,
    NaN when no problem was seen.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    correct: torch.Tensor
    total: torch.Tensor

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, correct: torch.Tensor | Sequence[bool]) -> None:
        flags = torch.as_tensor(correct, dtype=torch.bool, device=self.correct.device).flatten()
        self.correct += flags.sum()
        self.total += flags.numel()

    def compute(self) -> torch.Tensor:
        if self.total == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.correct.double() / self.total.double()
