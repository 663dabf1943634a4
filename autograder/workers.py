"""Parallel grading in worker processes.

Tests are trusted code, but they run with the grader's global state
(torch's default dtype, numerical libraries that are not thread-safe): so
each concurrent grading gets a process of its own, never a thread. A
worker grades one submission at a time, in its own sandbox account
(claimed with a lock file, see ``harness.accounts``), through its own zygote.
Workers come from a fork server that has imported the grader and the
sandbox's libraries once; each worker forks its zygote from itself as its
first act, before any submission or test reaches it.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import forkserver

_CONTEXT = None


def pool(jobs: int, preload: tuple[str, ...] = ()) -> ProcessPoolExecutor:
    """A pool of ``jobs`` grading worker processes.

    ``preload``: the sandbox zygote's modules (``GradingConfig.preload``).
    The fork server imports them once, with the sandbox's environment, and
    each worker forks its zygote from itself on start-up, before it has
    seen any submission or test: no worker or zygote imports torch again.
    """
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["autograder.fork_server", "autograder.batch", *preload])
        saved = {k: os.environ.get(k) for k in SERVER_ENV}
        os.environ.update(SERVER_ENV)
        try:
            forkserver.ensure_running()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    return ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=_CONTEXT, initializer=_worker_init,
                               initargs=(os.getpid(), threads, tuple(preload)))


# What the fork server (and so every zygote forked below it) runs with, as a
# zygote started on its own would (``sandbox_handle._sandbox_env``): string hashing
# is the same in every sandbox, and matplotlib draws without a display.
SERVER_ENV = {"PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}


def _worker_init(grader_pid: int, threads: int, preload: tuple[str, ...]) -> None:
    from autograder.harness.protocol import SandboxLimits
    from autograder.harness.sandbox_handle import Zygote

    # First, while this process holds nothing a student may see and runs
    # no other thread: the zygote of this worker's slot (0), forked.
    if preload:
        Zygote.for_slot(0, preload, SandboxLimits.startup_timeout, fork=True)
    # A terminated worker leaves through multiprocessing (which ends with
    # os._exit: no atexit here); its zygote exits when the worker's socket
    # closes, and each sandbox when its request pipe does (see ``harness``).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    threading.Thread(target=_exit_with, args=(grader_pid,), daemon=True).start()
    # The tests' own torch work gets this worker's share of the cores: with
    # a thread per core in every worker, idle OpenMP threads spin on cores
    # the other workers need.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def _exit_with(grader_pid: int) -> None:
    """Workers wait on a queue that never closes when the grader is killed
    (the fork server keeps its ends open); so each watches the grader and
    leaves, with its sandboxes, when it is gone."""
    from autograder.harness.sandbox_handle import Zygote

    while True:
        time.sleep(0.5)
        try:
            os.kill(grader_pid, 0)
        except ProcessLookupError:
            Zygote.shutdown_all()
            os._exit(1)
        except PermissionError:
            pass


def stop(executor: ProcessPoolExecutor) -> None:
    """Cancel what has not started and terminate the workers (after Ctrl-C or kill)."""
    executor.shutdown(wait=False, cancel_futures=True)
    for proc in list((getattr(executor, "_processes", None) or {}).values()):
        try:
            proc.terminate()
        except (OSError, AttributeError):
            pass
