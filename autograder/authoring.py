"""Authoring: the notebooks made from a master, the student's and the
answer key (``sodl build``). What grading reads of a notebook is in
``submission``."""
from __future__ import annotations

import ast
import hashlib
import re
from typing import TYPE_CHECKING

from autograder.config import AssignmentConfig

if TYPE_CHECKING:  # parsing masters (nbformat) is not needed to grade
    from autograder.master import Master

_BEGIN = re.compile(r"^(\s*)#\s*BEGIN SOLUTION(\s+NO PROMPT)?\s*$")
_END = re.compile(r"^\s*#\s*END SOLUTION\s*$")
_LINE = re.compile(r"^(\s*)(.*?)\s*#\s*SOLUTION\s*$")
_ASSIGN = re.compile(r"^([\w\s,.\[\]]+?)\s*=(?!=)")


_STUDENT_DROPS = ("# SEED", "# SOLUTION NO PROMPT", "# BEGIN PROMPT", "# END PROMPT")


def strip_solutions(source: str) -> str:
    """The student version of a solution cell (otter's markers; ``# IGNORE``
    and ``# SEED`` lines and prompt-string delimiters go too)."""
    from autograder.otter_format import without_ignored

    out, inside, prompt = [], False, True
    lines = [ln for ln in without_ignored(source.splitlines()) if not ln.rstrip().endswith(_STUDENT_DROPS)]
    for line in lines:
        if not inside and (m := _BEGIN.match(line)):
            inside, prompt = True, not m.group(2)
            if prompt:
                out.append(f"{m.group(1)}...")
            continue
        if inside:
            if _END.match(line):
                inside = False
            continue
        if m := _LINE.match(line):
            indent, body = m.groups()
            a = _ASSIGN.match(body)
            out.append(f"{indent}{a.group(1).strip()} = ..." if a else f"{indent}...")
            continue
        out.append(line)
    return "\n".join(out)


def keep_solutions(source: str) -> str:
    """The answer-key version of a solution cell (markers, ``# IGNORE`` lines
    and prompt strings removed)."""
    from autograder.otter_format import key_lines, without_ignored

    lines = [ln for ln in key_lines(without_ignored(source.splitlines())) if not (_BEGIN.match(ln) or _END.match(ln))]
    return "\n".join(re.sub(r"\s*#\s*SOLUTION\s*$", "", ln) for ln in lines)


def to_doctest(code: str) -> str:
    """A test cell as an OK-format doctest (what ``grader.check`` runs)."""
    lines = code.strip("\n").splitlines()
    tree = ast.parse(code.strip("\n"))
    out = []
    for stmt in tree.body:
        start = stmt.lineno - 1
        if getattr(stmt, "decorator_list", None):
            start = stmt.decorator_list[0].lineno - 1
        chunk = lines[start:stmt.end_lineno]
        out.append(">>> " + chunk[0])
        out += ["... " + ln for ln in chunk[1:]]
        if isinstance(stmt, (ast.For, ast.While, ast.If, ast.With, ast.Try, ast.FunctionDef, ast.ClassDef)):
            out.append("... ")
    return "\n".join(out)


def _ok_test(question) -> dict:
    """The question's public tests in otter's OK format, for ``grader.check``.

    otter shows a question's points as the sum of its cases' (``possible``),
    and the student notebook carries only the public cases: their points are
    scaled to add up to the question's graded total, so the notebook says
    what the question is worth (week03 showed 0.8 for a 2-point question)."""
    public = [t for t in question.tests if not t.hidden]
    total = sum(t.points for t in public)
    scale = question.points / total if total > 0 else 1.0
    cases = [{"code": to_doctest(t.code), "hidden": False, "locked": False,
              "points": round(t.points * scale, 9)} for t in public]
    # no file-level total: otter refuses cases whose points add up past it,
    # and a float rounding of the scaled points could
    return {"name": question.name, "points": None,
            "suites": [{"cases": cases, "scored": True, "setup": "", "teardown": "", "type": "doctest"}]}


def _cell_id(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:12]


def _code(source: str, key: str, tags=()) -> nbformat.NotebookNode:
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    cell.id = _cell_id("code", key, source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def make_notebook(master: Master, config: AssignmentConfig, with_solutions: bool) -> nbformat.NotebookNode:
    """The student notebook (``with_solutions=False``) or the answer key."""
    import nbformat  # here, not at the top: grading needs only grading_cells

    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "otter": {"assignment_name": config.name, "OK_FORMAT": True,
                  "tests": {q.name: _ok_test(q) for q in master.questions}},
    }
    cells = []
    if config.init_cell:
        cells.append(_code(f'# Initialize Otter\nimport otter\ngrader = otter.Notebook("{config.name}.ipynb")', "init"))
    for k, mc in enumerate(master.cells):
        src = mc.cell.get("source", "")
        tags = mc.cell.get("metadata", {}).get("tags", [])
        if mc.role in ("config", "test", "ignored") or (mc.role == "solution_text" and not with_solutions):
            continue
        if mc.role == "marker":
            if _is_end_question(src) and mc.question not in master.manual:
                cells.append(_code(f'grader.check("{mc.question}")', f"check-{mc.question}"))
            continue
        if mc.cell.cell_type == "code":
            text = keep_solutions(src) if with_solutions else strip_solutions(src)
            cells.append(_code(text, f"{k}", tags))
        elif mc.cell.cell_type == "markdown":
            cell = nbformat.v4.new_markdown_cell(src)
            cell.id = _cell_id("md", str(k), src)
            cells.append(cell)
        else:
            cell = nbformat.v4.new_raw_cell(src)
            cell.id = _cell_id("raw", str(k), src)
            cells.append(cell)
    if config.check_all_cell:
        cells.append(nbformat.v4.new_markdown_cell("## Checking all public tests\nRun every question's public tests at once."))
        cells[-1].id = _cell_id("md", "check_all")
        cells.append(_code("grader.check_all()", "check_all"))
    if config.export_cell:
        cells.append(_code("grader.export(pdf=False)", "export"))
    nb.cells = cells
    return nb


def _is_end_question(src: str) -> bool:
    return src.strip().upper().lstrip("#").strip().startswith("END QUESTION")
