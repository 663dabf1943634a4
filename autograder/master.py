"""Parse a master notebook in otter-grader's assign format.

Cells: a raw ``# ASSIGNMENT CONFIG`` cell (YAML); per question a raw
``# BEGIN QUESTION`` cell (YAML: name, points), prompt and solution
cells, a raw ``# BEGIN TESTS`` cell, one code cell per test case (with an
optional ``# BEGIN TEST CONFIG`` block), raw ``# END TESTS`` and
``# END QUESTION`` cells. See docs/AUTHORING.md. A malformed notebook
raises :class:`MasterFormatError` naming the cell and what is wrong.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml

from autograder.errors import UserError
from autograder.otter_format import QUESTION_KEYS, TEST_KEYS, resolve_points
from autograder.records import Question, TestCase


class MasterFormatError(UserError):
    """The master notebook does not follow the assign format."""


CONFIG_RE = re.compile(r'^\s*"""\s*#\s*BEGIN TEST CONFIG\s*\n(.*?)\n\s*"""\s*#\s*END TEST CONFIG\s*\n?', re.S)
# marker -> (the state it must find, the state it leaves, the problem otherwise)
_TESTS_MARKERS = {"BEGIN TESTS": ("question", "tests", "BEGIN TESTS outside a question"),
                  "END TESTS": ("tests", "after_tests", "END TESTS without BEGIN TESTS")}


@dataclass
class MasterCell:
    """A cell of the master notebook with its role.

    Attributes:
        cell: the nbformat cell.
        role: "config", "marker", "prompt", "solution", "solution_text" (markdown
            inside a raw BEGIN SOLUTION block: the answer key only), "test" or "other".
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


def _first_line(cell) -> str:
    src = cell.get("source", "")
    return src.strip().splitlines()[0].strip() if src.strip() else ""


def _yaml_body(cell, where: str) -> dict:
    body = "\n".join(cell["source"].strip().splitlines()[1:])
    try:
        data = yaml.safe_load(body) or {}
    except yaml.YAMLError as e:
        raise MasterFormatError(f"{where}: invalid YAML ({e.__class__.__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise MasterFormatError(f"{where}: expected YAML keys, e.g. 'name: q1'")
    return data


def parse_test_cell(source: str, where: str) -> tuple[dict, str]:
    """Split a test cell into its config and code."""
    m = CONFIG_RE.match(source)
    if not m:
        if "BEGIN TEST CONFIG" in source:
            raise MasterFormatError(f'{where}: the test config block must start the cell and end with \'""" # END TEST CONFIG\'')
        return {}, source
    try:
        conf = yaml.safe_load(m.group(1)) or {}
    except yaml.YAMLError:
        raise MasterFormatError(f"{where}: invalid YAML in the test config block") from None
    if not isinstance(conf, dict) or set(conf) - TEST_KEYS:
        raise MasterFormatError(f"{where}: test config keys must be among {sorted(TEST_KEYS)}")
    return conf, source[m.end():]


def parse_master(path: Path) -> Master:
    """Read and validate a master notebook."""
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as e:  # noqa: BLE001 - nbformat raises many kinds
        raise MasterFormatError(f"{path}: not a readable notebook ({type(e).__name__}: {e})") from None
    master = Master(path, {})
    state, qname, qconf, tests, seen_config = "outside", None, {}, [], False
    block = None  # inside a raw BEGIN SOLUTION / BEGIN PROMPT block: "solution" or "prompt"
    names = set()
    problems: list[str] = []

    for i, cell in enumerate(nb.cells):
        try:  # every problem of the master in one run, each naming its cell
            where = f"{path.name}, cell {i + 1}"
            head = _first_line(cell).upper().lstrip("#").strip() if cell.cell_type in ("raw", "markdown") else ""
            if head == "ASSIGNMENT CONFIG":
                if seen_config:
                    raise MasterFormatError(f"{where}: a second ASSIGNMENT CONFIG cell")
                master.config = _yaml_body(cell, where)
                master.cells.append(MasterCell(cell, "config"))
                seen_config = True
                continue
            if head == "BEGIN QUESTION":
                if state != "outside":
                    raise MasterFormatError(f"{where}: BEGIN QUESTION inside question {qname!r} (missing END QUESTION?)")
                qconf = _yaml_body(cell, where)
                if set(qconf) - QUESTION_KEYS:
                    raise MasterFormatError(f"{where}: unknown question keys {sorted(set(qconf) - QUESTION_KEYS)}")
                qname = qconf.get("name")
                if not isinstance(qname, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", qname):
                    raise MasterFormatError(f"{where}: the question needs a 'name:' (letters, digits, _ . -)")
                if qname in names:
                    raise MasterFormatError(f"{where}: duplicate question name {qname!r}")
                names.add(qname)
                state, tests = "question", []
                master.cells.append(MasterCell(cell, "marker", qname))
                continue
            if head in _TESTS_MARKERS:
                needed, after, problem = _TESTS_MARKERS[head]
                if state != needed:
                    raise MasterFormatError(f"{where}: {problem}")
                state = after
                master.cells.append(MasterCell(cell, "marker", qname))
                continue
            if head == "END QUESTION":
                if state not in ("question", "after_tests"):
                    raise MasterFormatError(f"{where}: END QUESTION without BEGIN QUESTION (or inside BEGIN/END TESTS)")
                closing, state, block = qname, "outside", None
                master.cells.append(MasterCell(cell, "marker", closing))
                qname = None
                if qconf.get("manual"):  # graded by hand: kept out of the autograded score, listed
                    master.manual.append(closing)
                    continue
                if not tests:
                    raise MasterFormatError(f"{where}: question {closing!r} has no test cells")
                master.questions.append(_question(closing, qconf, tests, where))
                continue
            if head in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN PROMPT", "END PROMPT") and cell.cell_type == "raw":
                # otter's raw solution and prompt delimiters: what lies between is
                # solution (markdown there is left out of the student notebook) or prompt
                if state != "question":
                    raise MasterFormatError(f"{where}: {head} outside a question's prompt and solution cells")
                block = None if head.startswith("END ") else head.split()[1].lower()
                master.cells.append(MasterCell(cell, "marker", qname))
                continue
            if head.startswith(("BEGIN ", "END ")) and cell.cell_type == "raw":
                raise MasterFormatError(f"{where}: unknown marker {_first_line(cell)!r}")

            if state == "tests":
                if cell.cell_type != "code":
                    raise MasterFormatError(f"{where}: only code cells may sit between BEGIN TESTS and END TESTS")
                conf, code = parse_test_cell(cell.source, where)
                first = code.split("\n", 1)[0]
                if first.lstrip().startswith("#") and re.search(r"\bhidden\b", first, re.I):  # otter's '# HIDDEN'
                    conf, code = {**conf, "hidden": True}, code.split("\n", 1)[1] if "\n" in code else ""
                try:
                    compile(code, where, "exec")
                except SyntaxError as e:
                    raise MasterFormatError(f"{where}: test code does not compile: {e.msg} (line {e.lineno})") from None
                tests.append((conf, code))
                master.cells.append(MasterCell(cell, "test", qname))
            elif cell.cell_type == "code":
                role = "solution" if qname else "other"
                master.cells.append(MasterCell(cell, role, qname))
            elif qname and block == "solution" and "otter_include" not in cell.get("metadata", {}).get("tags", []):
                master.cells.append(MasterCell(cell, "solution_text", qname))
            else:
                master.cells.append(MasterCell(cell, "prompt" if qname else "other", qname))
        except MasterFormatError as e:
            problems.append(str(e))

    if state != "outside":
        problems.append(f"{path.name}: question {qname!r} is not closed with END QUESTION")
    if not seen_config:
        problems.append(f"{path.name}: no '# ASSIGNMENT CONFIG' raw cell")
    if not master.questions and not master.manual and not problems:
        problems.append(f"{path.name}: no questions")
    if problems:
        raise MasterFormatError("\n".join(problems))
    return master


def _question(name: str, qconf: dict, tests: list[tuple[dict, str]], where: str) -> Question:
    given = qconf.get("points")
    if isinstance(given, (list, dict)):  # otter's per-test list or {each: p}: otter's own rules
        ok = (isinstance(given, list) and len(given) == len(tests)
              and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in given)) \
            or (isinstance(given, dict) and set(given) == {"each"} and isinstance(given["each"], (int, float)))
        if not ok:
            raise MasterFormatError(f"{where}: 'points' of {name!r} must be a number, one number per test cell "
                                    f"({len(tests)} here), or {{each: number}}")
        shares = resolve_points(given, [c.get("points") for c, _ in tests])
        total = sum(shares)
    else:
        if given is not None and (isinstance(given, bool) or not isinstance(given, (int, float))):
            raise MasterFormatError(f"{where}: 'points' of {name!r} must be a number")
        explicit = sum(float(c["points"]) for c, _ in tests if "points" in c)
        total = float(given if given is not None else (explicit if explicit else 1.0))
        free = [c for c, _ in tests if "points" not in c]
        share = (total - explicit) / len(free) if free else 0.0
        if share < 0 or (not free and abs(explicit - total) > 1e-9):
            raise MasterFormatError(f"{where}: the test points of {name!r} do not add up to its points ({total:g})")
        shares = [float(c.get("points", share)) for c, _ in tests]
    cases = tuple(
        TestCase(name, k, code, bool(conf.get("hidden", False)), shares[k], name=str(conf.get("name") or ""),
                 success_message=str(conf.get("success_message") or ""),
                 failure_message=str(conf.get("failure_message") or ""))
        for k, (conf, code) in enumerate(tests)
    )
    return Question(name, total, cases, all_or_nothing=bool(qconf.get("all_or_nothing", False)))
