"""Step-level beam search ranked by the PPM, many problems in lock-step.

Each level expands every live beam node of every problem in one backend call
(`samples_per_node` samples each) and scores every new step in one scorer call;
each problem keeps its `beam_width` best non-terminal new steps by PPM score.
Terminals are collected as finished solutions. The paper's setting is beam 8,
8 samples per node: faster than MCTS, slightly weaker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rstar_pl.search.expand import Sampling, SearchEnv, expand
from rstar_pl.search.mcts import SearchProblem, new_tree
from rstar_pl.search.seeding import derive_seed
from rstar_pl.search.trajectory import Trajectory, ranked_trajectories
from rstar_pl.search.tree import ROOT, Tree

__all__ = ["BeamConfig", "run_beam"]


@dataclass
class BeamConfig:
    beam_width: int = 8
    samples_per_node: int = 8
    max_depth: int = 16
    errors_threshold: int = 1
    few_shot: bool = False
    sampling: Sampling = field(default_factory=Sampling)

    def __post_init__(self) -> None:
        if isinstance(self.sampling, dict):
            self.sampling = Sampling(**self.sampling)
        for name in ("beam_width", "samples_per_node", "max_depth", "errors_threshold"):
            if getattr(self, name) < 1:
                raise ValueError(f"beam.{name} must be >= 1, got {getattr(self, name)}")


def run_beam(
    problems: Sequence[SearchProblem], env: SearchEnv, config: BeamConfig, *, seed: int
) -> tuple[list[Tree], list[list[Trajectory]]]:
    """Beam-search every problem; return the trees and, per problem, its
    finished trajectories best first by PPM score of the final step."""
    if env.scorer is None:
        raise ValueError("beam search ranks steps with a PPM: give SearchEnv a scorer")
    trees = [new_tree(p, seed, 0, config.few_shot) for p in problems]
    beams: list[list[int]] = [[ROOT] for _ in trees]
    finished: list[list[int]] = [[] for _ in trees]
    level = 0
    while True:
        requests = [(trees[i], node) for i, beam in enumerate(beams) for node in beam]
        if not requests:
            break
        kids = expand(
            requests,
            env,
            n=config.samples_per_node,
            sampling=config.sampling,
            max_depth=config.max_depth,
            errors_threshold=config.errors_threshold,
            score="all",
            call_seed=derive_seed(seed, "beam", level),
        )
        level += 1
        candidates: list[list[int]] = [[] for _ in trees]
        index = {id(tree): i for i, tree in enumerate(trees)}
        for (tree, _), new in zip(requests, kids):
            i = index[id(tree)]
            for child in new:
                (finished[i] if tree.terminal[child] else candidates[i]).append(child)
        for i, tree in enumerate(trees):
            # stable sort: equal scores keep sampling order, so results are reproducible
            candidates[i].sort(key=lambda c, t=tree: -t.prior[c])
            beams[i] = candidates[i][: config.beam_width]
    return trees, [ranked_trajectories(t, f) for t, f in zip(trees, finished)]
