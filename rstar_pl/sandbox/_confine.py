"""What a forked run does to itself before it may run model code.

Loaded by the zygote (``_zygote.py``) by file path, so it imports the standard
library only. Every function here runs in the *child*, after ``fork()``, and
changes that process alone. The layers, in the order they are applied:

- ``rlimits``: address space (the warm state plus ``memory_mb``), CPU seconds,
  file size, no core files, a bounded number of open files, no POSIX message
  queues.
- ``no-new-privs``: no set-user-ID program can give privileges back.
- ``landlock``: the run may write only in its own folder (and ``/dev/null``)
  and read only the Python installation, the folders on the zygote's
  ``sys.path``, the folders of the shared libraries it has loaded, ``/usr``,
  ``/lib*`` and a few files of ``/etc`` (so not ``/root``, ``/home``, other
  runs' folders, ...); ``/proc/<pid>`` of processes outside the run is out of
  reach (so the caller's environment cannot be read there); on newer kernels
  also TCP, abstract Unix sockets and signals to outside processes.
- ``seccomp``: a BPF filter that refuses new processes (``fork``, ``vfork``,
  ``clone`` without ``CLONE_THREAD``; threads still work), ``execve``, every
  ``socket()`` (so no network and no Unix-socket connections), signals to any
  process but the run itself, ``ptrace`` and friends, namespaces and mounts,
  ``io_uring``, ``bpf``, ``userfaultfd``, keyrings, System V IPC and POSIX
  message queues (objects that would outlive the run), permission and
  ownership changes, and clearing the parent-death signal (a run dies with its
  zygote).
- ``uid-drop`` (when the zygote is root): the run becomes an unprivileged user
  (65534) with no capability but, when Landlock and seccomp are both in place,
  ``CAP_DAC_READ_SEARCH``: the Python installation may sit under a folder
  only root may enter (``/root/.pyenv``), and what the run may read is then
  decided by Landlock alone.

``confine`` returns the names of the layers it applied. A layer the kernel does
not offer is skipped (the zygote finds out once, with a probe child, and
reports it); a layer that was found to work but then fails makes the run fail
closed with a ``SandboxSetupError``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import signal
import struct

__all__ = ["SandboxSetupError", "confine", "mount_scratch"]


class SandboxSetupError(Exception):
    """A confinement layer that was required could not be applied."""


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int
_libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_KEEPCAPS = 8
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2

# An unprivileged identity for runs when the zygote is root. 65534 is
# "nobody"/"nogroup" on most systems; Landlock and seccomp keep runs apart from
# other processes of that user (no ptrace, no /proc/<pid>, no signals).
UNPRIVILEGED_ID = 65534


def _prctl(option: int, arg: int = 0) -> None:
    if _libc.prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


# --------------------------------------------------------------------- rlimits


def _vm_size() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def apply_rlimits(memory_mb: int, cpu_seconds: float, file_mb: int, no_processes: bool) -> None:
    """Set the resource limits of this process (the warm state is not counted in memory_mb)."""
    address_space = _vm_size() + memory_mb * 2**20
    cpu = max(1, int(-(-cpu_seconds // 1)))  # ceil, at least one second
    limits = [
        (resource.RLIMIT_AS, address_space, address_space),
        # SIGXCPU at the soft limit (a program may ignore it), SIGKILL one second later.
        # One second more until start_cpu_budget counts it from the program's start.
        (resource.RLIMIT_CPU, cpu + 1, cpu + 2),
        (resource.RLIMIT_FSIZE, file_mb * 2**20, file_mb * 2**20),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_NOFILE, 256, 256),
        (resource.RLIMIT_MSGQUEUE, 0, 0),
    ]
    if no_processes:
        # Only a fallback where seccomp is missing: an unprivileged user at its
        # process limit can create neither processes nor threads.
        limits.append((resource.RLIMIT_NPROC, 0, 0))
    for which, soft, hard in limits:
        old_soft, old_hard = resource.getrlimit(which)
        if old_hard != resource.RLIM_INFINITY:
            hard = min(hard, old_hard)
            soft = min(soft, hard)
        resource.setrlimit(which, (soft, hard))


def start_cpu_budget(cpu_seconds: float) -> None:
    """Right before the program starts: its CPU limit counts from now, not from the fork.

    A spare spends CPU time on its own setup; counted in, a CPU-bound program
    would hit a CPU limit equal to the wall-clock timeout a little before the
    timeout. Only lowers the limits ``apply_rlimits`` set.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(-(-(usage.ru_utime + usage.ru_stime + cpu_seconds) // 1))
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard - 1)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1))


# -------------------------------------------------------------------- landlock

_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446

_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_READ = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
_FS_ALL_V1 = (1 << 13) - 1  # read, write, remove and make rights of ABI 1
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_TCP = (1 << 0) | (1 << 1)  # bind and connect (ABI 4)
_SCOPE_ALL = (1 << 0) | (1 << 1)  # abstract Unix sockets and signals (ABI 6)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is absent or disabled."""
    version = _libc.syscall(
        _SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1)
    )
    return max(0, int(version))


_LANDLOCK_ABI = landlock_abi()  # asked once, in the zygote; the kernel's answer does not change


# Read by the standard library or glibc outside the installation (time zone,
# user names, the dynamic linker's cache, randomness, the CPU count).
_SYSTEM_READABLE = (
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/libx32",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
    "/sys/devices/system/cpu",
)


def readable_roots(sys_path: list[str]) -> list[str]:
    """For the zygote, after its imports: the paths a run may read below.

    The prefixes of the installation, ``sys_path``, the folders of every file
    the zygote has mapped (extension modules, bundled shared libraries) and a
    few system paths; those that exist, without any that another one contains.
    """
    import sys

    paths = {
        sys.prefix,
        sys.exec_prefix,
        sys.base_prefix,
        sys.base_exec_prefix,
        *sys_path,
        *_SYSTEM_READABLE,
    }
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/"):
                paths.add(os.path.dirname(fields[5].rstrip("\n")))
    real = sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)})
    kept: list[str] = []
    for path in real:  # sorted, so a containing folder comes before what it contains
        if not kept or not (path + "/").startswith(kept[-1].rstrip("/") + "/"):
            kept.append(path)
    return kept


def _add_rule(ruleset: int, path: str, rights: int) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        if not os.path.isdir(path):  # files take file rights only
            rights &= _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
        rule = _PathBeneath(rights, fd)
        if _libc.syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule({path}) failed")
    finally:
        os.close(fd)


def apply_landlock(run_dir: str, read_roots: list[str], abi: int) -> None:
    """Allow reading below ``read_roots``, everything in ``run_dir``, nothing else."""
    fs = _FS_ALL_V1
    if abi >= 2:
        fs |= _FS_REFER
    if abi >= 3:
        fs |= _FS_TRUNCATE
    if abi >= 5:
        fs |= _FS_IOCTL_DEV
    attr = _RulesetAttr(fs, _NET_TCP if abi >= 4 else 0, _SCOPE_ALL if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = _libc.syscall(
        _SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0
    )
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for path in read_roots:
            if os.path.exists(path):
                _add_rule(ruleset, path, _FS_READ)
        _add_rule(ruleset, "/proc/self", _FS_READ)  # this process's own /proc/<pid>
        _add_rule(ruleset, "/dev/null", _FS_READ_FILE | _FS_WRITE_FILE | (fs & _FS_TRUNCATE))
        _add_rule(ruleset, run_dir, fs)
        if _libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)


# --------------------------------------------------------------------- seccomp

# Syscall numbers: x86_64 from asm/unistd_64.h, aarch64 from asm-generic/unistd.h.
_ARCH = {
    "x86_64": dict(
        audit=0xC000003E,
        deny=dict(
            fork=57,
            vfork=58,
            execve=59,
            execveat=322,
            socket=41,
            tkill=200,
            pidfd_open=434,
            pidfd_send_signal=424,
            pidfd_getfd=438,
            ptrace=101,
            process_vm_readv=310,
            process_vm_writev=311,
            kcmp=312,
            unshare=272,
            setns=308,
            mount=165,
            umount2=166,
            pivot_root=155,
            chroot=161,
            open_tree=428,
            move_mount=429,
            fsopen=430,
            fsconfig=431,
            fsmount=432,
            fspick=433,
            mount_setattr=442,
            io_uring_setup=425,
            io_uring_enter=426,
            io_uring_register=427,
            bpf=321,
            perf_event_open=298,
            userfaultfd=323,
            keyctl=250,
            add_key=248,
            request_key=249,
            name_to_handle_at=303,
            open_by_handle_at=304,
            msgget=68,
            semget=64,
            shmget=29,
            mq_open=240,
            chmod=90,
            fchmod=91,
            fchmodat=268,
            fchmodat2=452,
            chown=92,
            fchown=93,
            lchown=94,
            fchownat=260,
            setxattr=188,
            lsetxattr=189,
            fsetxattr=190,
            removexattr=197,
            lremovexattr=198,
            fremovexattr=199,
            init_module=175,
            finit_module=313,
            delete_module=176,
            kexec_load=246,
            kexec_file_load=320,
            reboot=169,
            swapon=167,
            swapoff=168,
            acct=163,
        ),
        clone=56,
        clone3=435,
        kill=62,
        prctl=157,
        own_pid_first=(234, 129, 297),  # tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo
    ),
    "aarch64": dict(
        audit=0xC00000B7,
        deny=dict(
            execve=221,
            execveat=281,
            socket=198,
            tkill=130,
            pidfd_open=434,
            pidfd_send_signal=424,
            pidfd_getfd=438,
            ptrace=117,
            process_vm_readv=270,
            process_vm_writev=271,
            kcmp=272,
            unshare=97,
            setns=268,
            mount=40,
            umount2=39,
            pivot_root=41,
            chroot=51,
            open_tree=428,
            move_mount=429,
            fsopen=430,
            fsconfig=431,
            fsmount=432,
            fspick=433,
            mount_setattr=442,
            io_uring_setup=425,
            io_uring_enter=426,
            io_uring_register=427,
            bpf=280,
            perf_event_open=241,
            userfaultfd=282,
            keyctl=219,
            add_key=217,
            request_key=218,
            name_to_handle_at=264,
            open_by_handle_at=265,
            msgget=186,
            semget=190,
            shmget=194,
            mq_open=180,
            fchmod=52,
            fchmodat=53,
            fchmodat2=452,
            fchown=55,
            fchownat=54,
            setxattr=5,
            lsetxattr=6,
            fsetxattr=7,
            removexattr=14,
            lremovexattr=15,
            fremovexattr=16,
            init_module=105,
            finit_module=273,
            delete_module=106,
            kexec_load=104,
            kexec_file_load=294,
            reboot=142,
            swapon=224,
            swapoff=225,
            acct=89,
        ),
        clone=220,
        clone3=435,
        kill=129,
        prctl=167,
        own_pid_first=(131, 138, 240),
    ),
}

_CLONE_THREAD = 0x00010000
_X32_SYSCALL_BIT = 0x40000000
# BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
_LD_ABS_W, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW, _RET_ERRNO, _RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
_OFF_NR, _OFF_ARCH, _OFF_ARG0, _OFF_ARG1 = 0, 4, 16, 24  # struct seccomp_data; low words


_PID, _NEG_PID = 0x7FFFFFF0, 0x7FFFFFF1  # placeholders, replaced per run by apply_seccomp


def _seccomp_program(arch: dict) -> tuple[bytearray, list[int], list[int]]:
    """Assemble the filter: a deny list, and argument checks for clone, signals and prctl.

    Returns the program and the offsets of the words that must hold the run's
    pid and its negation (assembled once, in the zygote; patched per run).
    """
    prog: list[tuple] = []  # (code, jt, jf, k), jt/jf a label name or 0; or ("label", name)

    def ins(code, k, jt=0, jf=0):
        prog.append((code, jt, jf, k))

    def label(name):
        prog.append(("label", name))

    ins(_LD_ABS_W, _OFF_ARCH)
    ins(_JEQ, arch["audit"], jt=0, jf="kill")
    ins(_LD_ABS_W, _OFF_NR)
    if platform.machine() == "x86_64":
        ins(_JGE, _X32_SYSCALL_BIT, jt="eperm")
    for nr in sorted(set(arch["deny"].values())):
        ins(_JEQ, nr, jt="eperm")
    ins(_JEQ, arch["clone3"], jt="enosys")  # glibc then falls back to clone()
    ins(_JEQ, arch["clone"], jt="clone")
    ins(_JEQ, arch["kill"], jt="kill_pid")
    for nr in arch["own_pid_first"]:
        ins(_JEQ, nr, jt="own_pid")
    ins(_JEQ, arch["prctl"], jt="prctl")
    ins(_RET, _RET_ALLOW)
    label("prctl")  # the parent-death signal may only be SIGKILL: a run dies with its zygote
    ins(_LD_ABS_W, _OFF_ARG0)
    ins(_JEQ, _PR_SET_PDEATHSIG, jt=0, jf="allow")
    ins(_LD_ABS_W, _OFF_ARG1)
    ins(_JEQ, signal.SIGKILL, jt="allow", jf="eperm")
    label("clone")
    ins(_LD_ABS_W, _OFF_ARG0)
    ins(_JSET, _CLONE_THREAD, jt="allow", jf="eperm")
    label("kill_pid")  # kill(pid): its own process group (0 or -pid), else falls through
    ins(_LD_ABS_W, _OFF_ARG0)
    ins(_JEQ, 0, jt="allow")
    ins(_JEQ, _NEG_PID, jt="allow")
    label("own_pid")  # tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo: first argument is a tgid
    ins(_LD_ABS_W, _OFF_ARG0)
    ins(_JEQ, _PID, jt="allow", jf="eperm")
    label("allow")
    ins(_RET, _RET_ALLOW)
    label("eperm")
    ins(_RET, _RET_ERRNO | errno.EPERM)
    label("enosys")
    ins(_RET, _RET_ERRNO | errno.ENOSYS)
    label("kill")
    ins(_RET, _RET_KILL_PROCESS)

    where, pc = {}, 0
    for item in prog:
        if item[0] == "label":
            where[item[1]] = pc
        else:
            pc += 1
    out, pid_at, neg_at = bytearray(), [], []
    for code, jt, jf, k in (item for item in prog if item[0] != "label"):
        pc = len(out) // 8
        jt = where[jt] - pc - 1 if isinstance(jt, str) else jt
        jf = where[jf] - pc - 1 if isinstance(jf, str) else jf
        assert 0 <= jt < 256 and 0 <= jf < 256, "seccomp jump out of range"
        (pid_at if k == _PID else neg_at if k == _NEG_PID else []).append(len(out) + 4)
        out += struct.pack("=HBBI", code, jt, jf, k)
    return out, pid_at, neg_at


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_SECCOMP_PROGRAM = (
    _seccomp_program(_ARCH[platform.machine()]) if platform.machine() in _ARCH else None
)
# The filter in C memory, assembled once in the zygote: every forked run patches
# its own copy of these pages with its pid, so a run does little Python to install it.
if _SECCOMP_PROGRAM is not None:
    _SECCOMP_BUF = ctypes.create_string_buffer(bytes(_SECCOMP_PROGRAM[0]), len(_SECCOMP_PROGRAM[0]))
    _SECCOMP_FPROG = _SockFprog(len(_SECCOMP_PROGRAM[0]) // 8, ctypes.addressof(_SECCOMP_BUF))
    _SECCOMP_FPROG_ADDR = ctypes.addressof(_SECCOMP_FPROG)


def apply_seccomp() -> None:
    if _SECCOMP_PROGRAM is None:
        raise OSError(errno.ENOSYS, f"no seccomp filter for the {platform.machine()} architecture")
    _, pid_at, neg_at = _SECCOMP_PROGRAM
    pid = os.getpid()
    for offset in pid_at:
        struct.pack_into("=I", _SECCOMP_BUF, offset, pid)
    for offset in neg_at:
        struct.pack_into("=I", _SECCOMP_BUF, offset, -pid & 0xFFFFFFFF)
    if _libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, _SECCOMP_FPROG_ADDR, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "installing the seccomp filter failed")


# ------------------------------------------------------------- scratch space

_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000


def mount_scratch(base_dir: str, size_mb: int) -> bool:
    """For the zygote, when root: a private tmpfs of ``size_mb`` over ``base_dir``.

    The zygote moves into its own mount namespace first, so the caller never
    sees the mount and the tmpfs (every run folder in it) disappears with the
    zygote and its children. Returns False, changing nothing, where it is not
    possible (not root, no namespaces).
    """
    if os.geteuid() != 0 or _libc.unshare(_CLONE_NEWNS) != 0:
        return False
    # Without private propagation the tmpfs would show up in the caller's namespace.
    if _libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        return False
    options = f"size={size_mb}m,nr_inodes={64 * size_mb},mode=0711".encode()
    if _libc.mount(b"tmpfs", base_dir.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options) != 0:
        return False
    os.chdir(base_dir)  # re-enter: the old working directory is under the mount
    return True


# ------------------------------------------------------------------ all layers


_SYS_CAPSET = {"x86_64": 126, "aarch64": 91}.get(platform.machine(), -1)
_CAP_DAC_READ_SEARCH = 2


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_root(keep_read_search: bool) -> None:
    """Become UNPRIVILEGED_ID; keep CAP_DAC_READ_SEARCH alone if asked, else no capability."""
    _prctl(_PR_SET_KEEPCAPS, 1 if keep_read_search else 0)
    os.setgroups([])
    os.setresgid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID)
    os.setresuid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID)
    if keep_read_search:
        mask = 1 << _CAP_DAC_READ_SEARCH
        data = (_CapData * 2)(_CapData(mask, mask, 0), _CapData(0, 0, 0))
        header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
        if _libc.syscall(_SYS_CAPSET, ctypes.byref(header), data) != 0:
            raise OSError(ctypes.get_errno(), "capset failed")
        _prctl(_PR_SET_KEEPCAPS, 0)


# ------------------------------------------------------------------ all layers


def confine(
    run_dir: str,
    *,
    memory_mb: int,
    cpu_seconds: float,
    file_mb: int,
    read_roots: list[str],
    zygote_pid: int,
    required: frozenset[str],
) -> list[str]:
    """Apply every available layer to this (forked) process; return the names applied.

    ``run_dir`` must exist; it becomes the working directory and the only
    writable place. A layer named in ``required`` that fails raises
    ``SandboxSetupError``; other failures only leave the layer out.
    """
    applied: list[str] = []

    def attempt(name: str, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:  # reported or re-raised by name
            if name in required:
                raise SandboxSetupError(f"{name}: {exc}") from exc
        else:
            applied.append(name)

    os.chdir(run_dir)
    root = os.geteuid() == 0
    if root:  # before seccomp, which refuses chown
        os.chown(run_dir, UNPRIVILEGED_ID, UNPRIVILEGED_ID)
    # Without seccomp, RLIMIT_NPROC=0 is the fallback against new processes.
    # (The probe child, with nothing required yet, gets it too; it starts none.)
    apply_rlimits(memory_mb, cpu_seconds, file_mb, no_processes="seccomp" not in required)
    applied.append("rlimits")
    attempt("no-new-privs", _prctl, _PR_SET_NO_NEW_PRIVS, 1)
    abi = _LANDLOCK_ABI
    if abi or "landlock" in required:
        attempt("landlock", apply_landlock, run_dir, read_roots, abi)
    if _SECCOMP_PROGRAM is not None or "seccomp" in required:
        attempt("seccomp", apply_seccomp)
    if root:  # last: seccomp and Landlock allow these calls, and decide the capability
        attempt("uid-drop", drop_root, "landlock" in applied and "seccomp" in applied)
    # Die with the zygote (set after the credential change, which clears it);
    # checked after setting, in case the zygote died just before.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != zygote_pid:
        os._exit(0)
    _prctl(_PR_SET_DUMPABLE, 0)
    return applied
