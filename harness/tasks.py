"""Benchmark task registry and problem loading.

Every benchmark of the paper's results table is a `TaskSpec`: its name, the
default file name of its local copy in the rStar format
(`[{"index", "question", "answer"}, ...]`, JSON or JSONL) and where to find it
on the Hugging Face hub with the fields to read there.

`load_problems(task, data_dir=...)` reads the local file when a data folder is
given (argument or `RSTAR_DATA_DIR`), and the hub dataset otherwise. Local
records are validated: a missing file, a malformed record or a duplicate index
raises `TaskDataError` naming the file, the record position and the field.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rstar_pl.errors import UserError
from rstar_pl.files import read_utf8
from rstar_pl.steps import extract_boxed

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

AnswerTransform = Literal["plain", "gsm8k", "boxed", "join"]


class UnknownTaskError(UserError):
    """A task name that is not in the registry."""


class TaskDataError(UserError):
    """A benchmark file or dataset that is missing or malformed."""


@dataclass(frozen=True)
class Problem:
    """One benchmark problem.

    Attributes:
        index: the record's `index` (unique within a task; used to resume).
        question: the problem statement.
        answer: the reference final answer, as text (empty in the few
            benchmark records that have none; nothing matches it).
        alternatives: other accepted answers (a record whose answer is a
            list, e.g. MATH's "enter one of the foci": any of them is right).
    """

    index: int | str
    question: str
    answer: str
    alternatives: tuple[str, ...] = ()

    @property
    def references(self) -> tuple[str, ...]:
        """Every accepted answer, the main one first."""
        return (self.answer, *self.alternatives)


@dataclass(frozen=True)
class TaskSpec:
    """Where one benchmark lives and how to read it.

    Attributes:
        name: registry name, used on the command line (`--tasks math500`).
        title: human-readable name for tables.
        filename: default file name in a local data folder (rStar format).
        hub_id: Hugging Face dataset id used when no local folder is given.
        hub_configs: dataset config names; several are concatenated in order.
        hub_split: the split holding the test problems.
        question_field / answer_field: the hub dataset's column names.
        answer_transform: how the hub answer column becomes a final answer:
            "plain" (as is), "gsm8k" (text after `####`), "boxed" (last
            `\\boxed{}` of a worked solution), "join" (a list joined by ", ").
    """

    name: str
    title: str
    filename: str
    hub_id: str
    hub_split: str
    question_field: str
    answer_field: str
    hub_configs: tuple[str | None, ...] = (None,)
    answer_transform: AnswerTransform = "plain"


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
            "gsm8k", "GSM8K", "GSM8K_test.json", "openai/gsm8k", "test",
            "question", "answer", ("main",), "gsm8k",
        ),
        TaskSpec(
            "math", "MATH", "MATH_test.json", "EleutherAI/hendrycks_math", "test",
            "problem", "solution", _MATH_SUBJECTS, "boxed",
        ),
        TaskSpec(
            "math500", "MATH500", "math500_test.json", "HuggingFaceH4/MATH-500", "test",
            "problem", "answer",
        ),
        TaskSpec(
            "aime2024", "AIME 2024", "aime2024_test.json", "Maxwell-Jia/AIME_2024", "train",
            "Problem", "Answer",
        ),
        TaskSpec(
            "amc23", "AMC 2023", "amc23_test.json", "math-ai/amc23", "test",
            "question", "answer",
        ),
        TaskSpec(
            "olympiadbench", "OlympiadBench", "olympiadbench_test.json", "Hothan/OlympiadBench",
            "train", "question", "final_answer", ("OE_TO_maths_en_COMP",), "join",
        ),
        TaskSpec(
            "collegemath", "CollegeMath", "collegemath_test.json", "qq8933/College_Math_Test",
            "train", "question", "answer",
        ),
        TaskSpec(
            "gaokao2023en", "Gaokao 2023 En", "gaokao2023en_test.json",
            "MARIO-Math-Reasoning/Gaokao2023-Math-En", "train", "question", "answer",
        ),
        TaskSpec(
            "omni", "Omni-MATH", "omni_test.json", "KbsdJames/Omni-MATH", "test",
            "problem", "answer",
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
    raise UnknownTaskError(
        f"unknown task {name!r}. {hint}Available: {', '.join(sorted(TASKS))}"
    )


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
        f"there in the rStar format [{{\"index\", \"question\", \"answer\"}}] or drop "
        f"--data-dir/${DATA_DIR_ENV} to load {spec.hub_id!r} from the Hugging Face hub"
    )


def _check_record(path: Path, position: int, record: Any) -> Problem:
    where = f"{path}: record {position}"
    if not isinstance(record, Mapping):
        raise TaskDataError(f"{where}: expected an object with 'index', 'question', 'answer', "
                            f"got {type(record).__name__}")
    for field in ("index", "question", "answer"):
        if field not in record:
            raise TaskDataError(f"{where}: field {field!r} is missing; each record needs "
                                "'index', 'question' and 'answer'")
    index, question, answer = record["index"], record["question"], record["answer"]
    if isinstance(index, bool) or not isinstance(index, int | str):
        raise TaskDataError(f"{where}: field 'index' must be an integer or a string, "
                            f"got {index!r:.40}")
    if not isinstance(question, str) or not question.strip():
        raise TaskDataError(f"{where}: field 'question' must be a non-empty string, "
                            f"got {question!r:.40}")
    answers = answer if isinstance(answer, list) and answer else [answer]
    for value in answers:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise TaskDataError(f"{where}: field 'answer' must be a string, a number or a "
                                f"non-empty list of them, got {answer!r:.40}")
    texts = [str(value).strip() for value in answers]
    return Problem(index=index, question=question, answer=texts[0], alternatives=tuple(texts[1:]))


def read_problem_file(path: str | os.PathLike) -> list[Problem]:
    """Read and validate an rStar-format benchmark file (a JSON list or JSONL)."""
    path = Path(path)
    if not path.is_file():
        raise TaskDataError(f"{path}: file not found")
    text = read_utf8(path)
    records: list[Any]
    if path.suffix == ".jsonl":
        records = []
        for line_no, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise TaskDataError(f"{path}: line {line_no} is not valid JSON: {err.msg}") from None
    else:
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise TaskDataError(f"{path}: not valid JSON at line {err.lineno}: {err.msg}") from None
        if not isinstance(records, list):
            raise TaskDataError(f"{path}: expected a JSON list of records, "
                                f"got {type(records).__name__}")
    problems: list[Problem] = []
    seen: dict[int | str, int] = {}
    for position, record in enumerate(records):
        problem = _check_record(path, position, record)
        if problem.index in seen:
            raise TaskDataError(f"{path}: record {position}: field 'index' value "
                                f"{problem.index!r} repeats record {seen[problem.index]}; "
                                "indices must be unique")
        seen[problem.index] = position
        problems.append(problem)
    return problems


def _hub_answer(spec: TaskSpec, value: Any, where: str) -> str:
    if spec.answer_transform == "gsm8k":
        text = str(value)
        if "####" not in text:
            raise TaskDataError(f"{where}: field {spec.answer_field!r} has no '####' answer")
        return text.rsplit("####", 1)[1].strip().replace(",", "")
    if spec.answer_transform == "boxed":
        boxed = extract_boxed(str(value))
        if boxed is None:
            raise TaskDataError(f"{where}: field {spec.answer_field!r} has no \\boxed{{}} answer")
        return boxed.strip()
    if spec.answer_transform == "join":
        return ", ".join(str(v).strip() for v in value) if isinstance(value, list) else str(value)
    return str(value).strip()


def _load_hub_split(source: str, config: str | None, split: str):
    import datasets

    local = Path(source)
    if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
        # A folder written by `Dataset(Dict).save_to_disk`: configs do not apply.
        loaded = datasets.load_from_disk(str(local))
        return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
    try:
        return datasets.load_dataset(source, config, split=split)
    except (ConnectionError, OSError) as err:
        # No network or no such dataset: say which task data could not be had and what to do.
        raise TaskDataError(
            f"could not load {source!r} (config {config!r}, split {split!r}) from the Hugging "
            f"Face hub: {str(err).splitlines()[0]}; pass --data-dir (or ${DATA_DIR_ENV}) with "
            "local rStar-format files"
        ) from err


def load_hub_problems(spec: TaskSpec, *, source: str | None = None) -> list[Problem]:
    """Problems from the task's Hugging Face dataset (or `source`: another hub id,
    a local dataset folder, or a `save_to_disk` folder with the same columns).

    The row number (across configs, in order) is the problem index.
    """
    source = source or spec.hub_id
    problems: list[Problem] = []
    for config in spec.hub_configs:
        rows = _load_hub_split(source, config, spec.hub_split)
        for row in rows:
            where = f"{source}[{config or 'default'}/{spec.hub_split}] row {len(problems)}"
            for field in (spec.question_field, spec.answer_field):
                if field not in row:
                    raise TaskDataError(f"{where}: field {field!r} is missing; columns: "
                                        f"{', '.join(row)}")
            question = row[spec.question_field]
            if not isinstance(question, str) or not question.strip():
                raise TaskDataError(f"{where}: field {spec.question_field!r} must be a "
                                    "non-empty string")
            answer = _hub_answer(spec, row[spec.answer_field], where)
            problems.append(Problem(index=len(problems), question=question, answer=answer))
    return problems


def load_problems(
    task: str | TaskSpec,
    *,
    data_dir: str | os.PathLike | None = None,
    hub_source: str | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """The problems of one task, in file order, at most `limit` of them.

    With a data folder (`data_dir` or `$RSTAR_DATA_DIR`) the task's local file
    is required; without one the Hugging Face dataset is loaded.
    """
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    if limit is not None and limit < 0:
        raise TaskDataError(f"limit must be >= 0, got {limit}")
    folder = resolve_data_dir(data_dir)
    if folder is not None and hub_source is None:
        problems = read_problem_file(local_file(spec, folder))
    else:
        problems = load_hub_problems(spec, source=hub_source)
    return problems if limit is None else problems[:limit]
