"""Landlock + seccomp confinement (``autograder.harness.confinement``).

Confinement cannot be undone, so every test runs a fresh child Python that
confines itself (``mode``: nothing, Landlock only, seccomp only, or
``confine``) and then tries each named probe, reporting ``ok`` or the errno
name. The parent holds the targets: a file outside the read folders, a TCP
listener on loopback, an abstract unix listener, its own memory and pid.
The unconfined control shows every probe can succeed, so each denial is
the confinement's doing.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from autograder.harness import confinement

REPO = Path(__file__).resolve().parents[2]
ABI = confinement.landlock_abi()
SETPRIV = ["setpriv", "--inh-caps=-all", "--bounding-set=-all,+chown,+dac_override,+fowner,+fsetid,+kill,"
           "+setgid,+setuid,+setpcap,+setfcap,+net_bind_service,+net_raw,+sys_chroot,+mknod,+audit_write"]
CAP_SYS_ADMIN = 21

needs_landlock = pytest.mark.skipif(ABI == 0, reason="this kernel has no Landlock")
needs_seccomp_table = pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"),
                                         reason="no syscall table for this architecture")

CHILD = r'''
import ctypes, errno, json, os, signal, socket, subprocess, sys, sysconfig
from autograder.harness import confinement

cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
ppid = os.getppid()
cap_eff = next(int(l.split()[1], 16) for l in open("/proc/self/status") if l.startswith("CapEff:"))

def check(ret):
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))

def write_ok():
    p = os.path.join(cfg["scratch"], "new.txt")
    with open(p, "w") as f:
        f.write("x")
    os.rename(p, p + ".2"); os.truncate(p + ".2", 0); os.mkdir(p + ".d"); os.rmdir(p + ".d"); os.remove(p + ".2")

def vm_readv_parent():
    class iovec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
    buf = ctypes.create_string_buffer(8)
    local, remote = iovec(ctypes.addressof(buf), 8), iovec(cfg["parent_addr"], 8)
    libc.process_vm_readv.restype = ctypes.c_ssize_t
    check(libc.process_vm_readv(ppid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))

def kill_own_child():
    pid = os.fork()
    if pid == 0:
        signal.pause(); os._exit(0)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)

def thread():
    import threading
    t = threading.Thread(target=lambda: None); t.start(); t.join()

def tcp_bind():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))

def grandchild_read_etc():  # a program it starts inherits both layers
    code = "import sys\ntry:\n open('/etc/hostname').read()\nexcept PermissionError:\n sys.exit(13)"
    r = subprocess.run([os.path.realpath(sys.executable), "-I", "-S", "-c", code], capture_output=True)
    if r.returncode:
        raise OSError(13 if r.returncode == 13 else errno.EIO, r.stderr.decode()[-300:])

probes = {
    "read_ok": lambda: open(cfg["readable"]).read(),
    "read_outside": lambda: open(cfg["outside"]).read(),
    "read_etc": lambda: open("/etc/hostname").read(),
    "read_checkout": lambda: open(cfg["checkout_file"]).read(),
    "list_outside": lambda: os.listdir(os.path.dirname(cfg["outside"])),
    "write_ok": write_ok,
    "write_outside": lambda: open(cfg["outside"] + ".new", "w").close(),
    "tcp_connect": lambda: socket.create_connection(("127.0.0.1", cfg["tcp_port"]), timeout=5).close(),
    "tcp_bind": tcp_bind,
    "socket_inet": lambda: socket.socket(socket.AF_INET).close(),
    "socket_inet6_udp": lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close(),
    "socket_netlink": lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW).close(),
    "socket_unix": lambda: socket.socket(socket.AF_UNIX).close(),
    "socketpair": lambda: [s.close() for s in socket.socketpair()],
    "abstract_connect": lambda: socket.socket(socket.AF_UNIX).connect(cfg["abstract"]),
    "ptrace_parent": lambda: check(libc.ptrace(0x4206, ppid, None, None)),  # PTRACE_SEIZE: never stops it
    "vm_readv_parent": vm_readv_parent,
    "kill_parent": lambda: os.kill(ppid, 0),
    "kill_own_child": kill_own_child,
    "thread": thread,
    "unshare_user": lambda: check(libc.unshare(0x10000000)),  # CLONE_NEWUSER
    "personality_query": lambda: check(libc.personality(0xFFFFFFFF)),
    "personality_no_aslr": lambda: check(libc.personality(0x0040000)),  # ADDR_NO_RANDOMIZE
    "grandchild_read_etc": grandchild_read_etc,
}

paths = sysconfig.get_paths()
read_dirs = sorted({paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}) + [
    os.path.dirname(cfg["readable"]), os.path.dirname(os.path.realpath(sys.executable)),
    "/usr/lib", "/usr/lib64", "/dev/null", "/dev/urandom"]
mode = cfg["mode"]
if mode == "broken_landlock":  # a syscall that fails must not stop the other layers
    confinement._SYS["landlock_restrict_self"] = 999999
layers = []
if mode in ("landlock", "seccomp"):
    layers = [{"landlock": confinement.restrict_filesystem, "seccomp": confinement.install_seccomp}[mode](
        *([read_dirs, [cfg["scratch"]]] if mode == "landlock" else []))]
elif mode != "none":
    layers = confinement.confine(read_dirs, [cfg["scratch"]])
results = {}
for name in cfg["probes"]:
    try:
        probes[name]()
        results[name] = "ok"
    except OSError as e:
        results[name] = errno.errorcode.get(e.errno, str(e))
print(json.dumps({"layers": [l.__dict__ for l in layers], "results": results, "cap_eff": cap_eff}))
'''


@pytest.fixture
def targets(tmp_path):
    """Files, a loopback TCP listener and an abstract unix listener."""
    (tmp_path / "readable").mkdir()
    (tmp_path / "scratch").mkdir()
    (tmp_path / "readable" / "data.txt").write_text("allowed")
    (tmp_path / "secret.txt").write_text("hidden test")
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    abstract = f"\0sodl-confine-test-{uuid.uuid4().hex}"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(abstract)
    unix.listen(8)
    sentinel = b"parent memory"
    yield {"readable": str(tmp_path / "readable" / "data.txt"), "scratch": str(tmp_path / "scratch"),
           "outside": str(tmp_path / "secret.txt"), "checkout_file": str(REPO / "sodl_ref" / "__init__.py"),
           "tcp_port": tcp.getsockname()[1], "abstract": abstract, "parent_addr": id(sentinel)}
    tcp.close()
    unix.close()


def run_child(targets: dict, mode: str, probes: list[str], prefix: list[str] = ()) -> dict:
    cfg = dict(targets, mode=mode, probes=probes)
    r = subprocess.run([*prefix, sys.executable, "-c", CHILD, json.dumps(cfg)],
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


ALWAYS_POSSIBLE = ["read_ok", "read_outside", "read_etc", "read_checkout", "write_ok", "write_outside",
                   "tcp_connect", "socket_inet", "socket_inet6_udp", "socket_unix", "socketpair",
                   "abstract_connect", "vm_readv_parent", "kill_parent", "kill_own_child", "thread",
                   "personality_query", "grandchild_read_etc"]


def test_unconfined_child_can_do_every_probe(targets):
    """The control: without confinement every probe succeeds (as root here),
    so the denials below are the confinement's doing."""
    out = run_child(targets, "none", ALWAYS_POSSIBLE)
    assert out["results"] == {p: "ok" for p in ALWAYS_POSSIBLE}


@needs_landlock
def test_landlock_reads_only_read_dirs_and_writes_only_scratch(targets):
    probes = ["read_ok", "write_ok", "read_outside", "read_etc", "read_checkout", "list_outside",
              "write_outside", "socket_inet"]
    out = run_child(targets, "landlock", probes)
    assert out["layers"][0]["active"], out["layers"]
    assert out["results"] == {"read_ok": "ok", "write_ok": "ok", "read_outside": "EACCES", "read_etc": "EACCES",
                              "read_checkout": "EACCES", "list_outside": "EACCES", "write_outside": "EACCES",
                              "socket_inet": "ok"}  # (sockets are seccomp's part)


@needs_landlock
@pytest.mark.skipif(ABI < 4, reason=f"Landlock ABI {ABI} has no TCP rights (needs 4)")
def test_landlock_denies_tcp_connect_and_bind(targets):
    out = run_child(targets, "landlock", ["tcp_connect", "tcp_bind"])
    assert out["results"] == {"tcp_connect": "EACCES", "tcp_bind": "EACCES"}


@needs_landlock
@pytest.mark.skipif(ABI < 6, reason=f"Landlock ABI {ABI} has no scopes (needs 6)")
def test_landlock_scopes_signals_and_abstract_sockets(targets):
    out = run_child(targets, "landlock", ["kill_parent", "abstract_connect", "kill_own_child", "ptrace_parent",
                                          "vm_readv_parent"])
    assert out["results"] == {"kill_parent": "EPERM", "abstract_connect": "EPERM", "kill_own_child": "ok",
                              # Landlock alone already forbids ptrace of a process outside the domain
                              "ptrace_parent": "EPERM", "vm_readv_parent": "EPERM"}


@needs_seccomp_table
def test_seccomp_denies_with_eperm_and_keeps_what_python_needs(targets):
    denied = ["socket_inet", "socket_inet6_udp", "socket_netlink", "tcp_connect", "ptrace_parent",
              "vm_readv_parent", "unshare_user", "personality_no_aslr"]
    kept = ["socket_unix", "socketpair", "thread", "kill_own_child", "personality_query", "read_etc"]
    out = run_child(targets, "seccomp", denied + kept)
    assert out["layers"][0]["active"], out["layers"]
    assert out["results"] == {p: "EPERM" for p in denied} | {p: "ok" for p in kept}


CONFINED = {"read_ok": "ok", "write_ok": "ok", "read_outside": "EACCES", "read_etc": "EACCES",
            "read_checkout": "EACCES", "write_outside": "EACCES", "tcp_connect": "EPERM", "socket_inet": "EPERM",
            "ptrace_parent": "EPERM", "vm_readv_parent": "EPERM", "kill_parent": "EPERM",
            "abstract_connect": "EPERM", "kill_own_child": "ok", "thread": "ok", "grandchild_read_etc": "EACCES"}


def expected_layers() -> dict[str, bool]:
    seccomp = platform.machine() in ("x86_64", "aarch64")
    return {"landlock": ABI > 0, "landlock-tcp": ABI >= 4, "landlock-scope": ABI >= 6, "seccomp": seccomp,
            "single-thread": True}


@needs_landlock
def test_confine_applies_every_layer_and_reports_each(targets):
    out = run_child(targets, "confine", list(CONFINED))
    assert {l["name"]: l["active"] for l in out["layers"]} == expected_layers(), out["layers"]
    want = CONFINED if ABI >= 6 else {k: v for k, v in CONFINED.items() if k not in ("kill_parent", "abstract_connect")}
    assert {k: out["results"][k] for k in want} == want


@needs_landlock
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_confine_works_without_cap_sys_admin(targets):
    """Docker's default capability set (Gradescope): namespaces are out of
    reach, Landlock and seccomp are not."""
    out = run_child(targets, "confine", list(CONFINED), prefix=SETPRIV)
    assert not out["cap_eff"] & (1 << CAP_SYS_ADMIN)
    assert {l["name"]: l["active"] for l in out["layers"]} == expected_layers(), out["layers"]
    want = CONFINED if ABI >= 6 else {k: v for k, v in CONFINED.items() if k not in ("kill_parent", "abstract_connect")}
    assert {k: out["results"][k] for k in want} == want


@needs_seccomp_table
def test_a_failing_layer_is_reported_not_raised(targets):
    out = run_child(targets, "broken_landlock", ["read_etc", "socket_inet"])
    layers = {l["name"]: l for l in out["layers"]}
    assert not layers["landlock"]["active"] and "landlock_restrict_self" in layers["landlock"]["detail"]
    assert not layers["landlock-tcp"]["active"] and not layers["landlock-scope"]["active"]
    assert layers["seccomp"]["active"]
    assert out["results"] == {"read_etc": "ok", "socket_inet": "EPERM"}


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_filter_checks_the_architecture_first(arch):
    prog = confinement.filter_program(arch)
    assert prog[0] == (0x20, 0, 0, 4)  # load seccomp_data.arch
    assert prog[1][0] == 0x15 and prog[1][3] == {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[arch]
    assert prog[2] == (0x06, 0, 0, 0x80000000)  # any other ABI: kill the process
    assert prog[-1] == (0x06, 0, 0, 0x7FFF0000) and len(prog) < 4096
    for code, jt, jf, _ in prog:  # every jump lands inside the program
        assert code & 0x07 != 0x05 or max(jt, jf) < len(prog)


def test_root_as_a_folder_is_refused_before_anything_is_applied():
    with pytest.raises(ValueError, match="every file"):
        confinement.restrict_filesystem(["/usr/lib", "/"], [])
