"""Greedy decoding, majority vote and PPM-guided MCTS on one problem file, at equal budget.

The question a self-evolution round must answer: did the policy get better,
and does the PPM make search better than sampling? `compare_methods` solves
every problem of an rStar-format file (`[{"index", "question", "answer"}]`,
JSON or JSONL; extra fields such as `level` are kept for the breakdown) three
ways through `harness.evaluate` (same backend, sandbox and grading as
`harness eval`):

- `greedy`: one greedy step-by-step solution;
- `vote`: majority vote over `trajectories` sampled solutions (best-of-N
  without a scorer: every sample votes, no PPM involved);
- `mcts`: `mcts_runs` independent MCTS trees guided by the PPM (new steps
  start at the PPM's value, terminals are rewarded with it; the reference
  answer is never shown), sharing `trajectories` rollouts equally; each tree
  keeps its best-scored answered trajectory and the runs' trajectories vote
  (PPM-weighted with `weighted_vote`), the paper's test-time answer. One run
  of all the rollouts is answered by its best trajectory alone.

`vote` and `mcts` sample the same number of whole trajectories per problem;
MCTS samples `samples` candidate steps at every expansion and keeps one, so it
generates more tokens: each method's tokens per problem are reported beside
its accuracy. `pair_accuracy` is the PPM's share of preference pairs (from a
pairs file, e.g. extracted from trees on held-out problems) whose chosen side
it scores strictly higher.

Each method's files are those of `harness eval` under `out/<method>/heldout/`
(predictions, summary, config), so an interrupted comparison resumes.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rstar_pl.data.predictions import read_predictions

__all__ = ["METHODS", "CompareSettings", "compare_methods", "pair_accuracy"]

METHODS = ("greedy", "vote", "mcts")
_TASK = "heldout"


@dataclass
class CompareSettings:
    """How the three methods run (the `harness eval` flags of the same names)."""

    trajectories: int = 8
    """Sampled trajectories per problem: the vote's samples, the MCTS trees' rollouts."""
    mcts_runs: int = 1
    """Independent MCTS trees per problem; each gets `trajectories / mcts_runs` rollouts."""
    weighted_vote: bool = False
    """The MCTS runs' vote weighs each trajectory by its PPM score."""
    samples: int = 4
    """MCTS candidate steps per expansion."""
    temperature: float = 1.0
    """Sampling temperature of the vote and of MCTS."""
    max_tokens: int = 64
    """Token limit of one step."""
    max_depth: int = 8
    """Steps per solution."""
    batch_size: int = 64
    """Problems solved together."""
    backend: str = "hf"
    """hf or vllm."""
    seed: int = 0
    code_timeout: float = 10.0
    """Seconds each program may run in the sandbox."""


def _by_level(predictions: Path, levels: dict[str, Any]) -> dict[str, list[int]]:
    """{level: [correct, count]} of a predictions file ("all" for everything)."""
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for record in read_predictions(predictions):
        for key in ("all", str(levels.get(str(record["index"]), "")) or None):
            if key is not None:
                table[key][0] += int(bool(record["correct"]))
                table[key][1] += 1
    return dict(sorted(table.items()))


def compare_methods(
    policy: str,
    ppm: str | None,
    problems_file: str,
    out: str,
    settings: CompareSettings,
    *,
    backend: Any | None = None,
    scorer: Any | None = None,
    limit: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Solve `problems_file` with each method; return {method: summary}.

    A summary is `harness eval`'s (accuracy, correct, count, tokens_per_problem,
    seconds) plus `by_level`: {level or "all": [correct, count]}. Without a PPM
    the `mcts` method is left out. `backend` and `scorer` default to the
    policy and PPM folders loaded once for all three methods.
    """
    from harness.evaluate import EvalConfig, _LazySandbox, evaluate_task, make_backend, make_scorer

    if settings.mcts_runs < 1 or settings.trajectories % settings.mcts_runs:
        raise ValueError(
            f"evaluate.compare.mcts_runs must divide trajectories ({settings.trajectories}) "
            f"into equal shares, got {settings.mcts_runs}"
        )
    from harness.tasks import TaskSpec, read_problem_file

    path = Path(problems_file)
    problems = read_problem_file(path, limit=limit)
    levels = {p.id: p.meta["level"] for p in problems if "level" in p.meta}
    spec = TaskSpec(_TASK, "held-out problems", path.name)
    common = dict(
        checkpoint=str(policy),
        tasks=[_TASK],
        backend=settings.backend,
        max_tokens=settings.max_tokens,
        max_depth=settings.max_depth,
        batch_size=settings.batch_size,
        seed=settings.seed,
        temperature=settings.temperature,
        code_timeout=settings.code_timeout,
        progress=False,
    )
    configs = {
        "greedy": EvalConfig(**common, search="greedy"),
        "vote": EvalConfig(**common, search="best_of_n", trajectories=settings.trajectories),
    }
    if ppm is not None:
        configs["mcts"] = EvalConfig(
            **common,
            search="mcts",
            ppm=str(ppm),
            trajectories=settings.mcts_runs,
            rollouts=settings.trajectories // settings.mcts_runs,
            samples=settings.samples,
            weighted_vote=settings.weighted_vote,
        )
    if backend is None:
        backend = make_backend(configs["greedy"], Path(policy))
    if scorer is None and ppm is not None:
        scorer = make_scorer(configs["mcts"])
    results = {}
    with contextlib.ExitStack() as stack:
        sandbox = stack.enter_context(_LazySandbox(settings.code_timeout))
        for method, config in configs.items():
            config.out = str(Path(out) / method)
            summary = evaluate_task(
                spec, problems, config, backend, sandbox, scorer if method == "mcts" else None
            )
            summary["by_level"] = _by_level(Path(config.out) / _TASK / "predictions.jsonl", levels)
            results[method] = summary
    return results


def pair_accuracy(scorer: Any, pairs_file: str | Path) -> dict[str, Any]:
    """{"accuracy", "pairs"}: the share of pairs whose `prompt + chosen` the
    scorer values strictly above `prompt + rejected` (None without pairs)."""
    from rstar_pl.data.records import read_pairs

    pairs = read_pairs(pairs_file) if Path(pairs_file).is_file() else []
    if not pairs:
        return {"accuracy": None, "pairs": 0}
    chosen = scorer.score([p.prompt + p.chosen for p in pairs])
    rejected = scorer.score([p.prompt + p.rejected for p in pairs])
    wins = sum(1 for c, r in zip(chosen, rejected, strict=True) if c > r)
    return {"accuracy": wins / len(pairs), "pairs": len(pairs)}
