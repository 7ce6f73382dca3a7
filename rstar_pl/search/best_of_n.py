"""Best-of-N: N independent step-by-step samples per problem, ranked by the
scorer's value of the whole trajectory (an outcome-reward baseline for the
paper's ablations).

The root is expanded with N samples (duplicates kept: they continue
independently), then each live chain is extended by one sample per level, all
problems in lock-step (one backend call per level). Without a scorer every
score is 0 and the ranking keeps sampling order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rstar_pl.search.expand import Sampling, SearchEnv, expand
from rstar_pl.search.mcts import SearchProblem, new_tree
from rstar_pl.search.seeding import derive_seed
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

    def __post_init__(self) -> None:
        if isinstance(self.sampling, dict):
            self.sampling = Sampling(**self.sampling)
        for name in ("n", "max_depth", "errors_threshold"):
            if getattr(self, name) < 1:
                raise ValueError(f"best_of_n.{name} must be >= 1, got {getattr(self, name)}")


def run_best_of_n(
    problems: Sequence[SearchProblem], env: SearchEnv, config: BestOfNConfig, *, seed: int
) -> tuple[list[Tree], list[list[Trajectory]]]:
    """Sample N trajectories per problem; return the trees and, per problem, the
    trajectories best first by score."""
    trees = [new_tree(p, seed, 0, config.few_shot) for p in problems]
    score = "terminal" if env.scorer is not None else "none"
    live: list[list[int]] = [[ROOT] for _ in trees]
    finished: list[list[int]] = [[] for _ in trees]
    level = 0
    while True:
        requests = [(i, node) for i, nodes in enumerate(live) for node in nodes]
        if not requests:
            break
        kids = expand(
            [(trees[i], node) for i, node in requests],
            env,
            n=config.n if level == 0 else 1,
            sampling=config.sampling,
            max_depth=config.max_depth,
            errors_threshold=config.errors_threshold,
            score=score,
            dedupe=False,
            call_seed=derive_seed(seed, "best_of_n", level),
        )
        level += 1
        live = [[] for _ in trees]
        for (i, _), new in zip(requests, kids):
            for child in new:
                (finished[i] if trees[i].terminal[child] else live[i]).append(child)
    ranked: list[list[Trajectory]] = []
    for tree, ends in zip(trees, finished):
        scored = [(tree.prior[t] if tree.prior[t] is not None else 0.0, t) for t in ends]
        scored.sort(key=lambda st: -st[0])
        ranked.append([trajectory(tree, t, s) for s, t in scored])
    return trees, ranked
