"""Process isolation for the sandbox: user, resource limits, clean-up.

``enter_sandbox`` runs inside the sandbox process after its imports and
before any student code; the other functions run on the trusted side.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import pwd
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

MB = 1 << 20


@dataclass(frozen=True)
class SandboxUser:
    """The unprivileged account student code runs as.

    Attributes:
        name: account name.
        uid, gid: its numeric ids.
    """

    name: str
    uid: int
    gid: int


_held: dict[tuple[str, int], tuple[SandboxUser, int]] = {}
_held_lock = threading.Lock()
LOCK_DIR = "/tmp/sodl-sandbox-accounts"
MAX_ACCOUNTS = 64


def ensure_user(base: str, slot: int = 0) -> SandboxUser | None:
    """The sandbox account for this process's grading slot ``slot``.

    Every concurrent grading, in this process or any other on the machine,
    needs an account of its own: clean-up kills every process of the
    account. Accounts ``{base}0``, ``{base}1``... are claimed with a lock
    file held for the life of this process; one is created when missing.

    Returns None when not running as root: then student code runs as the
    grader's own user (the sandbox logs what protection is missing).
    """
    if os.geteuid() != 0:
        return None
    with _held_lock:
        if (base, slot) in _held:
            return _held[(base, slot)][0]
        os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
        taken = {u.name for u, _ in _held.values()}
        for i in range(MAX_ACCOUNTS):
            name = f"{base}{i}"
            if name in taken:
                continue
            fd = os.open(os.path.join(LOCK_DIR, f"{name}.lock"), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            user = _account(name)
            _held[(base, slot)] = (user, fd)
            return user
    raise RuntimeError(f"all {MAX_ACCOUNTS} sandbox accounts {base}N are in use by other graders")


def _account(name: str) -> SandboxUser:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=False, capture_output=True,
        )
        entry = pwd.getpwnam(name)  # (another grader may have created it meanwhile)
    return SandboxUser(name, entry.pw_uid, entry.pw_gid)


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _unshare(flag: int) -> bool:
    try:
        return _libc().unshare(flag) == 0
    except (OSError, AttributeError):
        return False


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = lambda v: None if v is None else str(v).encode()  # noqa: E731
    if _libc().mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def python_dirs() -> list[str]:
    """Folders the sandbox may read: the standard library and site-packages
    (never the current folder, never a source checkout)."""
    import sysconfig

    paths = sysconfig.get_paths()
    dirs = {paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"]}
    dirs |= {p for p in sys.path if p and os.path.basename(p) in ("site-packages", "dist-packages", "lib-dynload")}
    dirs = sorted(os.path.realpath(d) for d in dirs if os.path.isdir(d))
    keep = []
    for d in dirs:  # drop folders inside one already kept
        if d != "/" and not any(d == k or d.startswith(k + os.sep) for k in keep):
            keep.append(d)
    return keep


def build_jail(root: str, hidden_packages: list[str], gpu: bool = False) -> None:
    """Make ``root`` a minimal filesystem: read-only Python folders, a few
    devices, and empty folders over the hidden packages. Must run as root
    in a fresh mount namespace; the mounts vanish with the namespace."""
    import importlib.util

    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    for d in python_dirs():
        target = root + d
        os.makedirs(target, exist_ok=True)
        _mount(d, target, None, MS_BIND | MS_REC)
        _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    for name in hidden_packages:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        for loc in (spec.submodule_search_locations or []) if spec else []:
            if os.path.isdir(root + os.path.realpath(loc)):
                _mount("tmpfs", root + os.path.realpath(loc), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k")
    os.makedirs(root + "/dev", exist_ok=True)
    devices = list(DEVICES)
    if gpu:  # the CUDA driver needs its device files and /proc
        devices += sorted(os.path.join("/dev", d) for d in os.listdir("/dev") if d.startswith("nvidia"))
        os.makedirs(root + "/proc", exist_ok=True)
        _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV)
    for dev in devices:
        if os.path.exists(dev):
            open(root + dev, "a").close()
            _mount(dev, root + dev, None, MS_BIND)
    os.makedirs(root + "/tmp", exist_ok=True)


def enter_sandbox(start: dict) -> list[str]:
    """Drop privileges and set limits (called inside the sandbox process,
    after its imports, before any student code). Returns the protections
    that could not be applied, for the grader's log.

    As root: no network (an empty network namespace); a private mount
    namespace where the scratch folder becomes ``/`` holding only read-only
    Python folders (hidden tests, ``sodl_ref``, the zip and the results are
    simply not there); then the unprivileged account. Not as root: only
    the resource limits.
    """
    missing = []
    workdir = start["workdir"]
    user = start.get("user")
    # The address space limit counts what the preloaded libraries already
    # mapped, so the student's budget is added on top of it (read before
    # chroot hides /proc).
    mem = _vm_size() + start["memory_mb"] * MB
    if user and os.geteuid() == 0:
        if not _unshare(CLONE_NEWNET):
            missing.append("network isolation (unshare of the network namespace failed)")
        if _unshare(CLONE_NEWNS):
            build_jail(workdir, list(start.get("hidden_packages", [])), gpu=start.get("device", "cpu") != "cpu")
            os.chroot(workdir)
            workdir = "/tmp"
            os.chmod(workdir, 0o1777)
            os.chdir(workdir)
        else:
            missing.append("filesystem jail (no mount namespace): student code can read every file "
                           "its account can read; keep tests and sodl_ref unreadable to other users")
            os.chdir(workdir)
        os.setgroups([])
        os.setgid(user["gid"])
        os.setuid(user["uid"])
        resource.setrlimit(resource.RLIMIT_NPROC, (start["max_processes"],) * 2)
    else:
        os.chdir(workdir)
        missing.append("not root: student code runs as the grader's user, can read what it can read, "
                       "and can use the network")
    os.umask(0o077)
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (start["cpu_seconds"], start["cpu_seconds"] + 5))
    fsize = start["max_file_mb"] * MB
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.environ.clear()
    os.environ.update({"HOME": workdir, "TMPDIR": workdir, "PATH": "/usr/bin:/bin",
                       "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"})
    return missing


def parent_pids() -> dict[int, int]:
    """pid -> parent pid of every process we can see."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
            out[int(entry)] = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return out


def descendants(root_pid: int, parents: dict[int, int] | None = None) -> set[int]:
    """Every process below ``root_pid`` (not itself), from ``parents``
    (:func:`parent_pids` when not given)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in (parent_pids() if parents is None else parents).items():
        children.setdefault(ppid, []).append(pid)
    found, stack = set(), list(children.get(root_pid, []))
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack += children.get(pid, [])
    return found


def _pids_to_kill(root_pid: int, user: SandboxUser | None) -> set[int]:
    """Every process the submission started: all descendants of the zygote
    (a child subreaper, so detached ones stay below it) and, when grading
    as root, every process of the sandbox account."""
    parents = parent_pids()
    found = descendants(root_pid, parents)
    if user is not None:
        for pid in parents:
            try:
                if os.stat(f"/proc/{pid}").st_uid == user.uid:
                    found.add(pid)
            except OSError:
                continue
    found.discard(os.getpid())
    found.discard(root_pid)
    return found


def kill_everything(root_pid: int, user: SandboxUser | None) -> None:
    """SIGKILL every process below ``root_pid`` (and of ``user``), repeating
    until nothing is left (a fork bomb keeps forking while we kill)."""
    for _ in range(100):
        pids = _pids_to_kill(root_pid, user)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)
