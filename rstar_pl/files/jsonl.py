"""JSON Lines files: one reader, one appender and one rule for a torn last line.

Every JSONL file the project writes (tree shards, training records,
predictions, scaling pools, ProcessBench scores) is read by `iter_jsonl` and grown by
`JSONLAppender` / `append_jsonl`, so a crash is handled the same everywhere:

- An appender writes each batch of lines with one `write` (O_APPEND) and an
  fsync, so a crash can leave at most the last line without its newline.
- A *torn last line* is a last line with no newline that is not valid JSON: a
  reader skips it with a warning, and `repair_tail` (which every appender runs
  before its first write) cuts it, so the next line is not glued to it. A last
  line that lacks only its newline is a whole record (a file written by hand,
  or a crash between the record and its newline): it is read, and
  `repair_tail` gives it its newline. After a repair the file holds exactly the
  records a read of it yielded.
- Any other bad line (not JSON, not UTF-8) is an error naming the file and the
  line: it is not a crash's trace but a damaged or foreign file.

Blank lines are skipped. Whole files are replaced with `write_jsonl`
(`rstar_pl.files.atomic`: a temporary file beside it, fsync, rename).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rstar_pl.errors import UserError
from rstar_pl.files.atomic import write_atomic
from rstar_pl.files.text import not_utf8

__all__ = [
    "JSONLAppender",
    "JSONLError",
    "append_jsonl",
    "iter_jsonl",
    "json_line",
    "numbered_jsonl",
    "read_jsonl",
    "repair_tail",
    "write_jsonl",
]

log = logging.getLogger(__name__)


class JSONLError(UserError):
    """A line of a JSONL file that is not JSON (or not a JSON object)."""


def json_line(record: Any) -> str:
    """`record` as one line of a JSONL file, newline included (UTF-8 text, not escaped)."""
    return json.dumps(record, ensure_ascii=False) + "\n"


def _whole(raw: bytes) -> bool:
    """Whether a line read without its newline is a whole JSON value."""
    try:
        json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return True


def numbered_jsonl(
    path: str | os.PathLike, *, error: type[Exception] = JSONLError
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for every JSON object of `path`, in order.

    A torn last line is skipped with a warning (module docstring); any other line
    that is not a JSON object raises `error` (the caller's error class) naming the
    file and the line.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            where = f"{path}:{number}"
            torn = not raw.endswith(b"\n")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                if torn:
                    log.warning("%s: ignoring a torn last line", where)
                    continue
                raise not_utf8(path, err, number) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                if torn:
                    log.warning("%s: ignoring a torn last line", where)
                    continue
                raise error(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise error(f"{where}: a line must be a JSON object, got {type(record).__name__}")
            yield number, record


def iter_jsonl(
    path: str | os.PathLike, *, error: type[Exception] = JSONLError
) -> Iterator[tuple[dict[str, Any], str]]:
    """(record, "file:line") for every JSON object of `path` (`numbered_jsonl`)."""
    for number, record in numbered_jsonl(path, error=error):
        yield record, f"{path}:{number}"


def read_jsonl(
    path: str | os.PathLike, *, error: type[Exception] = JSONLError
) -> list[dict[str, Any]]:
    """Every record of `path` (`iter_jsonl`); a missing file is an error."""
    return [record for record, _ in iter_jsonl(path, error=error)]


def repair_tail(path: str | os.PathLike) -> int:
    """Make `path` end with a whole line before something is appended to it: cut a
    torn last line, or add the newline a whole last record lacks. Returns how
    many bytes were cut."""
    path = Path(path)
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        # walk back to the last newline, in blocks
        end, keep = size, 0
        while end > 0:
            start = max(0, end - 65536)
            handle.seek(start)
            block = handle.read(end - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            end = start
        handle.seek(keep)
        last = handle.read()
        if not last.strip() or _whole(last):
            handle.seek(size)
            handle.write(b"\n")
            cut = 0
        else:
            handle.truncate(keep)
            cut = size - keep
        handle.flush()
        os.fsync(handle.fileno())
    if cut:
        log.warning("%s: dropped a torn last line (%d bytes) left by an interrupted run", path, cut)
    return cut


class JSONLAppender:
    """Appends lines to one JSONL file durably; the file's tail is repaired on open."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)

    def write(self, records: Iterable[Any]) -> None:
        """Append `records`, one line each, and fsync before returning."""
        data = "".join(json_line(record) for record in records).encode("utf-8")
        # One write of all the lines: with O_APPEND they land at the end in one
        # piece; a short write (disk full, signal) is finished by the loop.
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> JSONLAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def append_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> None:
    """Append `records` to `path` (created if missing) and fsync them."""
    with JSONLAppender(path) as appender:
        appender.write(records)


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> None:
    """Replace `path` with `records`, one line each, atomically."""
    write_atomic(path, "".join(json_line(record) for record in records))
