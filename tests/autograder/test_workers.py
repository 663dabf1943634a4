"""The batch's worker pool (``workers.run``): whatever a task does to its
worker (raise, die, hang), every task gets an outcome, the pool goes on
with a fresh worker, and nothing of a killed worker is left running."""
import os
import time

import pytest

from autograder import workers
from autograder.harness.accounts import descendants

pytestmark = pytest.mark.timeout(300)


def task(kind: str, marker: str = ""):
    """Runs in a worker (sent by name)."""
    if kind == "raise":
        raise ValueError("a bug of the grader")
    if kind == "die":
        os._exit(7)
    if kind == "hang":
        if os.fork() == 0:  # a child of the stuck worker, as its zygote would be
            time.sleep(600)
            os._exit(0)
        time.sleep(600)
    if kind == "grade when its sandbox dies":  # as grading does: a dead sandbox is a crashed question
        child = os.fork()
        if child == 0:
            time.sleep(600)
            os._exit(0)
        os.waitpid(child, 0)
        with workers.final_write(), open(marker, "w") as f:  # as batch._grade_and_write does
            f.write("a grade written after the shutdown killed the sandbox")
    return (kind, os.getpid())


def test_every_task_gets_an_outcome_whatever_it_does_to_its_worker():
    tasks = [("ok",), ("raise",), ("ok",), ("die",), ("hang",), ("ok",), ("ok",)]
    outcomes = []
    before = descendants(os.getpid())  # earlier tests' zygotes live until this process exits
    t0 = time.monotonic()
    workers.run(task, tasks, 2, (), 5.0, lambda t, o: outcomes.append((t, o)))
    assert time.monotonic() - t0 < 60
    assert sorted(t for t, _ in outcomes) == sorted(tasks)
    by_kind = {}
    for t, o in outcomes:
        by_kind.setdefault(t[0], []).append(o)
    assert all(o.error == "" and o.value[0] == "ok" for o in by_kind["ok"])
    assert "ValueError" in by_kind["raise"][0].error
    assert "died" in by_kind["die"][0].error
    assert "watchdog" in by_kind["hang"][0].error
    deadline = time.monotonic() + 5  # SIGKILLed processes vanish once reaped
    while time.monotonic() < deadline and descendants(os.getpid()) - before - _fork_server_and_its_idle_children():
        time.sleep(0.1)
    left = descendants(os.getpid()) - before - _fork_server_and_its_idle_children()
    assert not left, [_cmdline(p) for p in left]


def test_a_killed_worker_writes_nothing_after_its_sandboxes_die(tmp_path):
    """The batch's shutdown (the watchdog here; an interrupted batch the
    same way) kills the sandboxes below a worker: the worker sees them die
    and must not write that as the submission's grade."""
    marker = tmp_path / "written"
    outcomes = []
    workers.run(task, [("grade when its sandbox dies", str(marker))], 2, (), 2.0,
                lambda t, o: outcomes.append(o))
    time.sleep(1.0)
    assert "watchdog" in outcomes[0].error
    assert not marker.exists(), marker.read_text()


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return f"{pid} (gone)"


def _fork_server_and_its_idle_children() -> set[int]:
    """The fork server and multiprocessing's resource tracker stay for the
    next batch (both are this process's children)."""
    from multiprocessing import forkserver, resource_tracker

    pids = {getattr(forkserver._forkserver, "_forkserver_pid", None),
            getattr(resource_tracker._resource_tracker, "_pid", None)}
    return pids - {None}


def test_the_watchdog_interrupts_a_blocking_wait_even_where_sigint_is_ignored():
    """``batch.call_with_watchdog`` (one submission graded in the grader's
    own process, and every Gradescope run) stops a wait at once, not when
    it ends, and does so in a background job, where SIGINT is ignored."""
    import signal
    import threading

    from autograder.batch import call_with_watchdog

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        t0 = time.monotonic()
        assert call_with_watchdog(lambda: threading.Event().wait(60), 0.5) == (False, None)
        assert time.monotonic() - t0 < 5
        assert call_with_watchdog(lambda: "graded", 5.0) == (True, "graded")
    finally:
        signal.signal(signal.SIGINT, previous)
