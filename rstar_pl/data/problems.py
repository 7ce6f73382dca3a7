"""Problems for generation: from JSON / JSONL files, from a dataset saved with
`datasets.Dataset.save_to_disk`, or from a Hugging Face hub dataset.

Each record gives a question and a reference answer under configurable field
names. Where a dataset gives full solutions instead of final answers
(NuminaMath's `solution`), the answer is extracted from the solution with
`grading.extract_answer`. Records without a usable question or answer are
*skipped and reported* (`ProblemSet.skipped`, and a warning in the log), never
kept with a missing reference; a source with no usable problem at all is an
error.

The rStar benchmark files (`[{"index", "question", "answer"}]`) load with the
defaults.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Problem", "ProblemError", "ProblemSet", "ProblemsConfig", "load_problems"]

log = logging.getLogger(__name__)


class ProblemError(ValueError):
    """Problems that cannot be loaded as configured."""


@dataclass(frozen=True)
class Problem:
    """One problem: a unique id, the question, the reference final answer
    (None only at test time), and the other fields of the record."""

    id: str
    question: str
    answer: str | None
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class ProblemsConfig:
    """Where problems come from and which fields hold what."""

    source: str = ""
    """A .json/.jsonl file, a folder written by `save_to_disk`, a hub dataset id
    or a local folder of data files (both read by `datasets.load_dataset`),
    or `builtin:scripted_problems` (the small set shipped for the example)."""
    split: str = "train"
    """Dataset split (hub datasets and saved DatasetDicts)."""
    subset: str | None = None
    """Hub dataset configuration name, if any."""
    question_field: str = "question"
    answer_field: str | None = "answer"
    """Field with the final answer; null when only solutions are given."""
    solution_field: str | None = None
    """Field with a full solution to extract the answer from when `answer_field`
    is null or empty (NuminaMath: "solution")."""
    id_field: str | None = "index"
    """Field with a unique id; records without it are numbered by position."""
    limit: int | None = None
    """Keep the first `limit` usable problems."""


@dataclass
class ProblemSet:
    problems: list[Problem]
    skipped: list[tuple[str, str]]
    """(id, reason) of every record that was not kept."""


def _read_file(path: Path) -> list[dict[str, Any]]:
    from rstar_pl.files import read_utf8

    text = read_utf8(path)
    if path.suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ProblemError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ProblemError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if isinstance(data, dict) and isinstance(data.get("problems"), list):
        data = data["problems"]
    if not isinstance(data, list):
        raise ProblemError(
            f"{path}: expected a JSON list of problem records, got {type(data).__name__}"
        )
    return data


def _read_dataset(config: ProblemsConfig) -> Iterable[Mapping[str, Any]]:
    import datasets

    path = Path(config.source)
    if path.is_dir() and any((path / n).is_file() for n in ("dataset_dict.json", "state.json")):
        loaded = datasets.load_from_disk(str(path))  # written by save_to_disk
    else:
        try:
            loaded = datasets.load_dataset(config.source, config.subset, split=config.split)
        except (OSError, datasets.exceptions.DatasetsError) as err:
            # no network, no such dataset, or files it cannot read: one line, and what to do
            how = "as a dataset folder" if path.exists() else "from the Hugging Face hub"
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ProblemError(
                f"problems.source {config.source!r}: cannot load it {how} ({reason}); give a "
                ".json/.jsonl file or a folder, or check the dataset id and the network"
            ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if config.split not in loaded:
            raise ProblemError(
                f"{config.source}: no split {config.split!r}; available: {', '.join(loaded)}"
            )
        loaded = loaded[config.split]
    return loaded


BUILTIN_PREFIX = "builtin:"


def builtin_path(name: str) -> Path:
    """Path of a problem set shipped in `rstar_pl/data/` (`builtin:NAME`)."""
    path = Path(__file__).parent / f"{name}.json"
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.json"))
        raise ProblemError(f"no built-in problem set {name!r}; available: {', '.join(available)}")
    return path


def _records(config: ProblemsConfig) -> Iterable[Mapping[str, Any]]:
    if config.source.startswith(BUILTIN_PREFIX):
        return _read_file(builtin_path(config.source[len(BUILTIN_PREFIX) :]))
    path = Path(config.source)
    if path.suffix in (".json", ".jsonl"):
        if not path.is_file():
            raise FileNotFoundError(f"problems file {path} does not exist")
        return _read_file(path)
    return _read_dataset(config)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def load_problems(config: ProblemsConfig) -> ProblemSet:
    """Load, validate and report (see the module docstring)."""
    if not config.source:
        raise ProblemError(
            "problems.source is empty; give a .json/.jsonl file, a folder or a hub id"
        )
    if config.answer_field is None and config.solution_field is None:
        raise ProblemError("problems: set answer_field or solution_field (both are null)")
    problems: list[Problem] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    first = True
    for position, record in enumerate(_records(config)):
        if not isinstance(record, Mapping):
            raise ProblemError(f"{config.source}: record {position} is not an object")
        if first:
            first = False
            if config.question_field not in record:
                raise ProblemError(
                    f"{config.source}: no field {config.question_field!r} (problems.question_field); "
                    f"fields: {', '.join(map(str, record))}"
                )
        raw_id = record.get(config.id_field) if config.id_field else None
        pid = str(raw_id) if raw_id is not None else str(position)
        if pid in seen:
            raise ProblemError(f"{config.source}: duplicate problem id {pid!r} (record {position})")
        seen.add(pid)
        question = _text(record.get(config.question_field))
        if question is None:
            skipped.append((pid, f"empty {config.question_field!r}"))
            continue
        answer = _text(record.get(config.answer_field)) if config.answer_field else None
        if answer is None and config.solution_field:
            solution = _text(record.get(config.solution_field))
            if solution is not None:
                from rstar_pl.grading import extract_answer

                answer = _text(extract_answer(solution))
        if answer is None:
            fields = " or ".join(
                f"{f!r}" for f in (config.answer_field, config.solution_field) if f
            )
            skipped.append((pid, f"no usable answer in {fields}"))
            continue
        meta = {k: v for k, v in record.items() if k not in (config.question_field,)}
        problems.append(Problem(pid, question, answer, meta))
        if config.limit is not None and len(problems) >= config.limit:
            break
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
