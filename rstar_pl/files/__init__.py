"""The project's output and input files: atomic writes with ordinary permissions,
JSON Lines read and appended with one rule for a torn last line, one writer per
output folder, and UTF-8 text read with errors that name the file."""

from rstar_pl.files.atomic import (
    atomic_dir,
    atomic_file,
    replace_folder,
    replace_together,
    write_atomic,
    write_json,
    write_yaml,
)
from rstar_pl.files.jsonl import (
    JSONLAppender,
    JSONLError,
    append_jsonl,
    iter_jsonl,
    json_line,
    numbered_jsonl,
    read_jsonl,
    repair_tail,
    write_jsonl,
)
from rstar_pl.files.lock import (
    OutputInUseError,
    OutputLock,
    check_free,
    exclusive_output,
    is_locked,
)
from rstar_pl.files.text import NotUTF8Error, not_utf8, read_utf8

__all__ = [
    "JSONLAppender",
    "JSONLError",
    "NotUTF8Error",
    "OutputInUseError",
    "OutputLock",
    "append_jsonl",
    "atomic_dir",
    "atomic_file",
    "check_free",
    "exclusive_output",
    "is_locked",
    "iter_jsonl",
    "json_line",
    "not_utf8",
    "numbered_jsonl",
    "read_jsonl",
    "read_utf8",
    "repair_tail",
    "replace_folder",
    "replace_together",
    "write_atomic",
    "write_json",
    "write_jsonl",
    "write_yaml",
]
