"""Problems, for generation and for evaluation alike: one `Problem` type and one
loader (`load_problems`) for JSON / JSONL files, datasets saved with
`datasets.Dataset.save_to_disk`, Hugging Face hub datasets and the built-in sets.

A `ProblemsConfig` names the source and its field mapping: which field holds
the question, the reference answer (as it is, or after a transform: GSM8K's
`####`, MATH's last `\\boxed{}`, a list joined), a full solution to extract the
answer from (NuminaMath's `solution`), and the id. The rStar benchmark files
(`[{"index", "question", "answer"}]`) load with the defaults; the harness's
task registry (`harness.tasks`) describes each benchmark as such a config.

Two consumers, two policies for a bad record, chosen by the caller:

- generation (the default) *skips and reports* a record without a usable
  question or answer (`ProblemSet.skipped`, and a warning in the log): a
  problem without a reference cannot be trained on;
- evaluation (`strict=True`) loads every record or fails on the first bad one,
  since a score is over the whole benchmark: a missing field or a value of the
  wrong type is an error, and an empty answer is kept as a reference nothing
  matches (a few benchmark records have none).

Either way the error is one line naming the file (or dataset row), the record
and the field; a duplicate id, a record that is not an object and a source with
no usable problem are errors under both policies.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rstar_pl.errors import UserError

__all__ = [
    "AnswerTransform",
    "Problem",
    "ProblemError",
    "ProblemSet",
    "ProblemsConfig",
    "SourceUnavailableError",
    "builtin_path",
    "load_problems",
]

log = logging.getLogger(__name__)

#: How an answer field's value becomes the final answer (None: as it is).
AnswerTransform = Literal["gsm8k", "boxed", "join"]


class ProblemError(UserError):
    """Problems that cannot be loaded as configured."""


class SourceUnavailableError(ProblemError):
    """A dataset that cannot be had (no network, no such dataset, unreadable files).

    The message says what to do in a generation config; `source`, `how` ("from
    the Hugging Face hub (subset ..., split ...)") and `reason` let another
    caller say it in its own terms (the harness: `--data-dir`).
    """

    def __init__(self, source: str, how: str, reason: str):
        self.source, self.how, self.reason = source, how, reason
        super().__init__(
            f"problems.source {source!r}: cannot load it {how}: {reason}; give a .json/.jsonl "
            "file or a folder, or check the dataset id and the network"
        )

    def __reduce__(self):  # pickled with the arguments it is made from
        return type(self), (self.source, self.how, self.reason)


@dataclass(frozen=True)
class Problem:
    """One problem.

    Attributes:
        index: the record's id as the source gives it (an integer or a text;
            the row number when the source has no id field). Evaluation keys
            its predictions and resumes on it.
        question: the problem statement, stripped.
        answer: the reference final answer (None only at test time; empty in
            the few benchmark records that have none, which nothing matches).
        alternatives: other accepted answers (a record whose answer is a list,
            e.g. MATH's "enter one of the foci": any of them is right).
        meta: the record's other fields (a scripted problem's `script`, a
            word problem's `level`); not part of equality.
    """

    index: int | str
    question: str
    answer: str | None
    alternatives: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def id(self) -> str:
        """The id as text: tree files' `problem_id`, and what seeds a search."""
        return str(self.index)

    @property
    def references(self) -> tuple[str, ...]:
        """Every accepted answer, the main one first."""
        return (self.answer, *self.alternatives) if self.answer is not None else self.alternatives


@dataclass
class ProblemsConfig:
    """Where problems come from and which fields hold what."""

    source: str = ""
    """A .json/.jsonl file, a folder written by `save_to_disk`, a hub dataset id
    or a local folder of data files (both read by `datasets.load_dataset`),
    or `builtin:scripted_problems` (the small set shipped for the example)."""
    split: str = "train"
    """Dataset split (hub datasets and saved DatasetDicts)."""
    subset: str | list[str] | None = None
    """Hub dataset configuration name, if any; several are read in order, one
    after the other (MATH's seven subjects)."""
    question_field: str = "question"
    answer_field: str | None = "answer"
    """Field with the final answer; null when only solutions are given. A list
    value gives alternative answers, the first being the main one."""
    answer_transform: AnswerTransform | None = None
    """How the answer field becomes the final answer: null (as it is), "gsm8k"
    (the text after the last `####`, thousands commas dropped), "boxed" (the
    last `\\boxed{}` of a worked solution, MATH's convention), "join" (a list
    joined by ", ", OlympiadBench's several answers as one)."""
    solution_field: str | None = None
    """Field with a full solution to extract the answer from when `answer_field`
    is null or empty (NuminaMath: "solution"), by `grading.extract_answer` (a
    boxed answer, a `####` line or an "the answer is" phrase)."""
    id_field: str | None = "index"
    """Field with a unique id; records without it are numbered by position
    (every record needs it when loading strictly)."""
    limit: int | None = None
    """Keep the first `limit` usable problems."""


@dataclass
class ProblemSet:
    problems: list[Problem]
    skipped: list[tuple[str, str]]
    """(id, reason) of every record that was not kept."""


class _Unusable(Exception):
    """A record value that cannot be used: skipped, or an error when strict."""


BUILTIN_PREFIX = "builtin:"


def builtin_path(name: str) -> Path:
    """Path of a problem set shipped in `rstar_pl/data/` (`builtin:NAME`)."""
    path = Path(__file__).parent / f"{name}.json"
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.json"))
        raise ProblemError(f"no built-in problem set {name!r}; available: {', '.join(available)}")
    return path


def _read_file(path: Path) -> list[Any]:
    """The records of a JSON list (or `{"problems": [...]}`) or JSONL file (read as every
    JSONL file is, `rstar_pl.files.read_jsonl`)."""
    from rstar_pl.files import read_jsonl, read_utf8

    if not path.is_file():
        raise ProblemError(f"{path}: file not found")
    if path.suffix == ".jsonl":
        return read_jsonl(path, error=ProblemError)
    text = read_utf8(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ProblemError(f"{path}: not valid JSON at line {err.lineno}: {err.msg}") from None
    if isinstance(data, dict) and isinstance(data.get("problems"), list):
        data = data["problems"]
    if not isinstance(data, list):
        raise ProblemError(
            f"{path}: expected a JSON list of problem records, got {type(data).__name__}"
        )
    return data


def _load_split(source: str, subset: str | None, split: str):
    """One split of a saved dataset folder, a hub dataset or a folder of data files."""
    import datasets

    path = Path(source)
    if path.is_dir() and any((path / n).is_file() for n in ("dataset_dict.json", "state.json")):
        loaded = datasets.load_from_disk(str(path))  # written by save_to_disk: no subsets
    else:
        try:
            loaded = datasets.load_dataset(source, subset, split=split)
        except (ConnectionError, OSError, datasets.exceptions.DatasetsError) as err:
            how = "as a dataset folder" if path.exists() else "from the Hugging Face hub"
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            how += f" (subset {subset!r}, split {split!r})"
            raise SourceUnavailableError(source, how, reason) from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise ProblemError(f"{source}: no split {split!r}; available: {', '.join(loaded)}")
        loaded = loaded[split]
    return loaded


def _records(config: ProblemsConfig) -> tuple[str, Iterator[tuple[str, Any]]]:
    """(what a record's keys are called, (where, record) of every record in order)."""
    if config.source.startswith(BUILTIN_PREFIX):
        path = builtin_path(config.source[len(BUILTIN_PREFIX) :])
    else:
        path = Path(config.source)
    if path.suffix in (".json", ".jsonl"):
        records = _read_file(path)
        return "fields", ((f"{path}: record {i}", r) for i, r in enumerate(records))
    subsets = config.subset if isinstance(config.subset, list | tuple) else [config.subset]

    def rows() -> Iterator[tuple[str, Any]]:
        position = 0
        for subset in subsets:
            for row in _load_split(config.source, subset, config.split):
                yield f"{config.source}[{subset or 'default'}/{config.split}] row {position}", row
                position += 1

    return "columns", rows()


def _index(
    record: Mapping[str, Any], position: int, config: ProblemsConfig, strict: bool
) -> int | str:
    """The record's id: its id field, else its position."""
    if not config.id_field:
        return position
    value = record.get(config.id_field)
    if value is None and not strict:
        return position
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _Unusable(
            f"field {config.id_field!r} must be an integer or a string, got {value!r:.40}"
        )
    return value


def _question(record: Mapping[str, Any], config: ProblemsConfig) -> str:
    value = record.get(config.question_field)
    if not isinstance(value, str) or not value.strip():
        raise _Unusable(
            f"field {config.question_field!r} must be a non-empty string, got {value!r:.40}"
        )
    return value.strip()


def _scalar(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Unusable(
            f"field {name!r} must be a string, a number or a non-empty list of "
            f"them, got {value!r:.40}"
        )
    return str(value).strip()


def _transformed(value: Any, config: ProblemsConfig) -> list[str]:
    """The accepted answers an answer field's value gives, the main one first."""
    name = config.answer_field
    if config.answer_transform == "gsm8k":
        text = str(value)
        if "####" not in text:
            raise _Unusable(f"field {name!r} has no '####' answer")
        return [text.rsplit("####", 1)[1].strip().replace(",", "")]
    if config.answer_transform == "boxed":
        from rstar_pl.grading import extract_boxed

        boxed = extract_boxed(str(value))
        if boxed is None:
            raise _Unusable(f"field {name!r} has no \\boxed{{}} answer")
        return [boxed.strip()]
    if config.answer_transform == "join":
        values = value if isinstance(value, list) else [value]
        return [", ".join(_scalar(v, name) for v in values)]
    values = value if isinstance(value, list) and value else [value]
    return [_scalar(v, name) for v in values]


def _references(record: Mapping[str, Any], config: ProblemsConfig, strict: bool) -> list[str]:
    """The record's accepted answers, main one first: from the answer field, else from
    the solution field; an empty answer is kept only when strict."""
    value = record.get(config.answer_field) if config.answer_field else None
    answers = _transformed(value, config) if value is not None else []
    if answers and answers[0]:
        return answers
    solution = record.get(config.solution_field) if config.solution_field else None
    if isinstance(solution, str) and solution.strip():
        from rstar_pl.grading import extract_answer

        answer = (extract_answer(solution) or "").strip()
        if answer:
            return [answer]
    if strict and answers:
        return answers  # the benchmark's record has no reference: nothing matches it
    if strict and config.answer_field:
        _scalar(value, config.answer_field)  # None: a value of the wrong type, named
    fields = " or ".join(f"{f!r}" for f in (config.answer_field, config.solution_field) if f)
    raise _Unusable(f"no usable answer in {fields}")


def _required(config: ProblemsConfig, strict: bool) -> list[str]:
    """Fields every record must have (strict), or the first record (the mapping's check)."""
    names = [config.question_field]
    if strict:
        names += [f for f in (config.id_field, config.answer_field) if f]
    return names


def load_problems(config: ProblemsConfig, *, strict: bool = False) -> ProblemSet:
    """Load, validate and report (see the module docstring)."""
    if not config.source:
        raise ProblemError(
            "problems.source is empty; give a .json/.jsonl file, a folder or a hub id"
        )
    if config.answer_field is None and config.solution_field is None:
        raise ProblemError("problems: set answer_field or solution_field (both are null)")
    if config.limit is not None and config.limit < 0:
        raise ProblemError(f"problems.limit must be >= 0, got {config.limit}")
    problems: list[Problem] = []
    skipped: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    keys, records = _records(config)
    for position, (where, record) in enumerate(records):
        if config.limit is not None and len(problems) >= config.limit:
            break
        if not isinstance(record, Mapping):
            raise ProblemError(
                f"{where}: expected an object with the problem's fields, "
                f"got {type(record).__name__}"
            )
        for name in _required(config, strict) if strict or position == 0 else ():
            if name not in record:
                raise ProblemError(
                    f"{where}: field {name!r} is missing; {keys}: {', '.join(map(str, record))}"
                )
        try:
            index = _index(record, position, config, strict)
        except _Unusable as err:
            raise ProblemError(f"{where}: {err}") from None
        pid = str(index)
        if pid in seen:
            raise ProblemError(
                f"{where}: field {config.id_field!r} value {index!r} repeats "
                f"record {seen[pid]} (duplicate problem id {pid!r}); ids must "
                "be unique"
            )
        seen[pid] = position
        try:
            question = _question(record, config)
            answer, *alternatives = _references(record, config, strict)
        except _Unusable as err:
            if strict:
                raise ProblemError(f"{where}: {err}") from None
            skipped.append((pid, str(err)))
            continue
        meta = {k: v for k, v in record.items() if k != config.question_field}
        problems.append(Problem(index, question, answer, tuple(alternatives), meta))
    shown = ", ".join(f"{pid} ({why})" for pid, why in skipped[:5])
    shown += f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    if not problems and config.limit != 0:
        if not skipped:
            raise ProblemError(f"{config.source}: holds no problems (problems.source)")
        raise ProblemError(
            f"{config.source}: no usable problem: all {len(skipped)} records were skipped: {shown}"
        )
    if skipped:
        log.warning("%s: skipped %d problem(s): %s", config.source, len(skipped), shown)
    return ProblemSet(problems, skipped)
