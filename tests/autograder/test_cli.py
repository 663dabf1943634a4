"""The CLI contract TAs and scripts depend on."""
import json
import os
import shutil
import subprocess
import sys

import nbformat
import pytest

from autograder.gradescope import validate_results

pytestmark = pytest.mark.timeout(300)


def sodl(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, capture_output=True, text=True,
                          env=env)


def test_list_json_contract(toy_root):
    out = sodl("list", "--json", cwd=toy_root)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data == [{"week": "week01", "title": "A toy week", "master": "solutions/week01-toy/week01.ipynb",
                     "questions": [{"name": "q1_square", "points": 2.0}, {"name": "q2_mean", "points": 1.0}]}]


def test_gradescope_layout_full_marks_and_garbage(toy_root, toy_built, tmp_path):
    out = sodl("gradescope", "--zip", str(toy_built["zip"]), "--submission",
               str(toy_built["samples"] / "correct"), "--root", str(tmp_path / "gs"), cwd=toy_root)
    assert out.returncode == 0, out.stderr
    results = tmp_path / "gs" / "autograder" / "results" / "results.json"
    assert out.stdout.strip() == str(results)
    data = json.loads(results.read_text())
    assert validate_results(data) == [] and data["score"] == 3.0
    for d in ("source", "submission", "results"):
        assert (tmp_path / "gs" / "autograder" / d).is_dir()
    assert (tmp_path / "gs" / "autograder" / "submission_metadata.json").exists()

    garbage = tmp_path / "week01.ipynb"
    garbage.write_text("this is not json")
    out = sodl("gradescope", "--zip", str(toy_built["zip"]), "--submission", str(garbage),
               "--root", str(tmp_path / "gs2"), cwd=toy_root)
    data = json.loads((tmp_path / "gs2" / "autograder" / "results" / "results.json").read_text())
    assert validate_results(data) == [] and data["score"] == 0 and "not JSON" in data["output"]


def test_check_passes_on_toy_and_fails_on_a_weak_test(toy_root, tmp_path):
    out = sodl("check", "week01", cwd=toy_root)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "q2_mean/off_by_one" in out.stdout

    import shutil

    weak = tmp_path / "weak"
    shutil.copytree(toy_root, weak)
    mutants = weak / "solutions" / "week01-toy" / "mutants.yml"
    mutants.write_text(mutants.read_text() + """\
  - name: harmless
    diagnosis: Not a mistake at all.
    code: |
      def mean(x):
          return float(np.mean(np.asarray(x)))
  - name: sum_again
    diagnosis: The same mistake as 'sum', written differently.
    code: |
      def mean(x):
          return float(np.asarray(x).sum())
""")
    out = sodl("check", "week01", cwd=weak)
    assert out.returncode == 1
    assert "q2_mean/harmless" in out.stdout and "every test still passes" in out.stdout
    assert "q2_mean/sum_again" in out.stdout and "diagnosed as 'sum'" in out.stdout
    build = sodl("build", "week01", "--out", str(tmp_path / "dist"), "--no-execute", cwd=weak)
    assert build.returncode == 1 and "cannot tell every mistake apart" in build.stderr


def test_zip_has_gradescope_entry_points(toy_built):
    import zipfile

    names = zipfile.ZipFile(toy_built["zip"]).namelist()
    assert {"setup.sh", "run_autograder", "requirements.txt", "sodl-assignment.json"} <= set(names)
    assert any(n.startswith("sodl-") and n.endswith(".whl") for n in names)
    setup = zipfile.ZipFile(toy_built["zip"]).read("setup.sh").decode()
    assert "Miniforge" not in setup and "conda create" not in setup and "nvidia-smi" in setup and "torch==" in setup


def test_unknown_week_is_a_clear_error(toy_root):
    out = sodl("check", "week42", cwd=toy_root)
    assert out.returncode == 2 and "no week 'week42'" in out.stderr


def test_list_names_a_broken_week_and_lists_the_good_ones(toy_root, tmp_path):
    import shutil

    root = tmp_path / "course"
    shutil.copytree(toy_root, root)
    bad = root / "solutions" / "week02-broken"
    bad.mkdir()
    (bad / "week02.ipynb").write_text("this is not a notebook")
    out = sodl("list", "--json", cwd=root)
    assert out.returncode == 1
    weeks = json.loads(out.stdout)
    assert [w["week"] for w in weeks] == ["week01", "week02"] and "error" in weeks[1]
    assert "week02 is broken" in out.stderr and "Traceback" not in out.stderr


def _edit_config(master, edit) -> None:
    nb = nbformat.read(str(master), as_version=4)
    cell = next(c for c in nb.cells if c.source.startswith("# ASSIGNMENT CONFIG"))
    cell.source = edit(cell.source)
    nbformat.write(nb, str(master))


def test_a_grading_failure_is_a_line_of_the_report_and_the_next_week_is_still_checked(toy_root, tmp_path):
    """week01's zygote dies while it imports its preload (a module that
    exits the process): its sandboxes never start, a GraderFailure. Both
    `sodl check` and `sodl build` name the week, what failed and what to
    do in one line each, with no traceback; week02 (the toy week again) is
    still checked after it, and the command fails."""
    root = tmp_path / "course"
    shutil.copytree(toy_root, root)
    shutil.copytree(root / "solutions" / "week01-toy", root / "solutions" / "week02-toy")
    (root / "solutions" / "week02-toy" / "week01.ipynb").rename(root / "solutions" / "week02-toy" / "week02.ipynb")
    _edit_config(root / "solutions" / "week02-toy" / "week02.ipynb", lambda s: s.replace("name: week01", "name: week02"))
    _edit_config(root / "solutions" / "week01-toy" / "week01.ipynb",
                 lambda s: s.rstrip() + "\n  preload: [numpy, sodl_zygote_exit]")
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "sodl_zygote_exit.py").write_text("import os\nos._exit(3)\n")
    env = {**os.environ, "PYTHONPATH": str(modules)}

    out = sodl("check", "--all", cwd=root, env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr, out.stderr[-3000:]
    assert "week01: FAILED" in out.stdout and "week02: ok" in out.stdout, out.stdout
    week01 = [ln for ln in out.stdout.splitlines() if ln.startswith("week01 ")]
    assert len(week01) == 1 and "grading" in week01[0] and "FAIL the grading machinery failed (GraderFailure: " \
        "the sandbox zygote did not start)" in week01[0] and "run `sodl check week01` again" in week01[0], week01
    assert all(ln.endswith(" ok") for ln in out.stdout.splitlines() if ln.startswith("week02 ")), out.stdout

    build = sodl("build", "--all", "--no-execute", "--out", str(tmp_path / "dist"), cwd=root, env=env)
    assert build.returncode == 1, build.stdout + build.stderr
    assert "Traceback" not in build.stdout + build.stderr, build.stderr[-3000:]
    assert "week01: " in build.stdout and "CHECK FAILED: the grading machinery failed (GraderFailure" in build.stdout
    assert "week02-autograder.zip" in build.stdout and "; checked)" in build.stdout, build.stdout
    assert "run `sodl build week01` again" in build.stdout
    assert "not built or not checked: week01" in build.stderr and "cannot tell every mistake" not in build.stderr
