"""A pre-imported parent that forks one sandbox per submission.

Importing torch, numpy and scipy costs seconds; paying it once per grader
slot instead of once per submission is most of the speed of grading. The
zygote imports the preload modules (never tests, never ``sodl_ref``), then
waits on a Unix socket. For each request it receives three file
descriptors (requests, replies, output) and forks; the child starts a new
session, drops privileges and becomes a sandbox server (``sandbox``).
The zygote is a child subreaper, so every descendant of a submission,
detached ones included, stays findable below it until it is killed.

Run as ``python -m autograder.harness.zygote SOCKET_FD``.
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
    """Exercise the preloaded libraries once, so that the modules they import
    lazily (on first print, first backward, first plot...) are loaded here:
    a chrooted sandbox could not import them any more."""
    import io

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)  # no thread pool to break across fork
        torch.backends.cpu.get_cpu_capability()  # reads /proc/cpuinfo
        g = torch.Generator().manual_seed(0)
        x = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
        layer = torch.nn.Linear(3, 2).double()
        loss = torch.nn.functional.cross_entropy(layer(torch.relu(x)), torch.tensor([0, 1, 0, 1]))
        loss.backward()
        str(x), repr(loss), str(torch.ones(2, dtype=torch.int64))
        torch.linalg.eigh(x.detach().T @ x.detach()), torch.linalg.svd(x.detach()), torch.matrix_exp(torch.eye(2))
        torch.nn.functional.conv2d(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 2, 2))
        torch.nn.functional.scaled_dot_product_attention(torch.ones(1, 2, 4), torch.ones(1, 2, 4), torch.ones(1, 2, 4))
        torch.nn.LSTM(2, 2)(torch.ones(3, 1, 2))
        torch.distributions.Normal(0.0, 1.0).log_prob(torch.zeros(2))
        torch.optim.Adam(layer.parameters()).step(), torch.optim.SGD(layer.parameters(), lr=0.1).step()
        if "torch.func" in sys.modules:
            f = lambda w: (w ** 2).sum()  # noqa: E731
            torch.func.grad(f)(torch.ones(2)), torch.func.vmap(torch.func.jacrev(f))(torch.ones(2, 2))
    np = sys.modules.get("numpy")
    if np is not None:
        a = np.random.default_rng(0).normal(size=(3, 3))
        np.linalg.eigh(a @ a.T), np.linalg.svd(a), str(a), np.polyfit([0, 1, 2], [1, 2, 3], 1)
    scipy = sys.modules.get("scipy")
    if scipy is not None and np is not None:
        for run in (lambda: scipy.integrate.quad(np.exp, 0, 1), lambda: scipy.special.erf(0.5),
                    lambda: scipy.optimize.minimize(lambda v: (v ** 2).sum(), np.ones(2)),
                    lambda: scipy.optimize.brentq(lambda v: v - 0.5, 0, 1), lambda: scipy.linalg.expm(np.eye(2)),
                    lambda: scipy.stats.norm.cdf(0.3)):
            try:
                run()
            except Exception:  # noqa: BLE001 - a submodule may be missing
                pass
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1], label="x")
        ax.imshow([[0, 1], [1, 0]])
        ax.legend(), ax.set_title("t"), ax.set_xscale("log")
        fig.savefig(io.BytesIO(), format="png")
        plt.close(fig)


def _child(fds: list[int]) -> None:
    from autograder.harness import sandbox

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
        sandbox.serve_forked(req_fd, resp_fd)
    finally:
        os._exit(0)


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
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
