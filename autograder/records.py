"""Records that flow through building and grading."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TestCase:
    """One test cell of a question.

    Attributes:
        question: name of the question it belongs to.
        index: position among the question's test cells (0-based).
        code: the Python source, without its config block.
        hidden: hidden tests are not shown to students before grading.
        points: what passing it is worth.
        expected_output: for an OK-format (otter doctest) test, what its last
            statement must print (from the executed master); None for a test
            that passes when it does not raise.
        name: the test's name in messages (otter's ``name:``).
        success_message: shown when it passes (otter's ``success_message``).
        failure_message: shown when it fails (otter's ``failure_message``).
    """

    __test__ = False  # not a pytest class

    question: str
    index: int
    code: str
    hidden: bool
    points: float
    expected_output: str | None = None
    name: str = ""
    success_message: str = ""
    failure_message: str = ""

    @property
    def label(self) -> str:
        """How the student's results name the test: its ``name`` when the
        master gives one (otter's), else its kind and number."""
        return self.name or f"{'hidden' if self.hidden else 'public'} test {self.index + 1}"


@dataclass(frozen=True)
class Question:
    """A graded question of an assignment.

    Attributes:
        name: identifier used by ``grader.check`` and the gradebook.
        points: the question's total (sum of its tests' points).
        tests: its test cases, public and hidden.
        all_or_nothing: otter's ``all_or_nothing``: full points only when
            every test passes, else none.
    """

    name: str
    points: float
    tests: tuple[TestCase, ...]
    all_or_nothing: bool = False


@dataclass(frozen=True)
class Assignment:
    """What grading needs to know about one week: it travels in the zip.

    Attributes:
        name: e.g. ``week01``.
        title: human title.
        questions: graded questions, in notebook order.
        hidden_visibility: Gradescope visibility of hidden-test results.
        show_stdout: whether students see their notebook's printed output.
        student_names: the names tests may take from a student (what the
            answer key defines at top level; ``names.declared_names``):
            nothing else of the student's is ever fetched.
        modules: the answer key's imports as (alias, module) pairs
            (``names.module_aliases``): tests see these as the grader's own
            modules, whatever the student bound to the alias.
        manual_questions: questions graded by hand (otter's ``manual: true``):
            not in the autograded score, listed for the graders.
        student_modules: top-level names of the Python modules the student
            submits beside the notebook (otter's ``student_files``): a test's
            ``import`` of one gets the sandbox's module behind a proxy, never
            an import on the trusted side (``trusted.test_builtins``).
        notebook: the file name students submit: an otter master's own name
            (``example.ipynb`` for ``name: hw01``); empty: ``<name>.ipynb``.
    """

    name: str
    title: str
    questions: tuple[Question, ...]
    hidden_visibility: str = "after_published"
    show_stdout: bool = False
    student_names: tuple[str, ...] = ()
    modules: tuple[tuple[str, str], ...] = ()
    manual_questions: tuple[str, ...] = ()
    student_modules: tuple[str, ...] = ()
    notebook: str = ""

    @property
    def total_points(self) -> float:
        return sum(q.points for q in self.questions)

    @property
    def notebook_name(self) -> str:
        """The notebook file a submission should hold."""
        return self.notebook or f"{self.name}.ipynb"

    def to_dict(self) -> dict:
        return {
            "name": self.name, "title": self.title,
            "hidden_visibility": self.hidden_visibility, "show_stdout": self.show_stdout,
            "student_names": list(self.student_names), "modules": [list(m) for m in self.modules],
            "manual_questions": list(self.manual_questions), "student_modules": list(self.student_modules),
            "notebook": self.notebook,
            "questions": [
                {"name": q.name, "points": q.points, "all_or_nothing": q.all_or_nothing,
                 "tests": [{"index": t.index, "code": t.code, "hidden": t.hidden, "points": t.points,
                            "expected_output": t.expected_output, "name": t.name,
                            "success_message": t.success_message, "failure_message": t.failure_message}
                           for t in q.tests]}
                for q in self.questions
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Assignment":
        qs = tuple(
            Question(q["name"], float(q["points"]), tuple(
                TestCase(q["name"], int(t["index"]), t["code"], bool(t["hidden"]), float(t["points"]),
                         t.get("expected_output"), str(t.get("name", "")), str(t.get("success_message", "")),
                         str(t.get("failure_message", "")))
                for t in q["tests"]), bool(q.get("all_or_nothing", False)))
            for q in d["questions"]
        )
        return cls(d["name"], d["title"], qs, d.get("hidden_visibility", "after_published"),
                   bool(d.get("show_stdout", False)), tuple(str(n) for n in d.get("student_names", ())),
                   tuple((str(a), str(m)) for a, m in d.get("modules", ())), tuple(d.get("manual_questions", ())),
                   tuple(str(m) for m in d.get("student_modules", ())), str(d.get("notebook", "")))


@dataclass
class TestOutcome:
    """The result of one test case on one submission.

    Attributes:
        test: the test case.
        passed: whether it passed.
        message: what the student is told (never hidden code or expected values).
    """

    __test__ = False  # not a pytest class

    test: TestCase
    passed: bool
    message: str = ""

    @property
    def score(self) -> float:
        return self.test.points if self.passed else 0.0

    def report_lines(self) -> list[str]:
        """The test's lines in the student's results and feedback, as otter's
        summary shows them (``otter/test_files/abstract_test.py``): the
        author's ``success_message`` or ``failure_message`` as ``<name>
        message: ...``, then the verdict with what went wrong."""
        t, lines = self.test, []
        note = t.success_message if self.passed else t.failure_message
        if note:
            lines.append(f"{t.label} message: {note}")
        lines.append(f"{t.label}: passed" if self.passed else f"{t.label}: failed: {self.message}")
        return lines


@dataclass
class QuestionResult:
    """All outcomes of one question on one submission.

    Attributes:
        question: the question.
        outcomes: one per test case, in order.
        note: a question-level message (timeout, missing function...).
        mistake: name of the catalogued mistake the answer behaves like ("" if none).
        diagnosis: that mistake's student-facing explanation.
    """

    question: Question
    outcomes: list[TestOutcome] = field(default_factory=list)
    note: str = ""
    mistake: str = ""
    diagnosis: str = ""

    @property
    def score(self) -> float:
        if self.question.all_or_nothing and not (self.outcomes and all(o.passed for o in self.outcomes)):
            return 0.0
        return sum(o.score for o in self.outcomes)

    @property
    def max_score(self) -> float:
        return self.question.points

    def earned(self, outcomes: list[TestOutcome]) -> float:
        """What some of this question's outcomes earn (nothing when an
        all-or-nothing question failed a test), for per-part reports that
        must add up to :attr:`score`."""
        if self.question.all_or_nothing and self.score == 0:
            return 0.0
        return sum(o.score for o in outcomes)


@dataclass
class SubmissionResult:
    """The grade of one submission.

    Attributes:
        name: submission name (folder name, or notebook file name without .ipynb).
        assignment: what was graded.
        questions: per-question results (every question, graded or not).
        messages: submission-level messages for the student (bad notebook,
            cells that failed, what to fix).
        stdout: the student's own printed output (bounded).
        execution_time: seconds spent grading.
        content_hash: hash of the graded code (equal hashes: identical submissions).
        flags: things a TA may want to look at (attempts to tamper); flags, not verdicts.
        peak_memory_mb: the sandbox's peak resident memory.
        grader_memory_mb: the grading process's own peak resident memory.
        student_seconds: seconds the sandbox spent in the student's own code
            (executing cells, and the calls the tests made), for accounting
            only: reported by the sandbox, capped by the grader's clock.
        protection: the sandbox's protection layers, "name: active|MISSING
            (detail)", as reported at its start (for the log and grading.json).
        diagnosis_unfinished: why the mistake diagnosis stopped early ("" when
            it ran to the end), for ``sodl check``'s report; not a grade.
    """

    name: str
    assignment: Assignment
    questions: list[QuestionResult] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    stdout: str = ""
    execution_time: float = 0.0
    content_hash: str = ""
    flags: list[str] = field(default_factory=list)
    peak_memory_mb: float = 0.0
    grader_memory_mb: float = 0.0
    student_seconds: float = 0.0
    protection: list[str] = field(default_factory=list)
    diagnosis_unfinished: str = ""

    @property
    def score(self) -> float:
        return sum(q.score for q in self.questions)

    @property
    def max_score(self) -> float:
        return self.assignment.total_points

    @classmethod
    def ungraded(cls, name: str, assignment: Assignment, message: str) -> "SubmissionResult":
        """Zero on every question, with one message saying why."""
        res = cls(name, assignment, messages=[message])
        for q in assignment.questions:
            res.questions.append(QuestionResult(
                q, [TestOutcome(t, False, "not graded") for t in q.tests], note="not graded"))
        return res
