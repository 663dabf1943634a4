"""Grading a batch: a class of submissions in worker processes, shards of
it for a cluster, merged gradebooks, and the reports (``grade_batch``,
``merge_gradebooks``)."""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import as_completed
from pathlib import Path

from autograder import report, workers
from autograder.atomic import write_atomic, write_json_atomic
from autograder.errors import UserError
from autograder.gradescope import results_json
from autograder.grade import grade_submission
from autograder.harness.sandbox_handle import GraderFailure
from autograder.package import load_packaged_assignment, load_zip
from autograder.report import feedback_markdown
from autograder.submission import submission_name


def _grade_and_write(payload: bytes, path: Path, name: str, out: Path, question_timeout,
                     device: str = "cpu") -> str | None:
    """Worker: grade one submission and write its results.json (atomically).
    Returns an error line when the grading machinery failed (nothing written)."""
    packaged = load_packaged_assignment(payload)
    try:
        result = grade_submission(packaged, path, name, question_timeout=question_timeout, device=device)
    except GraderFailure as e:
        return f"{name}: {e}"
    folder = out / name
    write_atomic(folder / "feedback.md", feedback_markdown(result))
    write_json_atomic(folder / report.SIDECAR, report.sidecar(result))
    write_json_atomic(folder / "results.json", results_json(result))  # last: marks it done
    return None


def in_shard(name: str, shard: tuple[int, int] | None) -> bool:
    """Whether a submission belongs to shard K of N (K = 1..N), by a hash of its name."""
    if shard is None:
        return True
    k, n = shard
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % n == k - 1


def grade_batch(zip_path: Path, submissions: list[Path], out: Path, jobs: int = 1,
                question_timeout: float | None = None, regrade: bool = False, progress: bool = True,
                shard: tuple[int, int] | None = None, device: str = "cpu") -> Path:
    """Grade many submissions; resumable (finished ones are skipped unless
    ``regrade``); ``shard=(K, N)`` grades only the K-th of N deterministic
    shards; ``device``: ``cpu`` or ``cuda``. Returns the gradebook path."""
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
    if len(todo) == 1:  # one submission: no pool to start, grade it here
        path, name = todo[0]
        error = _grade_and_write(payload, path, name, out, question_timeout, device)
        if error:
            failures.append(error)
        todo = []
    with tqdm(total=len(submissions), initial=len(submissions) - len(todo), unit="sub",
              desc=f"grading {packaged.assignment.name}", disable=not progress) as bar:
        if todo:
            with workers.pool(jobs, tuple(packaged.grading.preload)) as executor:
                if len(submissions) > 1:  # the charts' import, on a core idle while the fork server imports
                    report.import_plotting()
                try:
                    futures = [executor.submit(_grade_and_write, payload, path, name, out, question_timeout, device)
                               for path, name in todo]
                    for fut in as_completed(futures):
                        error = fut.result()
                        if error:
                            failures.append(error)
                        bar.update(1)
                except BaseException:
                    workers.stop(executor)
                    raise
    book = write_batch_reports(out, names, questions, packaged.blank_hash)
    if failures:
        raise GraderFailure(f"{len(failures)} submission(s) could not be graded (run again to retry them): "
                            + "; ".join(failures[:5]))
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
