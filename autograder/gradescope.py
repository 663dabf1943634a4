"""Gradescope's results format, in one place: ``results.json``.

Nothing else in the toolchain builds Gradescope's JSON. Schema:
https://gradescope-autograders.readthedocs.io/en/latest/specs/ : the
documented keys only (:data:`TOP_KEYS`, :data:`TEST_KEYS`); what the
gradebook needs beyond them (the maximum score) goes in ``extra_data``
and in the ``grading.json`` sidecar (``report.sidecar``). Every string is
cleaned (``wire.clean_text``): a lone surrogate or a control character a
student put in a message must not make the file unwritable or unreadable.
"""
from __future__ import annotations

from autograder.harness.wire import clean_text
from autograder.records import SubmissionResult

MAX_OUTPUT = 20_000
VISIBILITIES = {"hidden", "after_due_date", "after_published", "visible"}
TOP_KEYS = frozenset({"score", "execution_time", "output", "output_format", "test_output_format",
                      "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard"})
TEST_KEYS = frozenset({"score", "max_score", "status", "name", "name_format", "number", "output",
                       "output_format", "tags", "visibility", "extra_data"})
FORMATS = {"text", "html", "simple_format", "md", "ansi"}


def _test_entry(name: str, score: float, max_score: float, output: str, visibility: str) -> dict:
    return {
        "name": clean_text(name, 200), "score": round(score, 6), "max_score": round(max_score, 6),
        "status": "passed" if score >= max_score - 1e-9 else "failed",
        "output": clean_text(output, MAX_OUTPUT), "visibility": visibility,
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
                lines += o.report_lines()
            entry = _test_entry(
                f"{qr.question.name} ({'hidden' if hidden else 'public'} tests)",
                qr.earned(outs), sum(o.test.points for o in outs),
                "\n".join(lines), a.hidden_visibility if hidden else "visible")
            if qr.mistake and failed:
                entry["extra_data"] = {"mistake": clean_text(qr.mistake, 200)}
            tests.append(entry)
    output = "\n".join(result.messages) or "Your notebook was executed and graded."
    out = {
        "score": round(result.score, 6),
        "execution_time": round(result.execution_time, 3),
        "output": clean_text(output, MAX_OUTPUT),
        "visibility": "visible",
        "stdout_visibility": "visible" if a.show_stdout else "hidden",
        "extra_data": {"max_score": round(result.max_score, 6)},
        "tests": tests,
    }
    return out


def failure_json(message: str, max_score: float = 0.0) -> dict:
    """The results.json written when nothing could be graded."""
    return {"score": 0.0, "execution_time": 0.0, "output": clean_text(message, MAX_OUTPUT),
            "visibility": "visible", "stdout_visibility": "hidden", "extra_data": {"max_score": max_score},
            "tests": []}


def max_score_of(data: dict) -> float:
    """The maximum score of a results.json: ``extra_data.max_score``, else
    the sum of its tests' (a file from elsewhere)."""
    extra = data.get("extra_data") if isinstance(data.get("extra_data"), dict) else {}
    if _number(extra.get("max_score")):
        return float(extra["max_score"])
    return float(sum(t.get("max_score", 0) for t in data.get("tests", []) if isinstance(t, dict)
                     and _number(t.get("max_score"))))


def _number(v) -> bool:
    import math

    return type(v) in (int, float) and math.isfinite(v)


def _unwritable(v, where: str, problems: list[str]) -> None:
    """Strings that are not UTF-8 (lone surrogates) anywhere in a JSON tree."""
    if isinstance(v, str):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            problems.append(f"{where} holds a string that is not valid UTF-8")
    elif isinstance(v, dict):
        for k, x in v.items():
            _unwritable(k, where, problems)
            _unwritable(x, f"{where}.{k}", problems)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            _unwritable(x, f"{where}[{i}]", problems)
    elif isinstance(v, float) and not _number(v):
        problems.append(f"{where} is not a finite number")


def validate_results(data) -> list[str]:
    """Problems with a results.json payload against Gradescope's documented
    format (empty list: valid): only documented keys, each of its type,
    finite numbers, UTF-8 strings."""
    if not isinstance(data, dict):
        return ["results must be a JSON object"]
    problems = [f"unknown top-level key {k!r}" for k in data if k not in TOP_KEYS]
    if "score" not in data and "tests" not in data:
        problems.append("needs 'score' or 'tests'")
    for key in ("score", "execution_time"):
        if key in data and not _number(data[key]):
            problems.append(f"'{key}' must be a number")
    for key in ("output",):
        if key in data and not isinstance(data[key], str):
            problems.append(f"'{key}' must be a string")
    for key in ("output_format", "test_output_format", "test_name_format"):
        if key in data and data[key] not in FORMATS:
            problems.append(f"'{key}' must be one of {sorted(FORMATS)}")
    for key in ("visibility", "stdout_visibility"):
        if key in data and data[key] not in VISIBILITIES:
            problems.append(f"'{key}' must be one of {sorted(VISIBILITIES)}")
    if "extra_data" in data and not isinstance(data["extra_data"], dict):
        problems.append("'extra_data' must be an object")
    if "leaderboard" in data and not isinstance(data["leaderboard"], list):
        problems.append("'leaderboard' must be a list")
    _unwritable(data, "results", problems)
    tests = data.get("tests", [])
    if not isinstance(tests, list):
        return problems + ["'tests' must be a list"]
    for i, t in enumerate(tests):
        if not isinstance(t, dict):
            problems.append(f"tests[{i}] must be an object")
            continue
        problems += [f"tests[{i}] has an unknown key {k!r}" for k in t if k not in TEST_KEYS]
        for key in ("name", "output", "number"):
            if key in t and not isinstance(t[key], str):
                problems.append(f"tests[{i}].{key} must be a string")
        for key in ("score", "max_score"):
            if key in t and not _number(t[key]):
                problems.append(f"tests[{i}].{key} must be a number")
        if "status" in t and t["status"] not in ("passed", "failed"):
            problems.append(f"tests[{i}].status must be 'passed' or 'failed'")
        if "visibility" in t and t["visibility"] not in VISIBILITIES:
            problems.append(f"tests[{i}].visibility is not a Gradescope visibility")
        for key in ("name_format", "output_format"):
            if key in t and t[key] not in FORMATS:
                problems.append(f"tests[{i}].{key} must be one of {sorted(FORMATS)}")
        if "tags" in t and not (isinstance(t["tags"], list) and all(isinstance(x, str) for x in t["tags"])):
            problems.append(f"tests[{i}].tags must be a list of strings")
        if "extra_data" in t and not isinstance(t["extra_data"], dict):
            problems.append(f"tests[{i}].extra_data must be an object")
    return problems
