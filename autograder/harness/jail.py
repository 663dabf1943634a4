"""Runs in: the sandbox. The jail: mounts, chroot, resource limits, privilege drop, confinement.

:func:`enter_sandbox` runs inside a freshly forked sandbox process, after
the zygote's imports and before any student code, in this order: measure
the address space already mapped (before chroot hides /proc), leave the
network, build the filesystem jail and chroot into it, drop to the
unprivileged account, set the rlimits, clear the environment, replace
every inherited descriptor but the grader's pipes by /dev/null, and last
confine the process (``confinement.confine``: Landlock and seccomp, which
need no capability). Namespaces and chroot need ``CAP_SYS_ADMIN``, which
Docker's default set (so Gradescope) lacks; Landlock and seccomp do not,
so the same files stay out of reach in both modes, and where both apply
they stack. Every layer, in force or missing, is reported to the grader.
"""
from __future__ import annotations

import ctypes
import glob
import os
import resource
import sys

from autograder.harness import confinement
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


def hidden_locations(hidden_packages) -> list[str]:
    """The folders (or single-file modules) of the packages student code
    must not read, resolved without importing them."""
    import importlib.util

    found = []
    for name in hidden_packages:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        locs = list(spec.submodule_search_locations or []) or ([spec.origin] if spec.origin else [])
        found += [os.path.realpath(loc) for loc in locs if os.path.exists(loc)]
    return found


def allow_list(dirs: list[str], hidden: list[str]) -> list[str]:
    """``dirs`` with every path in ``hidden`` carved out.

    Landlock rules only allow, and a rule on a folder allows everything
    beneath it: a site-packages folder holding ``sodl_ref`` (the
    Gradescope venv installs the course wheel there) cannot be allowed
    whole. A folder that contains a hidden path is replaced by its
    entries, recursively, leaving the hidden path itself out."""
    hidden = [os.path.realpath(h) for h in hidden]
    out: list[str] = []
    for d in dirs:
        real = os.path.realpath(d)
        if any(real == h or real.startswith(h + os.sep) for h in hidden):
            continue
        if any(h.startswith(real + os.sep) for h in hidden) and os.path.isdir(real):
            try:
                entries = sorted(os.listdir(real))
            except OSError:
                continue
            out += allow_list([os.path.join(real, e) for e in entries], hidden)
        else:
            out.append(real)
    return out


# Shared libraries an import after confinement may load (numpy's lazy
# modules need libstdc++), and the loader's cache. The multiarch folders,
# not /usr/lib whole (which may hold a system site-packages).
LIBRARY_DIRS = ("/lib64", "/usr/lib64", "/etc/ld.so.cache", *sorted(set(
    glob.glob("/lib/*-linux-gnu") + glob.glob("/usr/lib/*-linux-gnu"))))


def _mapped_dirs() -> set[str]:
    """Folders of the shared libraries this process has loaded (a wheel's
    bundled ``.libs`` folder, a conda prefix), so a library they load
    lazily later is found."""
    dirs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith("/") and ".so" in parts[5]:
                    dirs.add(os.path.dirname(parts[5].strip()))
    except OSError:
        pass
    return dirs


def confinement_paths(workdir: str, hidden: list[str], gpu: bool,
                      mapped: set[str] = frozenset()) -> tuple[list[str], list[str]]:
    """What Landlock lets the sandbox read and write: the Python folders
    and shared libraries (without the hidden packages), the devices, and
    the scratch folder. Inside the chroot the same paths exist (the jail
    binds them at their own names), so one list serves both modes.
    ``mapped``: folders of the libraries already loaded (read before a
    chroot hides /proc)."""
    reads = python_dirs() + list(LIBRARY_DIRS) + sorted(mapped) + ["/dev/zero", "/dev/urandom", "/dev/random"]
    # Not /dev/shm: tmpfs is memory that RLIMIT_AS does not count and that
    # outlives the sandbox (16 MB files without end, kept after grading, a
    # channel to the next submission); the jail has none either, so the same
    # notebook grades the same in both modes.
    writes = [workdir, "/dev/null"]
    if gpu:  # the CUDA driver's devices and what it reads of /proc and /sys (untested on a GPU here)
        writes += sorted(glob.glob("/dev/nvidia*"))
        reads += ["/proc/driver/nvidia", "/sys/bus/pci", "/sys/devices"]
    return sorted(set(allow_list(reads, hidden))), writes


def seal_descriptors(keep: set[int]) -> None:
    """Replace every open descriptor but ``keep`` (and 0-2) by /dev/null:
    Landlock does not check descriptors opened before it, so one left open
    on a test, the zip or a results folder would stay readable. dup2 and
    not close: a library that closes its old descriptor later closes
    /dev/null, never one opened since."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd > 2 and fd not in keep and fd != devnull:
            try:
                os.fstat(fd)
                os.dup2(devnull, fd)
            except OSError:
                pass
    os.close(devnull)


def enter_sandbox(workdir: str, user: dict | None, limits: SandboxLimits,
                  keep_fds: set[int] = frozenset()) -> list[confinement.Layer]:
    """Drop privileges, set limits and confine (called inside the sandbox
    process, after its imports, before any student code). Returns every
    protection layer, in force or missing, for the grader's log.

    As root: no network (an empty network namespace); a private mount
    namespace where the scratch folder becomes ``/`` holding only read-only
    Python folders (hidden tests, ``sodl_ref``, the zip and the results are
    simply not there); then the unprivileged account. Not as root: the
    grader's own account. In every mode: the resource limits, then
    Landlock (reads only of the Python folders minus the hidden packages,
    writes only of the scratch folder; no TCP; no signal or abstract socket
    outside the sandbox) and seccomp (no inet sockets, ptrace,
    process_vm_readv, namespaces, mounts).
    """
    layers = []
    hidden = hidden_locations(limits.hidden_packages)
    gpu = limits.device != "cpu"
    # The address space limit counts what the preloaded libraries already
    # mapped, so the student's budget is added on top of it (read before
    # chroot hides /proc).
    mem = _vm_size() + limits.memory_mb * MB
    mapped = _mapped_dirs()
    threads = len(os.listdir("/proc/self/task"))  # Landlock binds only this thread: there must be one
    # What Landlock will allow, listed now: after the privilege drop the
    # account may not read the Python folders (nor import ``sysconfig``).
    reads, writes = confinement_paths(workdir, hidden, gpu, mapped)
    jailed = False
    if user and os.geteuid() == 0:
        net = _unshare(CLONE_NEWNET)
        layers.append(confinement.Layer("network-namespace", net, "an empty network namespace" if net else
                                        "unshare(CLONE_NEWNET) failed (no CAP_SYS_ADMIN?)"))
        if _unshare(CLONE_NEWNS):
            build_jail(workdir, list(limits.hidden_packages), gpu=gpu)
            os.chroot(workdir)
            workdir = "/tmp"
            os.chmod(workdir, 0o1777)
            os.chdir(workdir)
            jailed = True
            writes[0] = workdir  # the same names inside the chroot, the scratch folder renamed
            layers.append(confinement.Layer("mount-namespace-chroot", True,
                                            "the scratch folder is / with read-only Python folders"))
        else:
            layers.append(confinement.Layer("mount-namespace-chroot", False,
                                            "unshare(CLONE_NEWNS) failed (no CAP_SYS_ADMIN?)"))
            os.chdir(workdir)
        # What exists, looked up while still root (the account may not even see the Python folders).
        reads, writes = [p for p in reads if os.path.exists(p)], [p for p in writes if os.path.exists(p)]
        if not jailed:  # keep capabilities across setuid, to keep one of them (see _files_through_landlock)
            _libc().prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)
        os.setgroups([])
        os.setgid(user["gid"])
        os.setuid(user["uid"])
        layers.append(confinement.Layer("account", True, f"uid {user['uid']}, no supplementary groups"))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes,) * 2)
    else:
        os.chdir(workdir)
        reads, writes = [p for p in reads if os.path.exists(p)], [p for p in writes if os.path.exists(p)]
        layers.append(confinement.Layer("account", False, "not root: student code runs as the grader's user"))
    os.umask(0o077)
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    fsize = limits.max_file_mb * MB
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    layers.append(confinement.Layer("rlimits", True, "address space, CPU, file size, no core dumps"))
    os.environ.clear()
    os.environ.update({"HOME": workdir, "TMPDIR": workdir, "MPLCONFIGDIR": workdir, "PATH": "/usr/bin:/bin",
                       "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"})
    seal_descriptors(set(keep_fds))
    keeps_cap = bool(user) and os.geteuid() == user["uid"] and not jailed
    if keeps_cap:  # to open the Python folders for Landlock's rules; kept only under Landlock (below)
        try:
            _set_capabilities(1 << CAP_DAC_OVERRIDE)
        except OSError:  # not in this process's set: the rules name what the account can open
            _set_capabilities(0)
    confined = confinement.confine(reads, writes, threads)
    layers += confined
    if keeps_cap:
        layers.append(_files_through_landlock(any(x.name == "landlock" and x.active for x in confined)))
    return layers


PR_SET_KEEPCAPS = 8
CAP_DAC_OVERRIDE = 1
_CAP_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    """struct __user_cap_header_struct { __u32 version; int pid; }."""

    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    """struct __user_cap_data_struct { __u32 effective, permitted, inheritable; } (two of them in version 3)."""

    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _set_capabilities(mask: int) -> None:
    """Make ``mask`` (of the first 32 capabilities) this process's
    effective and permitted sets, and nothing inheritable (capset(2))."""
    data = (_CapData * 2)(_CapData(mask, mask, 0), _CapData(0, 0, 0))
    if _libc().capset(ctypes.byref(_CapHeader(_CAP_VERSION_3, 0)), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def _files_through_landlock(landlock_active: bool) -> confinement.Layer:
    """Without the jail, the sandbox account meets the machine's own file
    permissions: where Python lives under a folder only root may enter
    (``/root/.pyenv`` here and in CI), every import not done before the
    drop fails (``from scipy.special import comb`` inside a function: the
    answer key's mutant then "matched no mistake" and ``sodl build``
    failed its own check), so the same notebook graded differently with
    and without ``CAP_SYS_ADMIN``. The jail avoids it by binding the Python
    folders into a fresh tree; here the account keeps ``CAP_DAC_OVERRIDE``
    (in Docker's default set), and Landlock, already in force, is what
    decides which files it may read (the Python folders, less the hidden
    packages) and write (its scratch). Only when Landlock is active: else
    every capability is dropped. The capability does not survive an
    ``execve`` (no ambient set), and no other one is kept."""
    try:
        _set_capabilities(1 << CAP_DAC_OVERRIDE if landlock_active else 0)
    except OSError as e:
        _set_capabilities(0)
        return confinement.Layer("python-folders-readable", False, f"capset failed ({e}): imports after the "
                                 "privilege drop need the Python folders readable by the sandbox account")
    if not landlock_active:
        return confinement.Layer("python-folders-readable", False, "no Landlock, so no CAP_DAC_OVERRIDE: imports "
                                 "after the privilege drop need the Python folders readable by the account")
    return confinement.Layer("python-folders-readable", True, "CAP_DAC_OVERRIDE kept under Landlock: file "
                             "access is decided by Landlock's rules, not by the folders' owners")

