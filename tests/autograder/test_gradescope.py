"""results.json in Gradescope's schema (and only there)."""
from autograder.gradescope import failure_json, results_json, validate_results
from autograder.records import Assignment, Question, QuestionResult, SubmissionResult, TestCase, TestOutcome


def _assignment():
    q = Question("q1", 2.0, (TestCase("q1", 0, "", False, 1.0), TestCase("q1", 1, "", True, 1.0)))
    return Assignment("week01", "t", (q,), hidden_visibility="after_due_date")


def test_results_split_public_and_hidden_with_configured_visibility():
    a = _assignment()
    q = a.questions[0]
    r = SubmissionResult("s", a, [QuestionResult(q, [TestOutcome(q.tests[0], True), TestOutcome(q.tests[1], False, "bad shape")])])
    data = results_json(r)
    assert validate_results(data) == []
    assert data["score"] == 1.0
    public, hidden = data["tests"]
    assert public["visibility"] == "visible" and public["status"] == "passed"
    assert hidden["visibility"] == "after_due_date" and hidden["status"] == "failed" and "bad shape" in hidden["output"]


def test_failure_json_is_valid():
    assert validate_results(failure_json("no notebook")) == []


def test_validator_catches_schema_errors():
    assert validate_results({"score": "10", "tests": [{"score": True, "status": "ok"}]})
    assert validate_results([]) == ["results must be a JSON object"]


def test_the_gradescope_watchdog_fires_before_gradescopes_default_limit():
    """Gradescope ends a run at its limit (600 s by default) with no
    results.json at all; the course's limits leave run_autograder's
    watchdog time to write one first, for every week."""
    from pathlib import Path

    from autograder import course
    from autograder.run_autograder import WATCHDOG_MARGIN_S

    for week in course.weeks(Path(__file__).resolve().parents[2]):
        assert week.load()[1].grading.total_timeout + WATCHDOG_MARGIN_S < 600, week.name
