"""Result files of an evaluation and the table printed at the end.

Per task, `harness eval` writes into `OUT/<task>/`:

- `predictions.jsonl`: one record per problem, appended (and flushed) as each
  batch finishes, so an interrupted run loses at most one batch and resumes by
  skipping the indices already there (the layout: `rstar_pl.data.predictions`);
- `summary.json`: accuracy, count, time, tokens per problem (atomic write);
- `config.json`: the settings that produced them (atomic write).

Atomic writes are `rstar_pl.files.write_json` (permissions from the umask).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["changed_setting", "format_table"]


def changed_setting(
    saved: Path,
    current: Mapping[str, Any],
    keys: Iterable[str],
    defaults: Mapping[str, Any] | None = None,
) -> tuple[str, Any, Any] | None:
    """The first of `keys` whose value in the saved `config.json` differs from `current`, as
    (key, saved value, current value); None when nothing differs or nothing was saved. A key
    missing from an older file reads as its value in `defaults`. Each command that resumes an
    output folder refuses with its own words when this is not None."""
    if not saved.is_file():
        return None
    old = json.loads(saved.read_text(encoding="utf-8"))
    for key in keys:
        before = old.get(key, (defaults or {}).get(key))
        if before != current.get(key):
            return key, before, current.get(key)
    return None


def format_table(summaries: Iterable[Mapping[str, Any]]) -> str:
    """A plain-text table: task, accuracy (%), correct/count, seconds, tokens per problem."""
    header = ("task", "accuracy", "correct", "count", "seconds", "tokens/problem")
    rows = []
    for s in summaries:
        acc = s.get("accuracy")
        acc_text = (
            "-"
            if acc is None or (isinstance(acc, float) and math.isnan(acc))
            else f"{100 * acc:.1f}"
        )
        rows.append(
            (
                str(s["task"]),
                acc_text,
                str(s["correct"]),
                str(s["count"]),
                f"{s['seconds']:.1f}",
                f"{s['tokens_per_problem']:.1f}",
            )
        )
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)
