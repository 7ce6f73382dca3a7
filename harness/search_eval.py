"""Test-time search for `harness eval --search mcts|beam|best_of_n`.

The paper's evaluation: several independent search runs per problem, each
keeping its highest-scored trajectory, then a majority vote over the top-K
of those trajectories by PPM score (plain or score-weighted). Here:

- `mcts`: `trajectories` independent MCTS runs (different attempts, so
  different tree seeds) with PPM-initialised Q-values and no reference answer
  (terminals are rewarded with their PPM score); each run contributes its best
  trajectory that gives an answer (`rstar_pl.search.best_answered`).
- `best_of_n`: `trajectories` sampled solutions per problem, ranked by the
  PPM's score of their last step, or their steps' scores aggregated by
  `aggregate` (unranked without a PPM: plain vote over all).
- `beam`: step-level beam search of width `trajectories`, `samples` per node,
  PPM-ranked (by `aggregate` too); its finished trajectories are the candidates.

The vote (`rstar_pl.search.majority_vote`) drops candidates without an answer
before taking the top K. The search itself is `rstar_pl.search`; this module
only turns evaluation problems into search problems (without their answers),
runs the chosen strategy, and votes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rstar_pl.backends.base import Completion, PolicyBackend, Scorer
from rstar_pl.data.problems import Problem
from rstar_pl.errors import UserError
from rstar_pl.steps import build_prompt

__all__ = ["SearchOutcome", "SearchSettings", "solve_with_search", "tree_stats"]


class SearchSettings(Protocol):
    """The knobs of test-time search, as `harness.evaluate.EvalConfig` carries them
    (the CLI flags of the same names)."""

    search: str
    trajectories: int
    samples: int
    rollouts: int
    temperature: float
    top_k: int | None
    weighted_vote: bool
    aggregate: str
    max_tokens: int
    max_depth: int
    few_shot: bool
    seed: int


@dataclass(frozen=True)
class SearchOutcome:
    """The result for one problem.

    Attributes:
        answer: the voted answer (None when no candidate gave one).
        response: the best-scored candidate's response whose answer won the vote
            (the best candidate overall when none did).
        num_tokens: tokens the policy generated for this problem.
        candidates: (answer, score) of every candidate, best first.
        stats: what the search built for it: `trees`, `nodes` (all trees),
            `max_depth` (deepest node), `rollouts` (MCTS backups).
    """

    answer: str | None
    response: str
    num_tokens: int
    candidates: list[tuple[str | None, float]]
    stats: dict[str, int] = field(default_factory=dict)


def tree_stats(trees: Sequence[Any]) -> dict[str, int]:
    """Size of the search trees of one problem (`SearchOutcome.stats`)."""
    return {
        "trees": len(trees),
        "nodes": sum(len(t) for t in trees),
        "max_depth": max((max(t.depth) for t in trees), default=0),
        "rollouts": sum(len(t.rollouts) for t in trees),
    }


class _TokenCounter:
    """Passes calls to the policy and adds up generated tokens per problem,
    recognising each prompt by the problem prompt it starts with."""

    def __init__(self, backend: PolicyBackend, prompts: Sequence[str]) -> None:
        self.backend, self.prompts = backend, list(prompts)
        self.per_prompt_seeds = getattr(backend, "per_prompt_seeds", True)
        self.tokens: Counter[int] = Counter()

    def generate(self, prompts: Sequence[str], **kwargs: Any) -> list[list[Completion]]:
        batch = self.backend.generate(prompts, **kwargs)
        for context, completions in zip(prompts, batch, strict=True):
            owner = next((i for i, p in enumerate(self.prompts) if context.startswith(p)), None)
            if owner is not None:
                self.tokens[owner] += sum(c.num_tokens for c in completions)
        return batch


def _candidates(
    settings: SearchSettings, problems: list[Problem], env: Any, scorer: Scorer | None
) -> tuple[list[list[Any]], list[list[Any]]]:
    """Per problem, the candidate trajectories best first (`rstar_pl.search.Trajectory`),
    and the trees they came from."""
    from rstar_pl.search import (
        BeamConfig,
        BestOfNConfig,
        MCTSConfig,
        Sampling,
        best_answered,
        run_beam,
        run_best_of_n,
        run_mcts,
    )

    sampling = Sampling(temperature=settings.temperature, max_tokens=settings.max_tokens)
    if settings.search == "best_of_n":
        config = BestOfNConfig(
            n=settings.trajectories,
            max_depth=settings.max_depth,
            few_shot=settings.few_shot,
            sampling=sampling,
            aggregate=settings.aggregate,
        )
        trees, ranked = run_best_of_n(problems, env, config, seed=settings.seed)
        return ranked, [[t] for t in trees]
    if settings.search == "beam":
        config = BeamConfig(
            beam_width=settings.trajectories,
            samples_per_node=settings.samples,
            max_depth=settings.max_depth,
            few_shot=settings.few_shot,
            sampling=sampling,
            aggregate=settings.aggregate,
        )
        trees, ranked = run_beam(problems, env, config, seed=settings.seed)
        return ranked, [[t] for t in trees]
    if settings.search == "mcts":
        config = MCTSConfig(
            rollouts=settings.rollouts,
            n=settings.samples,
            max_depth=settings.max_depth,
            annotation="ppm",
            few_shot=settings.few_shot,
            sampling=sampling,
        )
        found: list[list[Any]] = [[] for _ in problems]
        grown: list[list[Any]] = [[] for _ in problems]
        for attempt in range(settings.trajectories):
            trees = run_mcts(
                problems, env, config, seed=settings.seed, attempt=attempt, use_reference=False
            )
            for i, tree in enumerate(trees):
                grown[i].append(tree)
                best = best_answered(tree)
                if best is not None:
                    found[i].append(best)
        return [sorted(c, key=lambda t: -t.score) for c in found], grown
    raise UserError(f"unknown search mode {settings.search!r}; allowed: mcts, beam, best_of_n")


def solve_with_search(
    questions: Sequence[str],
    *,
    backend: PolicyBackend,
    sandbox: Any,
    scorer: Scorer | None,
    settings: SearchSettings,
) -> list[SearchOutcome]:
    """Search each question, vote, and return one outcome per question, in order."""
    from rstar_pl.search import SearchEnv, majority_vote

    if settings.search in ("mcts", "beam") and scorer is None:
        raise UserError(f"--search {settings.search} ranks steps with a PPM: give --ppm DIR")
    # the reference is never shown to the search at test time
    problems = [Problem(index=i, question=q, answer=None) for i, q in enumerate(questions)]
    counter = _TokenCounter(
        backend, [build_prompt(q, few_shot=settings.few_shot) for q in questions]
    )
    env = SearchEnv(backend=counter, sandbox=sandbox, scorer=scorer)
    outcomes = []
    candidates, trees = _candidates(settings, problems, env, scorer)
    for i, ranked in enumerate(candidates):
        answers = [t.answer for t in ranked]
        scores = [t.score for t in ranked] if scorer is not None else None
        voted = majority_vote(
            answers,
            scores,
            top_k=settings.top_k,
            weighted=settings.weighted_vote and scorer is not None,
            equivalent=None,
        )
        shown = next(
            (t for t in ranked if voted is not None and t.answer == voted),
            ranked[0] if ranked else None,
        )
        outcomes.append(
            SearchOutcome(
                answer=voted,
                response=shown.response if shown is not None else "",
                num_tokens=counter.tokens[i],
                candidates=[(t.answer, round(t.score, 4)) for t in ranked],
                stats=tree_stats(trees[i]),
            )
        )
    return outcomes
