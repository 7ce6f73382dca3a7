"""ProcessBench's metric: find the first wrong step from per-step scores.

A sample is a solution of `n` steps with a score per step prefix (the PPM's
value of the question plus steps 0..i) and a label: the 0-based index of the
first wrong step, or -1 when every step is right. With a threshold `t` the
prediction is the first step whose score is below `t`, or -1 when none is:

    pred(t) = min{i : s_i < t}   (-1 if no such i)

Per split (Zheng et al., 2024):

    error_acc   = share of erroneous samples (label >= 0) with pred == label
    correct_acc = share of correct samples (label == -1) with pred == -1
    F1          = 2 * error_acc * correct_acc / (error_acc + correct_acc)   (0 if both are 0)

and the headline is the mean F1 over the splits.

A Bradley-Terry PPM's values have no natural zero (the loss only sees
differences), so three threshold protocols are reported (`threshold_protocols`):

- `fixed`: t = 0, the middle of tanh's range;
- `transfer`: t chosen by F1 on one split (gsm8k) and applied to every split
  (on that split itself it is an in-sample number);
- `oracle`: per split its own best t, an upper bound, not a result.

Searching t: a sample is right exactly for t in one interval, so F1 only
changes where t crosses a score. An erroneous sample with label L is right for
`s_L < t <= min(s_0..s_{L-1})` (no upper bound when L = 0), a correct one for
`t <= min(s_0..s_{n-1})`. The candidates are the midpoints between consecutive
distinct scores plus one value below and one above all of them; among
thresholds of equal F1 the one closest to 0 wins (then the lower), so the
choice is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SplitScore",
    "best_threshold",
    "candidate_thresholds",
    "f1",
    "first_below",
    "score_split",
    "threshold_protocols",
]


@dataclass(frozen=True)
class SplitScore:
    """ProcessBench's numbers for one split at one threshold."""

    threshold: float
    error_acc: float
    correct_acc: float
    f1: float
    errors: int
    corrects: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            "threshold": self.threshold,
            "error_acc": self.error_acc,
            "correct_acc": self.correct_acc,
            "f1": self.f1,
            "errors": self.errors,
            "corrects": self.corrects,
        }


def first_below(scores: Sequence[float], threshold: float) -> int:
    """The index of the first score below `threshold`, -1 when there is none."""
    return next((i for i, s in enumerate(scores) if s < threshold), -1)


def f1(error_acc: float, correct_acc: float) -> float:
    """Harmonic mean of the two accuracies; 0 when both are 0."""
    total = error_acc + correct_acc
    return 2 * error_acc * correct_acc / total if total > 0 else 0.0


def _intervals(
    scores: Sequence[Sequence[float]], labels: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, erroneous): sample j is predicted right exactly for lo[j] < t <= hi[j]."""
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} score lists but {len(labels)} labels")
    lo, hi, erroneous = [], [], []
    for j, (row, label) in enumerate(zip(scores, labels)):
        if not row:
            raise ValueError(f"sample {j} has no step scores")
        if not -1 <= label < len(row):
            raise ValueError(f"sample {j}: label {label} outside -1..{len(row) - 1}")
        if label < 0:
            lo.append(-math.inf)
            hi.append(min(row))
        else:
            lo.append(row[label])
            hi.append(min(row[:label]) if label else math.inf)
        erroneous.append(label >= 0)
    return np.array(lo, float), np.array(hi, float), np.array(erroneous, bool)


def _scores_at(
    lo: np.ndarray, hi: np.ndarray, erroneous: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(error_acc, correct_acc, f1), each [len(thresholds)]."""
    right = (lo[None, :] < thresholds[:, None]) & (thresholds[:, None] <= hi[None, :])
    n_err, n_cor = int(erroneous.sum()), int((~erroneous).sum())
    err = right[:, erroneous].sum(1) / n_err if n_err else np.full(len(thresholds), np.nan)
    cor = right[:, ~erroneous].sum(1) / n_cor if n_cor else np.full(len(thresholds), np.nan)
    total = np.nan_to_num(err) + np.nan_to_num(cor)
    with np.errstate(invalid="ignore", divide="ignore"):
        both = np.where(total > 0, 2 * np.nan_to_num(err) * np.nan_to_num(cor) / total, 0.0)
    return err, cor, both


def score_split(
    scores: Sequence[Sequence[float]], labels: Sequence[int], threshold: float
) -> SplitScore:
    """The split's accuracies and F1 at `threshold`."""
    lo, hi, erroneous = _intervals(scores, labels)
    err, cor, both = _scores_at(lo, hi, erroneous, np.array([threshold], float))
    return SplitScore(
        float(threshold),
        float(err[0]),
        float(cor[0]),
        float(both[0]),
        int(erroneous.sum()),
        int((~erroneous).sum()),
    )


def candidate_thresholds(scores: Sequence[Sequence[float]]) -> np.ndarray:
    """Midpoints of consecutive distinct scores, one below the lowest and one above
    the highest (every F1 the split can reach is reached at one of them)."""
    values = np.unique(np.array([s for row in scores for s in row], float))
    if values.size == 0:
        return np.array([0.0])
    return np.concatenate([[values[0] - 1.0], (values[1:] + values[:-1]) / 2, [values[-1] + 1.0]])


def best_threshold(scores: Sequence[Sequence[float]], labels: Sequence[int]) -> SplitScore:
    """The threshold of highest F1 on this split (ties: closest to 0, then lower)."""
    lo, hi, erroneous = _intervals(scores, labels)
    thresholds = candidate_thresholds(scores)
    err, cor, both = _scores_at(lo, hi, erroneous, thresholds)
    order = np.lexsort((thresholds, np.abs(thresholds), -both))
    k = int(order[0])
    return SplitScore(
        float(thresholds[k]),
        float(err[k]),
        float(cor[k]),
        float(both[k]),
        int(erroneous.sum()),
        int((~erroneous).sum()),
    )


def threshold_protocols(
    splits: Mapping[str, tuple[Sequence[Sequence[float]], Sequence[int]]],
    *,
    tune_on: str = "gsm8k",
) -> dict[str, dict[str, SplitScore]]:
    """{"fixed" | "transfer" | "oracle": {split: SplitScore}} (see the module docstring).

    `splits` maps a split name to (step scores per sample, labels). Without the
    `tune_on` split there is no transfer protocol.
    """
    out: dict[str, dict[str, SplitScore]] = {
        "fixed": {name: score_split(s, y, 0.0) for name, (s, y) in splits.items()},
        "oracle": {name: best_threshold(s, y) for name, (s, y) in splits.items()},
    }
    if tune_on in splits:
        tuned = out["oracle"][tune_on].threshold
        out["transfer"] = {name: score_split(s, y, tuned) for name, (s, y) in splits.items()}
    return {key: out[key] for key in ("fixed", "transfer", "oracle") if key in out}
