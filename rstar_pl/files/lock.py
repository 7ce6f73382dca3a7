"""One writer per output: a lock a second run meets, and names, before it writes.

Two runs writing the same output folder duplicate work and corrupt results (two
`generate` runs on one `out_dir` write every tree twice). `exclusive_output`
holds an exclusive `flock` on a small file `FOLDER/.NAME.lock` for as long as a
run writes, and writes who holds it there (pid, host, command, start time). A
second run finds the lock taken and is refused with one line that names the
running process; it never waits.

The kernel drops a `flock` when the last process holding the open file goes
away, however it ends (`kill -9` included), so a crashed run never leaves a
stale lock. A child started with the lock's file descriptor (`pass_fds`) holds
the same lock: a round's training stage keeps its folder locked even if the
process that started it has died. The lock file itself stays (removing it
would race with a run that is just opening it).

`flock` works between processes of one machine (and on most network file
systems only per client); runs on different machines should write different
folders, which is what `generate --shard` does.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import shlex
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["OutputInUseError", "OutputLock", "check_free", "exclusive_output", "is_locked"]


class OutputInUseError(OSError):
    """Another live process is writing the output this run would write."""


def _describe(info: dict) -> str:
    if not info:
        return "another process (it has not said which yet)"
    text = f"pid {info.get('pid')}"
    if info.get("host") and info["host"] != socket.gethostname():
        text += f" on {info['host']}"
    if info.get("child"):
        text += f", {info['child']}"
    if info.get("since"):
        text += f", since {info['since']}"
    return f"{text}: {info.get('command', '?')}"


def _read_info(fd: int) -> dict:
    try:
        data = os.pread(fd, 65536, 0)
        info = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


class OutputLock:
    """A held lock; `fd` can be passed to child processes that keep writing."""

    def __init__(self, path: Path, fd: int, info: dict) -> None:
        self.path = path
        self.fd = fd
        self.info = info

    def note(self, child: str | None) -> None:
        """Record (or clear) a child process that writes on this run's behalf."""
        info = {**self.info, "child": child} if child else dict(self.info)
        data = json.dumps(info).encode("utf-8")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)


def is_locked(path: str | os.PathLike) -> str | None:
    """A description of the process holding the lock file `path`, or None if nobody does."""
    path = Path(path)
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(_read_info(fd))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _in_use(folder: str | os.PathLike, what: str, holder: str) -> OutputInUseError:
    return OutputInUseError(
        f"{what} {folder} is being written by another run ({holder}); wait "
        f"for it to finish or choose another {what}"
    )


def check_free(folder: str | os.PathLike, name: str, *, what: str) -> None:
    """Raise the `OutputInUseError` that `exclusive_output` would raise, without taking the
    lock or creating anything (to refuse before expensive work, such as loading a model)."""
    holder = is_locked(Path(folder) / f".{name}.lock")
    if holder is not None:
        raise _in_use(folder, what, holder)


@contextmanager
def exclusive_output(
    folder: str | os.PathLike, name: str, *, what: str, command: str | None = None
) -> Iterator[OutputLock]:
    """Hold `folder/.{name}.lock` for the block.

    Args:
        folder: the output folder (created if missing).
        name: which lock of the folder (e.g. one per shard).
        what: how the user names this output in the refusal, e.g. "out_dir".
        command: what to record as the holder's command; default: this process's argv.
    Raises:
        OutputInUseError: a live process holds the lock.
    """
    path = Path(folder) / f".{name}.lock"
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _describe(_read_info(fd))
        os.close(fd)
        raise _in_use(folder, what, holder) from None
    except BaseException:
        os.close(fd)
        raise
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "since": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    lock = OutputLock(path, fd, info)
    try:
        lock.note(None)
        yield lock
    finally:
        os.close(fd)
