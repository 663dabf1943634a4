"""Grading a batch: a class of submissions in worker processes, shards of
it for a cluster, merged gradebooks, and the reports (``grade_batch``,
``merge_gradebooks``)."""
from __future__ import annotations

import hashlib
import json
import signal
import threading
from concurrent.futures import as_completed
from pathlib import Path

from autograder import report, workers
from autograder.atomic import write_atomic, write_json_atomic
from autograder.errors import UserError
from autograder.gradescope import failure_json, results_json
from autograder.grade import grade_submission
from autograder.harness.protocol import SandboxLimits
from autograder.harness.sandbox_handle import GraderFailure
from autograder.package import load_packaged_assignment, load_zip
from autograder.report import feedback_markdown
from autograder.submission import submission_name


FAILURES_FILE = "grader-failures.json"
MAX_GRADER_FAILURES = 2
GRADER_FAILURE_MESSAGE = ("The autograder failed on your submission (grader failure, please contact staff). "
                          "This is not a grade of your work.")


def _grade_and_write(payload: bytes, path: Path, name: str, out: Path, question_timeout,
                     device: str = "cpu") -> str | None:
    """Worker: grade one submission and write its results.json (atomically).
    Returns an error line when the grading machinery failed (nothing written)."""
    packaged = load_packaged_assignment(payload)
    try:
        result = grade_submission(packaged, path, name, question_timeout=question_timeout, device=device)
    except GraderFailure as e:
        return f"{name}: {e}"
    except Exception as e:  # noqa: BLE001 - a bug of the grader: this submission's failure, not the batch's
        return f"{name}: the grader raised {type(e).__name__}: {str(e)[:300]}"
    folder = out / name
    with workers.final_write():
        write_atomic(folder / "feedback.md", feedback_markdown(result))
        write_json_atomic(folder / report.SIDECAR, report.sidecar(result))
        write_json_atomic(folder / "results.json", results_json(result))  # last: marks it done
    return None


class WatchdogFired(KeyboardInterrupt):
    """Raised in the main thread when :func:`call_with_watchdog`'s time is
    up; a KeyboardInterrupt, so grading unwinds as on Ctrl-C (the trusted
    side re-raises it, every sandbox is closed on the way out)."""


_WATCHDOG_ARMED = threading.Event()


def _on_watchdog_signal(signum, frame) -> None:
    if _WATCHDOG_ARMED.is_set():
        _WATCHDOG_ARMED.clear()
        raise WatchdogFired()


def call_with_watchdog(fn, watchdog_s: float) -> tuple[bool, object]:
    """``fn()`` in the main thread under a wall-clock watchdog. When it
    fires, a timer thread sends SIGUSR1 to the main thread, whose handler
    raises :class:`WatchdogFired`: a real signal interrupts the grader's
    blocking waits at once (``_thread.interrupt_main`` is only seen when a
    wait ends, a cell's whole limit later, and does nothing where SIGINT is
    ignored, as in a background job). The handler stays installed (a no-op
    unless armed): restoring the default action could let a late signal end
    the process. Returns ``(True, value)``, or ``(False, None)`` when the
    watchdog fired."""
    signal.signal(signal.SIGUSR1, _on_watchdog_signal)  # main thread only, as signal.signal requires
    main = threading.main_thread().ident
    fired = threading.Event()

    def fire() -> None:
        fired.set()
        _WATCHDOG_ARMED.set()
        signal.pthread_kill(main, signal.SIGUSR1)

    timer = threading.Timer(watchdog_s, fire)
    timer.daemon = True
    try:
        try:
            timer.start()
            return True, fn()
        finally:
            timer.cancel()
            timer.join()
            _WATCHDOG_ARMED.clear()
    except WatchdogFired:
        return False, None
    except KeyboardInterrupt:
        if not fired.is_set():
            raise
        return False, None


def _grade_here(task: tuple, watchdog_s: float) -> str | None:
    """``_grade_and_write`` in this process (one submission: no worker to
    start), under the same watchdog as a worker's (:func:`call_with_watchdog`);
    when it fires, a grader failure."""
    done, error = call_with_watchdog(lambda: _grade_and_write(*task), watchdog_s)
    return error if done else f"{task[2]}: grading took longer than the watchdog's {watchdog_s:g} s and was stopped"


def watchdog_seconds(grading) -> float:
    """How long one submission may take in a worker before the worker is
    killed: the grading's own bounds (the submission's total limit, the
    zygote's and the diagnosis sandbox's start-ups) and a margin. Past it,
    the grader itself is stuck, which no per-question limit catches."""
    return 1.5 * grading.total_timeout + 2 * SandboxLimits.startup_timeout + 30


def record_grader_failure(out: Path, name: str, error: str, max_score: float) -> bool:
    """Count a grader failure on one submission (``grader-failures.json``
    in its folder). At the ``MAX_GRADER_FAILURES``-th, a results.json of
    zero with :data:`GRADER_FAILURE_MESSAGE` is written, flagged, so a
    rerun never loops on a submission that breaks the grader. Returns
    whether that final result was written."""
    folder = out / name
    try:
        count = int(json.loads((folder / FAILURES_FILE).read_text()).get("failures", 0))
    except (OSError, ValueError, AttributeError, TypeError):
        count = 0
    count += 1
    write_json_atomic(folder / FAILURES_FILE, {"failures": count, "last": error[:1000]})
    if count < MAX_GRADER_FAILURES:
        return False
    write_atomic(folder / "feedback.md", f"# {name}\n\n{GRADER_FAILURE_MESSAGE}\n")
    write_json_atomic(folder / report.SIDECAR, {"content_hash": "", "mistakes": {},
                                                "flags": [f"grader failure ({count} attempts): {error[:200]}"]})
    write_json_atomic(folder / "results.json", failure_json(GRADER_FAILURE_MESSAGE, max_score))
    return True


class BatchIncomplete(GraderFailure):
    """Some submissions met a grader failure; the gradebook of the others
    was written all the same (``book``). ``failures``: a line each."""

    def __init__(self, book: Path, failures: list[str]):
        self.book, self.failures = book, failures
        super().__init__(f"{len(failures)} submission(s) met a grader failure (run again to retry them; after "
                         f"{MAX_GRADER_FAILURES} failures one is graded 0 and flagged): " + "; ".join(failures[:5]))


def in_shard(name: str, shard: tuple[int, int] | None) -> bool:
    """Whether a submission belongs to shard K of N (K = 1..N), by a hash of its name."""
    if shard is None:
        return True
    k, n = shard
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % n == k - 1


def grade_batch(zip_path: Path, submissions: list[Path], out: Path, jobs: int = 1,
                question_timeout: float | None = None, regrade: bool = False, progress: bool = True,
                shard: tuple[int, int] | None = None, device: str = "cpu",
                watchdog_s: float | None = None) -> Path:
    """Grade many submissions; resumable (finished ones are skipped unless
    ``regrade``); ``shard=(K, N)`` grades only the K-th of N deterministic
    shards; ``device``: ``cpu`` or ``cuda``; ``watchdog_s``: how long one
    submission may take (default :func:`watchdog_seconds`). Returns the
    gradebook path; raises BatchIncomplete, after writing the gradebook of
    the others, when a submission met a grader failure."""
    from tqdm import tqdm

    packaged = load_zip(zip_path)
    out.mkdir(parents=True, exist_ok=True)
    names = [submission_name(p) for p in submissions]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise UserError(f"two submissions share the name(s) {', '.join(sorted(dupes))}")
    mine = [(p, n) for p, n in zip(submissions, names) if in_shard(n, shard)]
    submissions, names = [p for p, _ in mine], [n for _, n in mine]
    todo = [(p, n) for p, n in mine if regrade or not (out / n / "results.json").exists()]
    questions = [q.name for q in packaged.assignment.questions]
    write_json_atomic(out / "assignment.json", {
        "name": packaged.assignment.name, "questions": questions, "blank_hash": packaged.blank_hash})

    failures: list[str] = []
    payload = packaged.to_json()
    total = packaged.assignment.total_points

    def finished(task: tuple, error: str | None) -> None:
        name = task[2]
        if error:
            given_up = record_grader_failure(out, name, error, total)
            failures.append(error + (" (given up: graded 0 and flagged)" if given_up else ""))

    with tqdm(total=len(submissions), initial=len(submissions) - len(todo), unit="sub",
              desc=f"grading {packaged.assignment.name}", disable=not progress) as bar:
        tasks = [(payload, path, name, out, question_timeout, device) for path, name in todo]
        watchdog_s = watchdog_s or watchdog_seconds(packaged.grading)
        if len(tasks) == 1:  # one submission: no workers to start, grade it here
            finished(tasks[0], _grade_here(tasks[0], watchdog_s))
            bar.update(1)
        elif tasks:
            if len(submissions) > 1:  # the charts' import, on a core idle while the fork server imports
                report.import_plotting()

            def outcome(task: tuple, out_: workers.TaskOutcome) -> None:
                finished(task, out_.value if not out_.error else f"{task[2]}: {out_.error}")
                bar.update(1)

            workers.run(_grade_and_write, tasks, jobs, tuple(packaged.grading.preload), watchdog_s, outcome)
    book = write_batch_reports(out, names, questions, packaged.blank_hash)
    if failures:
        raise BatchIncomplete(book, failures)
    return book


def write_batch_reports(out: Path, names: list[str], questions: list[str], blank_hash: str = "") -> Path:
    """Gradebook, summary and charts from the graded folders in ``out``."""
    rows = [report.read_row(out / n, questions) for n in names if (out / n / "results.json").exists()]
    book = report.write_gradebook(out, rows, questions, blank_hash)
    if len(rows) > 1:  # charts of one submission teach nothing (and cost a matplotlib import)
        report.summarize(out, rows, questions)
    return book


def merge_gradebooks(dirs: list[Path], out: Path) -> Path:
    """Join the outputs of sharded runs into one gradebook in ``out``."""
    meta = [json.loads((d / "assignment.json").read_text()) for d in dirs]
    if len({m["name"] for m in meta}) != 1 or len({tuple(m["questions"]) for m in meta}) != 1:
        raise UserError("these folders grade different assignments")
    rows, seen = [], set()
    for d in dirs:
        for folder in sorted(p.parent for p in d.glob("*/results.json")):
            if folder.name in seen:
                raise UserError(f"{folder.name} was graded in two shards")
            seen.add(folder.name)
            rows.append(report.read_row(folder, meta[0]["questions"]))
    out.mkdir(parents=True, exist_ok=True)
    book = report.write_gradebook(out, rows, meta[0]["questions"], meta[0].get("blank_hash", ""))
    if rows:
        report.summarize(out, rows, meta[0]["questions"])
    return book
