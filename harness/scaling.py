"""`harness scaling`: accuracy against the number of trajectories, from one pool.

For each task the policy samples the candidate pool **once**: `max_trajectories`
(K) independent step-by-step solutions per problem (best-of-N sampling, code
run in the sandbox), and the PPM scores every step prefix of every candidate.
With `--mcts`, K independent PPM-guided MCTS runs per problem add a second pool
(each run's best answered trajectory, as `harness eval --search mcts` keeps).
Then, for k = 1, 2, 4, ... K, `harness.curves` computes pass@k, majority vote,
PPM best-of-k, PPM-weighted vote (and "PPM-guided MCTS", the PPM-weighted vote
over k MCTS runs) with 95% intervals from resampling the pool; no model is
called again for another k, so every k sees the same candidates.

A trajectory's score is its step scores aggregated by `--aggregate`
(`rstar_pl.search.aggregate`: last, the paper's; min; mean; prod).

Files in `--out`: per task `<task>/pool.jsonl` (and `mcts_pool.jsonl`): one line
per problem with every candidate's answer, response, step scores, answer group
and grade, appended as each batch of problems finishes, so an interrupted run
resumes without sampling a problem twice; `scaling.json` (every point),
`scaling.md` (the same as tables) and `scaling.png` (`harness.figure`), and
`config.json`. Recomputing the curves with another `--aggregate` or
`--resamples` reuses the pools; a resume with other sampling settings is
refused unless `--overwrite`.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.checkpoint import resolve_checkpoint
from harness.curves import METHODS, Pool, k_values, scaling_curve
from harness.evaluate import EvalConfig, EvalConfigError, make_backend, make_scorer
from harness.report import changed_setting
from harness.tasks import Problem, load_problems, read_problem_file, resolve_tasks
from rstar_pl.files import append_jsonl, iter_jsonl, write_atomic, write_json
from rstar_pl.search.aggregate import aggregate

__all__ = ["MCTS_METHOD", "ScalingConfig", "format_markdown", "run_scaling", "task_problems"]

MCTS_METHOD = "PPM-guided MCTS"

#: Settings that change the pools; a resume requires them unchanged.
_POOL_KEYS = (
    "checkpoint",
    "ppm",
    "backend",
    "max_trajectories",
    "samples",
    "rollouts",
    "temperature",
    "max_tokens",
    "max_depth",
    "few_shot",
    "seed",
    "code_timeout",
)


@dataclass
class ScalingConfig(EvalConfig):
    """`harness eval`'s model, data and generation settings, plus the scaling run's own.

    Of EvalConfig's search settings, `samples`, `rollouts` and `temperature`
    apply (to the MCTS pool and the sampling); `search`, `trajectories`,
    `top_k` and `weighted_vote` do not (every method is computed).
    """

    out: str = "runs/scaling"
    """Output folder."""
    max_trajectories: int = 64
    """K: candidates per problem in the pool; curves go up to k = K."""
    mcts: bool = False
    """Also K PPM-guided MCTS runs per problem (costly: K runs of `rollouts` each)."""
    resamples: int = 200
    """Resampling draws per k for the mean and the 95% interval."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ppm is None:
            raise EvalConfigError("harness scaling ranks candidates with a PPM: give --ppm DIR")
        if self.max_trajectories < 1:
            raise EvalConfigError(f"--max-trajectories must be >= 1, got {self.max_trajectories}")
        if self.resamples < 1:
            raise EvalConfigError(f"--resamples must be >= 1, got {self.resamples}")


@dataclass(frozen=True)
class _Question:
    id: str
    question: str
    answer: str | None = None  # never shown to the search


def _candidate(tree, nodes: Sequence[int], answer: str | None) -> dict[str, Any]:
    return {
        "answer": answer,
        "response": tree.response(nodes[-1]),
        "contexts": [tree.context(n) for n in nodes[1:]],
    }


def _sample(
    kind: str, batch: Sequence[Problem], env: Any, config: ScalingConfig
) -> list[list[dict[str, Any]]]:
    """Per problem, its K candidates (answer, response, step contexts); a missing
    candidate (a chain or run that gave no trajectory) is {"answer": None}."""
    from rstar_pl.search import (
        BestOfNConfig,
        MCTSConfig,
        Sampling,
        best_answered,
        run_best_of_n,
        run_mcts,
    )

    questions = [_Question(str(p.index), p.question) for p in batch]
    sampling = Sampling(temperature=config.temperature, max_tokens=config.max_tokens)
    found: list[list[dict[str, Any]]] = [[] for _ in batch]
    if kind == "sample":
        search = BestOfNConfig(
            n=config.max_trajectories,
            max_depth=config.max_depth,
            few_shot=config.few_shot,
            sampling=sampling,
        )
        trees, ranked = run_best_of_n(questions, env, search, seed=config.seed)
        for i, (tree, trajectories) in enumerate(zip(trees, ranked)):
            found[i] = [_candidate(tree, t.nodes, t.answer) for t in trajectories]
    else:
        search = MCTSConfig(
            rollouts=config.rollouts,
            n=config.samples,
            max_depth=config.max_depth,
            annotation="ppm",
            few_shot=config.few_shot,
            sampling=sampling,
        )
        for attempt in range(config.max_trajectories):
            trees = run_mcts(
                questions, env, search, seed=config.seed, attempt=attempt, use_reference=False
            )
            for i, tree in enumerate(trees):
                best = best_answered(tree)
                found[i].append(
                    _candidate(tree, best.nodes, best.answer) if best is not None else _missing()
                )
    k = config.max_trajectories
    # one fresh record per missing candidate: the scoring step pops each one's contexts
    return [(c + [_missing() for _ in range(k - len(c))])[:k] for c in found]


def _missing() -> dict[str, Any]:
    """A candidate that is not there (a chain that never left the root): no answer."""
    return {"answer": None, "response": "", "contexts": []}


def _grade(problem: Problem, candidates: list[dict[str, Any]], timeout: float) -> None:
    """Give each candidate an answer group (equivalent answers share one) and a grade."""
    from rstar_pl.grading import is_equivalent

    representatives: list[str] = []
    correct: list[bool] = []
    for c in candidates:
        if c["answer"] is None:
            c["group"], c["correct"] = -1, False
            continue
        group = next(
            (
                g
                for g, rep in enumerate(representatives)
                if rep == c["answer"] or is_equivalent(c["answer"], [rep], timeout=timeout)
            ),
            None,
        )
        if group is None:
            group = len(representatives)
            representatives.append(c["answer"])
            correct.append(
                bool(is_equivalent(c["answer"], list(problem.references), timeout=timeout))
            )
        c["group"], c["correct"] = group, correct[group]


def _read_pool(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return done
    # a line cut short by a crash is skipped (sampled again) and cut before the next append
    for row, _ in iter_jsonl(path):
        done[str(row["index"])] = row
    return done


def _fill_pool(
    kind: str, path: Path, problems: Sequence[Problem], env: Any, scorer: Any, config: ScalingConfig
) -> list[dict[str, Any]]:
    """Every problem's pool line, sampling (and scoring) the problems not in `path` yet."""
    from tqdm.auto import tqdm

    done = _read_pool(path)
    todo = [p for p in problems if str(p.index) not in done]
    bar = tqdm(
        total=len(problems),
        initial=len(problems) - len(todo),
        unit="problem",
        desc=f"{path.parent.name} {kind}",
        disable=not config.progress,
        leave=False,
    )
    try:
        for start in range(0, len(todo), config.batch_size):
            batch = todo[start : start + config.batch_size]
            pools = _sample(kind, batch, env, config)
            contexts = [x for pool in pools for c in pool for x in c["contexts"]]
            values = iter(scorer.score(contexts) if contexts else [])
            rows = []
            for problem, pool in zip(batch, pools):
                for c in pool:
                    c["steps"] = [float(next(values)) for _ in c.pop("contexts")]
                _grade(problem, pool, config.grade_timeout)
                rows.append(
                    {"index": str(problem.index), "reference": problem.answer, "candidates": pool}
                )
            append_jsonl(path, rows)
            done.update((r["index"], r) for r in rows)
            bar.update(len(batch))
    finally:
        bar.close()
    return [done[str(p.index)] for p in problems]


def _as_pool(rows: list[dict[str, Any]], how: str) -> Pool:
    groups = [[c["group"] for c in r["candidates"]] for r in rows]
    scores = [
        [
            aggregate(c["steps"], how) if c["answer"] is not None and c["steps"] else -1.0
            for c in r["candidates"]
        ]
        for r in rows
    ]
    correct = []
    for r in rows:
        table: dict[int, bool] = {
            c["group"]: c["correct"] for c in r["candidates"] if c["group"] >= 0
        }
        correct.append([table[g] for g in range(len(table))])
    return Pool.from_lists(groups, scores, correct)


def _check_resume(out: Path, config: ScalingConfig) -> None:
    if config.overwrite:
        return
    current = {key: getattr(config, key) for key in _POOL_KEYS}
    changed = changed_setting(out / "config.json", current, _POOL_KEYS)
    if changed is not None:
        key, before, now = changed
        raise EvalConfigError(
            f"{out} holds pools sampled with {key}={before!r}, not {now!r}; "
            "use another --out or pass --overwrite to start over"
        )


def format_markdown(results: dict[str, dict[str, Any]], config: ScalingConfig) -> str:
    """One table per task: a row per k, a column per method, `acc [low, high]` in percent."""
    lines = [
        f"Accuracy (%) against the number of trajectories k, mean over "
        f"{config.resamples} resamples of a pool of {config.max_trajectories} per problem "
        f"[95% interval]; trajectory score: {config.aggregate} step score.",
        "",
    ]
    for task, result in results.items():
        methods = list(result["curves"])
        lines += [
            f"### {task} ({result['problems']} problems)",
            "",
            "| k | " + " | ".join(methods) + " |",
            "|---|" + "---|" * len(methods),
        ]
        for i, k in enumerate(p["k"] for p in result["curves"][methods[0]]):
            cells = [
                f"{100 * result['curves'][m][i]['accuracy']:.1f} "
                f"[{100 * result['curves'][m][i]['low']:.1f}, "
                f"{100 * result['curves'][m][i]['high']:.1f}]"
                for m in methods
            ]
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def task_problems(config: ScalingConfig) -> dict[str, list[Problem]]:
    """{task name: problems}: a name from `harness tasks`, or the path of an rStar-format
    problem file (JSON list or JSONL, e.g. the demo's held-out split), named by its stem."""
    out: dict[str, list[Problem]] = {}
    for name in config.tasks:
        path = Path(name)
        if path.suffix in (".json", ".jsonl") and path.is_file():
            out[path.stem] = read_problem_file(path, limit=config.limit)
        else:
            (spec,) = resolve_tasks([name])
            out[spec.name] = load_problems(spec, data_dir=config.data_dir, limit=config.limit)
    return out


def _short(path: str) -> str:
    """A model's name for the figure: its folder, with the run folder above it when the
    folder is an export's fixed name (`runs/round2/ppm` -> `round2/ppm`)."""
    parts = Path(path).parts
    if not parts:
        return path
    return "/".join(parts[-2:]) if parts[-1] in ("ppm", "policy") else parts[-1]


def run_scaling(
    config: ScalingConfig,
    *,
    backend: Any | None = None,
    sandbox: Any | None = None,
    scorer: Any | None = None,
) -> dict[str, Any]:
    """Sample (or resume) the pools, compute the curves, write the files; returns the results."""
    from harness.evaluate import _LazySandbox
    from harness.figure import plot_scaling
    from rstar_pl.files import exclusive_output
    from rstar_pl.search import SearchEnv

    problems = task_problems(config)
    out = Path(config.out)
    with exclusive_output(out, "scaling", what="--out"), contextlib.ExitStack() as stack:
        _check_resume(out, config)
        if config.overwrite:
            for name in problems:
                shutil.rmtree(out / name, ignore_errors=True)
        if backend is None:
            model_dir = resolve_checkpoint(config.checkpoint, export_dir=out / "exported_policy")
            backend = make_backend(config, model_dir)
        if scorer is None:
            scorer = make_scorer(config)
        if sandbox is None:
            sandbox = stack.enter_context(_LazySandbox(config.code_timeout))
        write_json(out / "config.json", config.to_dict())
        env = SearchEnv(backend=backend, sandbox=sandbox, scorer=scorer)
        ks = k_values(config.max_trajectories)
        results: dict[str, dict[str, Any]] = {}
        for name, task in problems.items():
            task_dir = out / name
            task_dir.mkdir(parents=True, exist_ok=True)
            rows = _fill_pool("sample", task_dir / "pool.jsonl", task, env, scorer, config)
            curves = scaling_curve(
                _as_pool(rows, config.aggregate),
                ks,
                METHODS,
                resamples=config.resamples,
                seed=config.seed,
            )
            if config.mcts:
                mcts_rows = _fill_pool(
                    "mcts", task_dir / "mcts_pool.jsonl", task, env, scorer, config
                )
                curves[MCTS_METHOD] = scaling_curve(
                    _as_pool(mcts_rows, config.aggregate),
                    ks,
                    ["PPM-weighted vote"],
                    resamples=config.resamples,
                    seed=config.seed,
                )["PPM-weighted vote"]
            results[name] = {"problems": len(rows), "curves": curves}
        write_json(out / "scaling.json", {"settings": config.to_dict(), "tasks": results})
        write_atomic(out / "scaling.md", format_markdown(results, config))
        plot_scaling(
            {task: r["curves"] for task, r in results.items()},
            out / "scaling.png",
            title=f"{_short(config.checkpoint)} + PPM {_short(config.ppm)}, "
            f"pool of {config.max_trajectories}",
        )
    return results
