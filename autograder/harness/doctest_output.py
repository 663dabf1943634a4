"""Runs in: the grader (trusted). OK-format tests graded as otter grades them.

An OK-format test is a doctest: each top-level statement of the test cell
is an example, and the cell's saved output in the executed master is what
the last example must print (``otter/assign/tests_manager.py`` builds the
text, ``otter/test_files/ok_test.py`` runs it with ``doctest``). So
``square(1)`` passes only if it *prints* ``1``, not merely if it does not
raise. We run the same doctest, with the standard library's runner and
output checker, in the trusted namespace: names are proxies, values come
back from the sandbox as data and are printed here, so a student object
cannot choose its own ``repr``. A dead or hung sandbox still ends the
question (``SandboxTimeout``/``SandboxDied`` are re-raised, not reported
as a failed example).
"""
from __future__ import annotations

import ast
import doctest
import io

from autograder.harness.wire import clean_text

_CONTINUATION = (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.FunctionDef, ast.AsyncFunctionDef,
                 ast.ClassDef, ast.AsyncFor, ast.AsyncWith)


def doctest_text(code: str, expected: str) -> str:
    """The doctest of a test cell: ``>>>`` before each top-level statement,
    ``...`` before its other lines, then the expected output."""
    lines = code.split("\n")
    out = []
    for stmt in ast.parse(code).body:
        start = (stmt.decorator_list[0].lineno if getattr(stmt, "decorator_list", None) else stmt.lineno) - 1
        chunk = [ln for ln in lines[start:stmt.end_lineno]]
        out.append(">>> " + chunk[0])
        out += ["... " + ln for ln in chunk[1:] if ln.strip()]
    return "\n".join(out + expected.split("\n"))


class _Runner(doctest.DocTestRunner):
    """A quiet runner that remembers what failed, and lets the sandbox's
    own failures (timeout, death) end the question."""

    fatal: tuple[type, ...] = ()

    def __init__(self):
        super().__init__(verbose=False, optionflags=0)
        self.problem = ""
        self.raised: BaseException | None = None

    def report_failure(self, out, test, example, got):
        if not self.problem:
            self.problem = f"`{example.source.strip()}` printed {got.strip()[:300]!r}, not the expected output"

    def report_unexpected_exception(self, out, test, example, exc_info):
        if isinstance(exc_info[1], self.fatal) and self.raised is None:
            self.raised = exc_info[1]
        if not self.problem:
            info = getattr(exc_info[1], "info", None)  # a StudentError: the student's code raised, in the sandbox
            if type(info) is dict and type(info.get("type")) is str:
                what = f"{clean_text(info['type'], 100)} in your code: {clean_text(info.get('message'), 300)}"
            else:
                what = f"{exc_info[0].__name__}: {str(exc_info[1])[:300]}"
            self.problem = f"`{example.source.strip()}` raised {what}"


def run_ok_test(code: str, expected: str, ns: dict, name: str, fatal: tuple[type, ...]) -> tuple[bool, str]:
    """Run one OK-format test in ``ns``; (passed, what went wrong)."""
    parser = doctest.DocTestParser()
    examples = [e for e in parser.parse(doctest_text(code, expected), name) if isinstance(e, doctest.Example)]
    test = doctest.DocTest(examples, ns, name, None, None, None)
    runner = _Runner()
    runner.fatal = fatal
    runner.run(test, out=io.StringIO().write, clear_globs=False)
    if runner.raised is not None:
        raise runner.raised
    return runner.failures == 0, runner.problem


def ok_outcome(test, ns: dict, fatal: tuple[type, ...]):
    """The outcome of an OK-format test case (a ``TestOutcome``): a hidden
    test's message names neither its code nor what it printed. (The test's
    success and failure messages are added by ``TestOutcome.report_lines``.)"""
    from autograder.records import TestOutcome

    passed, problem = run_ok_test(test.code, test.expected_output or "", ns,
                                  f"{test.question} {test.index + 1}", fatal)
    if passed:
        return TestOutcome(test, True, "")
    return TestOutcome(test, False, ("a hidden test failed" if test.hidden else problem)[:1500])
