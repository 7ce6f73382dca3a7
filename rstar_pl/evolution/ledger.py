"""Which stages of a self-evolution run are finished, and with which settings.

`runs/<name>/evolve_state.json` records, for every finished stage (e.g.
`round1.generate`), the settings it ran with. A new run of the same command:

- skips a finished stage whose settings are unchanged;
- refuses to start when a finished stage's settings changed, naming the first
  key that differs (its outputs, and everything built on them, would no longer
  match the config);
- continues with the first unfinished stage (which resumes its own work: tree
  shards skip finished trees, training restarts from its last checkpoint,
  evaluation from its predictions file) and forgets every later stage.

The file is rewritten atomically after each stage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rstar_pl.errors import UserError
from rstar_pl.files import write_json

__all__ = ["Ledger", "LedgerError", "first_difference"]

SCHEMA = "rstar-evolve/1"


class LedgerError(UserError):
    """A finished stage's settings differ from the config's, or the state file is unreadable."""


def first_difference(old: Any, new: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """(dotted key, old value, new value) of the first difference, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in old or key not in new:
                return where, old.get(key, "<unset>"), new.get(key, "<unset>")
            found = first_difference(old[key], new[key], where)
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if old == new else (path or "<value>", old, new)


class Ledger:
    """The finished stages of one run folder (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.stages: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise LedgerError(
                    f"{self.path}: not valid JSON ({err.msg}); remove it to start over"
                ) from None
            if data.get("schema") != SCHEMA:
                raise LedgerError(
                    f"{self.path}: schema {data.get('schema')!r}, expected {SCHEMA!r}"
                )
            self.stages = dict(data.get("stages") or {})

    def done(self, stage: str) -> bool:
        return stage in self.stages

    def check(self, stage: str, settings: dict[str, Any]) -> None:
        """Raise `LedgerError` when `stage` finished with other settings."""
        if stage not in self.stages:
            return
        found = first_difference(self.stages[stage]["settings"], settings)
        if found:
            key, old, new = found
            raise LedgerError(
                f"{stage} finished in {self.path.parent} with {key}={old!r}; the config now says "
                f"{new!r}. Its outputs would not match the config: use another run name, set "
                f"{key} back, or delete the run folder to start over"
            )

    def finish(self, stage: str, settings: dict[str, Any], **facts: Any) -> None:
        self.stages[stage] = {"settings": settings, **facts}
        self._write()

    def forget_from(self, stage: str, order: list[str]) -> None:
        """Forget `stage` and every stage after it in `order` (they will run again)."""
        later = order[order.index(stage) :]
        if any(s in self.stages for s in later):
            for s in later:
                self.stages.pop(s, None)
            self._write()

    def _write(self) -> None:
        write_json(self.path, {"schema": SCHEMA, "stages": self.stages}, indent=1)
