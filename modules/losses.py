"""Loss functions of the two trained models, as small free functions.

`response_lm_loss` is the policy's supervised loss: next-token cross-entropy
averaged over the response tokens only (prompt and padding carry the label
-100). `pairwise_preference_loss` is the process preference model's
Bradley-Terry loss over (positive, negative) step pairs. `q_regression_loss`
and `outcome_loss` train the two reward models the paper compares the PPM
with (its reward-model ablation): a step-level Q-value regressor and a
whole-trajectory outcome model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "IGNORE_INDEX",
    "outcome_loss",
    "pairwise_preference_loss",
    "q_regression_loss",
    "response_lm_loss",
]

#: Label of a token that carries no loss (prompt, padding, packing boundary).
IGNORE_INDEX = -100


def response_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the tokens whose label is not -100.

    Args:
        logits: [batch, seq, vocab], the model's output at every position.
        labels: [batch, seq], the input ids with prompt and padding set to -100.
            Position t's logits predict label t+1 (the shift happens here).

    Returns:
        A scalar: the sum of the per-token losses divided by the number of
        response tokens in the batch (a token mean, so that packed and padded
        batches of the same examples give the same loss).
    """
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    return F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="mean",
    )


def pairwise_preference_loss(
    chosen: torch.Tensor, rejected: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bradley-Terry loss `-log sigmoid(r_pos - r_neg)` over step pairs, Eq. 4.

    The paper writes, per step with 2 positives and 2 negatives,
    `L = -1/(2*2) * sum log sigmoid(r(x, y_pos) - r(x, y_neg))`: each step
    counts once, its pairs share that weight. Each row here is one pair, with
    weight 1/(#pairs of its step) (`rstar_pl.data.records.PairExample.weight`;
    the reference's 1/(pos_count * neg_count)), and the loss is the weighted
    mean `sum(w * l) / sum(w)`, i.e. the mean over steps of each step's mean
    pair loss when a batch holds whole steps. Without weights every pair counts
    once.

    Args:
        chosen: [pairs], the values of the positive (higher-Q) steps.
        rejected: [pairs], the values of the negative steps, row by row.
        weights: [pairs] pair weights, or None for a plain mean.

    Returns:
        (loss, margins): the scalar loss and the per-pair margins
        `chosen - rejected` [pairs], from which accuracy and mean margin follow.
    """
    if chosen.shape != rejected.shape or chosen.dim() != 1:
        raise ValueError(
            f"chosen and rejected must be 1-D of equal length; got {tuple(chosen.shape)} "
            f"and {tuple(rejected.shape)}"
        )
    margins = chosen.float() - rejected.float()
    # logsigmoid is the numerically stable form of log(sigmoid(x)).
    losses = -F.logsigmoid(margins)
    if weights is None:
        return losses.mean(), margins
    if weights.shape != chosen.shape:
        raise ValueError(
            f"weights must have one value per pair, shape {tuple(chosen.shape)}; got "
            f"{tuple(weights.shape)}"
        )
    weights = weights.to(losses.dtype)
    return (weights * losses).sum() / weights.sum(), margins


def q_regression_loss(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The Q-value PRM's loss (the paper's "PQM" ablation): mean squared error
    between the value of a partial trajectory and its step's MCTS Q-value.

    Args:
        values: [steps] model values in [-1, 1] (tanh).
        targets: [steps] the steps' Q = value_sum / visits, in [-1, 1].
    """
    if values.shape != targets.shape or values.dim() != 1:
        raise ValueError(
            f"values and targets must be 1-D of equal length; got "
            f"{tuple(values.shape)} and {tuple(targets.shape)}"
        )
    return F.mse_loss(values.float(), targets.float())


def outcome_loss(values: torch.Tensor, targets: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The outcome reward model's loss (the paper's "ORM" ablation): binary
    cross-entropy of the final answer being right, with the value read as a
    probability p = (v + 1) / 2 (tanh's range onto [0, 1]).

    Args:
        values: [trajectories] model values in [-1, 1] of whole trajectories.
        targets: [trajectories] +1 for a correct final answer, -1 for a wrong one.
        eps: p is kept in [eps, 1 - eps] so that a saturated tanh gives a finite loss.
    """
    if values.shape != targets.shape or values.dim() != 1:
        raise ValueError(
            f"values and targets must be 1-D of equal length; got "
            f"{tuple(values.shape)} and {tuple(targets.shape)}"
        )
    p = ((values.float() + 1) / 2).clamp(eps, 1 - eps)
    return F.binary_cross_entropy(p, (targets.float() + 1) / 2)
