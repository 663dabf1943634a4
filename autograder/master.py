"""A course week's master notebook: otter's assign format, read by
``otter_format.read_master`` (the one parser of that format), with the
course's own rules on top.

What the course asks beyond otter: an ``# ASSIGNMENT CONFIG`` cell (its keys
are checked by ``config.py``), at least one question, test cells in every
autograded question, test points that add up to the question's, and no raw
``# BEGIN``/``# END`` cell otter does not know. Every problem is raised
together (:class:`MasterFormatError`), each naming its cell. See
docs/AUTHORING.md.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from autograder.otter_format import OtterFormatError, OtterQuestion, read_master, resolve_points
from autograder.records import Question, TestCase


class MasterFormatError(OtterFormatError):
    """The master notebook does not follow the assign format."""


@dataclass
class MasterCell:
    """A cell of the master notebook with its role.

    Attributes:
        cell: the nbformat cell.
        role: "config", "marker", "prompt", "solution", "solution_text" (markdown
            inside a raw BEGIN SOLUTION block: the answer key only), "test",
            "ignored" (an otter ``# IGNORE`` cell) or "other".
        question: the question it belongs to (None outside questions).
    """

    cell: dict
    role: str
    question: str | None = None


@dataclass
class Master:
    """A parsed master notebook.

    Attributes:
        path: where it was read from.
        config: the raw values of its ASSIGNMENT CONFIG cell.
        cells: every cell, with its role.
        questions: autograded questions in order (with their test cases).
        manual: names of the questions graded by hand (``manual: true``).
    """

    path: Path
    config: dict
    cells: list[MasterCell] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)


def parse_master(path: Path) -> Master:
    """Read and validate a course week's master notebook."""
    path = Path(path)
    om, problems = read_master(path, check_config=False)
    if om is None:
        raise MasterFormatError(path, problems)
    master = Master(path, om.config, [MasterCell(c, role, q) for c, (role, q) in zip(om.source_cells, om.roles)])
    for i, mc in enumerate(master.cells):
        first = mc.cell.get("source", "").strip().split("\n")[0]
        if mc.cell.get("cell_type") == "raw" and mc.role != "marker" and re.match(r"#\s*(BEGIN|END)\s", first, re.I):
            problems.append(f"cell {i + 1}: unknown marker {first!r}: otter's are BEGIN/END QUESTION, PROMPT, "
                            "SOLUTION and TESTS")
    if not any(mc.role == "config" for mc in master.cells):
        problems.append("no '# ASSIGNMENT CONFIG' raw cell: add one first (name: weekNN)")
    for q in om.questions:
        if q.manual:  # graded by hand: kept out of the autograded score, listed
            master.manual.append(q.name)
        elif not q.tests:
            if not any(mc.role == "test" and mc.question == q.name for mc in master.cells):  # else named already
                problems.append(f"{q.where}: question {q.name!r} has no test cells: add them between "
                                "BEGIN TESTS and END TESTS, or make it 'manual: true'")
        else:
            question = _question(q, problems)
            if question:
                master.questions.append(question)
    if not om.questions and not problems:
        problems.append("no questions: add a raw '# BEGIN QUESTION' cell")
    if problems:
        raise MasterFormatError(path, problems)
    return master


def _question(q: OtterQuestion, problems: list[str]) -> Question | None:
    """The course's record of a question, with otter's point rules; its total
    is the declared ``points`` (a number), else the tests' sum."""
    given = q.config.get("points")
    per_test = [c.get("points") for c, *_ in q.tests]
    if isinstance(given, list) and len(given) != len(per_test):
        return None  # otter_format has named the cell
    try:
        shares = resolve_points(given, per_test)
    except (TypeError, ValueError):
        return None  # a malformed 'points': otter_format has named the cell
    if isinstance(given, (int, float)) and not isinstance(given, bool):
        total = float(given)
        if None not in per_test and total - sum(shares) > 1e-9:  # more than the total: otter_format says so
            problems.append(f"{q.where}: the test points of {q.name!r} do not add up to its points ({total:g}): "
                            "make them add up, or leave a test cell without 'points' to take the rest")
            return None
    elif given is None:
        explicit = sum(float(p) for p in per_test if p is not None)
        total = explicit if explicit else 1.0
    else:
        total = sum(shares)
    cases = tuple(
        TestCase(q.name, k, code, hidden, shares[k],
                 name=str(conf.get("name") or ""), success_message=str(conf.get("success_message") or ""),
                 failure_message=str(conf.get("failure_message") or ""))
        for k, ((conf, _, _, hidden), code) in enumerate(zip(q.tests, q.sources)))
    return Question(q.name, total, cases, all_or_nothing=bool(q.config.get("all_or_nothing", False)))
