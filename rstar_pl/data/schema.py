"""The version field of the project's record files: `"schema": "rstar-<kind>/<n>"`.

Tree files started the convention (`rstar-tree/1`, required: `rstar_pl.search.tree`).
Training records (`rstar_pl.data.records`) and evaluation predictions
(`rstar_pl.data.predictions`) carry it too, as the first key of every line, so a
reader can tell a file of an older or newer layout from a damaged one. Their
readers take a record without the key as version 1: files written before the
field existed, by hand or by the official rStar code keep loading. A record of
another schema is refused with one line naming the file, the line and the
schemas this version reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["check_schema", "stamped"]


def stamped(record: Mapping[str, Any], schema: str) -> dict[str, Any]:
    """`record` with `schema` as its first key."""
    return {"schema": schema, **{k: v for k, v in record.items() if k != "schema"}}


def check_schema(
    record: Mapping[str, Any],
    allowed: tuple[str, ...],
    where: str,
    error: type[Exception],
    legacy: tuple[Any, ...] = (),
) -> None:
    """Raise `error` unless `record` has no schema key or one of `allowed` (or of
    `legacy`, older spellings of the same layout)."""
    if "schema" not in record:
        return
    found = record["schema"]
    if found in allowed or (found in legacy and not isinstance(found, bool)):
        return
    names = ", ".join(repr(a) for a in allowed)
    raise error(
        f"{where}: schema {found!r} is not one this version reads; allowed: {names} "
        "(or no schema key, read as version 1)"
    )
