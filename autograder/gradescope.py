"""Gradescope's results format, in one place: ``results.json``.

Nothing else in the toolchain builds Gradescope's JSON. Schema:
https://gradescope-autograders.readthedocs.io/en/latest/specs/ (top-level
``score``, ``execution_time``, ``output``, ``visibility``,
``stdout_visibility``, ``tests[]`` with ``name``, ``score``,
``max_score``, ``status``, ``output``, ``visibility``).
"""
from __future__ import annotations

from autograder.records import SubmissionResult

MAX_OUTPUT = 20_000
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}


def _test_entry(name: str, score: float, max_score: float, output: str, visibility: str) -> dict:
    return {
        "name": name, "score": round(score, 6), "max_score": round(max_score, 6),
        "status": "passed" if score >= max_score - 1e-9 else "failed",
        "output": output[:MAX_OUTPUT], "visibility": visibility,
    }


def results_json(result: SubmissionResult) -> dict:
    """A submission's grade in Gradescope's schema.

    Each question becomes up to two entries: its public tests (visible at
    once) and its hidden tests (visibility from the assignment config), so
    a student sees the public verdict immediately and the hidden one when
    the instructor chooses.
    """
    a = result.assignment
    tests = []
    for qr in result.questions:
        for hidden in (False, True):
            outs = [o for o in qr.outcomes if o.test.hidden == hidden]
            if not outs:
                continue
            lines = []
            failed = any(not o.passed for o in outs)
            if qr.diagnosis and failed:
                lines.append(f"Likely mistake: {qr.diagnosis}")
            if qr.note:
                lines.append(qr.note)
            for o in outs:
                label = f"{'hidden' if hidden else 'public'} test {o.test.index + 1}"
                lines.append(f"{label}: passed" if o.passed else f"{label}: failed: {o.message}")
            entry = _test_entry(
                f"{qr.question.name} ({'hidden' if hidden else 'public'} tests)",
                qr.earned(outs), sum(o.test.points for o in outs),
                "\n".join(lines), a.hidden_visibility if hidden else "visible")
            if qr.mistake and failed:
                entry["extra_data"] = {"mistake": qr.mistake}
            tests.append(entry)
    output = "\n".join(result.messages) or "Your notebook was executed and graded."
    out = {
        "score": round(result.score, 6),
        "max_score": round(result.max_score, 6),
        "execution_time": round(result.execution_time, 3),
        "output": output[:MAX_OUTPUT],
        "visibility": "visible",
        "stdout_visibility": "visible" if a.show_stdout else "hidden",
        "tests": tests,
    }
    return out


def failure_json(message: str, max_score: float = 0.0) -> dict:
    """The results.json written when nothing could be graded."""
    return {"score": 0.0, "max_score": max_score, "execution_time": 0.0, "output": message[:MAX_OUTPUT],
            "visibility": "visible", "stdout_visibility": "hidden", "tests": []}


def validate_results(data) -> list[str]:
    """Problems with a results.json payload (empty list: valid)."""
    problems = []
    if not isinstance(data, dict):
        return ["results must be a JSON object"]
    if "score" not in data and "tests" not in data:
        problems.append("needs 'score' or 'tests'")
    for key in ("score", "execution_time", "max_score"):
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], (int, float))):
            problems.append(f"'{key}' must be a number")
    for key in ("output",):
        if key in data and not isinstance(data[key], str):
            problems.append(f"'{key}' must be a string")
    for key in ("visibility", "stdout_visibility"):
        if key in data and data[key] not in VISIBILITIES:
            problems.append(f"'{key}' must be one of {sorted(VISIBILITIES)}")
    tests = data.get("tests", [])
    if not isinstance(tests, list):
        return problems + ["'tests' must be a list"]
    for i, t in enumerate(tests):
        if not isinstance(t, dict):
            problems.append(f"tests[{i}] must be an object")
            continue
        for key, typ in (("name", str), ("output", str)):
            if key in t and not isinstance(t[key], typ):
                problems.append(f"tests[{i}].{key} must be a string")
        for key in ("score", "max_score"):
            if key in t and (isinstance(t[key], bool) or not isinstance(t[key], (int, float))):
                problems.append(f"tests[{i}].{key} must be a number")
        if "status" in t and t["status"] not in ("passed", "failed"):
            problems.append(f"tests[{i}].status must be 'passed' or 'failed'")
        if "visibility" in t and t["visibility"] not in VISIBILITIES:
            problems.append(f"tests[{i}].visibility is not a Gradescope visibility")
    return problems
