"""Otter-grader 7's assign format, read as ``otter assign`` reads it.

A master written for otter (raw or ```otter-fenced markdown config cells,
``# BEGIN/END QUESTION|PROMPT|SOLUTION|TESTS`` raw cells, ``# SOLUTION``,
``# SOLUTION NO PROMPT``, ``# BEGIN SOLUTION [NO PROMPT]`` blocks, inline
``\"\"\" # BEGIN PROMPT`` strings, ``# IGNORE`` lines and blocks, ``# SEED``
lines, ``# HIDDEN`` test cells, test config blocks) becomes the same
student notebook as ``otter assign`` writes, an answer key, and our
records (questions and test cases, with each OK-format test's expected
output taken from the executed master, as otter's tests manager does,
``otter/assign/tests_manager.py``). What differs from otter is grading:
tests run on the trusted side (``harness/trusted.py``,
``harness/doctest_output.py``), never in the student's kernel.

Every problem of a master is collected, each naming the cell and the
fix, and raised together (:class:`OtterFormatError`).
"""
from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml

from autograder.errors import UserError
from autograder.records import Question, TestCase

# Keys of otter 7's assignment config (otter/assign/assignment.py), with
# what sodl does with them. Keys otter reads that only concern otter's own
# environment (conda, PDFs, Gradescope upload) are accepted and reported.
CONFIG_KEYS = {
    "name": "the assignment's name (zip, folder and notebook metadata)",
    "config_file": "YAML file of further keys, relative to the master",
    "requirements": "pip requirements (a list, or a path to a requirements.txt): go in the zip",
    "overwrite_requirements": "accepted; the zip's own pins are always kept",
    "environment": "ignored: sodl builds a venv, not a conda environment",
    "run_tests": "ignored: `sodl check` runs the solution instead",
    "solutions_pdf": "ignored: no PDFs are made",
    "template_pdf": "ignored: no PDFs are made",
    "init_cell": "adds the `grader = otter.Notebook(...)` cell",
    "check_all_cell": "adds the `grader.check_all()` cells",
    "export_cell": "adds otter's export cells (true/false or their options)",
    "seed": "intercell seeding (autograder_value, student_value, variable)",
    "generate": "grading options: seed, show_stdout, points_possible, ...",
    "save_environment": "ignored: the trusted side never loads a student environment",
    "ignore_modules": "ignored (environment serialization only)",
    "files": "data files and helpers: to the student folder, the zip and the grading sandbox",
    "autograder_files": "files for the zip only",
    "student_files": "files the student submits with the notebook (listed in the export cell)",
    "plugins": "not supported",
    "tests": "files / ok_format / url_prefix",
    "show_question_points": "adds `_Points:_` to each question's prompt",
    "runs_on": "only `default`",
    "python_version": "ignored: the zip uses the grading image's Python",
    "channel_priority_strict": "ignored (conda)",
    "strip_solutions_from_all_cells": "strip solution markers in every code cell",
    "suppress_no_tests_warning": "accepted",
    "lang": "only python",
}
# The nested keys otter 7 reads (otter/assign/assignment.py; ``generate`` is
# otter/run/run_autograder/autograder_config.py): a key outside these is a typo.
EXPORT_CELL_KEYS = {"instructions", "pdf", "filtering", "force_save", "run_tests", "files", "require_no_pdf_ack",
                    "ignore_log"}
SEED_KEYS = {"variable", "autograder_value", "student_value"}
TESTS_KEYS = {"files", "ok_format", "url_prefix"}
GENERATE_KEYS = {
    "seed": "intercell seed at grading", "seed_variable": "the variable the seed is assigned to",
    "show_stdout": "students see their notebook's printed output",
    "show_hidden": "hidden-test results are shown once published (else never)",
    "show_all_public": "no hidden tests: results are visible anyway", "lang": "only python",
    "plugins": "not supported", "points_possible": "not supported", "score_threshold": "not supported",
    **dict.fromkeys(("pdf", "token", "course_id", "assignment_id", "filtering", "pagebreaks", "warn_missing_pdf",
                     "submit_blank_pdf_on_export_failure", "use_submission_pdf", "pdf_via_html"),
                    "ignored: sodl makes no PDFs"),
    **dict.fromkeys(("grade_from_log", "serialized_variables"),
                    "ignored: sodl always executes the notebook, never a student's logged environment"),
    **dict.fromkeys(("debug", "autograder_dir", "miniconda_path", "logo", "print_summary", "print_score",
                     "log_level", "force_public_test_summary", "assignment_name"),
                    "ignored: otter's own runner settings"),
    "zips": "always on: a submission holding one zip and no notebook is unpacked and its notebook graded "
            "(submission.unpacked)",
}
QUESTION_KEYS = {"name", "manual", "points", "check_cell", "export", "all_or_nothing"}
IGNORED_QUESTION_KEYS = {"private_points"}  # not read by otter 7 either
TEST_KEYS = {"hidden", "points", "success_message", "failure_message", "name"}
BLOCKS = ("question", "prompt", "solution", "tests")
ANSWER_TAG, SOLUTION_TAG, INCLUDE_TAG = "otter_answer_cell", "otter_assign_solution_cell", "otter_include"
_BEGIN_TEST_CONFIG = re.compile(r'(?:.\s*=\s*)?""?"?\s*#\s*BEGIN\s*TEST\s*CONFIG', re.I)
_END_TEST_CONFIG = re.compile(r'""?"?\s*#\s*END\s*TEST\s*CONFIG', re.I)


class OtterFormatError(UserError):
    """A master does not follow otter's assign format; lists every problem."""

    def __init__(self, path: Path, problems: list[str]):
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass
class OtterQuestion:
    """A question as otter's tests manager sees it.

    Attributes:
        config: the BEGIN QUESTION keys.
        tests: (test config, code, expected output, hidden) per test cell.
        where: the cell that opened it, for messages.
        sources: each test's code as written (config block and ``# HIDDEN``
            line removed), for the course's own notebooks (``master.py``).
    """

    config: dict
    tests: list[tuple[dict, str, str, bool]] = field(default_factory=list)
    where: str = ""
    sources: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.config.get("name"))

    @property
    def manual(self) -> bool:
        return bool(self.config.get("manual", False))


@dataclass
class OtterMaster:
    """A parsed otter master.

    Attributes:
        path: the master notebook.
        config: assignment config (config_file merged in).
        cells: the autograder-format cells (otter's 'transformed' notebook,
            solutions in place; structural cells gone).
        questions: every question, manual ones included.
        warnings: what sodl did that the author may want to know.
        ok_format: whether tests are OK-format doctests (else exception-based).
        metadata: the master's notebook metadata.
        source_cells: the master's cells as read (fenced config split out).
        roles: per source cell, (role, question name or None); the roles are
            "config", "marker", "prompt", "solution", "solution_text" (markdown
            in a SOLUTION block: the answer key only), "test", "ignored" and "other".
    """

    path: Path
    config: dict
    cells: list
    questions: list[OtterQuestion]
    warnings: list[str]
    ok_format: bool
    metadata: dict
    source_cells: list = field(default_factory=list)
    roles: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.stem)

    def records(self) -> tuple[list[Question], list[str]]:
        """Autograded questions as records (otter's point rules:
        ``TestFile.resolve_test_file_points``), and manual questions' names."""
        graded, manual = [], []
        for q in self.questions:
            if q.manual:
                manual.append(q.name)
                continue
            if not q.tests:
                continue  # otter grades only questions with test cells
            points = resolve_points(q.config.get("points"), [c.get("points") for c, *_ in q.tests])
            cases = tuple(
                TestCase(q.name, k, code, hidden, float(p), expected_output=expected if self.ok_format else None,
                         name=str(conf.get("name") or f"{q.name} - {k + 1}"),
                         success_message=str(conf.get("success_message") or ""),
                         failure_message=str(conf.get("failure_message") or ""))
                for k, ((conf, code, expected, hidden), p) in enumerate(zip(q.tests, points)))
            graded.append(Question(q.name, float(sum(points)), cases,
                                   all_or_nothing=bool(q.config.get("all_or_nothing", False))))
        return graded, manual


def resolve_points(total, per_test: list) -> list[float]:
    """Each test's points from the question's ``points`` (a number, a list,
    ``{each: p}`` or nothing) and the tests' own, as otter 7 resolves them."""
    if isinstance(total, dict):
        total = float(total.get("each", 1)) * len(per_test)
    if isinstance(total, list):
        per_test, total = list(total), None
    fixed = sum(float(p) for p in per_test if p is not None)
    free = sum(1 for p in per_test if p is None)
    if total is not None:
        share = (float(total) - fixed) / free if free else 0.0
    elif fixed == 0 and all(p in (0, None) for p in per_test):
        share = 1.0 / free if free else 0.0
    else:
        share = 0.0
    return [float(p) if p is not None else share for p in per_test]


# --------------------------------------------------------------------------
# cells


def _lines(cell) -> list[str]:
    src = cell.get("source", "")
    return ("".join(src) if isinstance(src, list) else src).split("\n")


def _unfence(cell):
    """A ```otter fenced markdown cell as the raw cell it stands for."""
    lines = _lines(cell)
    if cell.get("cell_type") == "markdown" and lines and lines[0].strip() == "```otter" \
            and lines[-1].strip() == "```":
        return nbformat.v4.new_raw_cell("\n".join(lines[1:-1]))
    return cell


def split_fenced_cells(cells: list) -> list:
    """Markdown cells holding ```otter blocks, split into markdown and raw
    cells (otter's ``extract_all_fenced_otter_cells``)."""
    out = []
    for cell in cells:
        lines = _lines(cell)
        starts = [i for i, ln in enumerate(lines) if ln.strip() == "```otter"]
        if not starts or cell.get("cell_type") != "markdown":
            out.append(cell)
            continue
        bounds, ok = [], True
        for i in starts:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), None)
            if end is None:
                ok = False
                break
            bounds.append((i, end))
        if not ok:
            out.append(cell)  # reported by the parser as unclosed
            continue

        def add(chunk, kind):
            if any(ln.strip() for ln in chunk):
                out.append(getattr(nbformat.v4, f"new_{kind}_cell")("\n".join(chunk)))

        for k, (i, j) in enumerate(bounds):
            if k == 0:
                add(lines[:i], "markdown")
            add(lines[i + 1:j], "raw")
            after = j + 2 if j + 1 < len(lines) and not lines[j + 1].strip() else j + 1
            add(lines[after:bounds[k + 1][0] if k + 1 < len(bounds) else len(lines)], "markdown")
    return out


def _boundary(cell, end: bool) -> str | None:
    """The block a raw ``# BEGIN X`` / ``# END X`` cell opens or closes."""
    cell = _unfence(cell)
    if cell.get("cell_type") != "raw":
        return None
    first = _lines(cell)[0]
    for b in BLOCKS:
        if re.match(rf"#\s+{'end' if end else 'begin'}\s+{b}\s*", first, re.I):
            return b
    return None


def _is_config(cell) -> bool:
    cell = _unfence(cell)
    return cell.get("cell_type") == "raw" and bool(re.match(r"#\s+assignment\s+config\s*", _lines(cell)[0], re.I))


def _is_ignore_cell(cell) -> bool:
    first = _lines(cell)[0] if _lines(cell) else ""
    return bool(re.match(r"(##\s*ignore\s*##\s*|#\s*ignore\s*)", first, re.I))


def _yaml(cell, where: str, problems: list[str]):
    try:
        data = yaml.safe_load("\n".join(_lines(_unfence(cell))[1:])) or {}
    except yaml.YAMLError as e:
        problems.append(f"{where}: invalid YAML ({str(e).splitlines()[0]}): fix the indentation or quoting")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{where}: expected YAML keys (e.g. 'name: q1')")
        return {}
    return data


def _lock(cell):
    cell["metadata"]["editable"] = False
    cell["metadata"]["deletable"] = False


def _tag(cell, tag: str, add: bool = True):
    cell = copy.deepcopy(cell)
    tags = cell["metadata"].get("tags", [])
    if add and tag not in tags:
        tags = tags + [tag]
    if not add:
        tags = [t for t in tags if t != tag]
    if tags:
        cell["metadata"]["tags"] = tags
    else:
        cell["metadata"].pop("tags", None)
    return cell


def _fresh(cell):
    """A copy of a master cell as nbformat v4 (source as a string)."""
    cell = copy.deepcopy(cell)
    cell["source"] = "\n".join(_lines(cell))
    cell.setdefault("metadata", {})
    return nbformat.from_dict(cell)


def _check_config(config: dict, where: str, problems: list[str], warnings: list[str]) -> None:
    for key in config:
        if key not in CONFIG_KEYS:
            problems.append(f"{where}: unknown assignment config key {key!r}; otter 7's keys are "
                            f"{', '.join(sorted(CONFIG_KEYS))}")
    if config.get("plugins"):
        problems.append(f"{where}: 'plugins' are not supported by sodl: remove them (grading runs on the trusted side)")
    if config.get("runs_on", "default") != "default":
        problems.append(f"{where}: runs_on {config['runs_on']!r} is not supported: use the default")
    if str(config.get("lang", "python")).lower() != "python":
        problems.append(f"{where}: only Python masters are supported")
    tests = config.get("tests", {})
    if tests not in (None, {}) and not isinstance(tests, dict):
        problems.append(f"{where}: 'tests' must be a mapping (files, ok_format, url_prefix)")
    for key in ("files", "autograder_files", "student_files"):
        v = config.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            problems.append(f"{where}: {key!r} must be a list of paths")
    req = config.get("requirements")
    if req is not None and not isinstance(req, (str, list)):
        problems.append(f"{where}: 'requirements' must be a list or the path of a requirements file")
    ex = config.get("export_cell", True)
    if not isinstance(ex, (bool, dict)):
        problems.append(f"{where}: 'export_cell' must be true, false or a mapping of its options")
    for key in ("environment", "save_environment", "python_version", "template_pdf", "solutions_pdf", "ignore_modules",
                "run_tests"):
        if config.get(key):
            warnings.append(f"{where}: {key!r} is ignored ({CONFIG_KEYS[key]})")
    for key, known in (("export_cell", EXPORT_CELL_KEYS), ("seed", SEED_KEYS), ("tests", TESTS_KEYS),
                       ("generate", GENERATE_KEYS)):
        value = config.get(key)
        if isinstance(value, dict):
            for sub in sorted(set(value) - set(known), key=str):
                problems.append(f"{where}: unknown key {key}.{sub}; otter 7's are {', '.join(sorted(known))}")
    if config.get("seed") not in (None, {}) and not isinstance(config.get("seed"), dict):
        problems.append(f"{where}: 'seed' must be a mapping (variable, autograder_value, student_value)")
    gen = config.get("generate", False)
    if not isinstance(gen, (bool, dict)):
        problems.append(f"{where}: 'generate' must be true, false or a mapping of otter's grading options")
    gen = gen if isinstance(gen, dict) else {}
    for key in ("points_possible", "score_threshold"):
        if gen.get(key) is not None:
            problems.append(f"{where}: generate.{key} is not supported by sodl (its score is the sum of the "
                            "questions' points): remove it, and set the questions' points to the total you "
                            "want (or scale the score in Gradescope)")
    if gen.get("plugins"):
        problems.append(f"{where}: generate.plugins are not supported by sodl: remove them")
    if str(gen.get("lang", "python")).lower() != "python":
        problems.append(f"{where}: generate.lang: only Python masters are supported")
    for key in sorted(k for k in gen if str(GENERATE_KEYS.get(k, "")).startswith("ignored") and gen[k]):
        warnings.append(f"{where}: generate.{key} is {GENERATE_KEYS[key]}")


def parse_otter_master(path: Path) -> OtterMaster:
    """Read an otter master; raise :class:`OtterFormatError` with every problem."""
    master, problems = read_master(Path(path))
    if problems:
        raise OtterFormatError(Path(path), problems)
    return master


def read_master(path: Path, check_config: bool = True) -> tuple[OtterMaster | None, list[str]]:
    """Parse a master in otter's assign format: the master and every problem
    found, each naming its cell and the fix (the master is None when the file
    is not a notebook). ``check_config=False`` leaves the assignment config to
    the caller (the course's weeks have their own keys, ``config.py``)."""
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as e:  # noqa: BLE001 - nbformat raises many kinds
        return None, [f"not a readable notebook ({type(e).__name__}: {e})"]
    problems: list[str] = []
    warnings: list[str] = []
    config: dict = {}
    cells = split_fenced_cells(list(nb.cells))
    out: list = []
    questions: list[OtterQuestion] = []
    stack: list[str] = []
    q: OtterQuestion | None = None
    has_prompt = no_solution = solution_md = False
    prompt_at = last_md = None
    begin_export = end_export = False
    seen_config = False

    def where(i):
        return f"cell {i + 1}" + (f" (question {q.name!r})" if q else "")

    roles: list[tuple[str, str | None]] = []
    for i, cell in enumerate(cells):
        name = q.name if q else None
        roles.append(("marker", name))  # the usual case below; each other kind of cell sets its own
        if _is_ignore_cell(cell):
            roles[i] = ("ignored", name)
            continue
        if _is_config(cell):
            roles[i] = ("config", None)
            if seen_config:
                problems.append(f"{where(i)}: a second ASSIGNMENT CONFIG cell: merge it into the first")
            seen_config = True
            conf = _yaml(cell, where(i), problems)
            if conf.get("config_file"):
                extra = path.parent / str(conf["config_file"])
                try:
                    loaded = yaml.safe_load(extra.read_text()) or {}
                    if not isinstance(loaded, dict):
                        raise ValueError("not a mapping")
                    config.update(loaded)
                except (OSError, ValueError, yaml.YAMLError) as e:
                    problems.append(f"{where(i)}: config_file {conf['config_file']!r} cannot be read ({e})")
            config.update(conf)
            continue
        if stack and _boundary(cell, end=True) == stack[-1]:
            block = stack.pop()
            if block == "question":
                if q.manual or q.config.get("export"):
                    end_export = True
                if q.tests:
                    if (not no_solution or any(not h for *_, h in q.tests)) and q.config.get("check_cell", True):
                        check = nbformat.v4.new_code_cell(f'grader.check("{q.name}")')
                        _lock(check)
                        out.append(check)
                if config.get("show_question_points") and last_md is not None:
                    pts = question_points(q)
                    out[last_md] = copy.deepcopy(out[last_md])
                    out[last_md]["source"] += f"\n\n_Points:_ {pts}"
                q, has_prompt, no_solution, last_md, solution_md, prompt_at = None, False, False, None, False, None
            elif block == "solution" and not has_prompt and solution_md and q.manual:
                out.insert(prompt_at, nbformat.v4.new_markdown_cell(
                    "_Type your answer here, replacing this text._", metadata={"tags": [ANSWER_TAG]}))
                has_prompt = True
            continue
        end = _boundary(cell, end=True)
        if end:
            problems.append(f"{where(i)}: '# END {end.upper()}' " + (
                f"closes a block inside an open {stack[-1].upper()} block: add '# END {stack[-1].upper()}' before it"
                if end in stack else "without a matching BEGIN: add the BEGIN cell or remove this one"))
            continue
        begin = _boundary(cell, end=False)
        if begin:
            if not stack and begin != "question":
                problems.append(f"{where(i)}: '# BEGIN {begin.upper()}' outside a question: "
                                "put it between BEGIN QUESTION and END QUESTION")
                continue
            if stack and begin == "question":
                problems.append(f"{where(i)}: BEGIN QUESTION inside question {q.name!r}: close it with END QUESTION first")
                continue
            if len(stack) > 1:
                problems.append(f"{where(i)}: BEGIN {begin.upper()} inside a {stack[-1].upper()} block: close that block first")
                continue
            if begin == "prompt" and has_prompt:
                problems.append(f"{where(i)}: a PROMPT block after the SOLUTION block: put the prompt first")
            if begin == "prompt":
                has_prompt = True
            elif begin == "solution" and not has_prompt:
                prompt_at = len(out)
            elif begin == "tests" and not has_prompt:
                no_solution = True
            elif begin == "question":
                qconf = _yaml(cell, where(i), problems)
                q = OtterQuestion(qconf, where=where(i))
                roles[i] = ("marker", q.name)
                _check_question(qconf, where(i), problems, warnings, {x.name for x in questions})
                questions.append(q)
                if q.manual or qconf.get("export"):
                    begin_export = True
            stack.append(begin)
            continue
        if stack:
            roles[i] = ("test", name)
            if stack[-1] == "tests":
                if cell.get("cell_type") != "code":
                    problems.append(f"{where(i)}: only code cells may sit between BEGIN TESTS and END TESTS")
                    continue
                test = _read_test(cell, where(i), problems)
                if test:
                    q.tests.append(test[:4])
                    q.sources.append(test[4])
                continue
            if cell.get("cell_type") == "code":
                roles[i] = ("solution", name)
            elif stack[-1] == "solution" and INCLUDE_TAG not in cell.get("metadata", {}).get("tags", []):
                roles[i] = ("solution_text", name)
            else:
                roles[i] = ("prompt", name)
            cell = _fresh(cell)
            if stack[-1] == "prompt":
                cell = _tag(cell, ANSWER_TAG)
            elif stack[-1] == "solution":
                cell = _tag(cell, SOLUTION_TAG)
                solution_md = solution_md or cell.cell_type == "markdown"
            elif stack[-1] == "question" and cell.cell_type == "markdown":
                last_md = len(out)
        else:
            roles[i] = ("other", None)
            cell = _fresh(cell)
        delim = None
        if begin_export:
            if cell.cell_type == "markdown":
                cell = _export_comment(cell, end=False)
            else:
                delim = _export_comment(nbformat.v4.new_markdown_cell(), end=False)
            begin_export = False
        if end_export:
            if cell.cell_type == "markdown":
                cell = _export_comment(cell, end=True)
            else:
                delim = _export_comment(delim or nbformat.v4.new_markdown_cell(), end=True)
            end_export = False
        if delim is not None:
            out.append(delim)
        if len(stack) == 1:
            _lock(cell)
        out.append(cell)
    if end_export:
        out.append(_export_comment(nbformat.v4.new_markdown_cell(), end=True))
    if stack:
        problems.append(f"end of notebook: {' / '.join(b.upper() for b in stack)} block(s) not closed: "
                        f"add '# END {stack[-1].upper()}' (question {q.name!r})")
    if not seen_config:
        warnings.append("no ASSIGNMENT CONFIG cell: otter's defaults are used")
    if check_config:
        _check_config(config, "ASSIGNMENT CONFIG", problems, warnings)
    tests_conf = config.get("tests") if isinstance(config.get("tests"), dict) else {}
    ok_format = bool(tests_conf.get("ok_format", True))
    for qq in questions:
        if not ok_format:
            for conf, code, _, _ in qq.tests:
                body = ast.parse(code).body
                if len(body) > 2 or not body or not isinstance(body[0], ast.FunctionDef):
                    problems.append(f"{qq.where}: an exception-based test cell holds a function definition and "
                                    "a call to it, nothing else")
                    break
        try:
            resolve_points(qq.config.get("points"), [c.get("points") for c, *_ in qq.tests])
            _points_consistent(qq)
        except ValueError as e:
            problems.append(f"{qq.where}: {e}")
        if ok_format:
            for k, (conf, code, expected, _) in enumerate(qq.tests):
                last = ast.parse(code).body[-1:] if code.strip() else []
                if last and isinstance(last[0], ast.Expr) and not expected.strip() and not _is_none(last[0]):
                    warnings.append(f"{qq.where}: test {k + 1} ends with an expression but the master has no saved "
                                    "output for it, so it expects no output: execute the master before building")
    return OtterMaster(path, config, out, questions, warnings, ok_format, dict(nb.metadata), cells, roles), problems


def _is_none(stmt) -> bool:
    return isinstance(stmt.value, ast.Constant) and stmt.value.value is None


def _points_consistent(q: OtterQuestion) -> None:
    total = q.config.get("points")
    given = [c.get("points") for c, *_ in q.tests]
    if isinstance(total, list) and len(total) != len(q.tests):
        raise ValueError(f"'points' lists {len(total)} values but the question has {len(q.tests)} test cells: "
                         "give one value per test cell")
    if isinstance(total, (int, float)) and not isinstance(total, bool):
        fixed = sum(float(p) for p in given if p is not None)
        if fixed > float(total) + 1e-9:
            raise ValueError(f"the test cells' points ({fixed:g}) exceed the question's points ({total:g})")


def question_points(q: OtterQuestion):
    """The point value otter shows for a question (``_Points:_``)."""
    if q.manual:
        return q.config.get("points") or 0
    if not q.tests:
        p = q.config.get("points")
        return p if p is not None else 1
    pts = round(sum(resolve_points(q.config.get("points"), [c.get("points") for c, *_ in q.tests])), 5)
    return int(pts) if pts % 1 == 0 else pts


def _check_question(conf: dict, where: str, problems: list[str], warnings: list[str], names: set[str]) -> None:
    name = conf.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name or ""):
        problems.append(f"{where}: the question needs a 'name:' (letters, digits, _ . -)")
    elif name in names:
        problems.append(f"{where}: duplicate question name {name!r}: rename one")
    unknown = set(conf) - QUESTION_KEYS - IGNORED_QUESTION_KEYS
    if unknown:
        problems.append(f"{where}: unknown question key(s) {sorted(unknown)}; valid: {sorted(QUESTION_KEYS)}")
    for key in set(conf) & IGNORED_QUESTION_KEYS:
        warnings.append(f"{where}: question key {key!r} is ignored (otter 7 ignores it too)")
    pts = conf.get("points")
    ok = pts is None or (isinstance(pts, (int, float)) and not isinstance(pts, bool)) \
        or (isinstance(pts, list) and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in pts)) \
        or (isinstance(pts, dict) and set(pts) == {"each"} and isinstance(pts["each"], (int, float)))
    if not ok:
        problems.append(f"{where}: 'points' must be a number, a list of numbers (one per test) or {{each: number}}")
    for key in ("manual", "check_cell", "export", "all_or_nothing"):
        if key in conf and not isinstance(conf[key], bool):
            problems.append(f"{where}: {key!r} must be true or false")


def _read_test(cell, where: str, problems: list[str]):
    lines = _lines(cell)
    hidden = bool(lines and lines[0].lstrip().startswith("#") and re.search(r"\bhidden\b", lines[0], re.I))
    start = 1 if hidden else 0
    conf: dict = {}
    if lines and _BEGIN_TEST_CONFIG.match(lines[0]):
        stop = next((k for k, ln in enumerate(lines) if _END_TEST_CONFIG.match(ln)), None)
        if stop is None:
            problems.append(f"{where}: the test config block is not closed with '\"\"\" # END TEST CONFIG'")
            return None
        try:
            conf = yaml.safe_load("\n".join(lines[1:stop])) or {}
        except yaml.YAMLError as e:
            problems.append(f"{where}: invalid YAML in the test config ({str(e).splitlines()[0]})")
            return None
        if not isinstance(conf, dict):
            problems.append(f"{where}: the test config must be YAML keys")
            return None
        unknown = set(conf) - TEST_KEYS
        if unknown:
            problems.append(f"{where}: unknown test config key(s) {sorted(unknown)}; valid: {sorted(TEST_KEYS)}")
        start = stop + 1
    elif any(_BEGIN_TEST_CONFIG.match(ln.strip()) for ln in lines[1:]):
        problems.append(f"{where}: a test config block must start the cell ('\"\"\" # BEGIN TEST CONFIG' on its "
                        f"first line); placed later it is only a string and its keys are ignored")
        return None
    code = "\n".join(lines[start:])
    source = code.lstrip() if start > hidden else code  # as written, from the first statement after a config block
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        problems.append(f"{where}: the test does not compile: {e.msg} (line {e.lineno}): fix its syntax")
        return None
    code = ast.unparse(_StripAnnotations().visit(tree))
    expected = ""
    for o in cell.get("outputs", []):
        expected += "".join(o.get("text", ""))
        res = o.get("data", {}).get("text/plain")
        expected += res[0] if isinstance(res, list) and res else (res or "")
    hidden = bool(conf.get("hidden", hidden))
    return conf, code, expected, hidden, source


class _StripAnnotations(ast.NodeTransformer):
    """Type hints removed from tests, as otter does (they would not run on
    old Pythons and say nothing to a doctest)."""

    def visit_FunctionDef(self, node):
        node.returns = None
        for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
            a.annotation = None
        return self.generic_visit(node)

    def visit_AnnAssign(self, node):
        if node.value is None:
            return None
        return ast.copy_location(ast.Assign([node.target], node.value), node)


def _export_comment(cell, end: bool):
    cell = copy.deepcopy(cell)
    tag = f"<!-- {'END' if end else 'BEGIN'} QUESTION -->"
    cell["source"] = "\n".join([tag, ""] + _lines(cell))
    _lock(cell)
    return cell


# --------------------------------------------------------------------------
# the notebooks


_ASSIGN_SOLUTION = re.compile(r"(\s*(?:[\w.]+(?=[^\w.])(?:\[['\"]?.*['\"]?\])*(?:,\s*)?)+\s*=).* ?# ?SOLUTION")
_LINE_SOLUTION = re.compile(r"(\s*).* ?# ?SOLUTION")
_BEGIN_SOLUTION = re.compile(r"(\s*)# BEGIN SOLUTION( NO PROMPT)?")
_DROPPED_SUFFIXES = ("# SOLUTION NO PROMPT", "# BEGIN PROMPT", "# END PROMPT", "# SEED")


def student_lines(lines: list[str]) -> list[str]:
    """A solution cell's student version: ``# SOLUTION`` lines become
    ``name = ...`` or ``...``, ``# BEGIN SOLUTION`` blocks become ``...``
    (nothing with NO PROMPT), and the prompt strings' delimiter lines and
    ``# SEED`` lines go (otter's ``replace_solutions``)."""
    out, inside = [], False
    for line in lines:
        stripped = line.rstrip()
        if stripped.endswith(_DROPPED_SUFFIXES):
            continue
        if stripped.endswith("# END SOLUTION"):
            inside = False
            continue
        if inside:
            continue
        m = _BEGIN_SOLUTION.match(line)
        if m:
            inside = True
            if m.group(2):
                continue
            line = m.group(1) + "..."
        elif (m := _ASSIGN_SOLUTION.match(line)):
            line = m.group(1) + " ..."
        elif (m := _LINE_SOLUTION.match(line)):
            line = m.group(1) + "..."
        out.append(line)
    return out


def _drop_blocks(lines: list[str], begins, end: str, drop) -> list[str]:
    """``lines`` less the blocks from a line where ``begins`` holds to the
    next line ending with ``end``, and less single lines where ``drop`` holds."""
    out, inside = [], False
    for line in lines:
        if inside:
            inside = not line.rstrip().endswith(end)
        elif begins(line):
            inside = True
        elif not drop(line):
            out.append(line)
    return out


def key_lines(lines: list[str]) -> list[str]:
    """A solution cell's answer-key version: the code runs as written, the
    prompt strings (``\"\"\" # BEGIN PROMPT ... \"\"\" # END PROMPT``, which are
    no-op string statements) go, as do the block markers."""
    return _drop_blocks(lines, lambda ln: ln.rstrip().endswith("# BEGIN PROMPT"), "# END PROMPT",
                        lambda ln: bool(_BEGIN_SOLUTION.match(ln)) or ln.rstrip().endswith("# END SOLUTION"))


def without_ignored(lines: list[str]) -> list[str]:
    """``# IGNORE`` lines and ``# BEGIN/END IGNORE`` blocks removed."""
    return _drop_blocks(lines, lambda ln: bool(re.match(r"\s*#\s*BEGIN\s*IGNORE\s*", ln, re.I)), "# END IGNORE",
                        lambda ln: ln.rstrip().endswith(("# IGNORE", "# END IGNORE")))


def _export_cells(config: dict, name: str) -> list:
    ex = config.get("export_cell", True)
    if ex is False:
        return []
    ex = ex if isinstance(ex, dict) else {}
    force = bool(ex.get("force_save", False))
    text = ("## Submission\n\nMake sure you have run all cells in your notebook in order before running the "
            "cell below, so that all images/graphs appear in the output. The cell below will generate a zip "
            "file for you to submit.")
    if not force:
        text += " **Please save before exporting!**"
    if ex.get("instructions"):
        text += "\n\n" + ex["instructions"]
    args = []
    if not ex.get("filtering", True):
        args.append("filtering=False")
    if not ex.get("pdf", True):
        args.append("pdf=False")
    if force:
        args.append("force_save=True")
    if ex.get("run_tests", True):
        args.append("run_tests=True")
    if ex.get("ignore_log", False):
        args.append("ignore_log=True")
    files = [*ex.get("files", []), *config.get("student_files", [])]
    if files:
        args.append(f"files={files}")
    lines = [] if force else ["# Save your notebook first, then run this cell to export your submission."]
    lines.append(f"grader.export({', '.join(args)})")
    md, code = nbformat.v4.new_markdown_cell(text), nbformat.v4.new_code_cell("\n".join(lines))
    _lock(md)
    _lock(code)
    return [md, code, nbformat.v4.new_markdown_cell(" ")]


def _framed(om: OtterMaster) -> list:
    """Init, check-all and export cells around the transformed cells."""
    cells = [copy.deepcopy(c) for c in om.cells]
    if om.config.get("init_cell", True):
        tests_conf = om.config.get("tests") if isinstance(om.config.get("tests"), dict) else {}
        url = f', tests_url_prefix="{tests_conf["url_prefix"]}"' if tests_conf.get("url_prefix") else ""
        init = nbformat.v4.new_code_cell(f'# Initialize Otter\nimport otter\ngrader = otter.Notebook("{om.path.name}"{url})')
        _lock(init)
        cells.insert(0, init)
    if om.config.get("check_all_cell", False):
        md = nbformat.v4.new_markdown_cell("---\n\nTo double-check your work, the cell below will rerun all "
                                           "of the autograder tests.")
        code = nbformat.v4.new_code_cell("grader.check_all()")
        _lock(md)
        _lock(code)
        cells += [md, code]
    cells += _export_cells(om.config, om.name)
    for c in cells:
        c["source"] = "\n".join(without_ignored(_lines(c)))
        c.pop("id", None)
    return cells


def _metadata(om: OtterMaster, tests: dict) -> dict:
    meta = copy.deepcopy(om.metadata)
    meta.pop("otter", None)
    otter = {"OK_FORMAT": om.ok_format, "tests": tests}
    if om.config.get("name"):
        otter["assignment_name"] = om.config["name"]
    ack = om.config.get("export_cell", {}).get("require_no_pdf_ack") if isinstance(om.config.get("export_cell"), dict) \
        else None
    if ack:  # otter's export asks the student to confirm a submission without its PDF
        otter["require_no_pdf_confirmation"] = True
        if isinstance(ack, dict) and ack.get("message"):
            otter["export_pdf_failure_message"] = ack["message"]
    meta["otter"] = otter
    return meta


def ok_tests(om: OtterMaster, include_hidden: bool) -> dict:
    """The OK-format tests otter writes into a notebook's metadata."""
    from autograder.harness.doctest_output import doctest_text

    out = {}
    questions, _ = om.records()
    for q in questions:
        cases = []
        for t in q.tests:
            if t.hidden and not include_hidden:
                continue
            case = {"code": doctest_text(t.code, t.expected_output or ""), "hidden": t.hidden, "locked": False,
                    "points": t.points}
            if t.success_message:
                case["success_message"] = t.success_message
            if t.failure_message:
                case["failure_message"] = t.failure_message
            cases.append(case)
        test = {"name": q.name, "points": q.points,
                "suites": [{"cases": cases, "scored": True, "setup": "", "teardown": "", "type": "doctest"}]}
        if q.all_or_nothing:
            test["all_or_nothing"] = True
        out[q.name] = test
    return out


def _new_notebook(om: OtterMaster, cells: list, meta: dict):
    nb = nbformat.v4.new_notebook()
    nb.metadata = nbformat.from_dict(meta)
    nb.cells = [nbformat.from_dict(c) for c in cells]
    for k, c in enumerate(nb.cells):
        c["id"] = f"{k:04d}-{om.name}"[:64].replace(".", "-")
        if c.cell_type == "code":
            c.setdefault("outputs", [])
            c.setdefault("execution_count", None)
    return nb


def key_notebook(om: OtterMaster):
    """The answer key: otter's autograder notebook, solutions in place and
    prompt strings gone, outputs cleared (``sodl build`` executes it)."""
    cells = _framed(om)
    for c in cells:
        if SOLUTION_TAG in c["metadata"].get("tags", []):
            if c["cell_type"] == "code":
                c["source"] = "\n".join(key_lines(_lines(c)))
            c = c
        if c["cell_type"] == "code":
            c["outputs"], c["execution_count"] = [], None
    tests = ok_tests(om, include_hidden=False) if not uses_test_files(om) else {}
    return _new_notebook(om, cells, _metadata(om, tests))


def student_notebook(om: OtterMaster):
    """The student notebook, cell for cell what ``otter assign`` writes:
    solutions stripped, markdown solutions removed (unless tagged
    ``otter_include``), outputs cleared, the seed variable set to the
    student value, and only public tests in the metadata."""
    strip_all = bool(om.config.get("strip_solutions_from_all_cells"))
    out = []
    for c in _framed(om):
        tags = c["metadata"].get("tags", [])
        is_solution = SOLUTION_TAG in tags
        if c["cell_type"] == "code" and (is_solution or strip_all):
            c["source"] = "\n".join(student_lines(_lines(c)))
        if is_solution:
            if c["cell_type"] == "markdown":
                if INCLUDE_TAG not in tags:
                    continue
                c = _tag(c, INCLUDE_TAG, add=False)
            c = _tag(_tag(c, SOLUTION_TAG, add=False), ANSWER_TAG)
        if c["cell_type"] == "code":
            c["outputs"], c["execution_count"] = [], None
        out.append(c)
    seed = om.config.get("seed") if isinstance(om.config.get("seed"), dict) else {}
    if seed.get("variable"):
        var = re.escape(str(seed["variable"]))
        for c in out:
            lines = _lines(c)
            for k, line in enumerate(lines):
                m = re.match(rf"(\s*){var}\s*(=|<-)\s*", line)
                if m:
                    lines[k] = f"{m.group(1)}{seed['variable']} {m.group(2)} {seed.get('student_value')}"
            c["source"] = "\n".join(lines)
    tests = ok_tests(om, include_hidden=False) if not uses_test_files(om) else {}
    return _new_notebook(om, out, _metadata(om, tests))


def grading_seed(config: dict) -> tuple[int | None, str | None]:
    """Otter's intercell seeding at grading time: the seed and the variable
    it is assigned to (``None``: numpy's and random's seeds are set)."""
    gen = config.get("generate") if isinstance(config.get("generate"), dict) else {}
    seed_conf = config.get("seed") if isinstance(config.get("seed"), dict) else {}
    seed = seed_conf.get("autograder_value", gen.get("seed"))
    variable = seed_conf.get("variable", gen.get("seed_variable"))
    return (int(seed) if seed is not None else None), (str(variable) if variable else None)




def uses_test_files(om: OtterMaster) -> bool:
    """Whether public tests go to the student as ``tests/<question>.py``
    (``tests: {files: true}``, or exception-based tests) rather than in
    the notebook's metadata."""
    tests_conf = om.config.get("tests") if isinstance(om.config.get("tests"), dict) else {}
    return bool(tests_conf.get("files", False)) or not om.ok_format


def public_test_files(om: OtterMaster) -> dict[str, str]:
    """``tests/<question>.py`` for otter's ``grader.check``, public tests only,
    in otter 7's two file formats (an OK dict, or ``@test_case`` functions)."""
    import pprint

    if not uses_test_files(om):
        return {}
    files = {}
    if om.ok_format:
        for name, test in ok_tests(om, include_hidden=False).items():
            files[f"tests/{name}.py"] = f"OK_FORMAT = True\n\ntest = {pprint.pformat(test, indent=4)}\n"
        return files
    questions, _ = om.records()
    for q in questions:
        lines = ["from otter.test_files import test_case", "", "OK_FORMAT = False", "", f"name = {q.name!r}",
                 f"points = {q.points!r}"]
        if q.all_or_nothing:
            lines.append("all_or_nothing = True")
        lines.append("")
        for t in q.tests:
            if t.hidden:
                continue
            args = [f"points={t.points!r}", "hidden=False"]
            if t.success_message:
                args.append(f"success_message={t.success_message!r}")
            if t.failure_message:
                args.append(f"failure_message={t.failure_message!r}")
            lines += [f"@test_case({', '.join(args)})", ast.unparse(ast.parse(t.code).body[0]), ""]
        files[f"tests/{q.name}.py"] = "\n".join(lines)
    return files
