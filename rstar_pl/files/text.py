"""Reading the text files a user hands us (problems, training data, configs).

A file in another encoding is bad input like any other: the error names the
file and where its first non-UTF-8 byte is, instead of Python's bare
"'utf-8' codec can't decode byte 0xff in position 0".
"""

from __future__ import annotations

import os
from pathlib import Path

from rstar_pl.errors import UserError

__all__ = ["NotUTF8Error", "not_utf8", "read_utf8"]


class NotUTF8Error(UserError):
    """A text file that is not UTF-8."""


def not_utf8(
    path: str | os.PathLike, err: UnicodeDecodeError, line: int | None = None
) -> NotUTF8Error:
    """The one-line error for `err`, raised while decoding `path` (at `line`, if known)."""
    where = f"{path}:{line}" if line is not None else str(path)
    byte = err.object[err.start : err.start + 1].hex()
    offset = "" if line is not None else f" at byte offset {err.start}"
    return NotUTF8Error(f"{where}: not UTF-8 text (byte 0x{byte}{offset}); save the file as UTF-8")


def read_utf8(path: str | os.PathLike) -> str:
    """The text of `path`, which must be UTF-8."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise not_utf8(path, err) from None
