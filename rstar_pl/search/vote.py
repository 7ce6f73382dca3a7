"""Majority vote over the top-K trajectories of several search runs.

The paper's test-time answer: run the search several times, keep each run's
best trajectory, and vote over the K best of them by PPM score. Answers are
grouped by mathematical equivalence (`grading.is_equivalent` by default), not
by string. Two variants:

- plain: each trajectory is one vote;
- score-weighted: each trajectory votes with weight (score + 1) / 2, i.e. its
  PPM value mapped from [-1, 1] to [0, 1], so a confident wrong answer does not
  subtract votes from the others.

Ties go to the group whose best trajectory scores higher, then to the group seen
first (in score order), so the result is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["majority_vote"]


def majority_vote(
    answers: Sequence[str | None],
    scores: Sequence[float] | None = None,
    *,
    top_k: int | None = None,
    weighted: bool = False,
    equivalent: Callable[[str, str], bool] | None = None,
) -> str | None:
    """The winning answer among the `top_k` best-scored trajectories.

    Args:
        answers: final answers, one per trajectory (None: no answer, no vote, and
            no place among the top K).
        scores: one score per trajectory in [-1, 1]; without scores every
            trajectory counts and weighted voting is not allowed.
        top_k: vote over the K highest-scored trajectories that have an answer
            (all if None).
        weighted: score-weighted instead of plain counting.
        equivalent: answer equivalence; default `grading.is_equivalent`.

    Returns:
        The representative (first-seen, highest-scored) answer of the winning
        group, or None when no trajectory has an answer.
    """
    if scores is not None and len(scores) != len(answers):
        raise ValueError(f"majority_vote: {len(answers)} answers but {len(scores)} scores")
    if weighted and scores is None:
        raise ValueError("majority_vote: weighted=True needs scores")
    if top_k is not None and top_k < 1:
        raise ValueError(f"majority_vote: top_k must be >= 1, got {top_k}")
    if equivalent is None:
        from rstar_pl.grading import is_equivalent as equivalent
    # a trajectory without an answer has no vote: it must not take a top-K place
    order = [i for i in range(len(answers)) if answers[i] is not None]
    if scores is not None:
        order.sort(key=lambda i: -scores[i])  # stable: equal scores keep input order
    if top_k is not None:
        order = order[:top_k]
    groups: list[list] = []  # [representative, weight, best score]
    for i in order:
        answer = answers[i]
        score = scores[i] if scores is not None else 0.0
        weight = (score + 1.0) / 2.0 if weighted else 1.0
        for group in groups:
            if group[0] == answer or equivalent(answer, group[0]):
                group[1] += weight
                group[2] = max(group[2], score)
                break
        else:
            groups.append([answer, weight, score])
    if not groups:
        return None
    best = max(range(len(groups)), key=lambda g: (groups[g][1], groups[g][2], -g))
    return groups[best][0]
