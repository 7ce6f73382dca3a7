"""The zygote: one warm process per Sandbox that forks one confined child per run.

Started by ``Sandbox`` as ``python -s -X utf8 _zygote.py CTL_FD`` with an
environment of its own (by file path, never through the ``rstar_pl`` package,
so nothing but the standard library and the pre-imported modules is loaded). It

1. on root, moves into a private mount namespace and mounts a size-limited
   tmpfs over the scratch folder (all run folders live there and vanish with
   the zygote);
2. imports the modules to pre-import and runs a warm-up program, then freezes
   the garbage collector so that forked children share those pages;
3. forks one probe child to learn which confinement layers this machine offers
   (``_confine.confine``); later children must apply all of them or fail;
4. backs its heap with huge pages where the kernel can (cheaper forks and
   exits, same memory for the runs) and forks the *forker*: a copy of itself
   that does nothing but fork the runs' processes, so that the milliseconds a
   fork of a large process takes never hold up the zygote. The forker passes
   each new child's pipes and pidfd to the zygote (SCM_RIGHTS), reaps its
   children and reports how they ended; it dies with the zygote, and the runs
   with it (a parent-death signal), and never runs model code either. What is
   the same in every run's fresh state (an empty environment, ``sys.argv``,
   numpy's seeded generator) it sets once, and it forks with libc's fork()
   alone where that is the same as ``os.fork()`` (see ``_forker``);
5. serves requests from the caller over the control socket: each run gets a
   child that was forked and confined ahead of time (a "spare"), is sent its
   code through a pipe, and is watched for its wall-clock deadline, its output
   size (killed past the cap) and its end. The zygote is single threaded (one
   ``selectors`` loop) and never runs model code itself.

Messages on the control socket (framed by ``_wire``): from the caller the
configuration (a dict) first, then ``("run", job_id, code)``; to the caller
``("ready", info)``, ``("fatal", message)``, ``("result", job_id, fields)``. Children talk to the zygote through
pipes only, in plain bytes the zygote parses without unpickling. The forker
gets a run folder's path per spare and answers ``PID RUN_DIR`` with the fds,
or ``PID WAIT_STATUS CPU_SECONDS`` when a child has ended.
"""

from __future__ import annotations

import array
import fcntl
import gc
import importlib
import importlib.util
import io
import json
import os
import random
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
from collections import deque

_HERE = os.path.dirname(os.path.abspath(__file__))
_MAX_ERROR_CHARS = 2000
_STATUS_CAP = 4 * _MAX_ERROR_CHARS + 64  # the longest status a run writes, in UTF-8
_READ_CHUNK = 65536


def _load(name: str):
    """A sibling module, by file path (this script is not run as part of the package)."""
    spec = importlib.util.spec_from_file_location(
        f"_rstar_sandbox{name}", os.path.join(_HERE, f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


confine = _load("_confine")
forks = _load("_forker")
wire = _load("_wire")


def _describe(exc: BaseException) -> str:
    """``Type: message`` for an exception raised by model code (never raises)."""
    name = type(exc).__name__
    try:
        if isinstance(exc, SyntaxError):
            message = f"{exc.msg} (line {exc.lineno})" if exc.lineno else str(exc.msg)
        else:
            message = str(exc)
    except BaseException:  # a hostile __str__ must not break the report
        message = ""
    text = f"{name}: {message}" if message else name
    return text[:_MAX_ERROR_CHARS]


def _remove_tree(path: str) -> None:
    """Delete a run's folder. A run can nest folders deeper than shutil.rmtree recurses."""
    try:
        shutil.rmtree(path, ignore_errors=True)
    except RecursionError:
        subprocess.run(["rm", "-rf", "--", path], stdin=subprocess.DEVNULL, check=False)


class _Child:
    """One forked process: a spare until it is given a job."""

    __slots__ = (
        "pid",
        "pidfd",
        "run_dir",
        "out",
        "err",
        "status",
        "fds",
        "code_fd",
        "pending_code",
        "job",
        "started",
        "deadline",
        "stop",
        "reported",
    )

    def __init__(self, pid, pidfd, run_dir, fds, code_fd):
        self.pid, self.pidfd, self.run_dir, self.fds, self.code_fd = (
            pid,
            pidfd,
            run_dir,
            fds,
            code_fd,
        )
        self.out, self.err, self.status = bytearray(), bytearray(), bytearray()
        self.pending_code = b""
        self.job = None  # the caller's job id; -1 for the probe
        self.started = self.deadline = 0.0
        self.stop = None  # "timeout" or "output" once the zygote killed it for that
        self.reported = False


class Zygote:
    def __init__(self, cfg: dict, ctl: socket.socket):
        self.cfg = cfg
        self.ctl = ctl
        self.sel = selectors.DefaultSelector()
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.queue: deque = deque()
        self.children: dict[int, _Child] = {}  # every child not yet reaped
        self.spares: deque[_Child] = deque()
        self.running: dict[int, _Child] = {}  # given a job, result not yet reported
        self.required: frozenset[str] = frozenset()
        self.pid = os.getpid()
        self.probe_status = b""
        self.keep_spares = True
        self.forker: socket.socket | None = None  # the socket to the forker
        self.forker_pid = 0
        self.forking = 0  # spares asked of the forker, not yet received
        self.read_roots = confine.readable_roots(sys.path)

    # ------------------------------------------------------- in the child

    def _child_main(self, out_w, err_w, st_w, code_r, run_dir, probe) -> None:
        """In the forked child: plumb, confine, wait for code, run it, report. Never returns.

        The last thing a run writes is its status on fd 3, ``kind\\nmessage\\0``
        (kind: ok, error, setup, probe). A probe child applies what it can and
        reports the layers instead of running code.
        """
        _exit, _write = os._exit, os.write
        try:
            os.setsid()
            devnull = os.open("/dev/null", os.O_RDWR)
            # Move the sources out of the way first so that no dup2 overwrites one still needed.
            sources = [
                fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (devnull, out_w, err_w, st_w, code_r)
            ]
            for dst, src in enumerate(sources):
                os.dup2(src, dst)
            os.closerange(5, 1 << 20)
            os.mkdir(run_dir, 0o700)
            cfg = self.cfg
            layers = confine.confine(
                run_dir,
                memory_mb=cfg["memory_mb"],
                cpu_seconds=cfg["cpu_seconds"],
                file_mb=cfg["file_mb"],
                read_roots=self.read_roots,
                zygote_pid=self.pid,
                required=self.required,
            )
            if probe:
                _write(3, ("probe\n" + json.dumps(layers) + "\0").encode())
                _exit(0)
            main = types.ModuleType("__main__")
            main.__builtins__ = __builtins__
            sys.modules["__main__"] = main
            # The environment, sys.argv and numpy's generator were set once in the forker.
            sys.path.insert(0, "")  # the working directory, as for `python -c`
            signal.signal(signal.SIGINT, signal.default_int_handler)  # the zygote ignores it
            sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), "utf-8")
            sys.stdout = sys.__stdout__ = io.TextIOWrapper(
                io.FileIO(1, "w", closefd=False), "utf-8", "backslashreplace", line_buffering=True
            )
            sys.stderr = sys.__stderr__ = io.TextIOWrapper(
                io.FileIO(2, "w", closefd=False), "utf-8", "backslashreplace", line_buffering=True
            )
            streams = (sys.stdout, sys.stderr)
            if "tempfile" in sys.modules:
                sys.modules["tempfile"].tempdir = run_dir
            # Repeatable runs: the global generators start from seed 0 in every
            # run (random reseeds itself from the OS in a forked child otherwise).
            random.seed(0)
            sys.setrecursionlimit(cfg["recursion_limit"])
        except BaseException as exc:  # reported to the zygote
            _write(3, f"setup\n{type(exc).__name__}: {exc}"[:_STATUS_CAP].encode() + b"\0")
            _exit(70)
        chunks = []
        while chunk := os.read(4, _READ_CHUNK):
            chunks.append(chunk)
        os.close(4)
        try:
            confine.start_cpu_budget(self.cfg["cpu_seconds"])
        except BaseException as exc:  # reported to the zygote
            _write(3, f"setup\n{type(exc).__name__}: {exc}"[:_STATUS_CAP].encode() + b"\0")
            _exit(70)
        report = b"ok\n"
        try:
            source = b"".join(chunks).decode("utf-8", "surrogatepass")
            code = compile(source, "<string>", "exec", dont_inherit=True)
            exec(code, main.__dict__)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                report = b"error\n" + _describe(exc).encode("utf-8", "backslashreplace")
        except BaseException as exc:  # the program's exception is its result
            report = b"error\n" + _describe(exc).encode("utf-8", "backslashreplace")
        for stream in (sys.stdout, sys.stderr, *streams):  # also ours, if the program swapped them
            try:
                stream.flush()
            except BaseException:  # the program may have closed its streams
                pass
        try:
            _write(3, report + b"\0")
        finally:
            _exit(0)

    # ------------------------------------------------------ in the zygote

    def _spawn(self, run_dir: str, probe: bool = False) -> tuple[int, list[int]]:
        """Fork a child that confines itself; its pid and [out_r, err_r, st_r, code_w, pidfd]."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        st_r, st_w = os.pipe()
        code_r, code_w = os.pipe()
        pid = forks.fork()
        if pid == 0:
            try:
                self._child_main(out_w, err_w, st_w, code_r, run_dir, probe)
            finally:
                os._exit(70)
        for fd in (out_w, err_w, st_w, code_r):
            os.close(fd)
        return pid, [out_r, err_r, st_r, code_w, os.pidfd_open(pid)]

    def _adopt(self, pid: int, fds: list[int], run_dir: str, own: bool) -> _Child:
        """Watch a new child: its pipes, and its exit (a pidfd if ``own``, else the forker says)."""
        out_r, err_r, st_r, code_w, pidfd = fds
        for fd in (out_r, err_r, st_r, code_w):
            os.set_blocking(fd, False)
        child = _Child(pid, pidfd, run_dir, {out_r: "out", err_r: "err", st_r: "status"}, code_w)
        for fd, kind in child.fds.items():
            self.sel.register(fd, selectors.EVENT_READ, (child, kind))
        if own:
            self.sel.register(child.pidfd, selectors.EVENT_READ, (child, "exit"))
        self.children[pid] = child
        return child

    def _request_spare(self) -> None:
        run_dir = os.path.join(self.cfg["base_dir"], secrets.token_hex(8))
        self.forker.send(os.fsencode(run_dir))
        self.forking += 1

    # ------------------------------------------------------------ forker

    def start_forker(self) -> None:
        """Fork the forker (``_forker``): a copy of this warm process that forks the runs."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                self.ctl.close()  # the caller's connection stays the zygote's alone
                self.sel.close()
                confine._prctl(confine._PR_SET_PDEATHSIG, signal.SIGKILL)
                if os.getppid() == self.pid:
                    self.pid = os.getpid()  # the runs' parent, which confine checks
                    forks.serve(theirs, self._spawn, _READ_CHUNK)
            finally:
                os._exit(0)
        theirs.close()
        ours.setblocking(False)
        self.forker, self.forker_pid = ours, pid
        self.sel.register(ours, selectors.EVENT_READ, "forker")

    def _on_forker(self) -> bool:
        """Messages from the forker: a new child, or how one ended. False when it has gone."""
        while True:
            try:
                data, ancillary, _, _ = self.forker.recvmsg(_READ_CHUNK, socket.CMSG_SPACE(5 * 4))
            except BlockingIOError:
                return True
            if not data:
                return False
            fds = array.array("i")
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            pid, _, rest = os.fsdecode(data).partition(" ")
            if len(fds) == 5:  # "PID RUN_DIR": a new spare
                self.forking -= 1
                self.spares.append(self._adopt(int(pid), list(fds), rest, own=False))
            else:  # "PID WAIT_STATUS CPU": it has ended
                for fd in fds:
                    os.close(fd)
                child = self.children.get(int(pid))
                if child is not None:
                    wait_status, cpu = rest.split(" ")
                    self._reap(child, int(wait_status), float(cpu))

    def _kill(self, child: _Child, reason: str | None = None) -> None:
        if child.stop is None and reason is not None:
            child.stop = reason
        try:
            signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _read(self, child: _Child, kind: str, fd: int) -> bool:
        """Read what is there; True when something was read (at end of file, fd is closed)."""
        try:
            data = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            return False
        if not data:
            self.sel.unregister(fd)
            os.close(fd)
            del child.fds[fd]
            return False
        if kind == "status":
            child.status += data[: _STATUS_CAP - len(child.status)]
            # A complete status reports the run at once; anything else (the
            # program may write to fd 3 too) waits for the child's exit status.
            if (
                child.status.endswith(b"\0")
                and child.status.startswith((b"ok\n", b"error\n"))
                and child.job is not None
                and not child.reported
            ):
                self._report(child, None, 0.0)
            return True
        buf = child.out if kind == "out" else child.err
        room = self.cfg["output_bytes"] - len(buf)
        buf += data[:room]
        if len(data) > room and not child.reported:
            self._kill(child, "output")
        return True

    def _drain(self, child: _Child, kinds: tuple[str, ...]) -> None:
        for fd, kind in list(child.fds.items()):
            while kind in kinds and fd in child.fds and self._read(child, kind, fd):
                pass

    def _start_job(self, job_id: int, code: bytes) -> None:
        child = self.spares.popleft()
        child.job = job_id
        child.started = time.monotonic()
        child.deadline = child.started + self.cfg["timeout"]
        self.running[child.pid] = child
        child.pending_code = code
        self._write_code(child)

    def _write_code(self, child: _Child) -> None:
        try:
            while child.pending_code:
                n = os.write(child.code_fd, child.pending_code[: _READ_CHUNK * 4])
                child.pending_code = child.pending_code[n:]
        except BlockingIOError:
            if child.code_fd not in self.sel.get_map():
                self.sel.register(child.code_fd, selectors.EVENT_WRITE, (child, "code"))
            return
        except BrokenPipeError:  # the child died before reading (it reports why)
            child.pending_code = b""
        self._close_code(child)

    def _close_code(self, child: _Child) -> None:
        if child.code_fd >= 0:
            if child.code_fd in self.sel.get_map():
                self.sel.unregister(child.code_fd)
            os.close(child.code_fd)
            child.code_fd = -1

    def _report(self, child: _Child, wait_status: int | None, cpu: float) -> None:
        """Send the result: as soon as the status is complete, or when the child is gone.

        Everything the run printed before its status is in the pipes already; a
        run that reported is killed (threads it left behind stop with it), and
        its exit is only cleaned up, off the caller's critical path.
        """
        self._drain(child, ("out", "err"))
        child.reported = True
        self.running.pop(child.pid, None)
        if wait_status is None:
            self._kill(child)
        if child.job == -1:
            self.probe_status = bytes(child.status)
            return
        fields = dict(
            stdout=bytes(child.out),
            stderr=bytes(child.err),
            seconds=time.monotonic() - child.started,
            timed_out=child.stop == "timeout",
            error=self._error(child, wait_status, cpu),
        )
        self._send(("result", child.job, fields))

    def _error(self, child: _Child, wait_status: int | None, cpu: float) -> str | None:
        cfg = self.cfg
        if child.stop == "timeout":
            return f"Timeout: the run took longer than {cfg['timeout']:g} s (wall clock) and was killed"
        if child.stop == "output":
            return (
                f"OutputLimit: the run wrote more than {cfg['output_bytes']} bytes "
                "to stdout or stderr and was killed"
            )
        status = bytes(child.status).rstrip(b"\0").decode("utf-8", "replace")
        kind, _, message = status.partition("\n")
        if kind == "ok":
            return None
        if kind == "error":
            return message
        if kind == "setup":
            return f"SandboxError: could not confine the run ({message})"
        if os.WIFSIGNALED(wait_status):
            sig = os.WTERMSIG(wait_status)
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= cfg["cpu_seconds"]):
                return f"CPULimit: the run used more than {cfg['cpu_seconds']:g} s of CPU time"
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
            return f"Killed: the run was killed by {name}"
        code = os.waitstatus_to_exitcode(wait_status)
        if code == 0:  # os._exit(0): a normal end for `python -c` too
            return None
        return f"Exit: the program ended the interpreter with status {code} before it finished"

    def _reap(self, child: _Child, wait_status: int, cpu: float) -> None:
        """The child has exited: report it if it had not, free what it held."""
        del self.children[child.pid]
        if child.job is None:  # a spare that died unused (its setup failed):
            if child in self.spares:
                self.spares.remove(child)
            self.keep_spares = False  # fork on demand from now on, not in a loop
            if self.queue:  # a waiting job gets the failure, so failing setups cannot loop
                child.job = self.queue.popleft()[0]
                child.started = time.monotonic()
        if child.job is not None and not child.reported:
            self._drain(child, ("status",))
            if not child.reported:
                self._report(child, wait_status, cpu)
        for fd in child.fds:
            self.sel.unregister(fd)
            os.close(fd)
        child.fds.clear()  # later events of the same select() must not read a closed fd
        if child.pidfd in self.sel.get_map():
            self.sel.unregister(child.pidfd)
        os.close(child.pidfd)
        self._close_code(child)
        _remove_tree(child.run_dir)

    def _on_child_event(self, child: _Child, kind: str, fd: int) -> None:
        # An earlier event of the same select() may have closed this fd already.
        if kind == "exit":  # only the probe: the forker reports the others' ends
            if child.pid in self.children:
                _, wait_status, usage = os.wait4(child.pid, 0)
                self._reap(child, wait_status, usage.ru_utime + usage.ru_stime)
        elif kind == "code":
            if fd == child.code_fd:
                self._write_code(child)
        elif fd in child.fds:
            self._read(child, kind, fd)

    # ------------------------------------------------------------- control

    def _send(self, message) -> None:
        self.outbuf += wire.frame(message)
        self._flush()

    def _flush(self) -> None:
        try:
            while self.outbuf:
                n = self.ctl.send(self.outbuf)
                del self.outbuf[:n]
        except BlockingIOError:
            pass
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.outbuf else 0)
        self.sel.modify(self.ctl, events, "ctl")

    def _on_ctl(self, mask: int) -> bool:
        """Handle the control socket; False when the caller has gone."""
        if mask & selectors.EVENT_WRITE:
            self._flush()
        if mask & selectors.EVENT_READ:
            try:
                data = self.ctl.recv(1 << 20)
            except BlockingIOError:
                return True
            if not data:
                return False
            self.inbuf += data
            for message in wire.unframe(self.inbuf):
                if message[0] == "run":
                    self.queue.append((message[1], message[2].encode("utf-8", "surrogatepass")))
        return True

    def probe(self) -> list[str]:
        """Fork one child that applies every layer it can; those become required."""
        run_dir = os.path.join(self.cfg["base_dir"], secrets.token_hex(8))
        pid, fds = self._spawn(run_dir, probe=True)
        child = self._adopt(pid, fds, run_dir, own=True)
        child.job = -1
        while child.pid in self.children:
            for key, _ in self.sel.select():
                self._on_child_event(*key.data, key.fd)
        kind, _, detail = self.probe_status.rstrip(b"\0").decode("utf-8", "replace").partition("\n")
        if kind != "probe":
            raise RuntimeError(f"the probe child could not set up a run: {detail or kind}")
        return json.loads(detail)

    def loop(self) -> None:
        self.ctl.setblocking(False)
        self.sel.register(self.ctl, selectors.EVENT_READ, "ctl")
        workers = self.cfg["max_workers"]
        while True:
            while self.queue and self.spares and len(self.running) < workers:
                self._start_job(*self.queue.popleft())
            # Children for the queued jobs that may start, and (unless spares keep
            # dying) as many again ready before they are needed.
            wanted = min(len(self.queue), workers - len(self.running))
            if self.keep_spares:
                wanted += workers
            while len(self.spares) + self.forking < wanted:
                self._request_spare()
            deadlines = [c.deadline for c in self.running.values() if c.stop is None]
            wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for key, mask in self.sel.select(wait):
                if key.data == "ctl":
                    if not self._on_ctl(mask):
                        return
                elif key.data == "forker":
                    if not self._on_forker():  # it died: so do its runs; the caller starts anew
                        return
                else:
                    self._on_child_event(*key.data, key.fd)
            now = time.monotonic()
            for child in list(self.running.values()):
                if child.stop is None and now >= child.deadline:
                    self._kill(child, "timeout")

    def shutdown(self) -> None:
        for child in self.children.values():
            self._kill(child)
        if self.forker is not None:  # it kills and reaps the children it has made, then exits
            self.forker.close()
            os.waitpid(self.forker_pid, 0)
        for child in self.children.values():
            try:
                os.waitpid(child.pid, 0)
            except ChildProcessError:  # the forker's child, reaped by it
                pass
            _remove_tree(child.run_dir)


def main() -> None:
    try:
        serve(socket.socket(fileno=int(sys.argv[1])))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the caller closed first (a command that had nothing to run): nobody to tell


def serve(ctl: socket.socket) -> None:
    inbuf = bytearray()
    while not (first := wire.unframe(inbuf)):  # the configuration comes first
        data = ctl.recv(1 << 16)
        if not data:
            return
        inbuf += data
    cfg = first[0]
    if sys.path and sys.path[0] == _HERE:  # the script's folder, which runs need not see
        del sys.path[0]
    sys.path[:0] = [p for p in cfg["sys_path"] if p not in sys.path]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.chdir(cfg["base_dir"])
    scratch = confine.mount_scratch(cfg["base_dir"], cfg["scratch_mb"])
    try:
        for name in cfg["preimport"]:
            importlib.import_module(name)
        if cfg["warmup"]:
            exec(compile(cfg["warmup"], "<warmup>", "exec"), {"__name__": "__warmup__"})
    except BaseException as exc:  # reported to the caller
        ctl.sendall(wire.frame(("fatal", _describe(exc))))
        return
    gc.collect()
    gc.freeze()
    try:
        zygote = Zygote(cfg, ctl)
        layers = zygote.probe()
    except Exception as exc:  # reported to the caller
        ctl.sendall(wire.frame(("fatal", _describe(exc))))
        return
    try:
        zygote.required = frozenset(layers)
        if scratch:
            layers.append("private-tmpfs")
        forks.collapse_memory(
            confine._libc
        )  # last, so that little is written to the shared huge pages after
        zygote.start_forker()
        ctl.sendall(wire.frame(("ready", {"protections": layers})))
        zygote.loop()
    finally:
        zygote.shutdown()


if __name__ == "__main__":
    main()
