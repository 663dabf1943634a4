"""The master-notebook parser: it accepts otter's assign format and names the bad cell."""
import nbformat
import pytest

from autograder.master import MasterFormatError, parse_master
from autograder.authoring import strip_solutions, to_doctest


def _nb(tmp_path, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    p = tmp_path / "week09.ipynb"
    nbformat.write(nb, str(p))
    return p


def _raw(s):
    return nbformat.v4.new_raw_cell(s)


def _code(s):
    return nbformat.v4.new_code_cell(s)


def test_parses_questions_points_and_hidden_flags(toy_week):
    master = parse_master(toy_week.master_path)
    assert [q.name for q in master.questions] == ["q1_square", "q2_mean"]
    q1 = master.questions[0]
    assert q1.points == 2 and [t.hidden for t in q1.tests] == [False, True]
    assert sum(t.points for t in q1.tests) == pytest.approx(2)
    assert "BEGIN TEST CONFIG" not in q1.tests[1].code


def test_missing_end_question_names_the_cell(tmp_path):
    p = _nb(tmp_path, [_raw("# ASSIGNMENT CONFIG\nname: week09"), _raw("# BEGIN QUESTION\nname: q1"),
                       _code("x = 1"), _raw("# BEGIN TESTS"), _code("assert x == 1"), _raw("# END TESTS"),
                       _raw("# BEGIN QUESTION\nname: q2")])
    with pytest.raises(MasterFormatError, match=r"cell 7 \(question 'q1'\): BEGIN QUESTION inside question 'q1'"):
        parse_master(p)


def test_bad_yaml_and_missing_tests_are_reported(tmp_path):
    p = _nb(tmp_path, [_raw("# ASSIGNMENT CONFIG\nname: [week09"), _raw("# BEGIN QUESTION\nname: q1")])
    with pytest.raises(MasterFormatError, match="cell 1: invalid YAML"):
        parse_master(p)
    p = _nb(tmp_path, [_raw("# ASSIGNMENT CONFIG\nname: week09"), _raw("# BEGIN QUESTION\nname: q1"),
                       _raw("# END QUESTION")])
    with pytest.raises(MasterFormatError, match="cell 2: question 'q1' has no test cells"):
        parse_master(p)


def test_test_points_must_add_up(tmp_path):
    p = _nb(tmp_path, [_raw("# ASSIGNMENT CONFIG\nname: week09"), _raw("# BEGIN QUESTION\nname: q1\npoints: 1"),
                       _raw("# BEGIN TESTS"),
                       _code('""" # BEGIN TEST CONFIG\npoints: 3\n""" # END TEST CONFIG\nassert True'),
                       _raw("# END TESTS"), _raw("# END QUESTION")])
    with pytest.raises(MasterFormatError, match=r"cell 2: the test cells' points \(3\) exceed the question's points"):
        parse_master(p)
    p = _nb(tmp_path, [_raw("# ASSIGNMENT CONFIG\nname: week09"), _raw("# BEGIN QUESTION\nname: q1\npoints: 4"),
                       _raw("# BEGIN TESTS"),
                       _code('""" # BEGIN TEST CONFIG\npoints: 3\n""" # END TEST CONFIG\nassert True'),
                       _raw("# END TESTS"), _raw("# END QUESTION")])
    with pytest.raises(MasterFormatError, match=r"cell 2: the test points of 'q1' do not add up to its points \(4\)"):
        parse_master(p)


def test_not_a_notebook(tmp_path):
    p = tmp_path / "week09.ipynb"
    p.write_text("{not json")
    with pytest.raises(MasterFormatError, match="not a readable notebook"):
        parse_master(p)


def test_strip_solutions_block_and_line_markers():
    src = "def f(x):\n    # BEGIN SOLUTION\n    y = x + 1\n    return y\n    # END SOLUTION\nz = 3  # SOLUTION\n"
    assert strip_solutions(src) == "def f(x):\n    ...\nz = ..."


def test_doctest_conversion_keeps_compound_statements():
    code = "import numpy as np\nfor i in range(2):\n    assert i < 2\nassert np.isclose(1, 1)\n"
    doc = to_doctest(code)
    assert doc.splitlines() == [">>> import numpy as np", ">>> for i in range(2):", "...     assert i < 2",
                                "... ", ">>> assert np.isclose(1, 1)"]


def test_top_level_imports_of_the_key_are_preloaded_but_not_otter_or_hidden_packages():
    from autograder.build import with_notebook_preload
    from autograder.config import GradingConfig
    from autograder.submission import top_level_imports

    cells = ["import otter\ngrader = otter.Notebook('w.ipynb')",
             "import numpy as np, scipy.linalg\nfrom matplotlib import pyplot as plt\nfrom . import local",
             "def f():\n    import json  # not at the top level\n",
             "from sodl_ref.kernels import ntk\nimport sodl_ref",
             "this is not python("]
    assert top_level_imports(cells) == ["otter", "numpy", "scipy.linalg", "matplotlib", "matplotlib.pyplot",
                                        "sodl_ref.kernels", "sodl_ref.kernels.ntk", "sodl_ref"]
    g = with_notebook_preload(GradingConfig(preload=("numpy", "torch"), hidden_packages=("sodl_ref",)), cells)
    assert g.preload == ("numpy", "torch", "scipy.linalg", "matplotlib", "matplotlib.pyplot")


def test_otter_raw_solution_cells_hidden_lines_ignore_and_seed(tmp_path):
    """A course week may use otter's raw-cell solution delimiters, a '# HIDDEN'
    first line, '# IGNORE' and '# SEED' lines and inline prompt strings: none
    of the solution, the hidden test or those lines reaches the student."""
    from autograder.authoring import make_notebook
    from autograder.config import assignment_config

    p = _nb(tmp_path, [_raw("# ASSIGNMENT CONFIG\nname: week09"), _raw("# BEGIN QUESTION\nname: q1"),
                       nbformat.v4.new_markdown_cell("Define f."), _raw("# BEGIN SOLUTION"),
                       _code("import numpy as np\nnp.random.seed(0) # SEED\ndebug = 1 # IGNORE\n"
                             "def f(x):\n    # BEGIN SOLUTION NO PROMPT\n    return x + 1\n    # END SOLUTION\n"
                             '    """ # BEGIN PROMPT\n    return ...\n    """ # END PROMPT'),
                       nbformat.v4.new_markdown_cell("SECRET explanation"), _raw("# END SOLUTION"),
                       _raw("# BEGIN TESTS"), _code("assert f(1) == 2"), _code("# HIDDEN\nassert f(41) == 42"),
                       _raw("# END TESTS"), _raw("# END QUESTION")])
    master = parse_master(p)
    assert [t.hidden for t in master.questions[0].tests] == [False, True]
    assert "HIDDEN" not in master.questions[0].tests[1].code
    config = assignment_config({}, master.config, "w")
    student = nbformat.writes(make_notebook(master, config, with_solutions=False))
    for leak in ("x + 1", "SECRET", "f(41)", "SEED", "debug", "BEGIN PROMPT", "BEGIN SOLUTION"):
        assert leak not in student, leak
    assert "return ..." in student
    key = nbformat.writes(make_notebook(master, config, with_solutions=True))
    assert "x + 1" in key and "SECRET" in key and "return ..." not in key and "debug" not in key


def _question_cells(name, conf="", tests=("assert True",)):
    return [_raw(f"# BEGIN QUESTION\nname: {name}\n{conf}"), _code("x = 1"), _raw("# BEGIN TESTS"),
            *[_code(t) for t in tests], _raw("# END TESTS"), _raw("# END QUESTION")]


def test_points_lists_each_manual_questions_and_every_problem_at_once(tmp_path):
    p = _nb(tmp_path, [_raw("# ASSIGNMENT CONFIG\nname: week09"),
                       *_question_cells("q1", "points: [10, 2]", ("assert True", "assert True")),
                       *_question_cells("q2", "points:\n    each: 0.75", ("assert True",) * 3),
                       _raw("# BEGIN QUESTION\nname: q3\nmanual: true\npoints: 2"),
                       nbformat.v4.new_markdown_cell("Explain."), _raw("# END QUESTION")])
    master = parse_master(p)
    assert [q.points for q in master.questions] == [12, 2.25] and master.manual == ["q3"]
    assert [t.points for t in master.questions[0].tests] == [10, 2]
    p = _nb(tmp_path, [_raw("# ASSIGNMENT CONFIG\nname: week09"),
                       *_question_cells("q1", "points: [10]", ("assert True", "assert True")),
                       *_question_cells("q2", "bogus: 1"), *_question_cells("q3", tests=("x ==",))])
    with pytest.raises(MasterFormatError) as e:
        parse_master(p)
    text = str(e.value)
    assert "one value per test cell" in text and "bogus" in text and "does not compile" in text
    assert "Traceback" not in text


def test_a_course_week_reads_otter_fenced_markers_and_ignore_cells(tmp_path):
    """The course's weeks are parsed by otter_format's parser: a ```otter fenced
    marker in a markdown cell counts, and an '# IGNORE' cell reaches neither
    the student notebook nor the answer key."""
    from autograder.authoring import make_notebook
    from autograder.config import assignment_config

    fenced = nbformat.v4.new_markdown_cell("Question one.\n\n```otter\n# BEGIN QUESTION\nname: q1\npoints: 2\n```")
    p = _nb(tmp_path, [_raw("# ASSIGNMENT CONFIG\nname: week09"), fenced, _code("x = 1"), _code("# IGNORE\nSCRATCH = 0"),
                       _raw("# BEGIN TESTS"), _code("assert x == 1"), _raw("# END TESTS"), _raw("# END QUESTION")])
    master = parse_master(p)
    assert [(q.name, q.points) for q in master.questions] == [("q1", 2)]
    assert [mc.role for mc in master.cells] == ["config", "other", "marker", "solution", "ignored", "marker", "test",
                                                "marker", "marker"]
    config = assignment_config({}, master.config, "w")
    for with_solutions in (False, True):
        text = nbformat.writes(make_notebook(master, config, with_solutions=with_solutions))
        assert "SCRATCH" not in text and "```otter" not in text and "Question one." in text


def test_a_test_config_block_after_the_first_line_is_named(tmp_path):
    """Otter reads a test's config only on its first line: placed later,
    its keys (here hidden) would be silently ignored."""
    late = 'y = 1\n""" # BEGIN TEST CONFIG\nhidden: true\n""" # END TEST CONFIG\nassert y == 1'
    p = _nb(tmp_path, [_raw("# ASSIGNMENT CONFIG\nname: week09"), *_question_cells("q1", tests=(late,))])
    with pytest.raises(MasterFormatError, match=r"cell 5.*a test config block must start the cell"):
        parse_master(p)
