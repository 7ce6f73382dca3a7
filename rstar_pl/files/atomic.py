"""Files and folders that appear complete or not at all, with ordinary permissions.

Every output of the project (configs, training data, summaries, model exports)
is written to a temporary name in the destination's own folder, flushed to
disk, then renamed over the destination, so a reader never sees half a file
and a crash or a full disk leaves the old file as it was.

The temporary file is created with `os.open(..., 0o666)` and the folder with
`os.mkdir(..., 0o777)`, so the kernel applies the caller's umask exactly as
for `open()`: with the usual umask 022 files are 0644 and folders 0755, and a
team sharing a group-writable umask gets group-writable outputs.
(`tempfile.mkstemp` and `mkdtemp` would make them 0600 and 0700 regardless.)

A folder from `atomic_dir` gets the same rule for everything written into it,
whoever wrote it: some writers pick private modes of their own (safetensors
writes weights 0600), which would make an export unreadable to the team that
shares the folder, so on completion every entry is given the mode `open()` or
`mkdir` would have given it under the umask.

`replace_together` replaces several files as one step as far as a disk
allows: every new file is complete and on disk before the first rename, and
renames within one folder need no space, so running out of space or a write
error leaves every old file untouched. Only a crash in the microseconds
between the renames could leave a mix.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_dir",
    "atomic_file",
    "replace_folder",
    "replace_together",
    "write_atomic",
    "write_json",
    "write_yaml",
]


def _temporary_name(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")


def _create_file(path: Path) -> tuple[int, Path]:
    """A new, empty temporary file beside `path` (permissions from the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = _temporary_name(path, ".tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """An open file (text with mode "w", bytes with "wb") that replaces `path`
    when the block ends without an exception; on an exception it is removed."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    fd, tmp = _create_file(path)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Replace `path` with `data` (text is written as UTF-8)."""
    with atomic_file(path, "wb") as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def write_json(path: str | os.PathLike, data: Any, *, indent: int = 2) -> None:
    """Replace `path` with `data` as indented JSON (UTF-8 text, not escaped) and a newline."""
    write_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def write_yaml(path: str | os.PathLike, data: Any) -> None:
    """Replace `path` with `data` as YAML, keys in their order (configs a run saves)."""
    import yaml  # not needed by most users of this module

    write_atomic(path, yaml.safe_dump(data, sort_keys=False))


def replace_together(files: Mapping[str | os.PathLike, Iterable[str]]) -> None:
    """Write every file (path -> its text in pieces) to a temporary name, then
    rename them all into place; if any write fails, no file is replaced."""
    written: list[tuple[Path, Path]] = []
    try:
        for path, pieces in files.items():
            path = Path(path)
            fd, tmp = _create_file(path)
            written.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                for piece in pieces:
                    handle.write(piece)
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, path in written:
        os.replace(tmp, path)


def _ordinary_permissions(folder: Path, dir_mode: int) -> None:
    """Give everything under `folder` the mode the umask gives new files and folders
    (`dir_mode` is 0o777 less the umask: `folder` was made with `mkdir(0o777)`)."""
    file_mode, exec_mode = dir_mode & 0o666, dir_mode
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), dir_mode)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                executable = os.stat(path).st_mode & 0o111
                os.chmod(path, exec_mode if executable else file_mode)


def replace_folder(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Move the complete folder `src` to `dst`, replacing what is there.

    A folder cannot be renamed over a non-empty one, so the old one moves aside
    first: `dst` is missing only between two renames, and a crash right there
    leaves both complete folders, the old one beside it as `.NAME.old`.
    """
    src, dst = Path(src), Path(dst)
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.is_dir() and not dst.is_symlink():
        os.replace(dst, old)
    elif dst.exists() or dst.is_symlink():
        dst.unlink()
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """A new temporary folder beside `path` that replaces it (and everything in
    it) when the block ends without an exception; on an exception it is removed."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = _temporary_name(out, ".tmp")
        try:
            os.mkdir(tmp, 0o777)
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        _ordinary_permissions(tmp, stat.S_IMODE(tmp.stat().st_mode))
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
