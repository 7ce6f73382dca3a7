"""Benchmark task registry: each benchmark as sources for the one problem loader.

Every benchmark of the paper's results table is a `TaskSpec`: its name, the
default file name of its local copy in the rStar format
(`[{"index", "question", "answer"}, ...]`, JSON or JSONL; the default field
mapping of `rstar_pl.data.problems.ProblemsConfig`) and its Hugging Face
dataset as a `ProblemsConfig` (id, split, subsets, fields, answer transform).

`load_problems(task, data_dir=...)` reads the local file when a data folder is
given (argument or `RSTAR_DATA_DIR`), and the hub dataset otherwise, through
`rstar_pl.data.problems.load_problems` with `strict=True`: every record must
load, so a missing file, a malformed record or a duplicate index raises
`TaskDataError` naming the file, the record position and the field.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from rstar_pl.data import problems as loader
from rstar_pl.data.problems import AnswerTransform, Problem, ProblemError, ProblemsConfig
from rstar_pl.errors import UserError

__all__ = [
    "DATA_DIR_ENV",
    "TASKS",
    "Problem",
    "TaskDataError",
    "TaskSpec",
    "UnknownTaskError",
    "get_task",
    "load_problems",
    "read_problem_file",
    "resolve_data_dir",
    "resolve_tasks",
]

#: Environment variable naming the folder of local benchmark files.
DATA_DIR_ENV = "RSTAR_DATA_DIR"


class UnknownTaskError(UserError):
    """A task name that is not in the registry."""


class TaskDataError(ProblemError):
    """A benchmark file or dataset that is missing or malformed."""


@dataclass(frozen=True)
class TaskSpec:
    """Where one benchmark lives and how to read it.

    Attributes:
        name: registry name, used on the command line (`--tasks math500`).
        title: human-readable name for tables.
        filename: default file name in a local data folder (rStar format).
        hub: the Hugging Face dataset used when no local folder is given, as
            a source and field mapping for the problem loader (rows are
            numbered across its subsets, in order: the row number is the
            problem index); None for a benchmark that exists only as a file.
    """

    name: str
    title: str
    filename: str
    hub: ProblemsConfig | None = None

    @property
    def hub_id(self) -> str:
        """The hub dataset id ("" without one)."""
        return self.hub.source if self.hub is not None else ""


def _hub(
    source: str,
    split: str,
    question: str,
    answer: str,
    subset: str | list[str] | None = None,
    transform: AnswerTransform | None = None,
) -> ProblemsConfig:
    """A hub dataset's mapping: rows carry no id, so the row number is the index."""
    return ProblemsConfig(
        source=source,
        split=split,
        subset=subset,
        question_field=question,
        answer_field=answer,
        answer_transform=transform,
        id_field=None,
    )


_MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "gsm8k",
            "GSM8K",
            "GSM8K_test.json",
            _hub("openai/gsm8k", "test", "question", "answer", "main", "gsm8k"),
        ),
        TaskSpec(
            "math",
            "MATH",
            "MATH_test.json",
            _hub(
                "EleutherAI/hendrycks_math",
                "test",
                "problem",
                "solution",
                list(_MATH_SUBJECTS),
                "boxed",
            ),
        ),
        TaskSpec(
            "math500",
            "MATH500",
            "math500_test.json",
            _hub("HuggingFaceH4/MATH-500", "test", "problem", "answer"),
        ),
        TaskSpec(
            "aime2024",
            "AIME 2024",
            "aime2024_test.json",
            _hub("Maxwell-Jia/AIME_2024", "train", "Problem", "Answer"),
        ),
        TaskSpec(
            "amc23",
            "AMC 2023",
            "amc23_test.json",
            _hub("math-ai/amc23", "test", "question", "answer"),
        ),
        TaskSpec(
            "olympiadbench",
            "OlympiadBench",
            "olympiadbench_test.json",
            _hub(
                "Hothan/OlympiadBench",
                "train",
                "question",
                "final_answer",
                "OE_TO_maths_en_COMP",
                "join",
            ),
        ),
        TaskSpec(
            "collegemath",
            "CollegeMath",
            "collegemath_test.json",
            _hub("qq8933/College_Math_Test", "train", "question", "answer"),
        ),
        TaskSpec(
            "gaokao2023en",
            "Gaokao 2023 En",
            "gaokao2023en_test.json",
            _hub("MARIO-Math-Reasoning/Gaokao2023-Math-En", "train", "question", "answer"),
        ),
        TaskSpec(
            "omni",
            "Omni-MATH",
            "omni_test.json",
            _hub("KbsdJames/Omni-MATH", "test", "problem", "answer"),
        ),
    )
}

#: Other spellings people type; they resolve to the registry name.
_ALIASES = {
    "math5000": "math",
    "aime24": "aime2024",
    "amc2023": "amc23",
    "olympiad": "olympiadbench",
    "college_math": "collegemath",
    "gaokao": "gaokao2023en",
    "omnimath": "omni",
    "omni-math": "omni",
    "omni_math": "omni",
}


def get_task(name: str) -> TaskSpec:
    """The spec of one task; unknown names get the closest matches."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in TASKS:
        return TASKS[key]
    close = difflib.get_close_matches(key, [*TASKS, *_ALIASES], n=3, cutoff=0.5)
    hint = f"Did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    raise UnknownTaskError(f"unknown task {name!r}. {hint}Available: {', '.join(sorted(TASKS))}")


def resolve_tasks(names: str | Iterable[str]) -> list[TaskSpec]:
    """Specs for a comma-separated string or a list of names, in order, without repeats."""
    if isinstance(names, str):
        names = names.split(",")
    specs: list[TaskSpec] = []
    for name in names:
        if name.strip():
            spec = get_task(name)
            if spec not in specs:
                specs.append(spec)
    if not specs:
        raise UnknownTaskError(f"no task given. Available: {', '.join(sorted(TASKS))}")
    return specs


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The local data folder: the argument, else `$RSTAR_DATA_DIR`, else None (hub)."""
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise TaskDataError(
            f"data folder {str(path)!r} does not exist or is not a folder "
            f"(from {'--data-dir' if data_dir else '$' + DATA_DIR_ENV})"
        )
    return path


def local_file(spec: TaskSpec, data_dir: Path) -> Path:
    """The task's file in `data_dir`: the default name, or the same stem as .jsonl."""
    candidates = [data_dir / spec.filename, data_dir / (Path(spec.filename).stem + ".jsonl")]
    for path in candidates:
        if path.is_file():
            return path
    raise TaskDataError(
        f"task {spec.name!r}: no file {str(candidates[0])!r} (or .jsonl); put the benchmark "
        f'there in the rStar format [{{"index", "question", "answer"}}] or drop '
        f"--data-dir/${DATA_DIR_ENV} to load {spec.hub_id!r} from the Hugging Face hub"
    )


def _strict(config: ProblemsConfig) -> list[Problem]:
    """Every problem of a benchmark source, or a `TaskDataError` on the first bad record."""
    try:
        return loader.load_problems(config, strict=True).problems
    except loader.SourceUnavailableError as err:
        raise TaskDataError(
            f"could not load {err.source!r} {err.how}: {err.reason}; pass "
            f"--data-dir (or ${DATA_DIR_ENV}) with local rStar-format files"
        ) from None
    except ProblemError as err:
        raise TaskDataError(str(err)) from None


def read_problem_file(path: str | os.PathLike, *, limit: int | None = None) -> list[Problem]:
    """Read and validate an rStar-format benchmark file (a JSON list or JSONL)."""
    return _strict(ProblemsConfig(source=str(path), limit=limit))


def load_problems(
    task: str | TaskSpec,
    *,
    data_dir: str | os.PathLike | None = None,
    hub_source: str | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """The problems of one task, in file order, at most `limit` of them.

    With a data folder (`data_dir` or `$RSTAR_DATA_DIR`) the task's local file
    is required; without one the Hugging Face dataset (or `hub_source`: another
    hub id, a local dataset folder, or a `save_to_disk` folder with the same
    columns) is loaded.
    """
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    if limit is not None and limit < 0:
        raise TaskDataError(f"limit must be >= 0, got {limit}")
    folder = resolve_data_dir(data_dir)
    if folder is not None and hub_source is None:
        return read_problem_file(local_file(spec, folder), limit=limit)
    if spec.hub is None:
        raise TaskDataError(
            f"task {spec.name!r} has no hub dataset; give --data-dir "
            f"(or ${DATA_DIR_ENV}) with {spec.filename!r}"
        )
    return _strict(replace(spec.hub, source=hub_source or spec.hub.source, limit=limit))
