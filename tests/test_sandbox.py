"""The sandbox: what a run returns, that runs start fresh, and one hostile behaviour per test.

Each hostile test checks that the behaviour is contained (an error result, or
no effect outside the run) within a bound on how long containment took, then
that the same Sandbox still serves ``print(1+1)``. The bounds are behaviour
(a stuck run must come back), generous for a busy 2-core machine; speed is
measured in benchmarks/bench_sandbox.py.
"""

from __future__ import annotations

import os
import random
import select
import signal
import socket
import time

import numpy
import pytest

from rstar_pl.sandbox import ExecResult, Sandbox, SandboxError

TIMEOUT = 2.0  # wall-clock limit of the shared sandbox
QUICK = 10.0  # bound for behaviour that is refused at once
STOPPED = TIMEOUT + 10.0  # bound for behaviour that is stopped at the timeout
SECRET = ("RSTAR_SANDBOX_TEST_SECRET", "hunter2-do-not-leak")


@pytest.fixture(scope="module")
def box():
    """The shared sandbox (default modules), started once, with a secret in the caller's env."""
    os.environ[SECRET[0]] = SECRET[1]
    try:
        with Sandbox(timeout=TIMEOUT) as sandbox:
            assert sandbox.protections  # waits for the warm start here, not inside a test's bound
            yield sandbox
    finally:
        del os.environ[SECRET[0]]


@pytest.fixture(scope="module")
def tiny():
    """A sandbox without pre-imports (starts in a fraction of a second) and small limits."""
    with Sandbox(timeout=20.0, cpu_seconds=1, memory_mb=64, preimport=[], warmup=False) as sandbox:
        assert sandbox.protections
        yield sandbox


def contained(sandbox: Sandbox, code: str, bound: float = QUICK) -> ExecResult:
    """Run hostile code; check it came back within ``bound`` and the sandbox still serves."""
    start = time.monotonic()
    result = sandbox.run(code)
    assert time.monotonic() - start < bound, result
    assert sandbox.run("print(1+1)").stdout == "2\n"
    return result


def living_children() -> dict[int, list[int]]:
    """Parent pid -> pids of its living (not zombie) children, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def descendants(pid: int, prune: set[int] = frozenset()) -> set[int]:
    """Pids of the living descendants of ``pid``, leaving out the subtrees rooted in ``prune``."""
    children = living_children()
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in prune:
                found.add(child)
                todo.append(child)
    return found


# ------------------------------------------------------------------ results


def test_prints_and_ends_normally(box):
    result = box.run("x = 6 * 7\nprint(x)\nprint('done')")
    assert result.ok and result.error is None
    assert result.stdout == "42\ndone\n"
    assert not result.timed_out
    assert 0 < result.seconds < TIMEOUT


def test_exception_is_type_and_message_after_earlier_output(box):
    result = box.run("print('before')\n1 / 0")
    assert not result.ok
    assert result.stdout == "before\n"
    assert result.error == "ZeroDivisionError: division by zero"


def test_syntax_error_names_the_line(box):
    result = box.run("x = 1\ny = 2\nz = = 3\n")
    assert result.error == "SyntaxError: invalid syntax (line 3)"
    assert result.stdout == ""


def test_prose_is_not_python(box):
    result = box.run("The answer is that we add the two numbers.")
    assert result.error == "SyntaxError: invalid syntax (line 1)"


def test_null_bytes_give_an_error_not_a_traceback(box):
    result = box.run("print(1)\0")
    assert not result.ok and "null bytes" in result.error


def test_non_string_code_is_rejected_with_its_index(box):
    with pytest.raises(TypeError, match=r"codes\[1\] is a bytes"):
        box.run_many(["print(1)", b"print(2)"])


def test_stderr_is_kept_apart_from_stdout(box):
    result = box.run("import sys\nprint('out')\nprint('warn', file=sys.stderr)")
    assert result.ok
    assert (result.stdout, result.stderr) == ("out\n", "warn\n")


def test_output_without_a_final_newline_is_kept(box):
    result = box.run("import io, sys\nprint('partial', end='')\nsys.stdout = io.StringIO()")
    assert result.ok and result.stdout == "partial"


def test_sys_exit_zero_is_a_normal_end(box):
    result = box.run("import sys\nprint('a')\nsys.exit(0)\nprint('b')")
    assert result.ok and result.stdout == "a\n"


def test_default_modules_are_preimported_and_work(box):
    code = (
        "import sys\n"
        "print(all(m in sys.modules for m in ('math', 'numpy', 'sympy', 'scipy')))\n"
        "import sympy as sp, numpy as np\n"
        "x = sp.symbols('x')\n"
        "print(sorted(sp.solve(x**2 - 5*x + 6, x)))\n"
        "print(np.linalg.solve(np.array([[2.0, 0.0], [0.0, 4.0]]), np.array([2.0, 8.0])).tolist())\n"
    )
    result = box.run(code)
    assert result.stdout == "True\n[2, 3]\n[1.0, 2.0]\n", result


def test_run_many_keeps_input_order(box):
    sizes = [300_000, 3, 200_000, 10, 100_000, 0, 50_000, 7]  # later ones finish first
    results = box.run_many([f"print(sum(range({n})))" for n in sizes])
    assert [r.stdout for r in results] == [f"{n * (n - 1) // 2}\n" for n in sizes]


def test_long_programs_are_passed_whole(box):
    code = "x = 0\n" + "x += 1\n" * 40_000 + "print(x)\n"  # 280 kB, more than a pipe holds
    assert box.run(code).stdout == "40000\n"


def test_unicode_output_round_trips(box):
    assert box.run("print('x² = 4 ⇒ x = ±2')").stdout == "x² = 4 ⇒ x = ±2\n"


def test_runs_are_repeatable(box):
    code = "import random, numpy\nprint(random.random(), numpy.random.rand())\nprint({'ab', 'cd', 'ef'})"
    first, second = box.run_many([code, code + "\n"])
    drawn = f"{random.Random(0).random()} {numpy.random.RandomState(0).rand()}\n"
    assert first.stdout.startswith(drawn)
    assert first.stdout == second.stdout


def test_run_many_repeats_identical_programs_in_place(box):
    results = box.run_many(["print(1)", "print(2)", "print(1)"])
    assert [r.stdout for r in results] == ["1\n", "2\n", "1\n"]
    assert box.run_many([]) == []


# ------------------------------------------------------------- fresh state


def test_variables_do_not_survive_to_the_next_run(box):
    assert box.run("leftover = 42").ok
    result = box.run("print(leftover)")
    assert result.error == "NameError: name 'leftover' is not defined"


def test_module_and_builtin_changes_do_not_survive(box):
    poison = (
        "import builtins, math, sys, sympy\n"
        "math.pi = 3\n"
        "builtins.len = lambda obj: -1\n"
        "sympy.sqrt = None\n"
        "sys.modules['json'] = None\n"
        "print(len([1, 2]), math.pi)\n"
    )
    assert box.run(poison).stdout == "-1 3\n"
    check = "import json, math, sympy\nprint(len([1, 2]), math.pi, sympy.sqrt(4), json.dumps([1]))"
    assert box.run(check).stdout == "2 3.141592653589793 2 [1]\n"


def test_files_do_not_survive_to_the_next_run(box):
    write = (
        "import os, tempfile\n"
        "open('note.txt', 'w').write('x')\n"
        "open(os.path.join(tempfile.gettempdir(), 'other.txt'), 'w').write('y')\n"
        "print(sorted(os.listdir('.')))\n"
    )
    assert box.run(write).stdout == "['note.txt', 'other.txt']\n"
    assert box.run("import os\nprint(os.listdir('.'))").stdout == "[]\n"


# ---------------------------------------------------------- hostile: time


def test_infinite_loop_is_killed_at_the_timeout(box):
    result = contained(box, "print('started')\nwhile True:\n    pass", STOPPED)
    assert result.timed_out and result.error.startswith("Timeout:")
    assert result.seconds >= TIMEOUT
    assert result.stdout == "started\n"  # what it printed before is kept


def test_infinite_loop_ignoring_signals_is_killed(box):
    code = (
        "import signal\n"
        "for s in signal.valid_signals():\n"
        "    try:\n"
        "        signal.signal(s, signal.SIG_IGN)\n"
        "    except (OSError, ValueError):\n"
        "        pass\n"
        "while True:\n"
        "    pass\n"
    )
    result = contained(box, code, STOPPED)
    assert result.timed_out and result.error.startswith("Timeout:")


def test_cpu_time_is_limited_even_when_sigxcpu_is_ignored(tiny):
    code = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass"
    result = contained(tiny, code, 15.0)  # its wall timeout is 20 s; CPU stops it first
    assert not result.timed_out
    assert result.error == "CPULimit: the run used more than 1 s of CPU time"


def test_thread_that_never_ends_does_not_hold_the_run(box):
    code = (
        "import threading\n"
        "def spin():\n"
        "    while True:\n"
        "        pass\n"
        "threading.Thread(target=spin).start()\n"
        "print('main done')\n"
    )
    result = contained(box, code)
    assert result.ok and result.stdout == "main done\n"
    assert not result.timed_out


def test_reading_stdin_gets_end_of_file(box):
    result = contained(box, "print(input())")
    assert result.error == "EOFError: EOF when reading a line"


# -------------------------------------------------------- hostile: memory


def test_memory_bomb_is_refused(box):
    result = contained(box, "x = bytearray(10**11)\nprint('allocated')")
    assert result.error == "MemoryError" and result.stdout == ""


def test_growing_memory_stops_at_the_limit(tiny):
    result = contained(tiny, "chunks = []\nwhile True:\n    chunks.append(bytearray(2**20))")
    assert result.error == "MemoryError"


def test_deep_recursion_is_an_error(box):
    result = contained(box, "def f(n):\n    return f(n + 1)\nf(0)")
    assert result.error == "RecursionError: maximum recursion depth exceeded"


def test_c_stack_overflow_kills_only_the_run(box):
    code = (
        "import json, sys\n"
        "sys.setrecursionlimit(10**6)\n"
        "x = []\n"
        "for _ in range(10**5):\n"
        "    x = [x]\n"
        "print(len(json.dumps(x)))\n"
    )
    result = contained(box, code, STOPPED)
    assert not result.ok and result.stdout == ""


# -------------------------------------------------------- hostile: output


def test_endless_printing_is_cut_at_the_cap(box):
    result = contained(box, "while True:\n    print('x' * 999)")
    assert result.error.startswith("OutputLimit:")
    assert result.stdout == (("x" * 999 + "\n") * 70)[:65536]


def test_one_huge_write_is_cut_at_the_cap(box):
    result = contained(box, "print('y' * 10**8)")
    assert result.error.startswith("OutputLimit:")
    assert result.stdout == "y" * 65536


def test_flooding_stderr_is_stopped(box):
    result = contained(box, "import sys\nwhile True:\n    sys.stderr.write('e' * 1000)")
    assert result.error.startswith("OutputLimit:")


# ---------------------------------------------------- hostile: processes


def test_fork_bomb_is_refused(box):
    result = contained(box, "import os\nwhile True:\n    os.fork()")
    assert result.error == "PermissionError: [Errno 1] Operation not permitted"


def test_fork_through_ctypes_is_refused(box):
    result = contained(box, "import ctypes\nprint(ctypes.CDLL(None).fork())")
    assert result.ok and result.stdout == "-1\n"


def test_subprocess_is_refused(box, tmp_path):
    marker = tmp_path / "made-by-subprocess"
    result = contained(box, f"import subprocess\nsubprocess.run(['touch', '{marker}'])")
    assert result.error == "PermissionError: [Errno 1] Operation not permitted"
    assert not marker.exists()


def test_os_system_runs_nothing(box, tmp_path):
    marker = tmp_path / "made-by-os-system"
    result = contained(box, f"import os\nprint(os.system('touch {marker}') != 0)")
    assert result.stdout == "True\n"
    assert not marker.exists()


def test_sys_exit_with_status_is_an_error(box):
    result = contained(box, "import sys\nsys.exit(3)")
    assert result.error == "SystemExit: 3"


def test_os_exit_is_an_error_and_keeps_earlier_output(box):
    result = contained(box, "print('before')\nimport os\nos._exit(7)")
    assert result.stdout == "before\n"
    assert (
        result.error == "Exit: the program ended the interpreter with status 7 before it finished"
    )


def test_killing_the_zygote_is_refused(box):
    result = contained(box, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")
    assert result.error == "PermissionError: [Errno 1] Operation not permitted"


def test_killing_the_forker_and_the_zygote_is_refused(box):
    # A run's parent is the forker; the zygote is the forker's parent.
    for target in ("os.getppid()", str(box._res.worker.proc.pid)):
        result = contained(box, f"import os, signal\nos.kill({target}, signal.SIGKILL)")
        assert result.error == "PermissionError: [Errno 1] Operation not permitted"


def test_killing_the_caller_is_refused(box):
    result = contained(box, f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)")
    assert result.error == "PermissionError: [Errno 1] Operation not permitted"


def test_killing_every_process_is_refused(box):
    result = contained(box, "import os, signal\nos.kill(-1, signal.SIGKILL)")
    assert result.error == "PermissionError: [Errno 1] Operation not permitted"


def test_a_run_may_signal_itself(box):
    # The seccomp filter allows signals to the run's own pid and process group only.
    code = (
        "import os, signal\n"
        "signal.signal(signal.SIGUSR1, lambda *args: print('got'))\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
        "signal.raise_signal(signal.SIGUSR1)\n"
        "os.killpg(os.getpgid(0), signal.SIGUSR1)\n"
    )
    assert [contained(box, code).stdout for _ in range(2)] == ["got\ngot\ngot\n"] * 2


def test_a_run_cannot_outlive_its_zygote(box):
    # prctl(PR_SET_PDEATHSIG, 0) would let an orphaned run sleep on after a zygote crash.
    result = contained(box, "import ctypes\nprint(ctypes.CDLL(None).prctl(1, 0, 0, 0, 0))")
    assert result.stdout == "-1\n"


def test_forged_status_does_not_break_the_zygote(box):
    # fd 3 is the channel on which a run reports how it ended.
    result = contained(box, "import os\nos.write(3, b'forged\\0')\nprint('after')")
    assert result.stdout == "after\n"


def test_segfault_through_ctypes_kills_only_the_run(box):
    result = contained(box, "import ctypes\nctypes.string_at(0)")
    assert result.error == "Killed: the run was killed by SIGSEGV"


# ------------------------------------------------- hostile: files, network


def test_writing_outside_the_run_folder_is_refused(box):
    target = f"/tmp/rstar-sandbox-outside-{os.getpid()}"
    result = contained(box, f"open({target!r}, 'w').write('escaped')")
    assert result.error.startswith("PermissionError")
    assert not os.path.exists(target)


def test_reading_the_callers_files_is_refused(box, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    result = contained(box, f"print(open({str(secret)!r}).read())")
    assert result.error.startswith("PermissionError") and "private" not in result.stdout


def test_deeply_nested_folders_are_cleaned_up(box):
    code = "import os\nfor _ in range(1500):\n    os.mkdir('d')\n    os.chdir('d')\nprint('deep')"
    assert contained(box, code).stdout == "deep\n"


def test_system_v_shared_memory_is_refused(box):
    code = "import ctypes\nprint(ctypes.CDLL(None).shmget(0x5EED, 4096, 0o1600))"
    assert contained(box, code).stdout == "-1\n"


def test_tcp_connection_never_arrives(box):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint('in')"
        result = contained(box, code)
        assert result.error == "PermissionError: [Errno 1] Operation not permitted"
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # a connect that succeeded would be queued here
            listener.accept()


def test_unix_sockets_are_refused(box):
    result = contained(box, "import socket\nsocket.socket(socket.AF_UNIX)")
    assert result.error == "PermissionError: [Errno 1] Operation not permitted"


# ---------------------------------------------------- hostile: environment


def test_environment_holds_none_of_the_callers_variables(box):
    assert os.environ[SECRET[0]] == SECRET[1]
    result = contained(box, "import os\nprint(dict(os.environ))")
    assert result.stdout == "{}\n"


def test_process_environment_block_holds_no_secret(box):
    result = contained(box, "print(open('/proc/self/environ').read())")
    assert result.ok and SECRET[1] not in result.stdout and SECRET[0] not in result.stdout


def test_callers_environ_file_is_unreadable(box):
    code = f"import os\nprint(open('/proc/{os.getpid()}/environ').read())"
    result = contained(box, code)
    assert result.error.startswith("PermissionError") and SECRET[1] not in result.stdout


# ----------------------------------------------------------- the sandbox


def test_every_protection_is_in_place_on_this_machine(box):
    expected = {"rlimits", "no-new-privs", "landlock", "seccomp"}
    if os.geteuid() == 0:
        expected |= {"uid-drop", "private-tmpfs"}
    assert expected <= set(box.protections)


def _zygote_of(sandbox: Sandbox) -> int:
    """The process that forks ``sandbox``'s runs (the zygote's forker): their parent."""
    return int(sandbox.run("import os\nprint(os.getppid())").stdout)


def test_zygote_death_is_survived(tiny):
    old = _zygote_of(tiny)
    os.kill(old, signal.SIGKILL)
    assert tiny.run("print(1+1)").stdout == "2\n"
    assert _zygote_of(tiny) != old


def test_killing_the_zygote_ends_all_its_processes(tiny):
    assert tiny.run("print(1)").ok
    zygote = tiny._res.worker.proc.pid
    theirs = descendants(zygote)
    assert theirs  # the forker and its spare runs
    pidfds = []
    for pid in theirs:
        try:
            pidfds.append(os.pidfd_open(pid))
        except ProcessLookupError:  # it ended already (a finished run being cleaned up)
            pass
    try:
        os.kill(zygote, signal.SIGKILL)
        for pidfd in pidfds:  # readable once that process has ended
            assert select.select([pidfd], [], [], QUICK)[0], "a process outlived its zygote"
    finally:
        for pidfd in pidfds:
            os.close(pidfd)
    assert tiny.run("print(1+1)").stdout == "2\n"


def test_close_leaves_no_process_behind():
    # The module's other sandboxes fork new spare children at any time (after
    # their runs); their zygotes' subtrees are left out so that only this one counts.
    others = set(living_children().get(os.getpid(), []))
    sandbox = Sandbox(preimport=[], warmup=False)
    assert sandbox.run("print(1)").ok
    ours = descendants(os.getpid(), prune=others)
    assert ours  # the zygote and its spare children
    sandbox.close()
    assert not (ours & descendants(os.getpid(), prune=others))
    assert not any(os.path.exists(f"/proc/{pid}") for pid in ours)
    with pytest.raises(SandboxError, match="closed"):
        sandbox.run("print(1)")
    sandbox.close()  # idempotent


def test_a_forked_caller_gets_its_own_zygote(tiny):
    assert tiny.run("print(1)").ok
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child must not reuse (or, on exit, stop) the parent's zygote
        try:
            os.write(write, tiny.run("print(6 * 7)").stdout.encode())
            tiny.close()  # stops the child's own zygote, not the parent's
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        assert f.read() == "42\n"
    os.waitpid(pid, 0)
    assert tiny.run("print(1+1)").stdout == "2\n"


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r"timeout=0"):
        Sandbox(timeout=0)
    with pytest.raises(TypeError, match="list of module names"):
        Sandbox(preimport="numpy")


def test_missing_preimport_is_a_clear_error():
    sandbox = Sandbox(preimport=["no_such_module_for_rstar"], warmup=False)
    try:
        with pytest.raises(SandboxError, match="no_such_module_for_rstar"):
            sandbox.run("print(1)")
    finally:
        sandbox.close()


def test_closing_before_the_zygote_is_ready_is_silent(capfd):
    """A command with nothing left to do closes its sandbox while the zygote is still
    importing: the zygote then finds its caller gone and exits without a word."""
    for _ in range(3):
        Sandbox(timeout=TIMEOUT).close()
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
