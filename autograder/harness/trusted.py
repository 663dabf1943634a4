"""Runs in: the grader (trusted). Runs each question's tests against proxies and decides.

Tests are instructor code. They execute here, in the grader's process,
with the student's names bound to proxies (``proxy``): student code only
ever runs in the sandbox, and only data comes back. Each question has its
own deadline; when a question hangs or kills the sandbox, the sandbox is
restarted (the notebook executed again) for the next question.
"""
from __future__ import annotations

import builtins
import functools
import hashlib
import importlib
import signal
import sys
import threading
import time
import types

from autograder.harness import wire
from autograder.harness.sandbox_handle import GraderFailure, Sandbox, SandboxDied, SandboxTimeout, StudentError
from autograder.harness.doctest_output import ok_outcome
from autograder.harness.proxy import RecordedCall, RemoteCallable, Session
from autograder.names import BUILTIN_NAMES, test_reads
from autograder.submission import top_level_imports
from autograder.records import Assignment, Question, QuestionResult, TestCase, TestOutcome

MAX_MESSAGE = 1500
QUESTION_BUDGETS = 4  # a question's replies may carry this many reply budgets in all (``wire.reply_budget``)
TRUSTED_GRACE = 1.0  # seconds past a question's deadline before the grader's own work is cut


@functools.lru_cache(maxsize=4096)
def compiled_test(code: str, filename: str) -> tuple[types.CodeType, frozenset[str]]:
    """A test cell compiled, and the free names it reads before binding
    them (``names.test_reads``: only those may come from outside the test).
    Cached: a worker grades many submissions with the same tests, and
    parsing and compiling them took about a fifth of the grading of a quick
    submission. Raises SyntaxError."""
    return compile(code, filename, "exec"), test_reads(code)


@functools.lru_cache(maxsize=4096)
def _imported_modules(code: str) -> tuple[str, ...]:
    return tuple(top_level_imports([code]))


@functools.lru_cache(maxsize=256)
def master_module(what: str):
    """The trusted side's own module for an import of the answer key
    (``names.module_aliases``: ``numpy``, or ``module:attribute`` for a
    ``from`` import). ``what`` comes from the packaged assignment, never
    from the sandbox. None if it does not import."""
    module, _, attr = what.partition(":")
    try:
        m = importlib.import_module(module)
        return getattr(m, attr) if attr else m
    except Exception:  # noqa: BLE001 - an import the grader lacks: the test sees a NameError
        return None


def shadowed_names(assignment: Assignment, student_kinds: dict[str, str]) -> list[str]:
    """The student's top-level names that shadow a builtin, a grader name
    (``seed``, ``device``) or one of the master's module aliases bound to
    something else than a module. Tests never see these (they resolve on the
    trusted side); a TA is told (a flag) and so is the student. The kinds
    come from the sandbox: they decide a flag and a message, never a grade."""
    aliases = {alias for alias, _ in assignment.modules}
    out = []
    for name, kind in student_kinds.items():
        if name in assignment.student_names:
            continue
        if name in BUILTIN_NAMES or name in ("seed", "device") or (name in aliases and not kind.startswith("module:")):
            out.append(wire.clean_text(name, 60))
    return sorted(out)


def shadowing_notice(shadowed: list[str]) -> tuple[str, str]:
    """(the gradebook flag, the student's message) for :func:`shadowed_names`."""
    shown = ", ".join(shadowed[:20]) + (f" and {len(shadowed) - 20} more" if len(shadowed) > 20 else "")
    return (f"shadows builtins or grader names: {shown}",
            f"Your notebook defines {shown} at its top level, and these are names of Python's builtins, "
            "of the grader (seed, device) or of the notebook's modules. The tests always use the real ones, "
            "never yours: rename yours if your answers rely on them.")


def preimport(assignment: Assignment) -> None:
    """Run the test cells' top-level imports once, ahead of grading (while
    the zygote starts in parallel), so a cold grader pays them only once and
    not inside a question's time limit."""
    for question in assignment.questions:
        for test in question.tests:
            for name in _imported_modules(test.code):
                if name.split(".")[0] in assignment.student_modules:
                    continue  # the student's own module: imported in the sandbox only (``test_builtins``)
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
    dead or hung sandbox, the question's deadline, or the grader being
    stopped). Global state a test may change (torch's default dtype, grad
    mode) is restored afterwards, so tests cannot leak into each other."""
    torch = sys.modules.get("torch")
    saved = (torch.get_default_dtype(), torch.is_grad_enabled()) if torch is not None else None
    try:
        return _run_test(test, session, seed)
    finally:
        if saved is not None:
            torch.set_default_dtype(saved[0])
            torch.set_grad_enabled(saved[1])


def test_builtins(session: Session):
    """The builtins a test runs with: Python's own, but for an otter
    assignment whose student submits Python files (``student_files``) an
    ``__import__`` that serves those modules from the sandbox.

    Why: a test such as otter-example's ``import student_file; assert
    student_file.FOO == 1`` imports code the student wrote. Otter runs it in
    the student's kernel; importing it here would run student code in the
    grader. Instead the sandbox imports it (``Op.IMPORT``: the file was
    written into its working folder with the notebook's ``files:``) and the
    test gets a handle (``proxy.RemoteObject``): ``student_file.FOO`` comes
    back as data, ``student_file.f(x)`` runs there, like the notebook's own
    names. Which modules are the student's is fixed at build time
    (``Assignment.student_modules``); every other import is the grader's
    own, as before. ``import pkg.mod`` binds ``pkg``, ``from pkg.mod import
    f`` reads ``f`` of ``pkg.mod``, as Python's import does."""
    if not session.student_modules:
        return builtins
    real = builtins.__import__

    def __import__(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A001 - the hook's name
        if level or name.split(".")[0] not in session.student_modules:
            return real(name, globals, locals, fromlist, level)
        module = session.student_module(name)
        return module if fromlist or "." not in name else session.student_module(name.split(".")[0])

    return {**vars(builtins), "__import__": __import__}


def _student_import(session: Session, what: str):
    """A master's alias (``names.module_aliases``: ``module`` or
    ``module:attribute``) of a module the student submits, from the sandbox."""
    module, _, attr = what.partition(":")
    top = session.student_module(module.split(".")[0])
    if "." in module and not attr:
        return top
    value = session.student_module(module)
    return getattr(value, attr) if attr else value


def test_namespace(test_reads: frozenset[str], session: Session, seed: int) -> tuple[dict, dict[str, str]]:
    """The globals a test runs in, and why a declared name is missing.

    Builtins, ``seed`` and ``device`` are the grader's (but imports of the
    student's own modules, :func:`test_builtins`); a module alias is the
    master's module, imported here; a name is fetched from the student
    only if the answer key declares it (``Session.declared``) and the test
    reads it before binding it. Nothing else of the student's is looked at."""
    sandbox = session.sandbox
    ns: dict = {"__builtins__": test_builtins(session), "__name__": "__sodl_test__", "seed": seed,
                "device": sandbox.limits.device}
    missing: dict[str, str] = {}
    for name in sorted(test_reads):
        if name in ns or name in BUILTIN_NAMES:
            continue
        if name in session.modules:
            what = session.modules[name]
            if what.split(":")[0].split(".")[0] in session.student_modules:  # the key imports the student's module
                try:
                    ns[name] = _student_import(session, what)
                except StudentError as e:
                    missing[name] = _student_error_message(e.info)
                continue
            module = master_module(what)
            if module is not None:
                ns[name] = module
        elif name in session.declared and name in sandbox.names:
            if sandbox.names[name] == "callable":
                ns[name] = RemoteCallable(session, name)
                continue
            try:
                ns[name] = session.get(name)
            except StudentError as e:
                missing[name] = _student_error_message(e.info)
            except wire.WireError as e:
                missing[name] = f"its value could not be read ({wire.clean_text(str(e), 200)})"
    return ns, missing


def _run_test(test: TestCase, session: Session, seed: int) -> TestOutcome:
    session.mirror_mutations = not test.hidden  # a public test sees in-place changes, as under otter
    missing: dict[str, str] = {}
    try:
        code, reads = compiled_test(test.code, f"<{test.question} test {test.index + 1}>")
        ns, missing = test_namespace(reads, session, seed)
        if test.expected_output is not None:  # an otter OK-format test: its printed output must match
            return ok_outcome(test, ns, (SandboxTimeout, SandboxDied, KeyboardInterrupt, SystemExit))
        exec(code, ns)
    except (SandboxTimeout, SandboxDied, KeyboardInterrupt, SystemExit):
        raise  # the question's deadline or a dead sandbox (the caller decides), or the grader is being stopped
    except StudentError as e:
        return TestOutcome(test, False, _student_error_message(e.info))
    except wire.MessageTooLarge as e:
        return TestOutcome(test, False, f"your answer is too large to grade: {e}")
    except wire.WireError as e:
        return TestOutcome(test, False, "your answer could not be read as data "
                                        f"({wire.clean_text(str(e), 200)}): return numbers, arrays, tensors, "
                                        "lists, tuples or dicts of them")
    except AssertionError as e:
        return TestOutcome(test, False, _clip(str(e)) or "a check failed")
    except NameError as e:
        name = getattr(e, "name", None)
        if name in missing:
            return TestOutcome(test, False, f"your {name} could not be used: {missing[name]}")
        return TestOutcome(test, False, f"{_clip(str(e))} (did you define it, with this exact name, in a graded cell?)")
    except BaseException as e:  # noqa: BLE001 - any other failure of the test is a failed test
        if test.hidden:
            return TestOutcome(test, False, f"your answer made the test fail with {type(e).__name__} "
                                            "(check the type and shape of what you return)")
        return TestOutcome(test, False, f"{type(e).__name__}: {_clip(str(e))}")
    return TestOutcome(test, True, "")


class TrustedTimeout(SandboxTimeout):
    """The question's deadline passed while the grader itself was working
    (decoding or comparing the student's answers)."""


def _on_alarm(signum, frame):
    raise TrustedTimeout()


def _arm_deadline(seconds: float):
    """Raise :class:`TrustedTimeout` in this thread after ``seconds``, so the
    trusted side's own work (decoding, comparing) is bounded by the
    question's deadline too, not only the sandbox's. Returns what
    :func:`_disarm` needs to restore the previous alarm (pytest-timeout's,
    say). A no-op outside the main thread, where signals cannot be used."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    old_delay, _ = signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    return previous, old_delay, time.monotonic()


def _disarm(armed) -> None:
    if armed is None:
        return
    previous, old_delay, started = armed
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)
    if old_delay:
        signal.setitimer(signal.ITIMER_REAL, max(old_delay - (time.monotonic() - started), 0.01))


def grade_question(question: Question, session: Session, seed: int, timeout: float,
                   deadline: float = float("inf")) -> QuestionResult:
    """Run every test of one question within ``timeout`` seconds in all
    (and before the submission's ``deadline``); the grader's own work on
    the answers (decoding, comparing) is cut at the same deadline, with a
    second's grace (``_arm_deadline``), and the replies' bytes are
    budgeted. A test that hangs or kills the sandbox fails alone: the
    sandbox is restarted, and the question's other tests run with the time
    limit afresh (time burned by a loop, and the restart, are never charged
    to tests that do not call the looping code: week 1's loop in
    ``cross_entropy`` used to fail the ``softmax`` tests after it). The
    calls made to student functions are left in ``session.recording``."""
    result = QuestionResult(question)
    session.recording = []
    session.bytes_left = session.byte_budget = QUESTION_BUDGETS * wire.reply_budget(session.sandbox.limits.memory_mb)
    budget_end = min(time.monotonic() + timeout, deadline)
    qseed = question_seed(seed, question.name)
    for test in question.tests:
        if not session.sandbox.running:  # a previous test hung or killed it
            try:
                session.sandbox.restart(deadline)
            except (SandboxDied, SandboxTimeout, GraderFailure):
                pass
            if not session.sandbox.running or time.monotonic() >= deadline:
                result.outcomes.append(TestOutcome(test, False, result.note or "not run"))
                continue
            budget_end = min(time.monotonic() + timeout, deadline)
        session.deadline = budget_end
        armed = _arm_deadline(budget_end - time.monotonic() + TRUSTED_GRACE)
        try:
            result.outcomes.append(run_test(test, session, qseed))
        except SandboxTimeout as e:
            result.note = f"stopped after {timeout:g} s: the question's time limit (an infinite loop?)"
            if isinstance(e, TrustedTimeout):  # it may have struck mid-request: start afresh
                session.sandbox.close()
            result.outcomes.append(TestOutcome(test, False, result.note))
        except SandboxDied:
            result.note = "your code ended the Python process while this question was tested"
            result.outcomes.append(TestOutcome(test, False, result.note))
        finally:
            _disarm(armed)
    session.deadline = float("inf")
    return result


def grade_sandbox(assignment: Assignment, sandbox: Sandbox, seed: int, question_timeout: float,
                  deadline: float, only: set[str] | None = None,
                  ) -> tuple[list[QuestionResult], dict[str, list[RecordedCall]]]:
    """Grade every question (or those in ``only``) against a started sandbox.
    Returns the results and, per question that lost points, the calls its
    tests made (what the diagnosis replays on each mutant)."""
    session = Session(sandbox, assignment.student_names, dict(assignment.modules), assignment.student_modules)
    results = []
    recordings: dict[str, list[RecordedCall]] = {}
    kept = 0  # bytes of the student's replies that the recordings hold
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
        res = grade_question(question, session, seed, limit, deadline)
        # A recording holds the student's answers until the diagnosis, after
        # the last question: kept, they added up question after question (a
        # question's replies may carry four reply budgets), so all of them
        # together keep at most one; a question past it is not diagnosed.
        received = session.byte_budget - session.bytes_left
        if res.score < res.max_score and not res.note and kept + received <= wire.reply_budget(
                sandbox.limits.memory_mb):
            recordings[question.name] = session.recording
            kept += received
        results.append(res)
    return results, recordings


def _clip(text) -> str:
    """Text for a student, bounded and clean (``wire.clean_text``)."""
    return wire.clean_text(text, MAX_MESSAGE)


def _student_error_message(info: dict) -> str:
    """What the student is told of an exception their code raised. Every
    part came from the sandbox: nothing is called on it, only strings of
    JSON data are cleaned and clipped (a hostile ``__str__`` ran, if at all,
    in the sandbox)."""
    info = info if isinstance(info, dict) else {}
    kind = wire.clean_text(info.get("type") if type(info.get("type")) is str else "an exception", 100)
    msg = f"your code raised {kind}: {_clip(info.get('message') if type(info.get('message')) is str else '')}"
    tb = info.get("traceback") if type(info.get("traceback")) is str else ""
    if tb.strip():
        msg += "\n" + _clip(tb.strip())
    return msg
