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
from concurrent.futures import ProcessPoolExecutor

_CONTEXT = None


def pool(jobs: int) -> ProcessPoolExecutor:
    """A pool of ``jobs`` grading worker processes."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["autograder.grade", "numpy"])
    return ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=_CONTEXT)
