"""Runs in: the sandbox. The jail: mounts, chroot, resource limits, privilege drop.

:func:`enter_sandbox` runs inside a freshly forked sandbox process, after
the zygote's imports and before any student code, in this order: measure
the address space already mapped (before chroot hides /proc), leave the
network, build the filesystem jail and chroot into it, drop to the
unprivileged account, set the rlimits, clear the environment.
"""
from __future__ import annotations

import ctypes
import os
import resource
import sys

from autograder.harness.protocol import SandboxLimits

MB = 1 << 20


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


def enter_sandbox(workdir: str, user: dict | None, limits: SandboxLimits) -> list[str]:
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
    # The address space limit counts what the preloaded libraries already
    # mapped, so the student's budget is added on top of it (read before
    # chroot hides /proc).
    mem = _vm_size() + limits.memory_mb * MB
    if user and os.geteuid() == 0:
        if not _unshare(CLONE_NEWNET):
            missing.append("network isolation (unshare of the network namespace failed)")
        if _unshare(CLONE_NEWNS):
            build_jail(workdir, list(limits.hidden_packages), gpu=limits.device != "cpu")
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
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes,) * 2)
    else:
        os.chdir(workdir)
        missing.append("not root: student code runs as the grader's user, can read what it can read, "
                       "and can use the network")
    os.umask(0o077)
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    fsize = limits.max_file_mb * MB
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.environ.clear()
    os.environ.update({"HOME": workdir, "TMPDIR": workdir, "PATH": "/usr/bin:/bin",
                       "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"})
    return missing
