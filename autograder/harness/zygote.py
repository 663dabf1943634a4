"""Runs in: the zygote (a pre-imported process of its own). Forks one sandbox per submission.

Importing torch, numpy and scipy costs seconds; paying it once per grader
slot instead of once per submission is most of the speed of grading. The
zygote imports the preload modules (never tests, never ``sodl_ref``), then
waits on a Unix socket. For each request it receives three file
descriptors (requests, replies, output) and forks; the child starts a new
session, drops privileges and becomes a sandbox server (``sandbox_server``).
The zygote is a child subreaper, so every descendant of a submission,
detached ones included, stays findable below it until it is killed.

Run as ``python -m autograder.harness.zygote SOCKET_FD``, or forked from a
grading worker that has imported the same modules (``serve_forked``).
"""
from __future__ import annotations

import ctypes
import importlib
import json
import os
import signal
import socket
import sys

PR_SET_CHILD_SUBREAPER = 36


def _preload(names: list[str]) -> None:
    os.environ["MPLBACKEND"] = "Agg"
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional module may be missing
            pass
    _warm_up()


def _warm_up() -> None:
    """Initialise what needs the real /proc (torch's CPU detection) before a
    sandbox is jailed, and fix torch to one thread (no thread pool to break
    across fork). Other lazy imports stay lazy: the jail binds the Python
    folders read-only, and importing them here would cost every grader
    about 100 MB for modules most submissions never touch."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
        torch.backends.cpu.get_cpu_capability()  # reads /proc/cpuinfo
        str(torch.ones(2, dtype=torch.float64) @ torch.ones(2, dtype=torch.float64))


def _child(fds: list[int]) -> None:
    from autograder.harness import sandbox_server

    req_fd, resp_fd, out_fd = fds
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setsid()
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.close(out_fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    try:
        sandbox_server.serve_forked(req_fd, resp_fd)
    finally:
        os._exit(0)


def main() -> None:
    serve(int(sys.argv[1]))


def serve_forked(sock_fd: int, env: dict[str, str]) -> None:
    """Become a zygote in a process just forked from a grading worker (see
    ``sandbox_handle.Zygote``), before that worker has seen any submission or test:
    everything it imported is inherited, so there is nothing to wait for.

    What must not reach a sandbox is the worker's file descriptors (its
    queues carry the tests): every one but the socket is replaced by
    /dev/null, so a stale object that closes its old descriptor later
    closes /dev/null and never a descriptor opened since."""
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            open_fds = [int(name) for name in os.listdir("/proc/self/fd")]
        except OSError:  # no /proc: every possible descriptor
            open_fds = [fd for fd in range(min(os.sysconf("SC_OPEN_MAX"), 1 << 16))
                        if _is_open(fd)]
        for fd in open_fds:
            if fd not in (sock_fd, devnull):
                try:
                    os.dup2(devnull, fd)
                except OSError:
                    pass
        os.setsid()
        os.chdir("/")
        os.environ.clear()
        os.environ.update(env)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        serve(sock_fd)
    finally:
        os._exit(0)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def serve(sock_fd: int) -> None:
    """Import the preload modules named by the first message, then fork a
    sandbox for every request, until the socket closes."""
    sock = socket.socket(fileno=sock_fd)
    msg, _, _, _ = sock.recvmsg(1 << 16)
    _preload(json.loads(msg)["preload"])
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the grader decides when we stop
    sock.sendall(b"ready\n")
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 1024, 3)
        except OSError:
            os._exit(0)
        if not msg:
            os._exit(0)
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            sock.close()
            _child(fds)
        for fd in fds:
            os.close(fd)
        sock.sendall(f"{pid}\n".encode())


if __name__ == "__main__":
    main()
