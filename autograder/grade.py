"""Grading submissions: one (``grade_submission``) or a batch (``grade_batch``)."""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
import zipfile
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from autograder import gradescope, workers
from autograder.config import GradingConfig, _build
from autograder.harness.client import GraderFailure, Sandbox, SandboxLimits, Zygote
from autograder.harness.limits import ensure_user
from autograder.diagnosis import diagnose
from autograder.harness.trusted import grade_sandbox, preimport
from autograder.mutants import Mutant
from autograder import report
from autograder.report import feedback_markdown, tamper_flags
from autograder.notebooks import grading_cells
from autograder.records import Assignment, SubmissionResult

MAX_NOTEBOOK_BYTES = 512 << 20


@dataclass(frozen=True)
class PackagedAssignment:
    """What the zip carries for grading: the assignment and its limits."""

    assignment: Assignment
    grading: GradingConfig
    key_cells: tuple[str, ...] = ()
    mutants: tuple[Mutant, ...] = ()
    blank_hash: str = ""

    def to_json(self) -> bytes:
        grading = asdict(self.grading)
        grading["preload"] = list(grading["preload"])
        grading["hidden_packages"] = list(grading["hidden_packages"])
        return json.dumps({"assignment": self.assignment.to_dict(), "grading": grading,
                           "key_cells": list(self.key_cells), "blank_hash": self.blank_hash,
                           "mutants": [m.to_dict() for m in self.mutants]}, indent=1).encode()


def load_packaged_assignment(data: bytes) -> PackagedAssignment:
    d = json.loads(data)
    return PackagedAssignment(Assignment.from_dict(d["assignment"]), _build(GradingConfig, d["grading"], "zip"),
                              tuple(d.get("key_cells", ())),
                              tuple(Mutant.from_dict(m) for m in d.get("mutants", ())), d.get("blank_hash", ""))


def load_zip(path: Path) -> PackagedAssignment:
    """Read the assignment out of an autograder zip (without installing it)."""
    try:
        with zipfile.ZipFile(path) as z:
            return load_packaged_assignment(z.read(gradescope.ASSIGNMENT_FILE))
    except (OSError, KeyError, zipfile.BadZipFile, ValueError) as e:
        raise ValueError(f"{path}: not a sodl autograder zip ({type(e).__name__}: {e})") from None


class SubmissionError(Exception):
    """The submission cannot be graded at all; the message says what to fix."""


def find_notebook(path: Path, assignment: Assignment) -> tuple[Path, list[str]]:
    """The file to grade in a submission (a notebook, or a folder holding one)."""
    notes = []
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        nbs = [p for p in files if p.suffix == ".ipynb" and ".ipynb_checkpoints" not in p.parts]
        if not nbs:
            pys = [p for p in files if p.suffix == ".py"]
            if len(pys) == 1:
                notes.append(f"You submitted {pys[0].name}, not a notebook: it was graded as one code cell. "
                             f"Submit {assignment.name}.ipynb next time.")
                return pys[0], notes
            names = ", ".join(p.name for p in files[:5]) or "nothing"
            raise SubmissionError(f"No notebook found in your submission (it holds: {names}). "
                                  f"Submit {assignment.name}.ipynb.")
        if len(nbs) > 1:
            named = [p for p in nbs if p.name == f"{assignment.name}.ipynb"]
            chosen = named[0] if named else nbs[0]
            notes.append(f"Your submission holds {len(nbs)} notebooks; {chosen.name} was graded. "
                         "Submit only one.")
            return chosen, notes
        path = nbs[0]
    if not path.exists():
        raise SubmissionError(f"{path.name}: file not found")
    if path.suffix != ".ipynb" and path.suffix == ".py":
        notes.append(f"{path.name} is not a notebook: it was graded as one code cell.")
    elif path.name != f"{assignment.name}.ipynb":
        notes.append(f"Your notebook is named {path.name}; expected {assignment.name}.ipynb (graded anyway).")
    return path, notes


def read_cells(path: Path) -> list[str]:
    """The graded code of a submission file; SubmissionError if unreadable."""
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise SubmissionError(f"{path.name} is {size >> 20} MB; the limit is {MAX_NOTEBOOK_BYTES >> 20} MB. "
                              "Clear the outputs (Kernel > Restart & Clear Output) and submit again.")
    raw = path.read_bytes()
    if path.suffix == ".py":
        return [raw.decode("utf-8", "replace")]
    try:
        nb = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SubmissionError(f"{path.name} is not a valid notebook (it is not JSON). Download your "
                              "notebook again from Jupyter (File > Download .ipynb) and resubmit.") from None
    if not isinstance(nb, dict):
        raise SubmissionError(f"{path.name} is not a valid notebook (expected a JSON object).")
    if "worksheets" in nb and "cells" not in nb:  # nbformat 3
        cells = []
        for ws in nb.get("worksheets") or []:
            for c in (ws.get("cells") or []) if isinstance(ws, dict) else []:
                if isinstance(c, dict):
                    c = dict(c, source=c.get("input", ""))
                    cells.append(c)
        nb = {"cells": cells}
    if not isinstance(nb.get("cells"), list):
        raise SubmissionError(f"{path.name} is not a valid notebook (no list of cells).")
    return grading_cells(nb)


def content_hash(cells: list[str]) -> str:
    """Hash of a submission's graded code (whitespace at line ends ignored)."""
    norm = "\0".join("\n".join(line.rstrip() for line in c.strip().splitlines()) for c in cells)
    return hashlib.sha256(norm.encode()).hexdigest()[:16]


def submission_seed(cells: list[str]) -> int:
    """Seed of a submission's grading inputs: from its content, so regrades agree."""
    return int.from_bytes(hashlib.sha256("\0".join(cells).encode()).digest()[:4], "big")


def grade_cells(packaged: PackagedAssignment, cells: list[str], name: str, slot: int = 0,
                question_timeout: float | None = None, only: set[str] | None = None,
                extra_cells: list[str] | None = None, seed: int | None = None,
                diagnose_mistakes: bool = True) -> SubmissionResult:
    """Execute ``cells`` in a sandbox and run every test against them."""
    a, g = packaged.assignment, packaged.grading
    started = time.monotonic()
    deadline = started + g.total_timeout
    result = SubmissionResult(name, a)
    user = ensure_user(g.sandbox_user, slot)
    limits = SandboxLimits(cell_timeout=g.cell_timeout, memory_mb=g.memory_mb, cpu_seconds=g.cpu_seconds,
                           max_processes=g.max_processes, max_file_mb=g.max_file_mb,
                           max_output_kb=g.max_output_kb, preload=tuple(g.preload),
                           hidden_packages=tuple(g.hidden_packages), device=grading_device())
    seed = submission_seed(cells) if seed is None else seed
    result.content_hash = content_hash(cells)
    result.flags = tamper_flags(cells)
    Zygote.for_slot(slot, limits.preload, limits.startup_timeout)  # starts importing now...
    preimport(a)  # ...while this process imports what the tests need
    sandbox = Sandbox(limits, user, slot=slot, cells=list(cells) + list(extra_cells or []))
    try:
        sandbox.start(deadline)  # GraderFailure propagates: no grade is recorded
        for issue in sandbox.issues:
            result.messages.append(f"While executing your notebook, {issue.message}.")
        recordings: dict = {}
        result.questions = grade_sandbox(a, sandbox, seed, question_timeout or g.question_timeout, deadline,
                                         only, recordings)
        result.stdout = sandbox.student_output()
    finally:
        sandbox.close()
        result.peak_memory_mb = sandbox.peak_memory_mb
        result.student_seconds = sandbox.student_seconds
    if diagnose_mistakes and packaged.mutants and packaged.key_cells and recordings:
        replay = Sandbox(limits, user, slot=slot, cells=list(packaged.key_cells))
        found = diagnose(replay, recordings, list(packaged.mutants), question_timeout or g.question_timeout,
                         deadline)
        for qr in result.questions:
            if qr.question.name in found:
                qr.mistake, qr.diagnosis = found[qr.question.name].name, found[qr.question.name].diagnosis
    if a.show_stdout and result.stdout:
        result.messages.append("Your notebook printed:\n" + result.stdout)
    return _fill(result, started)


def grading_device() -> str:
    """``cpu`` or ``cuda``: set by ``sodl grade --device`` (SODL_DEVICE)."""
    return os.environ.get("SODL_DEVICE", "cpu")


def _fill(result: SubmissionResult, started: float) -> SubmissionResult:
    import resource

    result.execution_time = time.monotonic() - started
    result.grader_memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def grade_submission(packaged: PackagedAssignment, path: Path, name: str | None = None, slot: int = 0,
                     question_timeout: float | None = None) -> SubmissionResult:
    """Grade one submission (a notebook or a folder). Never raises for bad input."""
    name = name or submission_name(path)
    try:
        nb_path, notes = find_notebook(path, packaged.assignment)
        cells = read_cells(nb_path)
    except SubmissionError as e:
        return SubmissionResult.ungraded(name, packaged.assignment, str(e))
    if not cells:
        return SubmissionResult.ungraded(name, packaged.assignment, "Your notebook has no code cells to grade.")
    result = grade_cells(packaged, cells, name, slot, question_timeout)
    result.messages[:0] = notes
    return result


def submission_name(path: Path) -> str:
    return path.name if path.is_dir() else path.stem


# ---------------------------------------------------------------------------
# batches


def _grade_and_write(payload: bytes, path: Path, name: str, out: Path, question_timeout) -> str | None:
    """Worker: grade one submission and write its results.json (atomically).
    Returns an error line when the grading machinery failed (nothing written)."""
    packaged = load_packaged_assignment(payload)
    try:
        result = grade_submission(packaged, path, name, question_timeout=question_timeout)
    except GraderFailure as e:
        return f"{name}: {e}"
    folder = out / name
    report.write_atomic(folder / "feedback.md", feedback_markdown(result))
    gradescope.write_json_atomic(folder / report.SIDECAR, report.sidecar(result))
    gradescope.write_json_atomic(folder / "results.json", gradescope.results_json(result))  # last: marks it done
    return None


def grade_cells_job(payload: bytes, cells: list[str], name: str, extra_cells=None, only=None) -> SubmissionResult:
    """Worker: ``grade_cells`` on a packaged assignment given as JSON bytes."""
    return grade_cells(load_packaged_assignment(payload), cells, name, extra_cells=extra_cells, only=only)


def in_shard(name: str, shard: tuple[int, int] | None) -> bool:
    """Whether a submission belongs to shard K of N (K = 1..N), by a hash of its name."""
    if shard is None:
        return True
    k, n = shard
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % n == k - 1


def grade_batch(zip_path: Path, submissions: list[Path], out: Path, jobs: int = 1,
                question_timeout: float | None = None, regrade: bool = False, progress: bool = True,
                shard: tuple[int, int] | None = None) -> Path:
    """Grade many submissions; resumable (finished ones are skipped unless
    ``regrade``); ``shard=(K, N)`` grades only the K-th of N deterministic
    shards. Returns the gradebook path."""
    from tqdm import tqdm

    packaged = load_zip(zip_path)
    out.mkdir(parents=True, exist_ok=True)
    names = [submission_name(p) for p in submissions]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"two submissions share the name(s) {', '.join(sorted(dupes))}")
    mine = [(p, n) for p, n in zip(submissions, names) if in_shard(n, shard)]
    submissions, names = [p for p, _ in mine], [n for _, n in mine]
    todo = [(p, n) for p, n in mine if regrade or not (out / n / "results.json").exists()]
    questions = [q.name for q in packaged.assignment.questions]
    gradescope.write_json_atomic(out / "assignment.json", {
        "name": packaged.assignment.name, "questions": questions, "blank_hash": packaged.blank_hash})

    failures: list[str] = []
    payload = packaged.to_json()
    if len(todo) == 1:  # one submission: no pool to start, grade it here
        path, name = todo[0]
        error = _grade_and_write(payload, path, name, out, question_timeout)
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
                    futures = [executor.submit(_grade_and_write, payload, path, name, out, question_timeout)
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
        raise ValueError("these folders grade different assignments")
    rows, seen = [], set()
    for d in dirs:
        for folder in sorted(p.parent for p in d.glob("*/results.json")):
            if folder.name in seen:
                raise ValueError(f"{folder.name} was graded in two shards")
            seen.add(folder.name)
            rows.append(report.read_row(folder, meta[0]["questions"]))
    out.mkdir(parents=True, exist_ok=True)
    book = report.write_gradebook(out, rows, meta[0]["questions"], meta[0].get("blank_hash", ""))
    if rows:
        report.summarize(out, rows, meta[0]["questions"])
    return book
