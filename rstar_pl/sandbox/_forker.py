"""The forker: a copy of the warm zygote that forks the runs' processes.

fork() of a large process takes milliseconds of the parent's time; done in the
zygote, it would hold up the results of running runs. So the zygote forks one
copy of itself, the forker, that serves requests for new children over a
socket (``serve``), passes each child's pipes and pidfd to the zygote
(SCM_RIGHTS), reaps its children and reports how they ended. It never runs
model code; it dies with the zygote (a parent-death signal, or end of file on
its socket) and the runs with it.

Also here: what makes those forks cheap. The zygote backs its memory with
huge pages before it forks the forker (``collapse_memory``); the forker sets
the parts of a run's fresh state that are the same for every run once
(``share_run_state``) and forks with libc's fork() alone where that is the
same as ``os.fork()`` (``fork``).

Loaded by the zygote by file path, like ``_confine``: standard library only.
"""

from __future__ import annotations

import array
import ctypes
import os
import selectors
import signal
import socket
import sys

__all__ = ["collapse_memory", "fork", "serve", "share_run_state"]

_raw_fork = None  # libc's fork(), set in the forker where it may be used (see fork)


_HUGE = 2 << 20  # bytes in a huge page (x86_64 and aarch64 with 4 KiB pages)
_MADV_COLLAPSE = 25


def collapse_memory(libc: ctypes.CDLL) -> int:
    """Back the zygote's anonymous memory with huge pages where the kernel can; return how many.

    ``fork()`` copies one page-table entry per huge page instead of 512 and a
    run's exit frees as few, which is most of what a run costs the kernel. A
    run that writes into a huge page gets its own copy of the 4 KiB it wrote
    (the kernel splits the shared mapping), so what runs see is unchanged.
    MADV_COLLAPSE (Linux 6.1) works whatever the system's THP setting; where
    it is missing or refused this changes nothing. Only 2 MiB ranges that are
    mostly in memory already are collapsed, so the zygote grows by little.
    """
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    pages = _HUGE // os.sysconf("SC_PAGE_SIZE")
    resident = ctypes.create_string_buffer(pages)
    collapsed = 0
    with open("/proc/self/maps") as maps:
        regions = [line.split() for line in maps]
    for fields in regions:
        # Private writable memory without a file: the heap and the allocators' mappings.
        if fields[1] != "rw-p" or (len(fields) > 5 and fields[5] != "[heap]"):
            continue
        start, end = (int(v, 16) for v in fields[0].split("-"))
        for chunk in range((start + _HUGE - 1) & ~(_HUGE - 1), end & ~(_HUGE - 1), _HUGE):
            if libc.mincore(chunk, _HUGE, resident) != 0:
                continue
            if sum(b & 1 for b in resident.raw) * 2 >= pages:  # half in memory at least
                collapsed += libc.madvise(chunk, _HUGE, _MADV_COLLAPSE) == 0
    return collapsed


def fork() -> int:
    """``os.fork()``, or in the forker where that is the same, libc's fork() alone.

    ``os.fork()`` also runs Python's after-fork work in the child: it re-creates
    the GIL, the import lock and the runtime's locks, forgets other threads, and
    calls the callbacks modules registered (threading's bookkeeping, ``random``'s
    reseeding, logging's locks). In a single-threaded process that holds none
    of those locks and has no other threads, that work leaves the state as it
    was (a run seeds ``random`` itself), but it writes to shared pages a run
    would not touch otherwise: about 50 page faults (each a copy) per run.
    ``serve`` checks that the forker has one thread before it uses this;
    CPython 3.13 changed the after-fork work, so newer versions keep
    ``os.fork()``.
    """
    if _raw_fork is None:
        return os.fork()
    pid = _raw_fork()
    if pid < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"fork: {os.strerror(err)}")
    return pid


def share_run_state() -> None:
    """In the forker, once: the parts of a run's fresh state that are the same for every run.

    Each run gets its own copy at fork, so these cost the runs nothing. (The
    forker itself needs neither its environment nor numpy's generator.
    ``random`` cannot be seeded here: it reseeds itself in a forked child.)
    """
    os.environ.clear()
    sys.argv = ["-c"]
    if "numpy.random" in sys.modules:
        sys.modules["numpy.random"].seed(0)


def serve(sock: socket.socket, spawn, chunk: int) -> None:
    """The forker's loop: a child per request (a run folder's path), until the zygote goes.

    ``spawn(run_dir)`` forks a child and returns its pid and fds
    ([out_r, err_r, st_r, code_w, pidfd]); they go to the zygote with the
    answer ``PID RUN_DIR``, and ``PID WAIT_STATUS CPU_SECONDS`` follows when
    the child has ended (the forker is its parent and reaps it). On the way
    out it kills and reaps every child it has made.
    """
    global _raw_fork
    share_run_state()
    if sys.version_info < (3, 13) and len(os.listdir("/proc/self/task")) == 1:
        # PyDLL: the call keeps the GIL, as os.fork() does.
        _raw_fork = ctypes.PyDLL(None, use_errno=True).fork
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    kids: dict[int, int] = {}  # pid -> pidfd
    try:
        while True:
            for key, _ in sel.select():
                if key.fileobj is sock:
                    request = sock.recv(chunk)
                    if not request:  # the zygote has gone or is shutting down
                        return
                    run_dir = os.fsdecode(request)
                    pid, fds = spawn(run_dir)
                    kids[pid] = fds[4]  # before telling: if the zygote has gone, still reaped below
                    sel.register(fds[4], selectors.EVENT_READ, pid)
                    sock.sendmsg(
                        [b"%d %s" % (pid, request)],
                        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))],
                    )
                    for fd in fds[:4]:
                        os.close(fd)
                else:
                    pid = key.data
                    _, wait_status, usage = os.wait4(pid, 0)
                    sel.unregister(kids[pid])
                    os.close(kids.pop(pid))
                    sock.send(f"{pid} {wait_status} {usage.ru_utime + usage.ru_stime!r}".encode())
    finally:
        for pidfd in kids.values():
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in kids:
            os.waitpid(pid, 0)
