"""Batches: one bad submission never changes another's grade; an interrupted
run resumes without regrading or losing anything."""
import json
import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from autograder.gradescope import validate_results
from autograder.gradescope_env import reproduce

from .conftest import with_extra_cell, write_nb

pytestmark = pytest.mark.timeout(600)


def _class(tmp_path, key_notebook, n_good: int):
    subs = []
    for i in range(n_good):
        subs.append(write_nb(tmp_path / "subs" / f"good{i:02d}" / "week01.ipynb", key_notebook).parent)
    bad = with_extra_cell(key_notebook, "import os\nos.kill(os.getppid(), 9)\nwhile True:\n    pass")
    subs.append(write_nb(tmp_path / "subs" / "hostile" / "week01.ipynb", bad).parent)
    return subs


def _grading_processes() -> set[int]:
    """Fork servers and zygotes run by this checkout's Python (other
    checkouts on the same machine may be grading at the same time)."""
    found = set()
    for pid in os.listdir("/proc"):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if (b"autograder.harness.zygote" in cmd or b"forkserver" in cmd) and sys.executable.encode() in cmd:
            found.add(int(pid))
    return found


@pytest.mark.parametrize("how", ["ctrl-c to the group", "sigterm to sodl"])
def test_interrupted_batch_resumes_and_loses_nothing(toy_root, toy_zip, key_notebook, tmp_path, how):
    before = _grading_processes()
    subs = _class(tmp_path, key_notebook, 5)
    out = tmp_path / "grades"
    cmd = [sys.executable, "-m", "autograder", "grade", "--zip", str(toy_zip), *map(str, subs),
           "--out", str(out), "--jobs", "2"]
    proc = subprocess.Popen(cmd, cwd=toy_root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("*/results.json")):
        time.sleep(0.2)
    if how == "ctrl-c to the group":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _grading_processes() - before:
        time.sleep(0.2)
    assert not (_grading_processes() - before), "workers or zygotes outlived the interrupted run"
    done_before = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/results.json")}
    assert done_before, "nothing was graded before the interrupt"
    for p in out.glob("*/results.json"):  # whatever exists is complete and valid
        assert validate_results(json.loads(p.read_text())) == []

    rerun = subprocess.run(cmd, cwd=toy_root, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    for name, mtime in done_before.items():
        assert (out / name / "results.json").stat().st_mtime_ns == mtime, f"{name} was regraded"
    rows = (out / "gradebook.csv").read_text().splitlines()
    assert len(rows) == 1 + len(subs)
    scores = {r.split(",")[0]: float(r.split(",")[1]) for r in rows[1:]}
    assert all(scores[f"good{i:02d}"] == 3.0 for i in range(5)), scores
    assert scores["hostile"] == 3.0  # its answers are right; the attack cell alone is lost


def test_forged_results_from_a_detached_child_through_gradescope_layout(toy_zip, key_notebook, tmp_path):
    root = tmp_path / "gs"
    target = root / "autograder" / "results" / "results.json"
    forge = ("import os, time, json\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
             "        for _ in range(40):\n            time.sleep(0.1)\n            try:\n"
             f"                open({str(target)!r}, 'w').write(json.dumps({{'score': 1000}}))\n"
             "            except OSError:\n                pass\n        os._exit(0)\n    os._exit(0)\n"
             f"try:\n    open({str(target)!r}, 'w').write('{{\"score\": 1000}}')\nexcept OSError:\n    pass\n"
             "print(json.dumps({'score': 1000, 'tests': []}))\n"
             "def mean(x):\n    return 0.0")
    sub = write_nb(tmp_path / "sub" / "week01.ipynb", with_extra_cell(key_notebook, forge)).parent
    results = reproduce(toy_zip, sub, root)
    time.sleep(1.0)  # a surviving child would have rewritten it by now
    data = json.loads(results.read_text())
    assert validate_results(data) == []
    assert data["score"] == 2.0  # the honest grade: q1 right, q2 wrong


@pytest.mark.parametrize("content, message", [
    ({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}, "no code cells"),
    ({"cells": "not a list"}, "no list of cells"),
    ([1, 2, 3], "expected a JSON object"),
])
def test_malformed_notebooks_get_a_valid_zero(toy_zip, tmp_path, content, message):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "week01.ipynb").write_text(json.dumps(content))
    data = json.loads(reproduce(toy_zip, sub, tmp_path / "gs").read_text())
    assert validate_results(data) == [] and data["score"] == 0 and message in data["output"]


def test_nbformat3_and_reordered_cells_are_graded(toy_zip, key_notebook, tmp_path):
    from autograder.submission import grading_cells

    cells = grading_cells(key_notebook)
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {},
          "worksheets": [{"cells": [{"cell_type": "code", "input": c, "outputs": []} for c in cells]}]}
    sub = tmp_path / "v3"
    sub.mkdir()
    (sub / "week01.ipynb").write_text(json.dumps(v3))
    assert json.loads(reproduce(toy_zip, sub, tmp_path / "gs").read_text())["score"] == 3.0

    nb = nbformat.from_dict(json.loads(json.dumps(key_notebook)))
    nb.cells = [c for c in nb.cells if "def mean" not in c.source]  # a deleted answer cell
    sub2 = write_nb(tmp_path / "del" / "week01.ipynb", nb).parent
    data = json.loads(reproduce(toy_zip, sub2, tmp_path / "gs2").read_text())
    assert data["score"] == 2.0 and "mean" in json.dumps(data["tests"])


def test_huge_outputs_and_unicode_names(toy_zip, key_notebook, tmp_path):
    nb = nbformat.from_dict(json.loads(json.dumps(key_notebook)))
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * (100 << 20))]
    sub = write_nb(tmp_path / "ünï cödé 学生" / "wéek01 (1).ipynb", nb).parent
    data = json.loads(reproduce(toy_zip, sub, tmp_path / "gs").read_text())
    assert validate_results(data) == [] and data["score"] == 3.0
    assert len(json.dumps(data)) < 200_000


def test_two_notebooks_and_a_renamed_function(toy_zip, key_notebook, tmp_path):
    from autograder.submission import grading_cells

    sub = tmp_path / "two"
    write_nb(sub / "week01.ipynb", key_notebook)
    write_nb(sub / "scratch.ipynb", {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []})
    data = json.loads(reproduce(toy_zip, sub, tmp_path / "gs").read_text())
    assert data["score"] == 3.0 and "2 notebooks" in data["output"] and "week01.ipynb was graded" in data["output"]

    renamed = with_extra_cell(key_notebook, "def average(x):\n    return float(np.mean(x))\ndel mean")
    sub2 = write_nb(tmp_path / "renamed" / "week01.ipynb", renamed).parent
    data = json.loads(reproduce(toy_zip, sub2, tmp_path / "gs2").read_text())
    assert data["score"] == 2.0
    assert "name 'mean' is not defined" in json.dumps(data) and "exact name" in json.dumps(data)
