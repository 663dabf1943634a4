"""Runs in: the grader (trusted). Runs each question's tests against proxies and decides.

Tests are instructor code. They execute here, in the grader's process,
with the student's names bound to proxies (``proxy``): student code only
ever runs in the sandbox, and only data comes back. Each question has its
own deadline; when a question hangs or kills the sandbox, the sandbox is
restarted (the notebook executed again) for the next question.
"""
from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import importlib
import sys
import time
import types

from autograder.harness.sandbox_handle import GraderFailure, Sandbox, SandboxDied, SandboxTimeout, StudentError
from autograder.harness.doctest_output import ok_outcome
from autograder.harness.proxy import RecordedCall, RemoteCallable, Session
from autograder.submission import top_level_imports
from autograder.records import Assignment, Question, QuestionResult, TestCase, TestOutcome

MAX_MESSAGE = 1500


@functools.lru_cache(maxsize=4096)
def compiled_test(code: str, filename: str) -> tuple[types.CodeType, frozenset[str]]:
    """A test cell compiled, and the names it reads (so only those are
    fetched from the sandbox). Cached: a worker grades many submissions with
    the same tests, and parsing and compiling them took about a fifth of
    the grading of a quick submission. Raises SyntaxError."""
    tree = ast.parse(code, filename)
    names = frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name))
    return compile(tree, filename, "exec"), names


@functools.lru_cache(maxsize=4096)
def _imported_modules(code: str) -> tuple[str, ...]:
    return tuple(top_level_imports([code]))


# Modules a test may see under the student's alias (``np`` in a public test
# means the trusted side's own numpy, never the student's object).
SHARED_MODULES = {"numpy", "torch", "scipy", "math", "cmath", "random", "itertools", "functools",
                  "collections", "statistics", "fractions", "sklearn", "matplotlib",
                  "pandas", "statsmodels", "datascience"}  # otter courses' own (issue 14)


def trusted_module(name: str):
    """The trusted side's own copy of a module the student imported, if allowed."""
    if name.split(".")[0] not in SHARED_MODULES:
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def preimport(assignment: Assignment) -> None:
    """Run the test cells' top-level imports once, ahead of grading (while
    the zygote starts in parallel), so a cold grader pays them only once and
    not inside a question's time limit."""
    for question in assignment.questions:
        for test in question.tests:
            for name in _imported_modules(test.code):
                try:
                    importlib.import_module(name)
                except Exception:  # noqa: BLE001 - not a module (``from m import f``), or the test will report it
                    pass


def question_seed(base_seed: int, question: str) -> int:
    """A per-question seed from the submission's seed (stable across regrades)."""
    h = hashlib.sha256(f"{base_seed}:{question}".encode()).digest()
    return int.from_bytes(h[:4], "big")


def run_test(test: TestCase, session: Session, seed: int) -> TestOutcome:
    """Execute one test cell against the sandbox; never raises (but for a
    dead or hung sandbox). Global state a test may change (torch's default
    dtype, grad mode) is restored afterwards, so tests cannot leak into
    each other."""
    torch = sys.modules.get("torch")
    saved = (torch.get_default_dtype(), torch.is_grad_enabled()) if torch is not None else None
    try:
        return _run_test(test, session, seed)
    finally:
        if saved is not None:
            torch.set_default_dtype(saved[0])
            torch.set_grad_enabled(saved[1])


def _run_test(test: TestCase, session: Session, seed: int) -> TestOutcome:
    sandbox = session.sandbox
    ns: dict = {"__builtins__": builtins, "__name__": "__sodl_test__", "seed": seed,
                "device": sandbox.limits.device}
    try:
        code, names = compiled_test(test.code, f"<{test.question} test {test.index + 1}>")
        for name in names & set(sandbox.names):
            kind = sandbox.names[name]
            if kind == "callable":
                ns[name] = RemoteCallable(session, name)
            elif kind.startswith("module:"):
                module = trusted_module(kind.removeprefix("module:"))
                if module is not None:
                    ns[name] = module
            else:
                ns[name] = session.get(name)
        if test.expected_output is not None:  # an otter OK-format test: its printed output must match
            return ok_outcome(test, ns, (SandboxTimeout, SandboxDied))
        exec(code, ns)
    except (SandboxTimeout, SandboxDied):
        raise
    except StudentError as e:
        return TestOutcome(test, False, _student_error_message(e.info))
    except AssertionError as e:
        return TestOutcome(test, False, _clip(str(e)) or "a check failed")
    except NameError as e:
        return TestOutcome(test, False, f"{_clip(str(e))} (did you define it, with this exact name, in a graded cell?)")
    except Exception as e:  # noqa: BLE001 - any other failure of the test is a failed test
        if test.hidden:
            return TestOutcome(test, False, f"your answer made the test fail with {type(e).__name__} "
                                            "(check the type and shape of what you return)")
        return TestOutcome(test, False, f"{type(e).__name__}: {_clip(str(e))}")
    return TestOutcome(test, True, "")


def grade_question(question: Question, session: Session, seed: int, timeout: float) -> QuestionResult:
    """Run every test of one question within ``timeout`` seconds in all.
    The calls made to student functions are left in ``session.recording``."""
    result = QuestionResult(question)
    session.recording = []
    session.deadline = time.monotonic() + timeout
    qseed = question_seed(seed, question.name)
    for test in question.tests:
        try:
            result.outcomes.append(run_test(test, session, qseed))
        except SandboxTimeout:
            result.note = f"stopped after {timeout:g} s: the question's time limit (an infinite loop?)"
            break
        except SandboxDied:
            result.note = "your code ended the Python process while this question was tested"
            break
    done = len(result.outcomes)
    for test in question.tests[done:]:
        result.outcomes.append(TestOutcome(test, False, result.note or "not run"))
    session.deadline = float("inf")
    return result


def grade_sandbox(assignment: Assignment, sandbox: Sandbox, seed: int, question_timeout: float,
                  deadline: float, only: set[str] | None = None,
                  ) -> tuple[list[QuestionResult], dict[str, list[RecordedCall]]]:
    """Grade every question (or those in ``only``) against a started sandbox.
    Returns the results and, per question that lost points, the calls its
    tests made (what the diagnosis replays on each mutant)."""
    session = Session(sandbox)
    results = []
    recordings: dict[str, list[RecordedCall]] = {}
    for question in assignment.questions:
        if only is not None and question.name not in only:
            continue
        if not sandbox.running:  # killed by the previous question
            if time.monotonic() < deadline:
                try:
                    sandbox.restart(deadline)
                except (SandboxDied, SandboxTimeout, GraderFailure):
                    pass
        if not sandbox.running or time.monotonic() >= deadline:
            res = QuestionResult(question, note="not graded: the submission's total time limit was reached"
                                 if time.monotonic() >= deadline else "not graded: the sandbox could not start")
            res.outcomes = [TestOutcome(t, False, res.note) for t in question.tests]
            results.append(res)
            continue
        limit = min(question_timeout, max(0.1, deadline - time.monotonic()))
        res = grade_question(question, session, seed, limit)
        if res.score < res.max_score and not res.note:
            recordings[question.name] = session.recording
        results.append(res)
    return results, recordings


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " [...]"


def _student_error_message(info: dict) -> str:
    msg = f"your code raised {info.get('type', 'an exception')}: {_clip(str(info.get('message', '')))}"
    tb = str(info.get("traceback", "")).strip()
    if tb:
        msg += "\n" + _clip(tb)
    return msg
