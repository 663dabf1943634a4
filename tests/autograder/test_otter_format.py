"""Otter's assign format read as otter reads it (``autograder/otter_format``),
OK-format tests graded by printed output (``harness/doctest_output``), and
tables and generators on the wire (``harness/wire_tables``): small masters
written here, compared with otter 7's documented rules."""
from __future__ import annotations

import nbformat
import numpy as np
import pytest

from autograder.harness import wire
from autograder.harness.doctest_output import run_ok_test
from autograder.otter_format import (OtterFormatError, key_lines, parse_otter_master, resolve_points,
                                     student_lines, student_notebook, without_ignored)


def _master(tmp_path, cells, name="hw.ipynb"):
    nb = nbformat.v4.new_notebook()
    made = []
    for kind, src, *outs in cells:
        c = getattr(nbformat.v4, f"new_{kind}_cell")(src)
        if kind == "code" and outs:
            c.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": outs[0]}, execution_count=1)]
        made.append(c)
    nb.cells = made
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def _question(name, solution, tests, extra=""):
    return [("raw", f"# BEGIN QUESTION\nname: {name}\n{extra}"), ("raw", "# BEGIN SOLUTION"), ("code", solution),
            ("raw", "# END SOLUTION"), ("raw", "# BEGIN TESTS"), *tests, ("raw", "# END TESTS"),
            ("raw", "# END QUESTION")]


def test_points_resolve_as_otter_does():
    assert resolve_points(None, [None, None]) == [0.5, 0.5]
    assert resolve_points([10, 2], [None, None]) == [10.0, 2.0]
    assert resolve_points({"each": 0.75}, [None] * 4) == [0.75] * 4
    assert resolve_points(3, [1, None, None]) == [1.0, 1.0, 1.0]
    assert resolve_points(None, [2, None]) == [2.0, 0.0]


def test_solution_prompt_ignore_and_seed_lines():
    src = ["np.random.seed(1) # SEED", "x = 2 # SOLUTION", "if True:", "    # BEGIN SOLUTION", "    y = 3",
           "    # END SOLUTION", "z = 1 # SOLUTION NO PROMPT", '""" # BEGIN PROMPT', "z = ...", '""" # END PROMPT']
    assert student_lines(src) == ["x = ...", "if True:", "    ...", "z = ..."]
    assert key_lines(src) == ["np.random.seed(1) # SEED", "x = 2 # SOLUTION", "if True:", "    y = 3",
                              "z = 1 # SOLUTION NO PROMPT"]
    assert without_ignored(["a", "b # IGNORE", "# BEGIN IGNORE", "c", "# END IGNORE", "d"]) == ["a", "d"]


def test_every_problem_in_one_run(tmp_path):
    path = _master(tmp_path, [
        ("raw", "# ASSIGNMENT CONFIG\nbogus_key: 1"),
        *_question("q1", "x = 1 # SOLUTION", [("code", "x ==")]),
        ("raw", "# BEGIN QUESTION\nname: q2\npoints: [1, 2]"), ("raw", "# BEGIN TESTS"), ("code", "1"),
        ("raw", "# END TESTS"), ("raw", "# END QUESTION"),
        ("raw", "# END SOLUTION"),
    ])
    with pytest.raises(OtterFormatError) as e:
        parse_otter_master(path)
    text = str(e.value)
    assert "bogus_key" in text and "does not compile" in text and "one value per test cell" in text
    assert "END SOLUTION" in text and "Traceback" not in text
    assert len(e.value.problems) == 4


def test_hidden_tests_manual_questions_and_messages(tmp_path):
    path = _master(tmp_path, [
        ("raw", "# ASSIGNMENT CONFIG\nname: hw\nexport_cell: false"),
        *_question("q1", "def square(x):\n    return x * x # SOLUTION",
                   [("code", "square(3)", "9"), ("code", "# HIDDEN\nsquare(1)", "1"),
                    ("code", '""" # BEGIN TEST CONFIG\nfailure_message: try again\nname: t3\n""" # END TEST CONFIG\n'
                             "square(2)", "4")], "all_or_nothing: true"),
        ("raw", "# BEGIN QUESTION\nname: q2\nmanual: true\npoints: 2"), ("markdown", "Explain."),
        ("raw", "# BEGIN SOLUTION"), ("markdown", "Because."), ("raw", "# END SOLUTION"), ("raw", "# END QUESTION"),
    ])
    om = parse_otter_master(path)
    (q1,), manual = om.records()
    assert manual == ["q2"] and q1.all_or_nothing and [t.hidden for t in q1.tests] == [False, True, False]
    assert q1.tests[2].failure_message == "try again" and q1.tests[2].name == "t3"
    assert [t.expected_output for t in q1.tests] == ["9", "1", "4"]
    student = nbformat.writes(student_notebook(om))
    assert "square(1)" not in student and "Because." not in student and "return ..." not in student
    assert "_Type your answer here, replacing this text._" in student


def test_ok_test_passes_on_printed_output_not_on_not_raising():
    ns = {"square": lambda x: x + 1}
    passed, told = run_ok_test("square(1)", "1", ns, "t", ())  # otter's example: a wrong square scored 1/1
    assert not passed and "printed '2'" in told
    assert run_ok_test("square(1)", "2", ns, "t", ())[0]
    assert run_ok_test("str(print(3))", "3\n'None'", {}, "t", ())[0]
    assert not run_ok_test("undefined_name", "1", {}, "t", ())[0]


def test_ok_test_reraises_what_ends_the_question():
    class Died(Exception):
        pass

    def boom():
        raise Died()

    with pytest.raises(Died):
        run_ok_test("boom()", "1", {"boom": boom}, "t", (Died,))


def _refuse(x):
    raise TypeError(type(x).__name__)


def test_dataframe_and_series_arrive_as_real_pandas_objects():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "c": [0.5, np.nan]}, index=["r", "s"])
    tree, blobs = wire.encode_value(df, _refuse)
    back = wire.decode(tree, blobs)
    assert type(back) is pd.DataFrame and back.equals(df)
    s = df["c"]
    back = wire.decode(*wire.encode_value(s, _refuse))
    assert type(back) is pd.Series and back.equals(s) and back.name == "c"


def test_a_table_holding_objects_stays_a_handle():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [object(), object()]})
    with pytest.raises(TypeError):
        wire.encode_value(df, _refuse)


def test_generators_are_drawn_with_a_bound():
    from autograder.harness.wire_tables import MAX_GENERATOR_ITEMS

    def count():
        i = 0
        while True:
            yield i
            i += 1

    it = wire.decode(*wire.encode_value(count(), _refuse))
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    assert len(list(it)) == MAX_GENERATOR_ITEMS - 3


def test_malformed_table_is_refused():
    pytest.importorskip("pandas")
    tree = {"__t__": "series", "name": None, "index": {"range": [0, 3, 1], "name": None}, "values": [1]}
    with pytest.raises(wire.WireError):
        wire.decode(tree, [])


def test_a_handle_smuggled_into_a_table_is_refused():
    """A sandbox that sends a handle as a column label (the encoder never
    does) gets a WireError, not a proxy inside a trusted DataFrame."""
    pytest.importorskip("pandas")
    tree = {"__t__": "dataframe", "index": {"range": [0, 1, 1], "name": None},
            "columns": [{"__t__": "handle", "id": 1, "type": "x.Y"}], "data": [[1]]}
    with pytest.raises(wire.WireError):
        wire.decode(tree, [], handle_factory=lambda h: object())


def test_all_or_nothing_parts_add_up_to_the_score():
    """results.json's per-part scores must add up to the total: a failed
    all-or-nothing question earns nothing in any part."""
    from autograder.gradescope import results_json
    from autograder.records import Assignment, Question, QuestionResult, SubmissionResult, TestCase, TestOutcome

    tests = (TestCase("q1", 0, "1", False, 2.0), TestCase("q1", 1, "1", True, 3.0))
    q = Question("q1", 5.0, tests, all_or_nothing=True)
    res = SubmissionResult("s", Assignment("a", "", (q,)))
    res.questions.append(QuestionResult(q, [TestOutcome(tests[0], True), TestOutcome(tests[1], False)]))
    data = results_json(res)
    assert data["score"] == 0 and sum(t["score"] for t in data["tests"]) == 0
    res.questions[0].outcomes[1].passed = True
    assert results_json(res)["score"] == 5 == sum(t["score"] for t in results_json(res)["tests"])


def test_test_names_and_messages_reach_the_student_as_otter_shows_them():
    """otter's summary: ``<name> message: <success_message>`` for a passed
    test, ``<name> message: <failure_message>`` then the result for a failed
    one (``otter/test_files/abstract_test.py``), in results.json and in
    feedback.md; a test without a name keeps our kind and number."""
    from autograder.gradescope import results_json
    from autograder.records import Assignment, Question, QuestionResult, SubmissionResult, TestCase, TestOutcome
    from autograder.report import feedback_markdown

    tests = (TestCase("q1", 0, "1", False, 1.0, name="q1a-1", success_message="Congrats!",
                      failure_message="This is not an int."),
             TestCase("q1", 1, "1", False, 1.0, name="q1a-2", failure_message="Check the length."),
             TestCase("q1", 2, "1", True, 1.0, failure_message="Hidden hint."),
             TestCase("q1", 3, "1", False, 1.0))
    q = Question("q1", 4.0, tests)
    res = SubmissionResult("s", Assignment("a", "", (q,)))
    res.questions.append(QuestionResult(q, [TestOutcome(tests[0], True), TestOutcome(tests[1], False, "printed 3"),
                                            TestOutcome(tests[2], False, "a hidden test failed"),
                                            TestOutcome(tests[3], True)]))
    public, hidden = (t["output"] for t in results_json(res)["tests"])
    assert public.splitlines() == ["q1a-1 message: Congrats!", "q1a-1: passed", "q1a-2 message: Check the length.",
                                   "q1a-2: failed: printed 3", "public test 4: passed"]
    assert hidden.splitlines() == ["hidden test 3 message: Hidden hint.", "hidden test 3: failed: a hidden test failed"]
    md = feedback_markdown(res)
    assert "- q1a-1 message: Congrats!\n- q1a-1: passed" in md and "- q1a-2: failed: printed 3" in md


def test_an_ok_test_keeps_what_went_wrong_beside_its_failure_message(tmp_path):
    """A failed public OK-format test tells what it printed (otter's result)
    as well as the author's failure message; a hidden one never what it printed."""
    from autograder.harness.doctest_output import ok_outcome
    from autograder.records import TestCase

    public = TestCase("q1", 0, "square(1)", False, 1.0, expected_output="1", name="t", failure_message="try again")
    out = ok_outcome(public, {"square": lambda x: x + 1}, ())
    assert not out.passed and "printed '2'" in out.message
    assert out.report_lines() == ["t message: try again", f"t: failed: {out.message}"]
    hidden = TestCase("q1", 1, "square(1)", True, 1.0, expected_output="1", failure_message="try again")
    out = ok_outcome(hidden, {"square": lambda x: x + 1}, ())
    assert "2" not in out.message and out.report_lines()[0] == "hidden test 2 message: try again"
    assert ok_outcome(public, {"square": lambda x: x * x}, ()).report_lines() == ["t: passed"]


HELPER = "import os\nFOO = 1\nPID = os.getpid()\n\ndef double(v):\n    return 2 * v\n"
DECOY = "FOO = 2\nPID = 0\n\ndef double(v):\n    return 0\n"


@pytest.mark.slow
def test_a_submitted_module_is_imported_in_the_sandbox_never_by_the_grader(tmp_path, monkeypatch):
    """otter's ``student_files``: a test's ``import helper`` gets the
    student's module from the sandbox, behind a proxy (its values as data,
    its functions run there). A decoy ``helper.py`` on the grader's own
    path would make every test fail if the grader imported the name."""
    import sys

    from autograder.build import prepare_master
    from autograder.grade import grade_cells, grade_submission
    from autograder.submission import grading_cells

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "helper.py").write_text(HELPER)
    path = _master(tmp_path / "m", [
        ("raw", "# ASSIGNMENT CONFIG\nname: hw\nexport_cell: false\nstudent_files:\n  - helper.py"),
        *_question("q1", "x = 2 # SOLUTION",
                   [("code", "import helper\nassert helper.FOO == 1"), ("code", "from helper import double\ndouble(x)", "4"),
                    ("code", "import os\nimport helper as h\nh.PID != os.getpid()", "True")], "all_or_nothing: true"),
    ])
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "helper.py").write_text(DECOY)
    monkeypatch.syspath_prepend(str(decoy))
    monkeypatch.chdir(decoy)
    built = prepare_master(path)
    assert built.packaged.assignment.student_modules == ("helper",) and "helper" not in built.packaged.grading.preload
    res = grade_cells(built.packaged, grading_cells(built.key), "key", diagnose_mistakes=False,
                      submitted_files=[("helper.py", HELPER.encode())])
    assert res.score == res.max_score == 1, [o.message for q in res.questions for o in q.outcomes]
    assert "helper" not in sys.modules
    folder = tmp_path / "without"
    folder.mkdir()
    nbformat.write(built.key, folder / "hw.ipynb")
    res = grade_submission(built.packaged, folder)
    assert res.score == 0 and any("has no helper.py" in m for m in res.messages)
    assert "helper" not in sys.modules


def test_grading_options_sodl_cannot_honour_are_named_with_the_fix(tmp_path):
    """otter's ``generate`` options that change the score are refused, its
    nested keys are checked for typos, all in one run."""
    path = _master(tmp_path, [
        ("raw", "# ASSIGNMENT CONFIG\ngenerate:\n  points_possible: 10\n  score_threshold: 0.5\n  plugins: [x]\n"
                "  seeed: 1\nexport_cell:\n  pdff: false\nseed:\n  varaible: s\ntests:\n  okformat: false"),
        *_question("q1", "x = 2 # SOLUTION", [("code", "x == 2", "True")]),
    ])
    with pytest.raises(OtterFormatError) as e:
        parse_otter_master(path)
    text = str(e.value)
    for key in ("generate.points_possible", "generate.score_threshold", "generate.plugins", "generate.seeed",
                "export_cell.pdff", "seed.varaible", "tests.okformat"):
        assert key in text, key
    assert "set the questions' points" in text and "Traceback" not in text and len(e.value.problems) == 7


def test_other_grading_and_export_options_work_as_otter_s(tmp_path):
    """``generate.show_hidden`` (hidden results shown once published, else
    never), ``tests.url_prefix`` (the init cell), ``export_cell.require_no_pdf_ack``
    (the notebook's metadata) and ignored PDF options (warned)."""
    from autograder.build import prepare_master

    cells = [*_question("q1", "x = 2 # SOLUTION", [("code", "x == 2", "True")])]
    conf = ("# ASSIGNMENT CONFIG\nname: hw\ngenerate:\n  pdf: true\n  show_hidden: true\ntests:\n"
            "  url_prefix: https://example.org/tests/\nexport_cell:\n  require_no_pdf_ack:\n    message: no PDF")
    built = prepare_master(_master(tmp_path, [("raw", conf), *cells]))
    assert built.packaged.assignment.hidden_visibility == "after_published"
    assert any("generate.pdf is ignored" in w for w in built.warnings)
    assert 'otter.Notebook("hw.ipynb", tests_url_prefix="https://example.org/tests/")' in built.student.cells[0].source
    meta = built.student.metadata["otter"]
    assert meta["require_no_pdf_confirmation"] is True and meta["export_pdf_failure_message"] == "no PDF"
    (tmp_path / "b").mkdir()
    plain = prepare_master(_master(tmp_path / "b", [("raw", "# ASSIGNMENT CONFIG\nname: hw"), *cells]))
    assert plain.packaged.assignment.hidden_visibility == "hidden"


def test_autograder_files_go_to_the_zip_only_and_a_missing_requirements_file_is_named(tmp_path):
    """otter's ``autograder_files`` are for the autograder, not the student
    folder; a ``requirements:`` path that is not there is a problem, not
    silently no requirements."""
    import zipfile

    from autograder.build import build_master

    (tmp_path / "data.csv").write_text("a\n1\n")
    (tmp_path / "secret.csv").write_text("b\n2\n")
    cells = [*_question("q1", "x = 2 # SOLUTION", [("code", "x == 2", "True")])]
    path = _master(tmp_path, [("raw", "# ASSIGNMENT CONFIG\nname: hw\nfiles: [data.csv]\n"
                                      "autograder_files: [secret.csv]"), *cells])
    wheel = tmp_path / "sodl-0-py3-none-any.whl"
    wheel.write_bytes(b"")
    paths = build_master(path, tmp_path / "out", wheel, execute=False)
    student, solution = tmp_path / "out" / "hw" / "student", tmp_path / "out" / "hw" / "solution"
    assert (student / "data.csv").is_file() and not (student / "secret.csv").exists()
    assert not (solution / "secret.csv").exists()
    from autograder.package import load_zip

    assert {"data.csv", "secret.csv"} <= {name for name, _ in load_zip(paths["zip"]).files}
    assert zipfile.is_zipfile(paths["zip"])
    path.write_text(path.read_text().replace("autograder_files: [secret.csv]", "requirements: reqs.txt"))
    with pytest.raises(OtterFormatError, match="requirements: 'reqs.txt' is not a file"):
        build_master(path, tmp_path / "out2", wheel, execute=False)


def test_a_submission_named_as_the_master_is_not_told_it_is_misnamed(tmp_path):
    """otter's student notebook keeps the master's file name whatever the
    config's ``name`` (otter-example: ``example.ipynb`` for ``hw01``)."""
    from autograder.build import prepare_master
    from autograder.submission import find_notebook

    cells = [*_question("q1", "x = 2 # SOLUTION", [("code", "x == 2", "True")])]
    built = prepare_master(_master(tmp_path, [("raw", "# ASSIGNMENT CONFIG\nname: hw01"), *cells], name="example.ipynb"))
    folder = tmp_path / "sub"
    folder.mkdir()
    for name in ("example.ipynb", "other.ipynb"):
        nbformat.write(built.student, folder / name)
    path, notes = find_notebook(folder, built.packaged.assignment)
    assert path.name == "example.ipynb" and not any("named" in n for n in notes)
    assert find_notebook(folder / "other.ipynb", built.packaged.assignment)[1] == [
        "Your notebook is named other.ipynb; expected example.ipynb (graded anyway)."]


@pytest.mark.slow
def test_a_table_and_a_record_array_come_back_from_the_sandbox_as_real_objects(tmp_path):
    """Data 8's ``Table`` and numpy records, built by student code in the
    sandbox, reach an OK-format test as the grader's own objects."""
    from autograder.build import prepare_master
    from autograder.grade import grade_cells
    from autograder.submission import grading_cells

    path = _master(tmp_path, [
        ("raw", "# ASSIGNMENT CONFIG\nname: hw\nexport_cell: false"),
        ("code", "from datascience import Table\nimport numpy as np"),
        *_question("q1", "def make():\n    return Table().with_columns('a', [1, 2], 'b', ['x', 'y']) # SOLUTION\n\n"
                         "rec = np.zeros(2, dtype=[('x', 'f8'), ('n', 'U3')])",
                   [("code", "t = make()\n(type(t).__module__, t.num_rows, [str(v) for v in t.column('b')])",
                     "('datascience.tables', 2, ['x', 'y'])"),
                    ("code", "(type(rec).__name__, rec.dtype.names)", "('ndarray', ('x', 'n'))")]),
    ])
    built = prepare_master(path)
    res = grade_cells(built.packaged, grading_cells(built.key), "key", diagnose_mistakes=False)
    assert res.score == res.max_score == 1, [o.message for q in res.questions for o in q.outcomes]


def test_an_ok_test_names_the_student_s_exception_not_the_grader_s_wrapper():
    from autograder.harness.sandbox_handle import StudentError

    def imports():
        raise StudentError({"type": "ModuleNotFoundError", "message": "No module named 'helper'\ud800"})

    passed, told = run_ok_test("imports()", "", {"imports": imports}, "t", ())
    assert not passed and told.startswith("`imports()` raised ModuleNotFoundError in your code: No module named")
    assert "StudentError" not in told and "\ud800" not in told
