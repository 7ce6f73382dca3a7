"""The training-data files: SFT records, preference pairs, Q-labelled steps,
outcomes and difficulty labels, written by `rstar-pl extract` and read for
training (`datamodules`), reports and evaluation. This module is the one place
their layout lives; what the extractor puts in them is
`rstar_pl.data.extraction`'s docstring.

Every line of an extractor file starts with its schema (`rstar_pl.data.schema`):

    sft.jsonl          "rstar-sft/1"         problem_id, question, response, mean_q, min_q
    pairs.jsonl        "rstar-pair/1"        problem_id, prompt, chosen, rejected,
                                             chosen_q, rejected_q, kind
    step_values.jsonl  "rstar-step-value/1"  problem_id, prompt, completion, target, kind
    outcomes.jsonl     "rstar-outcome/1"     problem_id, prompt, completion, target, kind
    difficulty.jsonl   "rstar-difficulty/1"  problem_id, difficulty, correct, wrong

A line without the key reads as version 1; a line of another schema is refused
naming the file and the line.

Reading for training, two record kinds each in two formats, recognised by the
file's extension:

SFT examples (the policy's data):
    * ``*.jsonl``, one object per line, the extractor's format:
      ``{"problem_id", "question", "response", "mean_q", "min_q"}``.
    * ``*.json``, a list of objects, the official rStar format:
      ``{"query", "response"}``.
    Both become `SFTExample(prompt=build_prompt(question), response)`.

Preference pairs (the PPM's data):
    * ``*.jsonl``: ``{"problem_id", "prompt", "chosen", "rejected", "chosen_q",
      "rejected_q", "kind"}``; ``prompt + chosen`` is a partial trajectory.
    * ``*.json``, the official rStar format: ``{"prompt", "pos", "neg",
      "pos_count", "neg_count"}``.
    Both become `PairExample(prompt, chosen, rejected, weight, group)`.

Scored texts (the pointwise reward models', `PPMModule(loss=q_regression | outcome)`):
    ``step_values.jsonl`` or ``outcomes.jsonl``: ``{"problem_id", "prompt",
    "completion", "target", "kind"}``, ``target`` in [-1, 1]; they become
    `ValueExample(prompt, completion, target, group)`.

Pair weights (Eq. 4: each step counts once, its pairs share that weight): an
official record weighs 1/(pos_count * neg_count); an extractor record
1/(number of records of its file with the same problem_id, kind and prompt),
since those are the pairs of one step (the final-answer pairs of a problem are
one more "step").

Every example carries its `group`, the problem it comes from (`problem_id`, or
the question where a format has none), so that a validation split never puts
records that share a prefix on both sides (`datamodules.base.hold_out`).

Unknown extra keys are allowed. A bad record raises `RecordError` naming the
file, the line and the key; a file that is not UTF-8 is refused naming the
file. A JSONL file is read as every JSONL file is (`rstar_pl.files.jsonl`: a
torn last line is skipped). A pair whose chosen text equals its rejected text
teaches the PPM nothing (its loss is log 2 whatever the model does): such pairs
are dropped with a warning naming their lines.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rstar_pl.data.schema import check_schema, stamped
from rstar_pl.errors import UserError
from rstar_pl.files import iter_jsonl, json_line, numbered_jsonl, read_utf8
from rstar_pl.steps import build_prompt

__all__ = [
    "DIFFICULTY_SCHEMA",
    "OUTCOME_SCHEMA",
    "PAIR_SCHEMA",
    "SCHEMAS",
    "SFT_SCHEMA",
    "STEP_VALUE_SCHEMA",
    "PairExample",
    "RecordError",
    "SFTExample",
    "ValueExample",
    "read_difficulty",
    "read_pairs",
    "read_records",
    "read_sft",
    "read_values",
    "record_lines",
]

SFT_SCHEMA = "rstar-sft/1"
PAIR_SCHEMA = "rstar-pair/1"
STEP_VALUE_SCHEMA = "rstar-step-value/1"
OUTCOME_SCHEMA = "rstar-outcome/1"
DIFFICULTY_SCHEMA = "rstar-difficulty/1"

#: The schema of each extractor output, by its file's stem (`sft` -> sft.jsonl).
SCHEMAS = {
    "sft": SFT_SCHEMA,
    "pairs": PAIR_SCHEMA,
    "step_values": STEP_VALUE_SCHEMA,
    "outcomes": OUTCOME_SCHEMA,
    "difficulty": DIFFICULTY_SCHEMA,
}

_DIFFICULTIES = ("easy", "medium", "hard")

log = logging.getLogger(__name__)


class RecordError(UserError):
    """A training-data record that is missing a key or has a value of the wrong type."""


@dataclass(frozen=True)
class SFTExample:
    """One supervised example: loss is taken on `response` only; `group` is its problem."""

    prompt: str
    response: str
    group: str = ""


@dataclass(frozen=True)
class PairExample:
    """One preference pair: `prompt + chosen` should score above `prompt + rejected`.

    `weight` is the pair's share of its step (Eq. 4, module docstring); `group`
    its problem.
    """

    prompt: str
    chosen: str
    rejected: str
    weight: float = 1.0
    group: str = ""


def _user_turn(prompt: str) -> str:
    """The problem part of a prompt: everything before the assistant's turn."""
    cut = prompt.find("<|assistant|>")
    return prompt if cut < 0 else prompt[:cut]


def _iter_objects(path: Path, schemas: tuple[str, ...]) -> Iterator[tuple[int, object]]:
    """Yield (line number, decoded value) for each record of a .jsonl file (one of
    `schemas`, or none) or of an official rStar .json file."""
    if path.suffix == ".jsonl":
        for number, record in numbered_jsonl(path, error=RecordError):
            check_schema(record, schemas, f"{path}:{number}", RecordError)
            yield number, record
        return
    if path.suffix != ".json":
        raise RecordError(f"{path}: unknown extension {path.suffix!r}; allowed: .jsonl, .json")
    text = read_utf8(path)
    # A JSON list, decoded one element at a time so that errors can name a line.
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos >= len(text) or text[pos] != "[":
        raise RecordError(f"{path}:1: a .json data file must hold a list of objects")
    pos = _skip_ws(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        lineno = text.count("\n", 0, pos) + 1
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise RecordError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
        yield lineno, value
        pos = _skip_ws(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
        elif pos < len(text) and text[pos] == "]":
            return
        else:
            line = text.count("\n", 0, pos) + 1
            raise RecordError(f"{path}:{line}: expected ',' or ']' between list elements")


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _field(record: object, key: str, kind: type | tuple[type, ...], where: str) -> object:
    if not isinstance(record, dict):
        raise RecordError(f"{where}: record is {type(record).__name__}; expected a JSON object")
    if key not in record:
        raise RecordError(f"{where}: missing key {key!r} (keys present: {sorted(record)})")
    value = record[key]
    # bool is an int in Python; a count or a Q-value of true/false is still a mistake.
    if not isinstance(value, kind) or isinstance(value, bool):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise RecordError(
            f"{where}: key {key!r} is {type(value).__name__} {str(value)[:40]!r}; expected {names}"
        )
    if (
        isinstance(value, str)
        and key in {"question", "query", "response", "chosen", "rejected", "pos", "neg"}
        and not value.strip()
    ):
        raise RecordError(f"{where}: key {key!r} is empty; expected non-empty text")
    return value


def read_sft(path: str | os.PathLike) -> list[SFTExample]:
    """Read SFT examples from a .jsonl (extractor) or .json (official rStar) file."""
    path = Path(path)
    examples = []
    for lineno, record in _iter_objects(path, (SFT_SCHEMA,)):
        where = f"{path}:{lineno}"
        if path.suffix == ".jsonl":
            question = _field(record, "question", str, where)
            response = _field(record, "response", str, where)
            for key in ("mean_q", "min_q"):
                _field(record, key, (int, float), where)
            group = str(record.get("problem_id", question))
        else:
            question = _field(record, "query", str, where)
            response = _field(record, "response", str, where)
            group = question
        examples.append(SFTExample(build_prompt(question), response, group))
    return examples


def read_pairs(path: str | os.PathLike) -> list[PairExample]:
    """Read preference pairs from a .jsonl (extractor) or .json (official rStar) file."""
    path = Path(path)
    rows, same = [], []
    for lineno, record in _iter_objects(path, (PAIR_SCHEMA,)):
        where = f"{path}:{lineno}"
        if path.suffix == ".jsonl":
            prompt = _field(record, "prompt", str, where)
            chosen = _field(record, "chosen", str, where)
            rejected = _field(record, "rejected", str, where)
            for key in ("chosen_q", "rejected_q"):
                _field(record, key, (int, float), where)
            group = str(record.get("problem_id", _user_turn(prompt)))
            step = (group, str(record.get("kind", "")), prompt)
        else:
            prompt = _field(record, "prompt", str, where)
            chosen = _field(record, "pos", str, where)
            rejected = _field(record, "neg", str, where)
            counts = 1
            for key in ("pos_count", "neg_count"):
                value = _field(record, key, int, where)
                if value < 1:
                    raise RecordError(f"{where}: key {key!r} is {value}; expected an int >= 1")
                counts *= value
            group = _user_turn(prompt)
            step = counts
        if chosen == rejected:
            same.append(lineno)
            continue
        rows.append((prompt, chosen, rejected, group, step))
    if same:
        lines = ", ".join(map(str, same[:10])) + (", ..." if len(same) > 10 else "")
        log.warning(
            "%s: dropped %d pairs whose chosen text equals the rejected one (lines %s)",
            path,
            len(same),
            lines,
        )
    # a step's weight is shared by the pairs of it that are kept
    sizes = Counter(step for *_, step in rows if isinstance(step, tuple))
    return [
        PairExample(
            prompt,
            chosen,
            rejected,
            1.0 / (sizes[step] if isinstance(step, tuple) else step),
            group,
        )
        for prompt, chosen, rejected, group, step in rows
    ]


@dataclass(frozen=True)
class ValueExample:
    """A text to score and the value it should get."""

    prompt: str
    completion: str
    target: float
    group: str = ""


def read_values(path: str | os.PathLike) -> list[ValueExample]:
    """Read a `step_values.jsonl` or `outcomes.jsonl` file (module docstring)."""
    path = Path(path)
    if path.suffix != ".jsonl":
        raise RecordError(
            f"{path}: value records are JSONL (step_values.jsonl, outcomes.jsonl); "
            f"got {path.suffix!r}"
        )
    out = []
    for lineno, record in _iter_objects(path, (STEP_VALUE_SCHEMA, OUTCOME_SCHEMA)):
        where = f"{path}:{lineno}"
        prompt = _field(record, "prompt", str, where)
        completion = _field(record, "completion", str, where)
        target = float(_field(record, "target", (int, float), where))
        if not -1.0 <= target <= 1.0:
            raise RecordError(f"{where}: key 'target' is {target}; expected a value in [-1, 1]")
        if not (prompt + completion).strip():
            raise RecordError(f"{where}: prompt + completion is empty")
        out.append(ValueExample(prompt, completion, target, str(record.get("problem_id", ""))))
    return out


def record_lines(name: str, records: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The lines of the extractor output `name` (a key of `SCHEMAS`), each record
    stamped with its schema."""
    schema = SCHEMAS[name]
    for record in records:
        yield json_line(stamped(record, schema))


def _schema_of(path: Path) -> str:
    if path.stem not in SCHEMAS:
        raise RecordError(
            f"{path}: not an extractor output; allowed names: "
            f"{', '.join(f'{n}.jsonl' for n in SCHEMAS)}"
        )
    return SCHEMAS[path.stem]


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of an extractor output (`sft.jsonl`, `pairs.jsonl`, ... by name),
    schema checked, as dicts; for counting and reports (training reads them with
    `read_sft` / `read_pairs` / `read_values`)."""
    path = Path(path)
    schema = _schema_of(path)
    out = []
    for record, where in iter_jsonl(path, error=RecordError):
        check_schema(record, (schema,), where, RecordError)
        out.append(record)
    return out


def read_difficulty(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a `difficulty.jsonl`: problem_id, difficulty (easy, medium, hard),
    correct, wrong."""
    path = Path(path)
    out = []
    for record, where in iter_jsonl(path, error=RecordError):
        check_schema(record, (DIFFICULTY_SCHEMA,), where, RecordError)
        _field(record, "problem_id", (str, int), where)
        level = _field(record, "difficulty", str, where)
        if level not in _DIFFICULTIES:
            raise RecordError(
                f"{where}: key 'difficulty' is {level!r}; allowed: {', '.join(_DIFFICULTIES)}"
            )
        for key in ("correct", "wrong"):
            _field(record, key, int, where)
        out.append(record)
    return out
