"""Parallel grading in worker processes.

Tests are trusted code, but they run with the grader's global state
(torch's default dtype, numerical libraries that are not thread-safe): so
each concurrent grading gets a process of its own, never a thread. A
worker grades one submission at a time, in its own sandbox account
(claimed with a lock file, see ``harness.accounts``), through its own zygote.
Workers come from a fork server that has imported the grader and the
sandbox's libraries once; each worker forks its zygote from itself as its
first act, before any submission or test reaches it.

A batch must finish whatever one submission does to its worker: so this
is a small pool of our own (:func:`run`), not ``ProcessPoolExecutor``,
whose one dead worker breaks every pending future and whose shutdown
waits forever on a hung one. Each task has a wall-clock watchdog in the
grader; a worker that dies, raises or outlives it is killed with its
zygote and sandboxes, replaced, and the task reported as a grader failure.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import connection, forkserver
from typing import Any, Callable

_CONTEXT = None


def _context(preload: tuple[str, ...]):
    """The fork server context, started once per grader with the preload
    imported under the sandbox's environment."""
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
    return _CONTEXT


def pool(jobs: int, preload: tuple[str, ...] = ()) -> ProcessPoolExecutor:
    """A pool of ``jobs`` grading worker processes, for trusted work whose
    tasks all finish (``sodl check`` grading the course's own notebooks);
    a class's submissions go through :func:`run`.

    ``preload``: the sandbox zygote's modules (``GradingConfig.preload``).
    The fork server imports them once, with the sandbox's environment, and
    each worker forks its zygote from itself on start-up, before it has
    seen any submission or test: no worker or zygote imports torch again.
    """
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    return ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=_context(tuple(preload)),
                               initializer=_worker_init, initargs=(os.getpid(), threads, tuple(preload)))


@dataclass
class TaskOutcome:
    """How one task ended in a worker.

    Attributes:
        value: what the task function returned (None unless ``error`` is empty).
        error: empty when it returned; else why not, for the batch summary
            (it raised, its worker died, or it ran past the watchdog).
    """

    value: Any = None
    error: str = ""


@dataclass
class _Slot:
    """A worker process and the task it is grading."""

    proc: Any
    conn: Any
    task: Any = None
    deadline: float = float("inf")


def run(fn: Callable, tasks: list[tuple], jobs: int, preload: tuple[str, ...], watchdog_s: float,
        on_outcome: Callable[[tuple, TaskOutcome], None]) -> None:
    """Call ``fn(*task)`` for every task in up to ``jobs`` worker processes
    and ``on_outcome(task, outcome)`` in this process as each ends.

    Never raises for a task: a task that raises, a worker that dies, and a
    task still running ``watchdog_s`` seconds after it started (its worker
    is killed with everything below it) each give an outcome with an
    error, and a fresh worker takes the next task. ``fn`` must be a
    module-level function (it is sent by name). KeyboardInterrupt stops
    every worker and propagates."""
    ctx = _context(tuple(preload))
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    pending = deque(tasks)
    slots: list[_Slot] = []
    try:
        while pending or any(s.task is not None for s in slots):
            while len(slots) < max(1, jobs) and len(pending) > sum(s.task is None for s in slots):
                slots.append(_start(ctx, threads, preload))
            for slot in slots:
                if slot.task is None and pending:
                    slot.task = pending.popleft()
                    slot.deadline = time.monotonic() + watchdog_s
                    try:
                        slot.conn.send((fn, slot.task))
                    except OSError:
                        pass  # its death is noticed below
            busy = [s for s in slots if s.task is not None]
            wait = max(0.0, min(s.deadline for s in busy) - time.monotonic()) if busy else 0
            connection.wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=min(wait, 1.0))
            for slot in busy:
                outcome = _poll(slot, watchdog_s)
                if outcome is None:
                    continue
                task, slot.task = slot.task, None
                if outcome.error:
                    _kill(slot)
                    slots.remove(slot)
                on_outcome(task, outcome)
    finally:
        for slot in slots:
            _kill(slot)


def _poll(slot: _Slot, watchdog_s: float) -> TaskOutcome | None:
    """The outcome of a slot's task if it has ended (or must end), else None."""
    try:
        if slot.conn.poll():
            kind, value = slot.conn.recv()
            return TaskOutcome(value) if kind == "ok" else TaskOutcome(error=str(value))
    except (EOFError, OSError, ValueError) as e:
        return TaskOutcome(error=f"the grading worker died ({type(e).__name__})")
    if not slot.proc.is_alive():
        return TaskOutcome(error=f"the grading worker died (exit code {slot.proc.exitcode})")
    if time.monotonic() > slot.deadline:
        return TaskOutcome(error=f"grading took longer than the watchdog's {watchdog_s:g} s; the worker was killed")
    return None


def _start(ctx, threads: int, preload: tuple[str, ...]) -> _Slot:
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_worker_main, args=(there, os.getpid(), threads, tuple(preload)), daemon=True)
    proc.start()
    there.close()
    return _Slot(proc, here)


def _kill(slot: _Slot) -> None:
    """End a worker and everything below it (its zygote, its sandboxes):
    they are its descendants, the zygote being a child subreaper.

    The pipe is closed first: a worker still grading would see its
    sandboxes killed and grade the questions as crashed, and
    :func:`final_write` writes nothing once the pipe is closed. (Not
    SIGSTOP: a stopped member of the batch's orphaned process group makes
    the kernel send SIGHUP to the whole group, the grader included, as
    soon as another member exits.)"""
    from autograder.harness.accounts import kill_everything

    try:
        slot.conn.close()
    except OSError:
        pass
    if slot.proc.pid is not None:
        kill_everything(slot.proc.pid, None)
        try:
            os.kill(slot.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    slot.proc.join(timeout=5)


def _worker_main(conn, grader_pid: int, threads: int, preload: tuple[str, ...]) -> None:
    """A worker: tasks from ``conn`` until it closes; one reply per task."""
    global _GRADER_CONN
    _worker_init(grader_pid, threads, preload)
    _GRADER_CONN = conn
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", fn(*args))
        except Exception as e:  # noqa: BLE001 - any failure of the task is the task's outcome
            reply = ("error", f"the grader raised {type(e).__name__}: {str(e)[:500]}")
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return


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


_FINAL_WRITE = threading.Lock()
_GRADER_CONN = None  # this worker's pipe from the grader (None outside workers)


@contextmanager
def final_write():
    """Hold while a worker writes a submission's final results.

    A grade is written only while the grader still waits for it: when the
    grader stops a worker (:func:`_kill`) it closes the worker's pipe
    before it kills the sandboxes, and a worker whose grader is gone takes
    the lock for good before it kills them (:func:`_exit_with`). So a grade
    computed against sandboxes killed by a shutdown is never written, and
    an interrupted batch never resumes past a submission it graded wrongly."""
    with _FINAL_WRITE:
        if _GRADER_CONN is not None and _GRADER_CONN.poll():  # EOF: the grader is stopping this worker
            os._exit(1)
        yield


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
            _FINAL_WRITE.acquire()  # never released: no results are written past this line
            Zygote.shutdown_all()
            os._exit(1)
        except PermissionError:
            pass
