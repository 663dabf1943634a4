"""Parallel grading in worker processes.

Tests are trusted code, but they run with the grader's global state
(torch's default dtype, numerical libraries that are not thread-safe): so
each concurrent grading gets a process of its own, never a thread. A
worker grades one submission at a time, in its own sandbox account
(claimed with a lock file, see ``harness.limits``), through its own zygote.
Workers come from a fork server that has imported the grader once.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

_CONTEXT = None


def pool(jobs: int) -> ProcessPoolExecutor:
    """A pool of ``jobs`` grading worker processes."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["autograder.grade", "numpy"])
    return ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=_CONTEXT, initializer=_worker_init,
                               initargs=(os.getpid(),))


def _worker_init(grader_pid: int) -> None:
    # A terminated worker exits through Python, so its zygote and sandboxes
    # are killed by the atexit clean-up instead of being orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    threading.Thread(target=_exit_with, args=(grader_pid,), daemon=True).start()


def _exit_with(grader_pid: int) -> None:
    """Workers wait on a queue that never closes when the grader is killed
    (the fork server keeps its ends open); so each watches the grader and
    leaves, with its sandboxes, when it is gone."""
    from autograder.harness.client import Zygote

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
    for proc in list(getattr(executor, "_processes", {}).values()):
        try:
            proc.terminate()
        except (OSError, AttributeError):
            pass
