"""A small pool of warm symbolic workers with a deadline on every call.

math-verify bounds its work with ``signal.alarm``, which works only on a process's main thread,
and sympy can spend minutes inside one C call (``10^{10^{10}}``). So the symbolic checks run in
separate worker processes (`_worker.py`), started with ``subprocess`` (fork+exec: safe from a
threaded caller, allowed inside daemonic multiprocessing workers, and never re-importing the
caller's ``__main__``). Each call borrows an idle worker, sends one request and waits for the
reply until its deadline; a worker that overruns is killed and replaced at once, so the next
call finds a fresh one already importing.

Thread-safe; each process (including a forked child) gets its own pool. Workers die with their
pipes when the owning process exits.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time

from rstar_pl.errors import UserError

__all__ = ["WorkerPool", "get_pool", "default_workers"]

logger = logging.getLogger(__name__)

_WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")
_MARGIN = 0.05  # seconds the worker stops before the caller's deadline, to reply in time
# The workers' one-time start (importing sympy and math-verify) is waited for outside a
# check's deadline, up to this long: otherwise the first symbolic checks of a run on a busy
# machine would come back undecided (judged wrong) only because the workers were starting.
_STARTUP_SECONDS = 60.0
_MAX_REQUESTS = 5000  # requests one worker serves before it is replaced (sympy caches grow)
_MAX_START_FAILURES = 3


def default_workers() -> int:
    """``RSTAR_GRADING_WORKERS`` if set, else 2 (one check runs while another worker warms)."""
    env = os.environ.get("RSTAR_GRADING_WORKERS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise UserError(
                f"RSTAR_GRADING_WORKERS={env!r} is not a whole number; set it to the number of "
                "symbolic grading worker processes (1 or more)"
            ) from None
    return 2


class _Worker:
    def __init__(self, on_ready, on_exit) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-u", _WORKER_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,  # a Ctrl-C in the terminal goes to the caller only
        )
        self.replies: queue.Queue[dict | None] = queue.Queue()
        self.ready = False
        self.error: str | None = None
        self.served = 0
        self._on_ready = on_ready
        self._on_exit = on_exit
        threading.Thread(target=self._read, name="grading-worker-reader", daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("ready"):
                self.ready = True
                self._on_ready(self)
            elif "error" in message:
                self.error = message["error"]
            else:
                self.replies.put(message)
        self.proc.stdout.close()
        self.replies.put(None)  # end of file: the worker exited
        try:
            self.proc.wait(timeout=5.0)  # reap it here, off the caller's thread
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._on_exit(self)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, request: dict) -> bool:
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def kill(self) -> None:
        """SIGKILL; the reader thread reaps the process when its output ends."""
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.stdin.close()
        except OSError:
            pass


class WorkerPool:
    """Up to ``max_workers`` symbolic workers, started on first use."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or default_workers()
        self._cond = threading.Condition()
        self._workers: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._ids = itertools.count()
        self._start_failures = 0
        self.disabled_reason: str | None = None
        self.started = False
        self.requests = 0  # batches sent to workers (benchmarks report it)
        self.pid = os.getpid()
        self._warned_cold = False
        self._ever_ready = False

    # -- bookkeeping (callers hold self._cond) --
    def _spawn(self) -> None:
        try:
            self._workers.append(_Worker(self._worker_ready, self._worker_exited))
        except OSError as e:
            self._disable(f"cannot start a grading worker: {e}")

    def _disable(self, reason: str) -> None:
        if self.disabled_reason is None:
            logger.warning("symbolic grading disabled, answers compared as text only: %s", reason)
        self.disabled_reason = reason
        self._cond.notify_all()

    def _worker_ready(self, worker: _Worker) -> None:
        with self._cond:
            self._ever_ready = True
            if worker in self._workers and worker not in self._idle:
                self._idle.append(worker)
            self._cond.notify_all()

    def _worker_exited(self, worker: _Worker) -> None:
        with self._cond:
            if worker in self._idle:
                self._idle.remove(worker)
            if worker in self._workers and not worker.ready:  # died while starting
                self._workers.remove(worker)
                self._start_failures += 1
                if worker.error or self._start_failures >= _MAX_START_FAILURES:
                    self._disable(worker.error or "grading workers exit while starting")
            elif worker in self._workers and worker not in self._busy:
                self._workers.remove(worker)  # died while idle; the next call starts another
            self._cond.notify_all()

    def _retire(self, worker: _Worker, replace: bool) -> None:
        worker.kill()
        with self._cond:
            if worker in self._workers:
                self._workers.remove(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            self._busy.discard(worker)
            if replace and self.disabled_reason is None:
                self._spawn()
            self._cond.notify_all()

    # -- public --
    def warm(self, deadline: float | None = None) -> bool:
        """Start every worker and wait (until ``deadline``, a `time.monotonic` value) until all
        are ready. Returns whether they are."""
        with self._cond:
            while len(self._workers) < self.max_workers and self.disabled_reason is None:
                self._spawn()
            while self.disabled_reason is None and len(self._idle) < len(self._workers):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return self.disabled_reason is None

    def start(self) -> None:
        """Start the workers in the background (returns at once); the first symbolic check then
        finds them warm, or nearly so."""
        with self._cond:
            self.started = True
            while len(self._workers) < self.max_workers and self.disabled_reason is None:
                self._spawn()

    def _acquire(self, deadline: float) -> _Worker | None:
        with self._cond:
            while self.disabled_reason is None:
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        self._busy.add(worker)
                        return worker
                    self._workers.remove(worker)
                if len(self._workers) < self.max_workers:
                    self._spawn()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return None

    def judge(self, pairs: list[tuple[str, str]], deadline: float) -> list[bool | None]:
        """math-verify's verdict (with decimal approximations) on each ``(gold, pred)`` pair;
        None for each pair not decided by ``deadline`` (a `time.monotonic` value)."""
        undecided: list[bool | None] = [None] * len(pairs)
        if not pairs:
            return []
        if not self._ever_ready:
            budget = deadline - time.monotonic()
            self.warm(time.monotonic() + _STARTUP_SECONDS)
            deadline = time.monotonic() + budget
        worker = self._acquire(deadline)
        if worker is None:
            self._warn_if_cold()
            return undecided
        request_id = next(self._ids)
        self.requests += 1
        budget = deadline - time.monotonic() - _MARGIN
        if budget <= 0 or not worker.send({"id": request_id, "budget": budget, "pairs": pairs}):
            self._release(worker, ok=budget <= 0)
            return undecided
        while True:
            try:
                reply = worker.replies.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                reply = None
            if reply is None:  # overran its deadline or died: replace it
                self._retire(worker, replace=True)
                return undecided
            if reply.get("id") == request_id:
                break
        self._release(worker, ok=True)
        results = reply.get("results", [])
        return [r if isinstance(r, bool) else None for r in results] + undecided[len(results) :]

    def _warn_if_cold(self) -> None:
        with self._cond:
            cold = not self._idle and not self._busy and self.disabled_reason is None
            if not cold or self._warned_cold:
                return
            self._warned_cold = True
        logger.warning(
            "a symbolic answer check ran out of time while the grading workers were still "
            "starting; call rstar_pl.grading.warm_up() at start-up to avoid this"
        )

    def _release(self, worker: _Worker, ok: bool) -> None:
        worker.served += 1
        if not ok or worker.served >= _MAX_REQUESTS or not worker.alive():
            self._retire(worker, replace=True)
            return
        with self._cond:
            self._busy.discard(worker)
            self._idle.append(worker)
            self._cond.notify_all()

    def close(self) -> None:
        """Stop every worker (they also stop by themselves when this process exits)."""
        with self._cond:
            workers, self._workers, self._idle = list(self._workers), [], []
            self._busy.clear()
        for worker in workers:
            worker.kill()


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()
_inherited_pools: list[WorkerPool] = []  # a forked child's copies of its parent's pools


def get_pool() -> WorkerPool:
    """This process's pool (a forked child builds its own instead of sharing its parent's)."""
    global _pool
    pool = _pool
    if pool is not None and pool.pid == os.getpid():
        return pool
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():
            _pool = WorkerPool()
        return _pool


def _after_fork_in_child() -> None:
    # The parent's workers, pipes and locks are not ours: drop our copies of its pipes (so that
    # its workers still see end-of-file when it exits) and start afresh on first use.
    # The file objects are kept referenced and never closed: their buffer locks may have been
    # held by a reader thread at the fork, and closing them on collection would close these fd
    # numbers a second time.
    global _pool, _pool_lock
    inherited, _pool, _pool_lock = _pool, None, threading.Lock()
    if inherited is not None:
        _inherited_pools.append(inherited)
        for worker in inherited._workers:
            for stream in (worker.proc.stdin, worker.proc.stdout):
                try:
                    os.close(stream.fileno())
                except (OSError, ValueError):
                    pass


def _close_at_exit() -> None:
    if _pool is not None and _pool.pid == os.getpid():
        _pool.close()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_at_exit)
