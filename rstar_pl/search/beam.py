"""Step-level beam search ranked by the PPM, many problems in lock-step.

Each level expands every live beam node of every problem in one backend call
(`samples_per_node` samples each) and scores every new step in one scorer call
(`lockstep.run_lockstep`); each problem keeps its best non-terminal new steps
by PPM score. Terminals are collected as finished solutions, and the beam
shrinks as answers are found: a problem with `k` finished answers keeps
`beam_width - k` nodes, so it ends with at most `beam_width` answered
trajectories, as in the reference implementation. Error children are never
kept; a node whose samples all fail is retried up to `errors_threshold` times
in a row (it competes for the beam as it is), then it ends ("no valid child")
as a finished trajectory without an answer. The paper's setting is beam 8, 8
samples per node: faster than MCTS, slightly weaker.

A partial or finished trajectory's score is its steps' PPM values aggregated
by `aggregate` (`search.aggregate`); `last`, the default, is the paper's: the
value of the newest step alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rstar_pl.errors import UserError
from rstar_pl.search.aggregate import check_aggregation, path_score
from rstar_pl.search.expand import Expansion, Sampling, SearchEnv
from rstar_pl.search.lockstep import Lead, run_lockstep
from rstar_pl.search.mcts import SearchProblem, new_tree
from rstar_pl.search.trajectory import Trajectory, ranked_trajectories, trajectory
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
    aggregate: str = "last"
    """How step values make a trajectory's score: last, min, mean or prod."""

    def __post_init__(self) -> None:
        if isinstance(self.sampling, dict):
            self.sampling = Sampling(**self.sampling)
        for name in ("beam_width", "samples_per_node", "max_depth", "errors_threshold"):
            if getattr(self, name) < 1:
                raise UserError(f"beam.{name} must be >= 1, got {getattr(self, name)}")
        check_aggregation(self.aggregate, "beam.aggregate")


def run_beam(
    problems: Sequence[SearchProblem], env: SearchEnv, config: BeamConfig, *, seed: int
) -> tuple[list[Tree], list[list[Trajectory]]]:
    """Beam-search every problem; return the trees and, per problem, its
    finished trajectories best first by score (`config.aggregate`)."""
    if env.scorer is None:
        raise UserError("beam search ranks steps with a PPM: give SearchEnv a scorer")
    trees = [new_tree(p, seed, 0, config.few_shot) for p in problems]
    beam = _Beam(trees, config.beam_width, config.aggregate)
    expansion = Expansion(
        n=config.samples_per_node, sampling=config.sampling, max_depth=config.max_depth, score="all"
    )
    run_lockstep(
        trees,
        env,
        beam,
        expansion,
        errors_threshold=config.errors_threshold,
        seed_parts=(seed, "beam"),
    )
    if config.aggregate == "last":
        return trees, [ranked_trajectories(t, f) for t, f in zip(trees, beam.finished)]
    ranked = []
    for tree, finished in zip(trees, beam.finished):
        scored = sorted(
            ((path_score(tree, end, config.aggregate), end) for end in finished),
            key=lambda se: -se[0],
        )  # stable: ties keep finishing order
        ranked.append([trajectory(tree, end, score) for score, end in scored])
    return trees, ranked


class _Beam:
    """Beam search as a lock-step strategy (`lockstep.py`)."""

    def __init__(self, trees: list[Tree], width: int, how: str = "last") -> None:
        self.trees, self.width, self.how = trees, width, how
        self.candidates: list[list[Lead]] = [[Lead(i, ROOT)] for i in range(len(trees))]
        self.finished: list[list[int]] = [[] for _ in trees]
        self.answers = [0] * len(trees)

    def leads(self, i: int) -> list[Lead]:
        tree, pool = self.trees[i], self.candidates[i]
        self.candidates[i] = []
        # stable sort: equal scores keep sampling order, so results are reproducible
        if self.how == "last":
            pool.sort(key=lambda lead: -(tree.prior[lead.node] or 0.0))
        else:
            pool.sort(key=lambda lead: -path_score(tree, lead.node, self.how))
        return pool[: max(0, self.width - self.answers[i])]

    def _finish(self, i: int, node: int) -> None:
        self.finished[i].append(node)
        if self.trees[i].answer[node] is not None:
            self.answers[i] += 1

    def grown(self, lead: Lead, children: list[int]) -> None:
        tree = self.trees[lead.tree]
        for child in children:
            if tree.terminal[child]:
                self._finish(lead.tree, child)
            else:
                self.candidates[lead.tree].append(Lead(lead.tree, child))

    def retry(self, lead: Lead) -> None:
        self.candidates[lead.tree].append(lead)

    def ended(self, lead: Lead) -> None:
        if lead.node != ROOT and self.trees[lead.tree].terminal[lead.node]:
            self._finish(lead.tree, lead.node)
