"""The committed student notebooks are exactly what `sodl build` makes."""
from pathlib import Path

import nbformat
import pytest

from autograder import course
from autograder.build import prepare

ROOT = Path(__file__).resolve().parents[2]
WEEKS = course.weeks(ROOT)


@pytest.mark.parametrize("week", WEEKS, ids=[w.name for w in WEEKS])
def test_assignment_notebook_in_sync_with_master(week):
    built = prepare(week)
    assert week.student_path.exists(), f"run `sodl build {week.name}` and commit {week.student_path}"
    assert week.student_path.read_text() == nbformat.writes(built.student) + "\n", (
        f"{week.student_path} is stale: run `sodl build {week.name}` and commit it")


@pytest.mark.parametrize("week", WEEKS, ids=[w.name for w in WEEKS])
def test_student_notebook_has_no_solutions_or_hidden_tests(week):
    built = prepare(week)
    text = nbformat.writes(built.student)
    assert "BEGIN SOLUTION" not in text and "sodl_ref" not in text
    hidden = [t.code for q in built.packaged.assignment.questions for t in q.tests if t.hidden]
    for code in hidden:
        assert code.strip() not in text


@pytest.mark.parametrize("week", WEEKS, ids=[w.name for w in WEEKS])
def test_grader_check_shows_the_graded_points(week):
    """otter's grader.check shows a question's points as the sum of its
    public cases' (issue 15, point 6: week03 showed 0.8 for 2 graded points)."""
    built = prepare(week)
    tests = built.student.metadata["otter"]["tests"]
    for q in built.packaged.assignment.questions:
        if any(not t.hidden for t in q.tests):
            shown = sum(c["points"] for c in tests[q.name]["suites"][0]["cases"])
            assert shown == pytest.approx(q.points), f"{q.name}: grader.check shows {shown}, graded {q.points}"
