"""Real otter masters (``../shared/otter-masters``, written by otter-grader's
authors) through ``sodl build MASTER --out DIR`` outside the course checkout,
compared with otter-grader 7 itself (``otter assign``, ``otter run``,
``grader.check``), issue 14's "Done when".

Each master is copied out of the read-only share and executed first, as
their authors do (OK-format expected outputs are the saved outputs). The
expensive otter side runs once per master, in a module-scoped fixture.
"""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

MASTERS = Path(__file__).parents[2] / ".." / "shared" / "otter-masters"
NAMES = ["otter-example", "otter-exception", "otter-generate", "otter-tutorial", "d88e-proj03"]
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not MASTERS.is_dir(), reason=f"no otter masters at {MASTERS} "
                                 "(CI clones the repo with a copy of shared/ beside it)")]

def _run(cmd, cwd, timeout=300):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd[0]} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def _execute(path: Path, extra_cell: str | None = None) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.read(path, 4)
    if extra_cell:
        nb.cells.append(nbformat.v4.new_code_cell(extra_cell))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


@pytest.fixture(scope="module", params=NAMES)
def built(request, tmp_path_factory):
    """(master, otter's dist folder, sodl's build folder, otter's blank
    results, sodl's gradebook rows by submission)."""
    tmp = tmp_path_factory.mktemp(request.param)
    src = tmp / "master"
    shutil.copytree(MASTERS / request.param, src)
    for p in [src, *src.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    master = next(src.glob("*.ipynb"))
    nbformat.write(_execute(master), master)
    _run([BIN / "otter", "assign", "--no-pdfs", "--no-run-tests", master.name, tmp / "otter"], src)
    out = tmp / "sodl"
    _run([BIN / "sodl", "build", master, "--out", out], tmp)  # tmp: outside any checkout; the key is executed
    ours = next(p for p in out.iterdir() if p.name != "_wheel")
    # otter run on the blank student notebook: otter's maximum, and what it gives a blank notebook
    blank_dir = tmp / "otter-blank"
    shutil.copytree(tmp / "otter" / "student", blank_dir)
    _run([BIN / "otter", "run", "-a", next((tmp / "otter" / "autograder").glob("*.zip")), "-o", blank_dir,
          blank_dir / master.name], blank_dir)
    otter_blank = json.loads((blank_dir / "results.json").read_text())
    # sodl grade on the zip: the solution (our answer key, with the files a student submits beside it,
    # `student_files`, as otter's export zip holds them) and the blank student notebook
    from autograder.otter_format import parse_otter_master

    subs = tmp / "subs"
    for label, folder, extra in (("solution", "solution", parse_otter_master(master).config.get("student_files", [])),
                                 ("blank", "student", [])):
        (subs / label).mkdir(parents=True)
        for rel in [master.name, *extra]:
            shutil.copy(ours / folder / rel, subs / label / rel)
    # the same solution as otter's grader.export() zips it, the zip alone uploaded (as Gradescope receives it)
    (subs / "exported").mkdir()
    with zipfile.ZipFile(subs / "exported" / f"{master.stem}_2026_12_06T23_59_59.zip", "w") as zf:
        for p in sorted((subs / "solution").rglob("*")):
            zf.write(p, p.relative_to(subs / "solution"))
    _run([BIN / "sodl", "grade", "--zip", next(ours.glob("*-autograder.zip")), subs / "solution", subs / "blank",
          subs / "exported", "--out", tmp / "grades", "--jobs", "2"], tmp)
    with open(tmp / "grades" / "gradebook.csv") as f:
        rows = {r["name"]: r for r in csv.DictReader(f)}
    return master, tmp / "otter", ours, otter_blank, rows


def _norm(nb):
    return [(c.cell_type, " ".join(c.source.split())) for c in nb.cells]


def test_student_notebook_is_otters_cell_by_cell(built):
    master, otter_dir, ours, *_ = built
    theirs = nbformat.read(otter_dir / "student" / master.name, 4)
    mine = nbformat.read(ours / "student" / master.name, 4)
    assert _norm(mine) == _norm(theirs)


def test_no_hidden_test_reaches_the_student(built):
    """Hidden tests reach otter students through the notebook's metadata
    (OK-format tests), test files, or test cells left in the notebook. (A
    hidden test's line may equal a public test's, or the student's own code.)"""
    from autograder.package import load_zip

    master, _, ours, *_ = built
    nb = nbformat.read(ours / "student" / master.name, 4)
    cases = [c for t in nb.metadata.get("otter", {}).get("tests", {}).values()
             for s in t["suites"] for c in s["cases"]]
    assert not any(c["hidden"] for c in cases)
    published = "\n".join(c["code"] for c in cases) + "".join(p.read_text() for p in (ours / "student").rglob("*.py"))
    master_code = {ln.strip() for c in nbformat.read(master, 4).cells if c.cell_type == "code"
                   for ln in c.source.splitlines()}
    qs = load_zip(next(ours.glob("*-autograder.zip"))).assignment.questions
    public = {ln.strip() for q in qs for t in q.tests if not t.hidden for ln in t.code.splitlines()}
    student_code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for q in qs:
        for t in (t for t in q.tests if t.hidden):
            if len(t.code.strip()) > 12:
                assert t.code.strip() not in student_code, (q.name, t.index)
            for line in t.code.splitlines():
                if len(line.strip()) > 12 and line.strip() not in public:
                    assert line.strip() not in published, (q.name, line)
    assert "# HIDDEN" not in student_code and "BEGIN TEST CONFIG" not in student_code
    assert master_code  # the comparison above read the master


def test_files_reach_student_folder_and_zip(built):
    from autograder.otter_format import parse_otter_master
    from autograder.package import load_zip

    master, _, ours, *_ = built
    shipped = {name for name, _ in load_zip(next(ours.glob("*-autograder.zip"))).files}
    for rel in parse_otter_master(master).config.get("files", []):
        assert (ours / "student" / rel).is_file() and rel in shipped


def test_solution_scores_full_marks_with_otters_maximum(built):
    """otter-example's q1 (all or nothing) ends with `import student_file`, a
    module the student submits beside the notebook (`student_files`): the
    sandbox imports it, the test reads it through a proxy."""
    master, _, ours, otter_blank, rows = built
    otter_max = sum(t["max_score"] for t in otter_blank["tests"] if "max_score" in t)
    sol = rows["solution"]
    assert float(sol["max_score"]) == pytest.approx(otter_max)
    assert float(sol["score"]) == pytest.approx(float(sol["max_score"])), sol


def test_otters_export_zip_grades_as_the_notebook_it_holds(built):
    *_, rows = built
    assert float(rows["exported"]["score"]) == pytest.approx(float(rows["solution"]["score"])), rows["exported"]


def test_blank_scores_no_more_than_otter_gives(built):
    *_, otter_blank, rows = built
    otter_score = sum(t["score"] for t in otter_blank["tests"] if "score" in t)
    assert float(rows["blank"]["score"]) <= otter_score + 1e-9, (rows["blank"], otter_score)


def test_otters_grader_check_passes_every_public_test_on_the_solution(built, tmp_path):
    master, _, ours, *_ = built
    folder = tmp_path / "solution"
    shutil.copytree(ours / "solution", folder)
    nb = nbformat.read(folder / master.name, 4)
    names = list(nb.metadata.get("otter", {}).get("tests", {})) + [p.stem for p in (folder / "tests").glob("*.py")]
    assert names
    # only otter's own check below: no export zip, and a master may leave out the init cell
    nb.cells = [c for c in nb.cells if "grader." not in c.source]
    nbformat.write(nb, folder / master.name)
    check = ("import otter\n_g = otter.Notebook(%r)\n_failed = [q for q in %r if not _g.check(q).passed_all_public]\n"
             "assert not _failed, _failed" % (master.name, names))
    _execute(folder / master.name, check)


def test_sodl_check_on_a_master_without_mutants_reports_what_it_can(tmp_path):
    """otter-generate's q1 has a test cell that is just `None`: it prints
    nothing, so it passes on a blank notebook too (otter gives it 0.75)."""
    from autograder.week_check import check_master

    shutil.copytree(MASTERS / "otter-generate", tmp_path / "m")
    c = check_master(next((tmp_path / "m").glob("*.ipynb")))
    assert c.ok and c.solution == (4.75, 4.75) and c.blank == (0.75, 4.75)
    assert c.blind_tests == ["q1 test 2 (public)"] and c.solution_failures == []
