"""Best-of-N: N independent step-by-step samples per problem, ranked by the
scorer's value of the whole trajectory (an outcome-reward baseline for the
paper's ablations).

Each problem runs N chains from the root, each extended by one sample per
level, all problems in lock-step (one backend call per level,
`lockstep.run_lockstep`); duplicates are kept, since the chains are
independent. A chain whose sample fails is retried at the same node up to
`errors_threshold` times in a row; then it ends there, as a trajectory without
an answer ("no valid child"), or with no trajectory at all if it never left
the root. A trajectory without an answer scores -1; without a scorer every
answer scores 0 and the ranking keeps sampling order. An answer's score is its
steps' PPM values aggregated by `aggregate` (`search.aggregate`): `last`, the
default, scores only the final step (one scorer call per answer); the other
rules have every step scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rstar_pl.errors import UserError
from rstar_pl.search.aggregate import check_aggregation, path_score
from rstar_pl.search.expand import Expansion, Sampling, SearchEnv
from rstar_pl.search.lockstep import Lead, run_lockstep
from rstar_pl.search.mcts import SearchProblem, new_tree
from rstar_pl.search.trajectory import Trajectory, trajectory
from rstar_pl.search.tree import ROOT, Tree

__all__ = ["BestOfNConfig", "run_best_of_n"]


@dataclass
class BestOfNConfig:
    n: int = 8
    max_depth: int = 16
    errors_threshold: int = 1
    few_shot: bool = False
    sampling: Sampling = field(default_factory=Sampling)
    aggregate: str = "last"
    """How step values make an answer's score: last, min, mean or prod."""

    def __post_init__(self) -> None:
        if isinstance(self.sampling, dict):
            self.sampling = Sampling(**self.sampling)
        for name in ("n", "max_depth", "errors_threshold"):
            if getattr(self, name) < 1:
                raise UserError(f"best_of_n.{name} must be >= 1, got {getattr(self, name)}")
        check_aggregation(self.aggregate, "best_of_n.aggregate")


def run_best_of_n(
    problems: Sequence[SearchProblem], env: SearchEnv, config: BestOfNConfig, *, seed: int
) -> tuple[list[Tree], list[list[Trajectory]]]:
    """Sample N trajectories per problem; return the trees and, per problem, the
    trajectories best first by score."""
    trees = [new_tree(p, seed, 0, config.few_shot) for p in problems]
    chains = _Chains(trees, config.n)
    expansion = Expansion(
        n=1,
        sampling=config.sampling,
        max_depth=config.max_depth,
        score="none" if env.scorer is None else "terminal" if config.aggregate == "last" else "all",
        dedupe=False,
    )
    run_lockstep(
        trees,
        env,
        chains,
        expansion,
        errors_threshold=config.errors_threshold,
        seed_parts=(seed, "best_of_n"),
    )
    ranked: list[list[Trajectory]] = []
    for tree, ends in zip(trees, chains.finished):
        scored = [(_score(tree, t, config.aggregate), t) for t in ends]
        scored.sort(key=lambda st: -st[0])
        ranked.append([trajectory(tree, t, s) for s, t in scored])
    return trees, ranked


def _score(tree: Tree, end: int, how: str) -> float:
    """The scorer's value of an answer (0 without a scorer); -1 for a chain that
    ended without one, as MCTS rewards it."""
    if tree.answer[end] is None:
        return -1.0
    if how == "last":
        return tree.prior[end] if tree.prior[end] is not None else 0.0
    return path_score(tree, end, how)


class _Chains:
    """Best-of-N as a lock-step strategy: N chains per tree (`lockstep.py`)."""

    def __init__(self, trees: list[Tree], n: int) -> None:
        self.trees = trees
        self.live: list[list[Lead]] = [
            [Lead(i, ROOT, chain=j) for j in range(n)] for i in range(len(trees))
        ]
        self.finished: list[list[int]] = [[] for _ in trees]

    def leads(self, i: int) -> list[Lead]:
        out, self.live[i] = self.live[i], []
        return out

    def grown(self, lead: Lead, children: list[int]) -> None:
        (child,) = children  # one sample per chain
        if self.trees[lead.tree].terminal[child]:
            self.finished[lead.tree].append(child)
        else:
            self.live[lead.tree].append(Lead(lead.tree, child, chain=lead.chain))

    def retry(self, lead: Lead) -> None:
        self.live[lead.tree].append(lead)

    def ended(self, lead: Lead) -> None:
        if lead.node != ROOT and self.trees[lead.tree].terminal[lead.node]:
            self.finished[lead.tree].append(lead.node)
