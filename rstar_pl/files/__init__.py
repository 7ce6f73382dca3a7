"""The project's output and input files: atomic writes with ordinary permissions,
one writer per output folder, and UTF-8 text read with errors that name the file."""

from rstar_pl.files.atomic import atomic_dir, atomic_file, replace_together, write_atomic
from rstar_pl.files.lock import (
    OutputInUseError,
    OutputLock,
    check_free,
    exclusive_output,
    is_locked,
)
from rstar_pl.files.text import NotUTF8Error, not_utf8, read_utf8

__all__ = [
    "NotUTF8Error",
    "OutputInUseError",
    "OutputLock",
    "atomic_dir",
    "atomic_file",
    "check_free",
    "exclusive_output",
    "is_locked",
    "not_utf8",
    "read_utf8",
    "replace_together",
    "write_atomic",
]
