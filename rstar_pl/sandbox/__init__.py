"""Run model-written Python code fast, from a fresh warm state, inside limits.

    from rstar_pl.sandbox import Sandbox

    with Sandbox(timeout=5) as box:
        box.run("print(1 + 1)")                 # ExecResult(stdout='2\\n', error=None, ...)
        box.run_many([prefix + s for s in steps])   # results in input order, on all cores

How it works. Each ``Sandbox`` starts one *zygote*: a separate Python process
(``python _zygote.py``, never a fork of the caller, which may be a
multithreaded torch/vLLM process) that imports math, numpy, sympy and scipy
once and warms sympy up. Every run is a child ``fork()``-ed from that warm
state, confined, handed its code through a pipe and thrown away afterwards, so
a run pays neither the imports nor anything a previous run did. Children are
forked (by a copy of the zygote that does only that, so that forking never
delays a result; the warm memory is backed by huge pages where the kernel
can, which makes forks and exits cheaper) and confined ahead of time
("spares"), so a run mostly waits for its own code. The zygote enforces the
wall-clock limit and the output cap and reports each result; if it or its
forker dies, the next call starts a new one.

A run is like ``python -c CODE`` started in a folder of its own: ``stdout`` is
what it printed, ``stderr`` what went to standard error (warnings), ``error``
is ``None`` or one line, either ``Type: message`` of the exception that ended
it (``SyntaxError: invalid syntax (line 3)``; ``SystemExit`` with status 0 is
a normal end), or why it was stopped (``Timeout: ...``, ``OutputLimit: ...``,
``CPULimit: ...``, ``Killed: the run was killed by SIGSEGV``, ``Exit: ...``
after ``os._exit(n)``, ``SandboxError: ...``). Identical programs within one
``run_many`` call run once and share the result.

Sibling steps that share a long prefix are each run whole. Forking them from a
child that already ran the prefix would mean allowing ``fork`` to a process
that has run model code (which could then fork too), and the snapshot's
threads, open files, folder and clock would be lost or shared between the
siblings, so the result could differ from running the program whole.

What model code meets (Linux; ``Sandbox.protections`` lists the layers this
machine applies, and a warning names any that are missing):

- infinite loops, also with signals ignored: SIGKILL at the wall-clock
  timeout; CPU time is also limited (RLIMIT_CPU).
- memory bombs: RLIMIT_AS of the warm state plus ``memory_mb`` -> MemoryError
  (or a kill, reported).
- fork bombs, ``subprocess``, ``os.system``, ``multiprocessing``, ``fork``
  through ctypes: seccomp refuses new processes and ``execve`` (threads work).
- deep recursion: a recursion limit; a C-stack overflow is a SIGSEGV of the
  child alone.
- huge output: the run is killed as soon as stdout or stderr passes
  ``output_bytes``; ``stdout`` keeps the first ``output_bytes``.
- ``sys.exit``, ``os._exit``, killing the zygote or the caller: an error
  result; signals to any other process are refused (seccomp; Landlock scopes
  and a different user id where available).
- segfaults (ctypes), aborts: the child dies alone; ``Killed: ...``.
- threads that never end: the process ends when the program does.
- reading stdin: it is ``/dev/null`` (EOF at once).
- writing files: only in the run's own folder (its working directory and
  ``tempfile``'s default) and to ``/dev/null`` (Landlock), each file at most
  ``file_mb``; the folder is deleted after the run. As root, all run folders
  are on a private tmpfs of ``scratch_mb``.
- reading files: only below the Python installation, the folders on the
  caller's ``sys.path``, the folders of the loaded shared libraries, ``/usr``,
  ``/lib*`` and a few files of ``/etc`` (Landlock); not ``/root``, ``/home``,
  ``/tmp``, other runs' folders.
- privileges: a root caller's runs become user 65534 with no capability but
  ``CAP_DAC_READ_SEARCH`` (the installation may live under ``/root``; Landlock
  decides what is read), no new privileges, no ``setuid`` programs.
- network: every ``socket()`` is refused (seccomp), so no TCP/UDP connection
  and no connection to a Unix socket either.
- the caller's environment: the zygote starts with an environment of its own
  (thread counts, a hash seed), runs see an empty ``os.environ``, and
  ``/proc/<pid>`` of other processes is out of reach.
- changes to modules, builtins, ``sys`` or files: they die with the child; the
  next run forks from the untouched zygote. System V IPC and POSIX message
  queues, which would outlive a run, are refused.

What it does not protect against:

- reading inside the readable folders above: e.g. a file in a project
  folder that is on ``sys.path``; model code could print it into its output.
- a kernel bug reachable through the system calls that stay allowed: this is
  process isolation, not a virtual machine.
- the host's CPU and memory bandwidth: ``max_workers`` runs go at once, each
  up to ``memory_mb``.
- determinism of time: runs that read clocks or ``id()`` may differ. (Runs
  are otherwise repeatable: ``random`` and ``numpy.random``'s global generator
  start from seed 0 in every run, and string hashing uses a fixed seed.)
- without root: runs keep the caller's user id, and the scratch folders are
  on the disk (each file still capped by ``file_mb``, their total is not).
- machines without Landlock (Linux < 5.13, or disabled) or without seccomp
  filters lose the file or process/network layer (a root caller's runs then
  keep a plain unprivileged user id, which cannot read an installation under
  ``/root``); non-Linux systems are not supported.
"""

from __future__ import annotations

import os
import sys
import warnings
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rstar_pl.errors import UserError

from ._client import Resources, Worker, WorkerDied
from ._wire import frame

__all__ = ["DEFAULT_PREIMPORT", "ExecResult", "Sandbox", "SandboxError"]

DEFAULT_PREIMPORT: tuple[str, ...] = ("math", "numpy", "sympy", "scipy")

# Exercised once in the zygote so that the lazy imports and caches of a first
# solve/simplify/print are paid there, not in every run. One entry per module.
_WARMUP = {
    "sympy": """
import sympy as sp
x, y = sp.symbols("x y")
n = sp.symbols("n", integer=True)
sp.solve(x**2 - 5*x + 3, x); sp.solve([x + y - 3, x - y - 1], [x, y]); sp.solveset(x**2 - 4, x)
sp.simplify(sp.sin(x)**2 + sp.cos(x)**2); sp.factor(x**3 - 1); sp.expand((x + 1)**5)
sp.integrate(x**2, (x, 0, 1)); sp.diff(sp.exp(x) * x, x); sp.limit(sp.sin(x) / x, x, 0)
sp.summation(n**2, (n, 1, 10)); sp.series(sp.exp(x), x, 0, 3); sp.Poly(x**2 + 1, x).all_coeffs()
str(sp.Rational(1, 3) + sp.sqrt(2)); sp.latex(x**2 / 2); sp.nsimplify(0.5); sp.N(sp.pi, 10)
sp.Matrix([[1, 2], [3, 4]]).det(); sp.Matrix([[1, 2], [3, 4]]).inv(); sp.gcd(12, 18)
sp.isprime(97); sp.factorint(360); sp.binomial(10, 3); sp.Eq(x, 1); sp.Abs(-x).subs(x, 2)
""",
    "numpy": """
import numpy as np
a = np.array([[2.0, 1.0], [1.0, 3.0]])
np.linalg.solve(a, np.ones(2)); np.linalg.det(a); np.linalg.inv(a); np.linalg.eig(a)
np.roots([1, -3, 2]); np.polyfit([0, 1, 2], [1, 3, 5], 1); np.random.default_rng(0).random(3)
str(np.arange(3) * 1.5); repr(np.linspace(0, 1, 3)); np.array([1, 2]).mean(); np.isclose(1.0, 1.0)
""",
}

_WANTED = ("landlock", "seccomp")  # a warning names any of these the machine lacks


@dataclass(frozen=True)
class ExecResult:
    """The outcome of one run.

    Attributes:
        stdout: what the program printed (at most ``output_bytes``, decoded as UTF-8).
        error: None when the program ended normally, else one line: ``Type: message``
            of the exception that ended it, or why the sandbox stopped it.
        timed_out: True when the wall-clock timeout stopped it.
        seconds: wall-clock time of the run, from handing over the code to its end (or kill).
        stderr: what the program wrote to standard error (warnings), capped like stdout.
    """

    stdout: str
    error: str | None
    timed_out: bool
    seconds: float
    stderr: str = ""

    @property
    def ok(self) -> bool:
        """True when the program ran to its end without an exception or a limit."""
        return self.error is None


class SandboxError(RuntimeError):
    """The sandbox itself could not start or serve (never raised for model code)."""


class Sandbox:
    """Runs Python programs in confined, throwaway processes forked from a warm zygote.

    Args:
        timeout: wall-clock seconds per run; past it the run is killed (SIGKILL).
        memory_mb: address space a run may add to the warm state (RLIMIT_AS).
        cpu_seconds: CPU seconds per run (RLIMIT_CPU, counted from the program's start,
            rounded up to whole seconds); default: ``timeout``.
        output_bytes: cap on stdout and on stderr; a run that writes more is killed.
        preimport: modules imported once in the zygote (each run finds them in
            ``sys.modules``; a run's own ``import`` of them is free). scipy loads its
            submodules lazily: add e.g. ``"scipy.optimize"`` if runs use it (else each
            run imports it, about a second).
        max_workers: runs at once; default: the CPUs this process may use.
        file_mb: largest file a run may write (RLIMIT_FSIZE).
        recursion_limit: ``sys.setrecursionlimit`` in each run.
        warmup: exercise sympy/numpy once in the zygote so runs skip first-call costs.
        scratch_mb: size of the tmpfs that holds all run folders (root only).
        startup_timeout: seconds to wait for the zygote to import and warm up.

    Thread-safe: calls from several threads are served one after the other.
    Linux only. The zygote starts at construction, in the background; the
    first call waits for it (1-3 s with the default modules).
    """

    def __init__(
        self,
        timeout: float = 5.0,
        memory_mb: int = 1024,
        cpu_seconds: float | None = None,
        output_bytes: int = 65536,
        preimport: Sequence[str] = DEFAULT_PREIMPORT,
        max_workers: int | None = None,
        file_mb: int = 16,
        recursion_limit: int = 3000,
        warmup: bool = True,
        scratch_mb: int = 256,
        startup_timeout: float = 120.0,
    ):
        if not sys.platform.startswith("linux"):
            raise SandboxError(
                f"Sandbox needs Linux (fork, seccomp, Landlock); this is {sys.platform}"
            )
        if max_workers is None:
            max_workers = len(os.sched_getaffinity(0))
        for name, value in [
            ("timeout", timeout),
            ("memory_mb", memory_mb),
            ("output_bytes", output_bytes),
            ("max_workers", max_workers),
            ("file_mb", file_mb),
            ("recursion_limit", recursion_limit),
            ("scratch_mb", scratch_mb),
            ("startup_timeout", startup_timeout),
            ("cpu_seconds", timeout if cpu_seconds is None else cpu_seconds),
        ]:
            if not value > 0:
                raise UserError(f"Sandbox({name}={value!r}): must be a positive number")
        if isinstance(preimport, str):
            raise TypeError(
                f"Sandbox(preimport={preimport!r}): give a list of module names, "
                f"e.g. [{preimport!r}]"
            )
        self.timeout = float(timeout)
        self.max_workers = int(max_workers)
        self.startup_timeout = float(startup_timeout)
        preimport = list(preimport)
        warmup_code = "".join(_WARMUP[m] for m in _WARMUP if m in preimport) if warmup else ""
        cfg = dict(
            timeout=self.timeout,
            memory_mb=int(memory_mb),
            cpu_seconds=float(timeout if cpu_seconds is None else cpu_seconds),
            output_bytes=int(output_bytes),
            max_workers=self.max_workers,
            file_mb=int(file_mb),
            recursion_limit=int(recursion_limit),
            preimport=preimport,
            warmup=warmup_code,
            scratch_mb=int(scratch_mb),
            base_dir=None,
            sys_path=[os.path.abspath(p or os.curdir) for p in sys.path],
        )
        self._res = Resources(cfg)
        self._finalizer = weakref.finalize(self, self._res.close)
        self._next_id = 0
        self._res.start_worker()

    # ----------------------------------------------------------------- public

    def run(self, code: str) -> ExecResult:
        """Run one program; see the module docstring for what the result holds."""
        return self.run_many([code])[0]

    def run_many(self, codes: Iterable[str]) -> list[ExecResult]:
        """Run programs, up to ``max_workers`` at once; results in input order."""
        codes = list(codes)
        for i, code in enumerate(codes):
            if not isinstance(code, str):
                raise TypeError(
                    f"run_many: codes[{i}] is a {type(code).__name__}; expected str (Python source)"
                )
        if not self._finalizer.alive:
            raise SandboxError("this Sandbox is closed; create a new one")
        if not codes:
            return []
        unique = list(dict.fromkeys(codes))
        with self._res.lock:
            by_code = self._run_unique(unique)
        return [by_code[code] for code in codes]

    @property
    def protections(self) -> tuple[str, ...]:
        """The confinement layers applied to every run on this machine."""
        with self._res.lock:
            return tuple(self._ready_worker().info["protections"])

    def close(self) -> None:
        """Stop the zygote and every run; idempotent."""
        with self._res.lock:
            self._finalizer()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._finalizer.alive else "closed"
        return f"Sandbox(timeout={self.timeout:g}, max_workers={self.max_workers}, {state})"

    # --------------------------------------------------------------- internal

    def _ready_worker(self) -> Worker:
        if not self._finalizer.alive:
            raise SandboxError("this Sandbox is closed; create a new one")
        res = self._res
        worker = res.worker
        if worker is None or worker.proc.poll() is not None:
            res.stop_worker()
            worker = res.start_worker()
        if worker.info is not None:
            return worker

        def on_ready(message) -> bool:
            if message[0] == "fatal":
                hint = ""
                if message[1].startswith(("ModuleNotFoundError", "ImportError")):
                    hint = (
                        f"; every module of preimport={res.cfg['preimport']} must import "
                        f"in {sys.executable}"
                    )
                raise SandboxError(f"the sandbox's zygote could not start: {message[1]}{hint}")
            worker.info = message[1]
            return True

        try:
            worker.converse(b"", on_ready, self.startup_timeout)
        except (WorkerDied, SandboxError) as exc:
            res.stop_worker()
            if isinstance(exc, SandboxError):
                raise
            raise SandboxError(f"the sandbox's zygote did not start: {exc}") from None
        missing = [layer for layer in _WANTED if layer not in worker.info["protections"]]
        if missing:
            warnings.warn(
                f"this machine does not support {', '.join(missing)}: sandboxed runs "
                "are less confined (see rstar_pl.sandbox's docstring)",
                RuntimeWarning,
                stacklevel=3,
            )
        return worker

    def _run_unique(self, unique: list[str]) -> dict[str, ExecResult]:
        jobs = {}
        for code in unique:
            jobs[self._next_id] = code
            self._next_id += 1
        fields: dict[int, dict] = {}
        # A zygote that dies (it never runs model code, so this is rare) is
        # replaced and the unfinished runs are sent again, once.
        for attempt in range(2):
            todo = [job for job in jobs if job not in fields]
            waiting = set(todo)
            worker = self._ready_worker()

            def on_result(message, waiting=waiting) -> bool:
                if message[0] == "result":
                    fields[message[1]] = message[2]
                    waiting.discard(message[1])
                return not waiting

            request = b"".join(frame(("run", job, jobs[job])) for job in todo)
            try:
                worker.converse(request, on_result, self.timeout + 60.0)
                break
            except WorkerDied as exc:
                self._res.stop_worker()
                if attempt == 1:
                    for job in jobs:
                        fields.setdefault(
                            job,
                            dict(
                                stdout=b"",
                                stderr=b"",
                                timed_out=False,
                                seconds=0.0,
                                error=f"SandboxError: the sandbox's zygote died ({exc})",
                            ),
                        )
        return {
            code: ExecResult(
                stdout=f["stdout"].decode("utf-8", "replace"),
                error=f["error"],
                timed_out=f["timed_out"],
                seconds=f["seconds"],
                stderr=f["stderr"].decode("utf-8", "replace"),
            )
            for job, code in jobs.items()
            for f in (fields[job],)
        }
