"""``sodl check`` replays the student's loop through otter's own ``grader.check``
(``autograder.student_loop``) and compares it with our grader, case by case."""
from types import SimpleNamespace

from autograder import student_loop
from autograder.week_check import student_loop_lines


def _notebook(cases: list[str]) -> dict:
    """A student notebook whose metadata holds one question's public doctests, as ``sodl build`` writes it."""
    suite = {"cases": [{"code": c, "hidden": False, "locked": False, "points": 1} for c in cases],
             "scored": True, "setup": "", "teardown": "", "type": "doctest"}
    return {"cells": [], "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"otter": {"OK_FORMAT": True, "assignment_name": "toy",
                                   "tests": {"q1": {"name": "q1", "points": len(cases), "suites": [suite]}}}}}


def test_otter_passes_the_key_and_catches_a_mutant():
    nb = _notebook([">>> assert square(3) == 9", ">>> assert square(2) == 4"])
    loop = student_loop.collect(student_loop.replay(
        "toy", nb, ["def square(x):\n    return x * x"],
        [{"question": "q1", "name": "doubles", "code": "def square(x):\n    return 2 * x"},
         {"question": "q1", "name": "breaks", "code": "raise RuntimeError('no')"}]))
    assert not loop.error
    assert [v.passed for v in loop.key] == [[True, True]] and not loop.key[0].caught
    doubles, breaks = loop.mutants
    assert doubles.passed == [False, True] and doubles.caught
    assert breaks.caught and "RuntimeError" in breaks.error


def test_a_public_check_that_prints_fails_under_otter():
    """issue 15, point 1: a doctest line whose value prints (``torch.manual_seed(0)``
    shows a Generator) fails otter's check on right answers."""
    nb = _notebook([">>> import torch\n>>> torch.manual_seed(0)\n>>> assert square(3) == 9"])
    loop = student_loop.collect(student_loop.replay("toy", nb, ["def square(x):\n    return x * x"], []))
    assert loop.key[0].caught and "Generator" in loop.key[0].failures[0]


def _result(question: str, verdicts: list[bool]):
    outcomes = [SimpleNamespace(passed=p, test=SimpleNamespace(hidden=False)) for p in verdicts]
    outcomes.append(SimpleNamespace(passed=False, test=SimpleNamespace(hidden=True)))
    return SimpleNamespace(questions=[SimpleNamespace(question=SimpleNamespace(name=question), outcomes=outcomes)])


def test_any_disagreement_or_a_weak_catch_fails_the_check():
    key = [student_loop.OtterVerdicts("q1", "", [True, True])]
    mutants = [SimpleNamespace(question="q1", name=n) for n in ("a", "b", "c")]
    otter = [student_loop.OtterVerdicts("q1", "a", [False, True]),
             student_loop.OtterVerdicts("q1", "b", [True, True]),
             student_loop.OtterVerdicts("q1", "c", [True, True])]
    agree = [(mutants[0], _result("q1", [False, True])), (mutants[1], _result("q1", [True, True])),
             (mutants[2], _result("q1", [True, True]))]
    lines = {line.subject + "|" + line.expected: line
             for line in student_loop_lines("w", None, agree, student_loop.StudentLoop(key, otter))}
    assert lines["public checks (otter)|pass on the key"].ok
    assert lines["public checks (otter)|same verdicts as sodl"].ok
    assert not lines["public catch|>= 60% of mutants"].ok  # 1 of 3
    disagree = [(mutants[0], _result("q1", [True, True]))] + agree[1:]
    lines = student_loop_lines("w", None, disagree, student_loop.StudentLoop(key, otter))
    bad = next(line for line in lines if line.expected == "same verdicts as sodl")
    assert not bad.ok and "q1/a: public case(s) 1" in bad.detail
    failing_key = [student_loop.OtterVerdicts("q1", "", [True, False], ["q1 - 2: Expected nothing"])]
    lines = student_loop_lines("w", None, agree, student_loop.StudentLoop(failing_key, otter))
    assert not lines[0].ok and "Expected nothing" in lines[0].detail
