"""Evaluation predictions: `OUT/<task>/predictions.jsonl` of `harness eval`.

One record per problem, schema "rstar-prediction/1" (`rstar_pl.data.schema`):
`schema`, `index`, `question`, `reference`, `alternatives`, `completion`,
`extracted` (the graded answer, or null), `correct`, `num_tokens`, `seconds`,
and either `code_runs` and `finish_reason` (greedy decoding) or `candidates`
(a search's answers and their votes).

Records are appended batch by batch as problems finish (`append_predictions`),
so an interrupted run loses at most one batch; the torn last line it may leave
is skipped on reading and cut before the next append (`rstar_pl.files.jsonl`).
Files of older versions wrote `"schema": 1`, read as this layout; a record of
any other schema is refused naming the file and the line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rstar_pl.data.schema import check_schema, stamped
from rstar_pl.errors import UserError
from rstar_pl.files import append_jsonl, iter_jsonl

__all__ = ["PREDICTION_SCHEMA", "PredictionError", "append_predictions", "read_predictions"]

PREDICTION_SCHEMA = "rstar-prediction/1"

#: how the first version spelled it
_LEGACY = (1,)


class PredictionError(UserError):
    """A predictions file line that is not a prediction record of a known schema."""


def append_predictions(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> None:
    """Append `records` (stamped with the schema) to `path` and fsync them."""
    append_jsonl(path, (stamped(record, PREDICTION_SCHEMA) for record in records))


def read_predictions(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The whole records of a predictions file, in order ([] when there is none)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for record, where in iter_jsonl(path, error=PredictionError):
        check_schema(record, (PREDICTION_SCHEMA,), where, PredictionError, legacy=_LEGACY)
        if "index" not in record:
            raise PredictionError(f"{where}: missing key 'index' (keys present: {sorted(record)})")
        records.append(record)
    return records
