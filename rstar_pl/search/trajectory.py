"""Finished solutions read out of a tree, ranked by score, for test-time use."""

from __future__ import annotations

from dataclasses import dataclass

from rstar_pl.search.tree import Tree

__all__ = ["Trajectory", "best_answered", "ranked_trajectories"]


@dataclass(frozen=True)
class Trajectory:
    """One root-to-terminal path.

    Attributes:
        problem_id: the problem.
        nodes: node ids from the root to the terminal.
        response: the step-format text after the prompt.
        answer: the final \\boxed{} answer, None when the path gave none.
        score: the ranking score (see the strategy that produced it).
        correct: graded against the reference, None without one.
    """

    problem_id: str
    nodes: tuple[int, ...]
    response: str
    answer: str | None
    score: float
    correct: bool | None


def trajectory(tree: Tree, terminal: int, score: float) -> Trajectory:
    return Trajectory(
        tree.problem_id,
        tuple(tree.path(terminal)),
        tree.response(terminal),
        tree.answer[terminal],
        float(score),
        tree.correct[terminal],
    )


def ranked_trajectories(tree: Tree, terminals: list[int] | None = None) -> list[Trajectory]:
    """Trajectories ending at `terminals` (default: every terminal some rollout
    reached), best first by the terminal's Q (its PPM score at test time, the
    mean reward with a reference); ties keep the earlier node first."""
    if terminals is None:
        terminals = sorted({path[-1] for path, _ in tree.rollouts})
    ranked = sorted(terminals, key=lambda t: -tree.q(t))
    return [trajectory(tree, t, tree.q(t)) for t in ranked]


def best_answered(tree: Tree) -> Trajectory | None:
    """A test-time run's result: its best-ranked trajectory that gives an answer
    (a depth-limit or dead-end terminal can hold a higher Q, but it has nothing
    to vote for); None when no rollout reached an answer."""
    return next((t for t in ranked_trajectories(tree) if t.answer is not None), None)
