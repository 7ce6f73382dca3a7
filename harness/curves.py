"""Accuracy against the number of trajectories k, from one pool of K candidates.

A pool holds, per problem, K sampled candidates (answer group, correct or not,
trajectory score). For a given k, every method picks an answer from a random
k-subset of each problem's pool:

- `pass@k`: right when any of the k is right (an oracle, the ceiling of
  every selection method);
- `majority vote`: the most frequent answer (ties: the group whose best
  candidate scores higher), scores used only to break ties;
- `PPM best-of-k`: the answer of the best-scored candidate;
- `PPM-weighted vote`: each candidate votes with (score + 1) / 2.

These are `rstar_pl.search.majority_vote`'s rules (plain and weighted),
computed for all problems at once with arrays; a test checks them against it.
Candidates without an answer never win (and count as wrong for pass@k).

Resampling: each of `resamples` draws takes a k-subset per problem (without
replacement, the same subsets for every method, so methods are compared on
the same candidates). The reported accuracy is the mean over draws on all
problems; the 95% interval is the 2.5th and 97.5th percentiles of the same
draws with the problems also resampled (with replacement), so it covers both
which candidates were drawn and which problems the benchmark happens to hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rstar_pl.errors import UserError

__all__ = ["METHODS", "Pool", "k_values", "pick", "scaling_curve"]

METHODS = ("pass@k", "majority vote", "PPM best-of-k", "PPM-weighted vote")


@dataclass(frozen=True)
class Pool:
    """K candidates for each of P problems.

    Attributes:
        group: [P, K] answer-group id per candidate (-1: no answer);
        score: [P, K] trajectory score in [-1, 1];
        group_correct: [P, G] whether a group's answer is right (G = most groups).
    """

    group: np.ndarray
    score: np.ndarray
    group_correct: np.ndarray

    @classmethod
    def from_lists(
        cls,
        groups: Sequence[Sequence[int]],
        scores: Sequence[Sequence[float]],
        correct_groups: Sequence[Sequence[bool]],
    ) -> Pool:
        sizes = {len(g) for g in groups} | {len(s) for s in scores}
        if len(sizes) != 1:
            raise ValueError(f"every problem needs the same number of candidates; got {sizes}")
        width = max([len(c) for c in correct_groups] + [1])
        table = np.zeros((len(correct_groups), width), bool)
        for p, row in enumerate(correct_groups):
            table[p, : len(row)] = row
        return cls(
            np.array(groups, int).reshape(len(groups), -1),
            np.array(scores, float).reshape(len(scores), -1),
            table,
        )

    @property
    def problems(self) -> int:
        return self.group.shape[0]

    @property
    def size(self) -> int:
        return self.group.shape[1]


def k_values(maximum: int) -> list[int]:
    """1, 2, 4, ... up to `maximum` (which is included even when not a power of 2)."""
    if maximum < 1:
        raise UserError(f"the number of trajectories must be >= 1, got {maximum}")
    ks, k = [], 1
    while k < maximum:
        ks.append(k)
        k *= 2
    return ks + [maximum]


def _vote(pool: Pool, subset: np.ndarray, weighted: bool) -> np.ndarray:
    """[P] winning group of each problem's subset (-1 when no candidate answered)."""
    rows = np.arange(pool.problems)[:, None].repeat(subset.shape[1], 1)
    groups = pool.group[rows, subset]
    scores = pool.score[rows, subset]
    width = pool.group_correct.shape[1]
    answered = groups >= 0
    weight = np.where(answered, (scores + 1) / 2 if weighted else 1.0, 0.0)
    totals = np.zeros((pool.problems, width))
    np.add.at(totals, (rows[answered], groups[answered]), weight[answered])
    best = np.full((pool.problems, width), -np.inf)
    np.maximum.at(best, (rows[answered], groups[answered]), scores[answered])
    # Ties on the vote go to the group whose best candidate scores higher. Plain votes are
    # whole numbers, so a tie-break term below 1 never outweighs one vote; weighted totals
    # tie only for equal scores, where a tiny term does the same.
    key = totals + ((best + 1) / 4 if not weighted else 1e-9 * (best + 1))
    key[~np.isfinite(best)] = -np.inf
    winner = key.argmax(1)
    return np.where(answered.any(1), winner, -1)


def pick(pool: Pool, subset: np.ndarray, method: str) -> np.ndarray:
    """[P] bool: whether `method` answers each problem right from its candidates
    `subset` ([P, k] indices into the pool)."""
    rows = np.arange(pool.problems)
    if method == "pass@k":
        chosen = pool.group[rows[:, None], subset]
        right = np.where(chosen >= 0, pool.group_correct[rows[:, None], chosen.clip(0)], False)
        return right.any(1)
    if method == "PPM best-of-k":
        scores = np.where(
            pool.group[rows[:, None], subset] >= 0, pool.score[rows[:, None], subset], -np.inf
        )
        best = subset[rows, scores.argmax(1)]
        group = pool.group[rows, best]
    elif method in ("majority vote", "PPM-weighted vote"):
        group = _vote(pool, subset, weighted=method == "PPM-weighted vote")
    else:
        raise ValueError(f"unknown selection method {method!r}; allowed: {', '.join(METHODS)}")
    return np.where(group >= 0, pool.group_correct[rows, group.clip(0)], False)


def scaling_curve(
    pool: Pool,
    ks: Sequence[int],
    methods: Sequence[str] = METHODS,
    *,
    resamples: int = 200,
    seed: int = 0,
) -> dict[str, list[dict[str, float]]]:
    """{method: [{"k", "accuracy", "low", "high"} for each k]} (module docstring)."""
    if pool.problems == 0:
        raise ValueError("the pool has no problems")
    if max(ks) > pool.size:
        raise UserError(f"k={max(ks)} is more than the pool's {pool.size} candidates")
    rng = np.random.default_rng(seed)
    out: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    for k in ks:
        point = {m: np.empty(resamples) for m in methods}
        boot = {m: np.empty(resamples) for m in methods}
        for b in range(resamples):
            subset = rng.random((pool.problems, pool.size)).argsort(1)[:, :k]
            counts = np.bincount(
                rng.integers(0, pool.problems, pool.problems), minlength=pool.problems
            )
            for m in methods:
                right = pick(pool, subset, m)
                point[m][b] = right.mean()
                boot[m][b] = (right * counts).sum() / pool.problems
        for m in methods:
            low, high = np.percentile(boot[m], [2.5, 97.5])
            out[m].append(
                {
                    "k": int(k),
                    "accuracy": float(point[m].mean()),
                    "low": float(low),
                    "high": float(high),
                }
            )
    return out
