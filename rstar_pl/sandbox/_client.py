"""The caller's side of a zygote: starting it, talking to it, stopping it.

A ``Worker`` is one zygote process and the socket to it; ``Resources`` is
what a ``Sandbox`` owns (kept apart from the Sandbox object so that a
finalizer can free it, and so that a forked copy of the caller can let go of
the parent's zygote and start its own).
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

from ._wire import frame, unframe

# The zygote's whole environment: one thread per BLAS (runs are spread over
# processes already, and forking needs a single-threaded parent), few malloc
# arenas (so threads do not eat the address-space limit), and a fixed hash
# seed (so that printing a set of strings gives the same text in every run).
_ZYGOTE_ENV = {
    "PYTHONHASHSEED": "0",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
}
_ZYGOTE = Path(__file__).with_name("_zygote.py")


class WorkerDied(Exception):
    pass


class Worker:
    """The caller's handle on one zygote process."""

    def __init__(self, cfg: dict):
        ours, theirs = socket.socketpair()
        env = dict(_ZYGOTE_ENV)
        if "LD_LIBRARY_PATH" in os.environ:  # some Python builds need it to start at all
            env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
        # -s: no user site (the caller's sys.path is passed in the configuration).
        argv = [sys.executable, "-s", "-X", "utf8", str(_ZYGOTE), str(theirs.fileno())]
        try:
            self.proc = subprocess.Popen(
                argv,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        finally:
            theirs.close()
        self.sock = ours
        self.sock.sendall(frame(cfg))
        self.sock.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.inbuf = bytearray()
        self.info: dict | None = None

    def converse(self, out: bytes, handle, idle_limit: float) -> None:
        """Send ``out``; pass each message received to ``handle`` until it returns True.

        Raises WorkerDied when the zygote goes away or says nothing for ``idle_limit`` s.
        """
        view, sent, last = memoryview(out), 0, time.monotonic()
        while True:
            want = selectors.EVENT_READ | (selectors.EVENT_WRITE if sent < len(view) else 0)
            self.sel.modify(self.sock, want)
            ready = self.sel.select(max(0.0, last + idle_limit - time.monotonic()))
            if not ready and time.monotonic() - last >= idle_limit:
                raise WorkerDied(f"it gave no answer for {idle_limit:g} s")
            for _, mask in ready:
                try:
                    if mask & selectors.EVENT_WRITE:
                        sent += self.sock.send(view[sent : sent + (1 << 20)])
                    if not mask & selectors.EVENT_READ:
                        continue
                    data = self.sock.recv(1 << 20)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:  # broken pipe, connection reset
                    raise WorkerDied(self._exit_reason(exc)) from None
                if not data:
                    raise WorkerDied(self._exit_reason(None))
                last = time.monotonic()
                self.inbuf += data
                done = False
                for message in unframe(self.inbuf):
                    done = handle(message) or done
                if done:
                    return

    def _exit_reason(self, exc: OSError | None) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return f"its connection failed ({exc})"
        return f"it exited with status {code}"

    def stop(self) -> None:
        """Close the connection (the zygote then kills its children and exits) and reap it."""
        self.sel.close()
        self.sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Resources:
    """What a Sandbox owns, apart from the Sandbox object so that a finalizer can free it."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.worker: Worker | None = None
        self.lock = threading.Lock()
        self.owner = os.getpid()
        _LIVE.add(self)

    def start_worker(self) -> Worker:
        if self.cfg["base_dir"] is None:
            self.cfg["base_dir"] = tempfile.mkdtemp(prefix="rstar-sandbox-")
        self.worker = Worker(self.cfg)
        return self.worker

    def stop_worker(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.stop()

    def close(self) -> None:
        if os.getpid() != self.owner:  # a forked copy of the caller owns nothing
            return
        self.stop_worker()
        if self.cfg["base_dir"] is not None:
            shutil.rmtree(self.cfg["base_dir"], ignore_errors=True)

    def forget(self) -> None:
        """In a child forked from the caller: leave the parent's zygote alone, start anew."""
        if self.worker is not None:
            self.worker.sel.close()
            self.worker.sock.close()
        self.worker = None
        self.lock = threading.Lock()
        self.owner = os.getpid()
        self.cfg["base_dir"] = None


_LIVE: weakref.WeakSet[Resources] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for resources in list(_LIVE):
        resources.forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
