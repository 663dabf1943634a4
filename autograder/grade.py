"""Grading one submission: its cells executed in a sandbox, its tests run
by the trusted side, its mistakes diagnosed (``grade_submission``,
``grade_cells``)."""
from __future__ import annotations

import time
from pathlib import Path

from autograder.diagnosis import diagnose
from autograder.harness.accounts import ensure_user
from autograder.harness.protocol import SandboxLimits
from autograder.harness.sandbox_handle import Sandbox, Zygote
from autograder.harness.trusted import grade_sandbox, preimport, shadowed_names, shadowing_notice
from autograder.otter_runtime import runtime_cells
from autograder.package import PackagedAssignment, load_packaged_assignment
from autograder.records import SubmissionResult
from autograder.report import tamper_flags
from autograder.submission import (SubmissionError, content_hash, find_notebook, read_cells, read_student_files,
                                   submission_name, submission_seed, unpacked)


def grade_cells(packaged: PackagedAssignment, cells: list[str], name: str, slot: int = 0,
                question_timeout: float | None = None, only: set[str] | None = None,
                extra_cells: list[str] | None = None, seed: int | None = None,
                diagnose_mistakes: bool = True, device: str = "cpu",
                submitted_files: list[tuple[str, bytes]] = ()) -> SubmissionResult:
    """Execute ``cells`` in a sandbox and run every test against them.
    ``device``: ``cpu`` or ``cuda``, where the tests' tensors reach student code.
    ``submitted_files``: the student's own files beside the notebook (otter's
    ``student_files``), written into the sandbox's working folder."""
    a, g = packaged.assignment, packaged.grading
    started = time.monotonic()
    deadline = started + g.total_timeout
    result = SubmissionResult(name, a)
    user = ensure_user(g.sandbox_user, slot)
    limits = SandboxLimits.from_config(g, device)
    seed = submission_seed(cells) if seed is None else seed
    result.content_hash = content_hash(cells)
    result.flags = tamper_flags(cells)
    Zygote.for_slot(slot, limits.preload, limits.startup_timeout)  # starts importing now...
    preimport(a)  # ...while this process imports what the tests need
    cells = runtime_cells(packaged, list(cells), submitted_files)  # otter masters: files, intercell seed
    sandbox = Sandbox(limits, user, slot=slot, cells=list(cells) + list(extra_cells or []))
    recordings = {}
    try:
        sandbox.start(deadline)  # GraderFailure propagates: no grade is recorded
        for issue in sandbox.issues:
            result.messages.append(f"While executing your notebook, {issue.message}.")
        shadowed = shadowed_names(a, sandbox.names)
        if shadowed:
            flag, message = shadowing_notice(shadowed)
            result.flags.append(flag)
            result.messages.append(message)
        result.questions, recordings = grade_sandbox(a, sandbox, seed, question_timeout or g.question_timeout,
                                                     deadline, only)
        result.stdout = sandbox.student_output()
    finally:
        result.protection = [f"{x.name}: {'active' if x.active else 'MISSING'} ({x.detail})" for x in sandbox.layers]
        sandbox.close()
        result.peak_memory_mb = sandbox.peak_memory_mb
        result.student_seconds = sandbox.student_seconds
    if diagnose_mistakes and packaged.mutants and packaged.key_cells and recordings:
        replay = Sandbox(limits, user, slot=slot, cells=list(packaged.key_cells))
        found, result.diagnosis_unfinished = diagnose(replay, recordings, list(packaged.mutants),
                                                      question_timeout or g.question_timeout, deadline)
        for qr in result.questions:
            if qr.question.name in found:
                qr.mistake, qr.diagnosis = found[qr.question.name].name, found[qr.question.name].diagnosis
    if a.show_stdout and result.stdout:
        result.messages.append("Your notebook printed:\n" + result.stdout)
    return _fill(result, started)


def _fill(result: SubmissionResult, started: float) -> SubmissionResult:
    import resource

    result.execution_time = time.monotonic() - started
    result.grader_memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def grade_submission(packaged: PackagedAssignment, path: Path, name: str | None = None, slot: int = 0,
                     question_timeout: float | None = None, device: str = "cpu") -> SubmissionResult:
    """Grade one submission (a notebook or a folder). Never raises for bad input."""
    name = name or submission_name(path)
    try:
        with unpacked(path) as (folder, unzipped):
            nb_path, notes = find_notebook(folder, packaged.assignment)
            cells = read_cells(nb_path)
            submitted, missing = read_student_files(nb_path.parent if folder.is_dir() else None,
                                                    packaged.student_files)
    except SubmissionError as e:
        return SubmissionResult.ungraded(name, packaged.assignment, str(e))
    notes[:0] = unzipped
    if not cells:
        return SubmissionResult.ungraded(name, packaged.assignment, "Your notebook has no code cells to grade.")
    result = grade_cells(packaged, cells, name, slot, question_timeout, device=device, submitted_files=submitted)
    result.messages[:0] = notes + missing
    return result


def grade_cells_job(payload: bytes, cells: list[str], name: str, extra_cells=None, only=None) -> SubmissionResult:
    """Worker: ``grade_cells`` on a packaged assignment given as JSON bytes."""
    return grade_cells(load_packaged_assignment(payload), cells, name, extra_cells=extra_cells, only=only)
