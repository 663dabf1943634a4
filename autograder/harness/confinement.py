"""Runs in: the sandbox (after its imports, before student code).

Confinement that needs no capability, for containers without
``CAP_SYS_ADMIN`` (Docker's default set, so Gradescope) where the mount and
network namespaces of ``limits.enter_sandbox`` are unavailable:

1. Landlock (kernel ``Documentation/userspace-api/landlock.rst``): the
   process may read only the folders it is given and write only its
   scratch; from ABI 4 no TCP bind/connect; from ABI 6 no signal to, and no
   abstract unix socket connection to, a process outside its domain.
2. seccomp-BPF (``Documentation/userspace-api/seccomp_filter.rst``): the
   system calls that reach past those rules (ptrace, new namespaces,
   mounts, kernel modules, bpf, io_uring, non-unix sockets...) fail with
   EPERM, so the student sees a clean ``PermissionError``.

Both are inherited by every child and cannot be lifted. Landlock does not
touch file descriptors opened before :func:`confine` (pipes to the grader
keep working), nor imports already done; anything imported, loaded or
opened later must be under ``read_dirs``. Up to ABI 7 Landlock does not
check ``stat``/``chdir`` (names and sizes outside stay visible), UDP (seccomp
denies inet sockets), nor connecting to a *named* unix socket: the
separate uid must protect those. Pure ctypes, Linux only.
"""
from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Layer:
    """One protection, for the grader's log: its name, whether it is in
    force, and what it does (or why it is missing)."""

    name: str
    active: bool
    detail: str


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_ARCH = os.uname().machine
# Syscall numbers: Landlock's are the same on every architecture.
_SYS = {"x86_64": {"seccomp": 317}, "aarch64": {"seccomp": 277}}.get(_ARCH, {})
_SYS.update(landlock_create_ruleset=444, landlock_add_rule=445, landlock_restrict_self=446)


def _syscall(name: str, *args) -> int:
    # Plain ints go as longs: syscall(2) is variadic and reads every argument as one.
    args = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    ret = _libc.syscall(ctypes.c_long(_SYS[name]), *args)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")
    return ret


def _no_new_privs() -> None:
    # Required by both landlock_restrict_self and seccomp for a process
    # without CAP_SYS_ADMIN: no execve may grant privileges afterwards.
    if _libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        err = ctypes.get_errno()
        raise OSError(err, f"PR_SET_NO_NEW_PRIVS: {os.strerror(err)}")


# ---------------------------------------------------------------- Landlock
# Access rights (include/uapi/linux/landlock.h), with the ABI that added them.
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK = 1 << 8, 1 << 9, 1 << 10, 1 << 11
FS_MAKE_SYM, FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 12, 1 << 13, 1 << 14, 1 << 15
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6
KNOWN_ABI = 7  # ABI 7 only added audit logging flags
READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
# No MAKE_CHAR/MAKE_BLOCK even in scratch: a process that keeps CAP_MKNOD
# (root in Docker's set) could otherwise make a node for the raw disk there
# and read it past every path rule. No EXECUTE: nothing needs to run
# programs written at grading time.
WRITE = (FS_READ_FILE | FS_READ_DIR | FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_DIR
         | FS_MAKE_REG | FS_MAKE_SOCK | FS_MAKE_FIFO | FS_MAKE_SYM | FS_REFER | FS_TRUNCATE | FS_IOCTL_DEV)
# Rights that mean something on a file (a rule on a file with others is EINVAL).
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV


class _RulesetAttr(ctypes.Structure):
    """struct landlock_ruleset_attr { __u64 handled_access_fs;
    __u64 handled_access_net; __u64 scoped; } (24 bytes; older kernels know
    a prefix and accept the rest as long as it is zero)."""

    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    """struct landlock_path_beneath_attr { __u64 allowed_access;
    __s32 parent_fd; } __attribute__((packed)) (12 bytes)."""

    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0 when unavailable: old kernel,
    Landlock not in the boot's LSM list, or the syscall filtered)."""
    try:  # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
        return _syscall("landlock_create_ruleset", None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except OSError:
        return 0


def restrict_filesystem(read_dirs: list[str], write_dirs: list[str]) -> Layer:
    """Bind this thread and its future children to a Landlock domain: read
    and execute beneath ``read_dirs``, read and write beneath ``write_dirs``,
    nothing else for every file right the ABI knows. The same ruleset
    denies TCP bind/connect (ABI >= 4: network rights handled, no rule
    allows a port) and scopes abstract unix sockets and signals to the
    domain (ABI >= 6). Entries may be files (``/dev/null``); a device that
    needs ``ioctl`` or writes (``/dev/nvidia*``) belongs in ``write_dirs``.
    Missing paths are skipped and named in the detail. Raises OSError."""
    if any(os.path.realpath(p) == "/" for p in [*read_dirs, *write_dirs]):
        raise ValueError("'/' as a read or write folder would allow every file")
    abi = landlock_abi()
    if abi == 0:
        return Layer("landlock", False, "Landlock unavailable in this kernel")
    handled = _FS_BY_ABI[max(k for k in _FS_BY_ABI if k <= abi)]
    attr = _RulesetAttr(handled, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0,
                        SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0)
    ruleset = _syscall("landlock_create_ruleset", ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
                       ctypes.c_uint32(0))
    skipped = []
    try:
        for paths, rights in ((read_dirs, READ), (write_dirs, WRITE)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    skipped.append(path)
                    continue
                try:
                    allowed = rights & handled & (~0 if os.path.isdir(path) else _FILE_RIGHTS)
                    rule = _PathBeneathAttr(allowed, fd)
                    _syscall("landlock_add_rule", ruleset, 1, ctypes.byref(rule), 0)  # RULE_PATH_BENEATH
                finally:
                    os.close(fd)
        _no_new_privs()
        _syscall("landlock_restrict_self", ruleset, 0)
    finally:
        os.close(ruleset)
    newer = f"; kernel ABI {abi} is newer than the {KNOWN_ABI} known here" if abi > KNOWN_ABI else ""
    missing = f"; skipped missing {', '.join(skipped)}" if skipped else ""
    return Layer("landlock", True, f"ABI {abi}: read {len(read_dirs)} paths, write {len(write_dirs)}{newer}{missing}")


# ----------------------------------------------------------------- seccomp
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# name: (x86_64, aarch64) from asm/unistd_64.h and asm-generic/unistd.h.
DENIED = {
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "pidfd_getfd": (438, 438), "process_madvise": (440, 440),
    "kexec_load": (246, 104), "kexec_file_load": (320, 294),
    "init_module": (175, 105), "finit_module": (313, 273), "delete_module": (176, 106),
    "mount": (165, 40), "umount2": (166, 39), "pivot_root": (155, 41), "chroot": (161, 51),
    "open_tree": (428, 428), "move_mount": (429, 429), "fsopen": (430, 430), "fsconfig": (431, 431),
    "fsmount": (432, 432), "fspick": (433, 433), "mount_setattr": (442, 442), "open_tree_attr": (467, 467),
    "unshare": (272, 97), "setns": (308, 268), "bpf": (321, 280), "perf_event_open": (298, 241),
    "keyctl": (250, 219), "add_key": (248, 217), "request_key": (249, 218), "userfaultfd": (323, 282),
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426), "io_uring_register": (427, 427),
    "open_by_handle_at": (304, 265),
}
_CHECKED = {"socket": (41, 198), "socketpair": (53, 199), "clone": (56, 220), "clone3": (435, 435),
            "personality": (135, 92)}
AF_UNIX = 1
CLONE_NEW_ANY = 0x7E020000  # CLONE_NEW{NS,CGROUP,UTS,IPC,USER,PID,NET}
PER_QUERY = 0xFFFFFFFF
_RET_KILL_PROCESS, _RET_ERRNO, _RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06  # BPF_LD|W|ABS, BPF_JMP|..|K, BPF_RET|K


class _SockFilter(ctypes.Structure):
    """struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; }."""

    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    """struct sock_fprog { unsigned short len; struct sock_filter *filter; }."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _ret(value: int) -> tuple:
    return (_RET, 0, 0, value)


def _arg0() -> tuple:
    # struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer;
    # __u64 args[6]; }: args[0] at offset 16, its low half first (both
    # architectures here are little-endian; the arch check pins that).
    return (_LD_ABS, 0, 0, 16)


def _when(nr: int, body: list[tuple]) -> list[tuple]:
    """``body`` (which must end in a return) runs when the syscall is ``nr``."""
    return [(_JEQ, 0, len(body), nr)] + body


def filter_program(arch: str) -> list[tuple]:
    """The BPF program for ``arch`` as (code, jt, jf, k) tuples."""
    i = {"x86_64": 0, "aarch64": 1}[arch]
    eperm = _ret(_RET_ERRNO | errno.EPERM)
    prog = [(_LD_ABS, 0, 0, 4), (_JEQ, 1, 0, _AUDIT_ARCH[arch]),
            _ret(_RET_KILL_PROCESS),  # another ABI (i386 via int 0x80): numbers below would lie
            (_LD_ABS, 0, 0, 0)]
    if arch == "x86_64":  # x32 calls share AUDIT_ARCH_X86_64 but carry bit 30
        prog += [(_JGE, 0, 1, 0x40000000), eperm]
    for nrs in DENIED.values():
        prog += _when(nrs[i], [eperm])
    n = {name: nrs[i] for name, nrs in _CHECKED.items()}
    for name in ("socket", "socketpair"):  # unix sockets only
        prog += _when(n[name], [_arg0(), (_JEQ, 0, 1, AF_UNIX), _ret(_RET_ALLOW), eperm])
    prog += _when(n["clone"], [_arg0(), (_JSET, 0, 1, CLONE_NEW_ANY), eperm, _ret(_RET_ALLOW)])
    # clone3 passes its flags in memory, which BPF cannot read: ENOSYS
    # makes glibc fall back to clone (what Docker's own profile does).
    prog += _when(n["clone3"], [_ret(_RET_ERRNO | errno.ENOSYS)])
    prog += _when(n["personality"], [_arg0(), (_JEQ, 2, 0, PER_QUERY), (_JEQ, 1, 0, 0), eperm, _ret(_RET_ALLOW)])
    return prog + [_ret(_RET_ALLOW)]


def install_seccomp() -> Layer:
    """Install :func:`filter_program` on every thread of the process
    (SECCOMP_FILTER_FLAG_TSYNC). Kept: ``kill``/``tkill``/``tgkill`` (a
    student may stop its own children; Landlock's signal scope and the
    separate uid protect everything else) and ``socket(AF_UNIX)`` (pipes
    to the grader are inherited fds, but ``asyncio`` makes a socketpair and
    torch's DataLoader workers pass tensors over a unix socket in the
    scratch folder). Raises OSError."""
    if _ARCH not in _AUDIT_ARCH:
        return Layer("seccomp", False, f"no syscall table for {_ARCH}: filter not installed")
    insns = filter_program(_ARCH)
    array = (_SockFilter * len(insns))(*[_SockFilter(*ins) for ins in insns])
    prog = _SockFprog(len(insns), array)
    _no_new_privs()
    # seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog)
    _syscall("seccomp", 1, 1, ctypes.byref(prog))
    return Layer("seccomp", True, f"{len(insns)} instructions, {_ARCH}: EPERM for "
                 f"{len(DENIED)} calls, non-unix sockets, namespaces in clone, personality changes")


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


def _attempt(name: str, step, *args) -> Layer:
    try:
        return step(*args)
    except Exception as e:  # noqa: BLE001  (the log says what is missing)
        return Layer(name, False, f"{type(e).__name__}: {e}")


def confine(read_dirs: list[str], write_dirs: list[str], threads: int | None = None) -> list[Layer]:
    """Apply Landlock, then seccomp; return one :class:`Layer` per
    protection: ``landlock``, ``landlock-tcp``, ``landlock-scope``,
    ``seccomp``, ``single-thread``. Never raises: a layer that fails is
    returned with ``active=False`` and the reason. Call it with one thread
    running (in a freshly forked process): Landlock binds only the calling
    thread and the ones it creates later; the seccomp filter is synced to
    all threads. ``threads``: the count, when the caller measured it
    before a chroot hid /proc."""
    threads = _threads() if threads is None else threads  # before Landlock hides /proc
    fs = _attempt("landlock", restrict_filesystem, read_dirs, write_dirs)
    abi = landlock_abi()
    tcp, scope = fs.active and abi >= 4, fs.active and abi >= 6
    return [
        fs,
        Layer("landlock-tcp", tcp, "TCP bind and connect denied" if tcp else
              f"needs Landlock ABI 4 and the landlock layer (ABI {abi}, landlock active={fs.active})"),
        Layer("landlock-scope", scope, "no signal or abstract unix socket reaches outside the sandbox" if scope else
              f"needs Landlock ABI 6 and the landlock layer (ABI {abi}, landlock active={fs.active})"),
        _attempt("seccomp", install_seccomp),
        Layer("single-thread", threads == 1, "confined with one thread running" if threads == 1 else
              f"{threads or 'unknown'} threads at confine: Landlock binds only the calling one"),
    ]
