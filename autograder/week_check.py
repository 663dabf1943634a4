"""``sodl check``: prove a week's tests tell right from wrong.

The answer key must score full marks, the blank student notebook zero,
and every mutant must lose points on its question. The student's loop is
replayed too (``student_loop``): otter's own ``grader.check`` must pass
every public case on the answer key and give every case of every mutant
the verdict our grader gives; the public checks must catch at least
``MIN_PUBLIC_CATCH`` of the week's catalogued mutants.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from autograder import student_loop, workers
from autograder.build import BuiltWeek, prepare
from autograder.course import Week
from autograder.errors import UserError
from autograder.grade import grade_cells_job
from autograder.submission import grading_cells

MIN_MUTANTS = 2
MIN_PUBLIC_CATCH = 0.6  # of a week's catalogued mutants, caught by the public checks alone
GRADESCOPE_MB = 768  # Gradescope's default machine: 768 MB, half a CPU, 10 minutes
GRADESCOPE_SECONDS = 600


@dataclass
class CheckLine:
    """One verdict of ``sodl check``.

    Attributes:
        week: week name.
        subject: "solution", "blank" or "<question>/<mutant>".
        expected: what had to happen, in words.
        score: the score obtained.
        max_score: the maximum for that subject.
        ok: whether the expectation held.
        detail: why not, when it did not.
        diagnosed: for a mutant, the mistake the diagnosis named ("" if none).
    """

    week: str
    subject: str
    expected: str
    score: float
    max_score: float
    ok: bool
    detail: str = ""
    diagnosed: str = ""


@dataclass
class WeekCheck:
    """All verdicts for one week, and how long grading the solution took.

    Attributes:
        week: week name.
        lines: the verdicts.
        solution_seconds: grading the answer key, wall-clock.
        sandbox_mb, grader_mb: peak memory of that grading, per side.
        failure: why the week could not be built or checked to the end
            ("" when it could; see :func:`failed_week`).
    """

    week: str
    lines: list[CheckLine] = field(default_factory=list)
    solution_seconds: float = 0.0
    sandbox_mb: float = 0.0
    grader_mb: float = 0.0
    failure: str = ""

    def gradescope_warnings(self) -> list[str]:
        """Why this week might not fit Gradescope's default machine."""
        out = []
        if self.sandbox_mb + self.grader_mb > GRADESCOPE_MB:
            out.append(f"peak memory {self.sandbox_mb + self.grader_mb:.0f} MB is over Gradescope's {GRADESCOPE_MB} MB")
        if self.solution_seconds * 2 > GRADESCOPE_SECONDS:  # half a CPU: about twice as slow
            out.append(f"grading takes {self.solution_seconds:.0f} s here, about {2 * self.solution_seconds:.0f} s "
                       f"on half a CPU: over Gradescope's {GRADESCOPE_SECONDS} s")
        return out

    @property
    def ok(self) -> bool:
        return bool(self.lines) and all(line.ok for line in self.lines)


def check_week(week: Week, executor) -> WeekCheck:
    """Grade the key, the blank notebook and every mutant (in ``executor``'s workers)."""
    built: BuiltWeek = prepare(week)
    packaged = built.packaged
    a = packaged.assignment
    payload = packaged.to_json()
    key_cells = grading_cells(built.key)
    blank_cells = grading_cells(built.student)
    report = WeekCheck(week.name)

    loop = student_loop.replay(week.name, built.student, key_cells, [m.to_dict() for m in built.mutants],
                               week.master_path.parent)

    def run(cells, extra=None, only=None):
        return executor.submit(grade_cells_job, payload, cells, week.name, extra, only)

    # The answer key is graded in a fresh worker, so that its memory is what
    # one Gradescope run would use (a long-lived worker has imported every week).
    with workers.pool(1) as fresh:
        sol_f = fresh.submit(grade_cells_job, payload, key_cells, week.name)
        blank_f = run(blank_cells)
        mut_f = [(m, run(key_cells, [m.code], {m.question})) for m in built.mutants]
        sol = sol_f.result()
    report.solution_seconds = sol.execution_time
    report.sandbox_mb, report.grader_mb = sol.peak_memory_mb, sol.grader_memory_mb
    failing = [f"{q.question.name}: {next((o.message for o in q.outcomes if not o.passed), q.note)}"
               for q in sol.questions if q.score < q.max_score - 1e-9]
    report.lines.append(CheckLine(week.name, "solution", "full marks", sol.score, sol.max_score,
                                  abs(sol.score - sol.max_score) < 1e-9 and not failing,
                                  "; ".join(failing + sol.messages)[:600]))
    blank = blank_f.result()
    passing = [q.question.name for q in blank.questions if q.score > 0]
    report.lines.append(CheckLine(week.name, "blank", "zero", blank.score, blank.max_score,
                                  blank.score == 0, f"points on {', '.join(passing)}" if passing else ""))
    for m, fut in mut_f:
        res = fut.result()
        q = next(q for q in res.questions if q.question.name == m.question)
        loses = q.score < q.max_score - 1e-9
        named = q.mistake == m.name
        detail = ("every test still passes" if not loses else
                  "" if named else
                  f"diagnosed as {q.mistake!r}: the two give the same outputs on the grading inputs"
                  if q.mistake else
                  f"the diagnosis did not finish ({res.diagnosis_unfinished}); this is no verdict on the mutant: "
                  f"run `sodl check {week.name}` again" if res.diagnosis_unfinished else
                  "its outputs match no mutant: the diagnosis does not recognize it")
        report.lines.append(CheckLine(week.name, f"{m.question}/{m.name}", "loses points, diagnosed", q.score,
                                      q.max_score, loses and named, detail, diagnosed=q.mistake))
    report.lines += student_loop_lines(week.name, sol, [(m, f.result()) for m, f in mut_f],
                                       student_loop.collect(loop))
    for q in a.questions:
        n = sum(1 for m in built.mutants if m.question == q.name)
        if n < MIN_MUTANTS:
            report.lines.append(CheckLine(week.name, f"{q.name}/*", f">= {MIN_MUTANTS} mutants", n, MIN_MUTANTS,
                                          False, f"only {n} mutant(s) in mutants.yml"))
    return report


def failed_week(week: str, stage: str, error: Exception, command: str) -> WeekCheck:
    """A week whose build or check could not finish, as one failing line
    of the table: which week, what failed, what to do. The TA gets this
    line, never a traceback, and the other weeks go on (issue 13).

    ``stage``: "build" or "grading", where it failed. ``command``: the
    command that does this week alone, to run again. A ``UserError`` (the
    week's "master") says what to fix in the week; anything else is the
    machinery's failure (a sandbox that did not start, a grading worker
    that died), which says nothing about the week's tests."""
    if isinstance(error, UserError):
        stage, detail = "master", " ".join(str(error).split())[:1000]
    else:
        message = " ".join(str(error).split())[:300]
        detail = (f"the grading machinery failed ({type(error).__name__}{': ' + message if message else ''}); "
                  f"this is no verdict on the week's tests: run `{command}` again, and report it with this "
                  "line if it fails again")
    return WeekCheck(week, [CheckLine(week, stage, "runs to the end", 0, 1, False, detail)], failure=detail)


class WeekChecker:
    """``check_week`` for one week after another, in one pool of grading
    workers, never raising for a week: a week whose check fails to finish
    is a :func:`failed_week` line, and the next week gets a fresh pool (a
    worker that died breaks a ``ProcessPoolExecutor`` for good, and the
    failed week's queued mutants must not hold up the next one).
    KeyboardInterrupt still stops everything. ``command``: the ``sodl``
    subcommand running it (``check`` or ``build``), named in what to do."""

    def __init__(self, jobs: int, command: str = "check"):
        self.jobs, self.command = jobs, command
        self.executor = None

    def __enter__(self) -> "WeekChecker":
        self.executor = workers.pool(self.jobs)
        return self

    def __exit__(self, *exc) -> None:
        self.executor.shutdown(cancel_futures=True)

    def check(self, week: Week) -> WeekCheck:
        try:
            return check_week(week, self.executor)
        except Exception as e:  # noqa: BLE001 - any failure is this week's verdict, told as a line
            self.executor.shutdown(cancel_futures=True)
            self.executor = workers.pool(self.jobs)
            return failed_week(week.name, "grading", e, f"sodl {self.command} {week.name}")


def _public_verdicts(result, question: str) -> list[bool]:
    """Our grader's verdict on each public case of ``question``, in order."""
    q = next(q for q in result.questions if q.question.name == question)
    return [o.passed for o in q.outcomes if not o.test.hidden]


def student_loop_lines(week: str, sol, mutant_results, loop: student_loop.StudentLoop) -> list[CheckLine]:
    """Verdicts on the student's loop: otter's ``grader.check`` passes the key,
    agrees with our grader on every public case, and catches enough mutants."""
    if loop.error:
        return [CheckLine(week, "public checks (otter)", "run", 0, 1, False, loop.error)]
    lines = []
    failing = [f"{v.question}: {v.error or '; '.join(v.failures)}" for v in loop.key if v.caught]
    lines.append(CheckLine(week, "public checks (otter)", "pass on the key", len(loop.key) - len(failing),
                           len(loop.key), not failing, " | ".join(failing)[:600]))
    otter = {(v.question, v.mutant): v for v in loop.mutants}
    disagree = []
    per_question: dict[str, list[bool]] = {}
    for m, res in mutant_results:
        v = otter.get((m.question, m.name))
        if v is None:
            disagree.append(f"{m.question}/{m.name}: otter did not check it")
            continue
        ours = _public_verdicts(res, m.question)
        if v.error:
            if all(ours):
                disagree.append(f"{m.question}/{m.name}: otter could not check it ({v.error}), ours passes it")
        elif v.passed != ours:
            cases = [str(i + 1) for i, (a, b) in enumerate(zip(v.passed, ours)) if a != b]
            disagree.append(f"{m.question}/{m.name}: public case(s) {', '.join(cases) or '(count differs)'}: "
                            f"otter {v.passed}, sodl {ours}")
        per_question.setdefault(m.question, []).append(v.caught)
    lines.append(CheckLine(week, "public checks (otter)", "same verdicts as sodl", len(mutant_results) - len(disagree),
                           len(mutant_results), not disagree, " | ".join(disagree)[:600]))
    for q, caught in per_question.items():
        lines.append(CheckLine(week, f"{q}/public catch", "mutants caught by public checks", sum(caught),
                               len(caught), True, "" if any(caught) else "no mutant caught publicly"))
    total = sum(len(c) for c in per_question.values())
    caught = sum(sum(c) for c in per_question.values())
    lines.append(CheckLine(week, "public catch", f">= {MIN_PUBLIC_CATCH:.0%} of mutants", caught, total,
                           total == 0 or caught >= MIN_PUBLIC_CATCH * total,
                           f"the public checks catch {caught} of {total}"))
    return lines


def format_table(checks: list[WeekCheck]) -> str:
    rows = [("week", "subject", "expected", "score", "verdict")]
    for c in checks:
        for line in c.lines:
            verdict = "ok" if line.ok else f"FAIL {line.detail}"
            rows.append((line.week, line.subject, line.expected, f"{line.score:g}/{line.max_score:g}", verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out = []
    for r in rows:
        out.append("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
    return "\n".join(out)


@dataclass
class MasterCheck:
    """``sodl check MASTER.ipynb`` on an otter master without mutants: the
    checks that can still be made.

    Attributes:
        name: the assignment's name.
        solution: (score, max) of the answer key.
        blank: (score, max) of the blank student notebook.
        blind_tests: "question test N (public|hidden)" for each test that the
            blank notebook passes: a test that cannot fail on a blank answer
            proves nothing about an answer.
        solution_failures: the answer key's failed tests, with their messages.
    """

    name: str
    solution: tuple[float, float]
    blank: tuple[float, float]
    blind_tests: list[str] = field(default_factory=list)
    solution_failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.solution[0] == self.solution[1] > 0


def check_master(path) -> MasterCheck:
    """Grade an otter master's answer key and blank student notebook (the
    answer key runs in the master's folder, with its files)."""
    from pathlib import Path

    from autograder.build import prepare_master
    from autograder.grade import grade_cells

    built = prepare_master(Path(path))
    model_files = [(rel, (Path(path).parent / rel).read_bytes()) for rel in built.packaged.student_files]
    sol = grade_cells(built.packaged, grading_cells(built.key), "solution", diagnose_mistakes=False,
                      submitted_files=model_files)  # the key hands in the master's student_files, as otter's does
    blank = grade_cells(built.packaged, grading_cells(built.student), "blank", diagnose_mistakes=False)
    check = MasterCheck(built.master.name, (sol.score, sol.max_score), (blank.score, blank.max_score))
    for qr in blank.questions:
        for o in qr.outcomes:
            if o.passed and o.test.points > 0:
                check.blind_tests.append(f"{qr.question.name} test {o.test.index + 1} "
                                         f"({'hidden' if o.test.hidden else 'public'})")
    for qr in sol.questions:
        for o in qr.outcomes:
            if not o.passed:
                check.solution_failures.append(f"{qr.question.name} test {o.test.index + 1}: {o.message or qr.note}")
    return check
