"""`harness eval`: solve benchmark problems with a policy and grade the answers.

`evaluate(config)` runs every task of `config.tasks`: it loads the problems
(`harness.tasks`), solves them in batches, either with greedy step-format
decoding (`rstar_pl.search.solve.solve_greedy`) or with test-time search and a vote
(`harness.search_eval`), code always run in `rstar_pl.sandbox.Sandbox`, grades
the answer against the reference (`rstar_pl.grading`), and writes the files
described in `harness.report` (predictions through `rstar_pl.data.predictions`).
Problems already in a task's predictions file are not solved again, so an
interrupted run resumes where it stopped (its summary's `seconds` count every
run's solving time); a run whose generation settings differ from the saved ones
refuses to mix results unless told to start over, and then changes no file. One
run writes an `--out` at a time: a second is refused, naming the first
(`rstar_pl.files.lock`).

Generation goes through the `PolicyBackend` protocol only: nothing here
touches a model library.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checkpoint import resolve_checkpoint
from harness.metrics import AnswerAccuracy
from harness.report import changed_setting
from harness.search_eval import SearchOutcome, solve_with_search
from harness.tasks import Problem, TaskSpec, load_problems, resolve_tasks
from rstar_pl.backends.base import PolicyBackend
from rstar_pl.data.predictions import append_predictions, read_predictions
from rstar_pl.errors import UserError
from rstar_pl.files import write_json
from rstar_pl.search.aggregate import AGGREGATIONS

__all__ = [
    "BACKENDS",
    "SEARCH_MODES",
    "EvalConfig",
    "EvalConfigError",
    "NotAvailableError",
    "evaluate",
    "make_backend",
]

BACKENDS = ("hf", "vllm")
SEARCH_MODES = ("greedy", "mcts", "beam", "best_of_n")

#: Settings that change what is generated; resuming requires them unchanged.
_GENERATION_KEYS = (
    "checkpoint",
    "backend",
    "search",
    "trajectories",
    "ppm",
    "max_tokens",
    "max_depth",
    "max_code_runs",
    "few_shot",
    "seed",
    "code_timeout",
    "samples",
    "rollouts",
    "temperature",
    "top_k",
    "weighted_vote",
    "aggregate",
)


class EvalConfigError(UserError):
    """An evaluation setting that is out of range or inconsistent."""


class NotAvailableError(EvalConfigError):
    """A choice that exists on the command line but is not implemented yet."""


@dataclass
class EvalConfig:
    """Everything `harness eval` needs; the CLI flags map one to one."""

    checkpoint: str
    """Policy: a Hugging Face model folder (or a Lightning .ckpt, via the training exporter)."""
    tasks: str | list[str]
    """Benchmark names (see `harness tasks`): a list, or one string of comma-separated names."""
    out: str = "runs/eval"
    """Output folder; one sub-folder per task."""
    data_dir: str | None = None
    """Folder of local rStar-format benchmark files; default $RSTAR_DATA_DIR, else the hub."""
    limit: int | None = None
    """Evaluate only the first N problems of each task."""
    backend: str = "hf"
    """Generation backend: hf or vllm."""
    search: str = "greedy"
    """Test-time search: greedy, mcts, beam or best_of_n (see harness.search_eval)."""
    trajectories: int = 8
    """Search modes: MCTS runs / best-of-N samples / beam width per problem."""
    ppm: str | None = None
    """Process preference model (export folder or .ckpt); needed by mcts and beam."""
    samples: int = 8
    """Search modes: candidate steps sampled per expansion (paper: 32 at evaluation)."""
    rollouts: int = 16
    """MCTS rollouts per run."""
    temperature: float = 1.0
    """Search modes: sampling temperature."""
    top_k: int | None = None
    """Search modes: vote over the K best-scored trajectories (default: all)."""
    weighted_vote: bool = False
    """Search modes: PPM-score-weighted vote instead of counting."""
    aggregate: str = "last"
    """best_of_n, beam (and harness scaling): a trajectory's score from its step scores:
    last (the paper's), min, mean or prod (`rstar_pl.search.aggregate`)."""
    max_tokens: int = 1024
    """Token limit of one step."""
    max_depth: int = 16
    """Steps per solution."""
    max_code_runs: int = 2
    """Program executions per solution."""
    batch_size: int = 16
    """Problems solved together (one backend call per step for the whole batch)."""
    few_shot: bool = False
    """Use round 1's few-shot prompt (for a policy that has not learned the format)."""
    seed: int = 0
    """Seed for anything random (greedy decoding uses none)."""
    device: str | None = None
    """Torch device of the hf backend; default CUDA when available."""
    dtype: str = "auto"
    """Torch dtype of the backend's weights."""
    gpu_memory_utilization: float = 0.9
    """vllm backend: fraction of accelerator memory (about 0.3 on a CPU machine)."""
    max_model_len: int | None = None
    """vllm backend: context length (default: the model's)."""
    code_timeout: float = 10.0
    """Seconds each program may run in the sandbox."""
    grade_timeout: float = 5.0
    """Seconds one answer comparison may take."""
    overwrite: bool = False
    """Discard results already in the output folder instead of resuming."""
    progress: bool = True
    """Show a progress bar."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form notes saved with the config."""

    def __post_init__(self) -> None:
        if isinstance(self.tasks, str):
            self.tasks = [t for t in self.tasks.split(",") if t.strip()]
        checks = [
            (
                self.backend in BACKENDS,
                f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}",
            ),
            (
                self.search in SEARCH_MODES,
                f"--search must be one of {', '.join(SEARCH_MODES)}, got {self.search!r}",
            ),
            (self.limit is None or self.limit >= 0, f"--limit must be >= 0, got {self.limit}"),
            (self.trajectories >= 1, f"--trajectories must be >= 1, got {self.trajectories}"),
            (self.samples >= 1, f"--samples must be >= 1, got {self.samples}"),
            (self.rollouts >= 1, f"--rollouts must be >= 1, got {self.rollouts}"),
            (self.temperature >= 0, f"--temperature must be >= 0, got {self.temperature}"),
            (self.top_k is None or self.top_k >= 1, f"--top-k must be >= 1, got {self.top_k}"),
            (
                self.search not in ("mcts", "beam") or self.ppm is not None,
                f"--search {self.search} ranks steps with a PPM: give --ppm DIR",
            ),
            (self.max_tokens >= 1, f"--max-tokens must be >= 1, got {self.max_tokens}"),
            (self.max_depth >= 1, f"--max-depth must be >= 1, got {self.max_depth}"),
            (self.max_code_runs >= 0, f"--max-code-runs must be >= 0, got {self.max_code_runs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.code_timeout > 0, f"--code-timeout must be > 0, got {self.code_timeout}"),
            (self.grade_timeout > 0, f"--grade-timeout must be > 0, got {self.grade_timeout}"),
            (
                self.aggregate in AGGREGATIONS,
                f"--aggregate must be one of {', '.join(AGGREGATIONS)}, got {self.aggregate!r}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise EvalConfigError(message)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: EvalConfig's defaults, for resume checks of folders saved before a setting existed.
_DEFAULTS: dict[str, Any] = {
    f.name: f.default
    for f in dataclasses.fields(EvalConfig)
    if f.default is not dataclasses.MISSING
}


def make_backend(config: EvalConfig, model_dir: Path) -> PolicyBackend:
    """The policy backend named by `config.backend`, loaded from `model_dir`."""
    if config.backend == "hf":
        from rstar_pl.backends.hf import HFBackend

        return HFBackend(
            model_dir, device=config.device, dtype=config.dtype, batch_size=config.batch_size
        )
    try:
        module = importlib.import_module("rstar_pl.backends.vllm")
    except ImportError:
        raise NotAvailableError(
            "--backend vllm is not yet available (it comes with the vLLM backend issue); "
            "use --backend hf"
        ) from None
    return module.VLLMBackend(
        str(model_dir),
        seed=config.seed,
        dtype=config.dtype,
        gpu_memory_utilization=config.gpu_memory_utilization,
        max_model_len=config.max_model_len,
    )


def make_scorer(config: EvalConfig) -> Any | None:
    """The PPM scorer of `config.ppm`, or None."""
    if config.ppm is None:
        return None
    from rstar_pl.backends.ppm import PPMScorer

    return PPMScorer.from_path(config.ppm, device=config.device, batch_size=config.batch_size)


class _LazySandbox:
    """A `rstar_pl.sandbox.Sandbox` started on the first program, not before: a policy
    that never finishes its code (a fresh model, a resumed run) costs no worker start."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._sandbox: Any | None = None

    def run_many(self, codes: Sequence[str]) -> list[Any]:
        if self._sandbox is None:
            from rstar_pl.sandbox import Sandbox

            self._sandbox = Sandbox(timeout=self.timeout)
        return self._sandbox.run_many(codes)

    def __enter__(self) -> _LazySandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._sandbox is not None:
            self._sandbox.close()


def _grader() -> tuple[Callable[[str], str | None], Callable[..., bool]]:
    from rstar_pl.grading import extract_answer, is_equivalent

    return extract_answer, is_equivalent


def _check_resume(task_dir: Path, config: EvalConfig) -> None:
    """Refuse (before anything is written) to add results of other settings to a task's."""
    if config.overwrite or not (task_dir / "predictions.jsonl").is_file():
        return
    # a key added later (aggregate) reads as its default in older folders
    changed = changed_setting(
        task_dir / "config.json", config.to_dict(), _GENERATION_KEYS, _DEFAULTS
    )
    if changed is not None:
        key, before, now = changed
        raise EvalConfigError(
            f"{task_dir} holds results made with {key}={before!r}, not {now!r}; "
            "use another --out or pass --overwrite to start over"
        )


def _prepare_task_dir(task_dir: Path, config: EvalConfig, spec: TaskSpec) -> list[dict[str, Any]]:
    """Existing predictions to keep (empty when starting over); saves the config."""
    saved_path = task_dir / "config.json"
    predictions = task_dir / "predictions.jsonl"
    if config.overwrite and task_dir.exists():
        shutil.rmtree(task_dir)
    _check_resume(task_dir, config)
    records: list[dict[str, Any]] = []
    if saved_path.is_file():
        records = read_predictions(predictions)  # a torn last line is cut by the next append
    task_dir.mkdir(parents=True, exist_ok=True)
    write_json(saved_path, {**config.to_dict(), "task": spec.name})
    return records


def _record(
    problem: Problem, solution: Any, extracted: str | None, correct: bool, seconds: float
) -> dict[str, Any]:
    record = {
        "index": problem.index,
        "question": problem.question,
        "reference": problem.answer,
        "alternatives": list(problem.alternatives),
        "completion": solution.response,
        "extracted": extracted,
        "correct": correct,
        "num_tokens": solution.num_tokens,
        "seconds": round(seconds, 4),
    }
    if isinstance(solution, SearchOutcome):
        record["candidates"] = solution.candidates
    else:
        record.update(code_runs=solution.code_runs, finish_reason=solution.finish_reason)
    return record


def _solve(
    batch: Sequence[Problem],
    config: EvalConfig,
    backend: PolicyBackend,
    sandbox: Any,
    scorer: Any | None,
    extract_answer: Callable[[str], str | None],
) -> list[tuple[Any, str | None]]:
    """(solution, answer) per problem: greedy answers are extracted from the
    completion, search answers are the vote's."""
    questions = [p.question for p in batch]
    if config.search == "greedy":
        from rstar_pl.search.solve import solve_greedy

        solutions = solve_greedy(
            backend,
            questions,
            sandbox=sandbox,
            max_tokens=config.max_tokens,
            max_depth=config.max_depth,
            max_code_runs=config.max_code_runs,
            few_shot=config.few_shot,
        )
        return [(s, extract_answer(s.response)) for s in solutions]
    outcomes = solve_with_search(
        questions, backend=backend, sandbox=sandbox, scorer=scorer, settings=config
    )
    return [(o, o.answer) for o in outcomes]


def evaluate_task(
    spec: TaskSpec,
    problems: Sequence[Problem],
    config: EvalConfig,
    backend: PolicyBackend,
    sandbox: Any,
    scorer: Any | None = None,
) -> dict[str, Any]:
    """Solve and grade one task's problems, resuming from its folder; returns the summary."""
    from tqdm.auto import tqdm

    extract_answer, is_equivalent = _grader()
    task_dir = Path(config.out) / spec.name
    kept = _prepare_task_dir(task_dir, config, spec)
    wanted = {p.index for p in problems}
    done = {r["index"]: r for r in kept if r["index"] in wanted}
    todo = [p for p in problems if p.index not in done]

    accuracy = AnswerAccuracy()
    accuracy.update([bool(r["correct"]) for r in done.values()])
    tokens = [int(r["num_tokens"]) for r in done.values()]
    seconds = [float(r.get("seconds", 0.0)) for r in done.values()]
    predictions = task_dir / "predictions.jsonl"
    started = time.perf_counter()
    bar = tqdm(
        total=len(problems),
        initial=len(done),
        desc=spec.name,
        unit="problem",
        disable=not config.progress,
        leave=False,
    )
    try:
        for start in range(0, len(todo), config.batch_size):
            batch = todo[start : start + config.batch_size]
            t0 = time.perf_counter()
            solved = _solve(batch, config, backend, sandbox, scorer, extract_answer)
            per_problem = (time.perf_counter() - t0) / len(batch)
            records = []
            for problem, (solution, extracted) in zip(batch, solved, strict=True):
                correct = extracted is not None and bool(
                    is_equivalent(extracted, list(problem.references), timeout=config.grade_timeout)
                )
                records.append(_record(problem, solution, extracted, correct, per_problem))
            append_predictions(predictions, records)
            accuracy.update([r["correct"] for r in records])
            tokens += [r["num_tokens"] for r in records]
            seconds += [r["seconds"] for r in records]
            bar.update(len(batch))
    finally:
        bar.close()
    count = int(accuracy.total)
    summary = {
        "task": spec.name,
        "title": spec.title,
        "accuracy": float(accuracy.compute()) if count else None,
        "correct": int(accuracy.correct),
        "count": count,
        "solved_this_run": len(todo),
        # solving time of every problem counted, whichever run solved it
        "seconds": round(sum(seconds), 3),
        "seconds_this_run": round(time.perf_counter() - started, 3) if todo else 0.0,
        "tokens_per_problem": sum(tokens) / count if count else 0.0,
        "checkpoint": config.checkpoint,
        "search": config.search,
    }
    write_json(task_dir / "summary.json", summary)
    return summary


def evaluate(
    config: EvalConfig,
    *,
    backend: PolicyBackend | None = None,
    sandbox: Any | None = None,
    scorer: Any | None = None,
) -> list[dict[str, Any]]:
    """Run every task of `config`; returns their summaries in order.

    `backend`, `sandbox` and `scorer` default to the ones the config names;
    passing them lets a caller reuse loaded models (or scripted ones in tests).
    """
    from rstar_pl.files import exclusive_output

    specs = resolve_tasks(config.tasks)
    # Load every task's problems first: a bad file fails before any model time is spent.
    problems = {
        s.name: load_problems(s, data_dir=config.data_dir, limit=config.limit) for s in specs
    }
    out = Path(config.out)
    with exclusive_output(out, "eval", what="--out"), contextlib.ExitStack() as stack:
        for spec in specs:  # a resume that would mix settings changes no file
            _check_resume(out / spec.name, config)
        if backend is None:
            model_dir = resolve_checkpoint(config.checkpoint, export_dir=out / "exported_policy")
            backend = make_backend(config, model_dir)
        if scorer is None and config.search != "greedy":
            scorer = make_scorer(config)
        write_json(out / "config.json", config.to_dict())
        if sandbox is None:
            sandbox = stack.enter_context(_LazySandbox(config.code_timeout))
        summaries = [
            evaluate_task(s, problems[s.name], config, backend, sandbox, scorer) for s in specs
        ]
        write_json(out / "summary.json", {"tasks": summaries})
    return summaries
