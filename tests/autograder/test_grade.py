"""Grading end to end on the toy course: right, wrong, blank and hostile submissions."""
import dataclasses
import json
import time

import pytest

from autograder import report
from autograder.batch import grade_batch
from autograder.grade import grade_cells, grade_submission
from autograder.gradescope import results_json, validate_results
from autograder.package import load_zip
from autograder.submission import grading_cells

from .conftest import write_nb

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def packaged(toy_zip):
    return load_zip(toy_zip)


@pytest.fixture(scope="module")
def fast(packaged):
    """The toy assignment with short limits, for hostile submissions."""
    g = dataclasses.replace(packaged.grading, question_timeout=3.0, cell_timeout=4.0, total_timeout=60.0)
    return dataclasses.replace(packaged, grading=g)


def _scores(result):
    return {q.question.name: q.score for q in result.questions}


def test_batch_grades_samples_and_writes_gradebook(toy_zip, toy_built, tmp_path):
    samples = toy_built["samples"]
    book = grade_batch(toy_zip, [samples / "correct", samples / "blank", samples / "partly_wrong"],
                       tmp_path, jobs=2, progress=False)
    rows = [line.split(",") for line in book.read_text().splitlines()]
    assert rows[0] == ["name", "score", "max_score", "q1_square", "q2_mean", "q1_square mistake",
                       "q2_mean mistake", "flags", "identical_to"]
    scores = {r[0]: float(r[1]) for r in rows[1:]}
    assert scores == {"blank": 0.0, "correct": 3.0, "partly_wrong": 2.0}
    mistakes = {r[0]: r[6] for r in rows[1:]}
    assert mistakes == {"blank": "", "correct": "", "partly_wrong": "sum"}  # the sample's mutant, named
    for name in scores:
        assert validate_results(json.loads((tmp_path / name / "results.json").read_text())) == []


def test_batch_resumes_without_regrading(toy_zip, toy_built, tmp_path):
    samples = toy_built["samples"]
    grade_batch(toy_zip, [samples / "correct"], tmp_path, progress=False)
    first = (tmp_path / "correct" / "results.json").stat().st_mtime_ns
    t0 = time.monotonic()
    grade_batch(toy_zip, [samples / "correct", samples / "blank"], tmp_path, progress=False)
    assert (tmp_path / "correct" / "results.json").stat().st_mtime_ns == first
    assert len((tmp_path / "gradebook.csv").read_text().splitlines()) == 3
    assert time.monotonic() - t0 < 60


def test_not_json_gets_zero_and_a_message(packaged, tmp_path):
    bad = tmp_path / "week01.ipynb"
    bad.write_bytes(b"\x89PNG garbage \xff\xfe")
    res = grade_submission(packaged, bad)
    data = results_json(res)
    assert validate_results(data) == [] and data["score"] == 0
    assert "not JSON" in data["output"]


def test_folder_without_notebook_and_py_file(packaged, tmp_path, key_notebook):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    res = grade_submission(packaged, tmp_path / "empty")
    assert res.score == 0 and "No notebook found" in res.messages[0]
    src = "\n\n".join(grading_cells(key_notebook))
    (tmp_path / "py").mkdir()
    (tmp_path / "py" / "week01.py").write_text(src)
    res = grade_submission(packaged, tmp_path / "py")
    assert res.score == 3 and "not a notebook" in res.messages[0]


def test_hostile_cell_is_reported_and_the_cells_after_it_still_run(fast, key_notebook):
    """The attacks themselves are in test_adversarial's table; here, where
    the student reads about a failed cell."""
    cells = grading_cells(key_notebook)
    res = grade_cells(fast, cells[:-1] + ["import sys\nsys.exit(0)"] + cells[-1:], "attack")
    assert _scores(res) == {"q1_square": 2, "q2_mean": 1}
    assert any("raised SystemExit" in m for m in res.messages)


def test_infinite_loop_in_one_function_costs_that_question_only(fast, key_notebook):
    cells = grading_cells(key_notebook) + ["def square(x):\n    while True:\n        pass"]
    t0 = time.monotonic()
    res = grade_cells(fast, cells, "loop")
    assert _scores(res) == {"q1_square": 0, "q2_mean": 1}
    assert "time limit" in res.questions[0].note
    assert time.monotonic() - t0 < 30


def test_same_submission_same_grade_and_seed(packaged, tmp_path, key_notebook):
    path = write_nb(tmp_path / "s" / "week01.ipynb", key_notebook)
    a = grade_submission(packaged, path.parent)
    b = grade_submission(packaged, path.parent)
    assert a.score == b.score == 3


def test_wrong_answer_message_does_not_reveal_expected_values(fast, key_notebook):
    res = grade_cells(fast, grading_cells(key_notebook) + ["def mean(x):\n    return 12345.678"], "w")
    out = json.dumps(results_json(res))
    assert "values are wrong" in out and "expect_close" not in out and "x * x" not in out


def test_student_prints_are_captured_and_bounded(fast, key_notebook):
    res = grade_cells(fast, grading_cells(key_notebook) + ["print('hello from the notebook')"], "p")
    assert "hello from the notebook" in res.stdout


def test_seconds_in_student_code_are_counted_in_cells_and_calls(fast, key_notebook):
    """``student_seconds``: a cell that sleeps 0.3 s, and a ``mean`` that
    sleeps 0.1 s per call, within the grade's own execution time."""
    slow = ("import time\ntime.sleep(0.3)\n_mean = mean\n"
            "def mean(x):\n    time.sleep(0.1)\n    return _mean(x)")
    res = grade_cells(fast, grading_cells(key_notebook) + [slow], "slow")
    quick = grade_cells(fast, grading_cells(key_notebook), "quick")
    assert _scores(res) == _scores(quick)
    assert 0.3 + 0.1 <= res.student_seconds < res.execution_time  # the cell, and at least one call
    assert res.student_seconds - quick.student_seconds >= 0.4 - 0.05
    assert json.loads(json.dumps(report.sidecar(res)))["student_seconds"] == round(res.student_seconds, 4)
