"""Course-scale batches: synthetic classes, feedback, charts, shards."""
import csv
import json

import pytest

from autograder.build import prepare
from autograder.batch import grade_batch, merge_gradebooks
from autograder.synthetic import make_class

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def klass(toy_week, toy_zip, tmp_path_factory):
    out = tmp_path_factory.mktemp("class")
    made = make_class(prepare(toy_week), 200, out, seed=1)
    subs = sorted(p for p in out.iterdir() if p.is_dir())
    return made, subs


@pytest.fixture(scope="module")
def graded(klass, toy_zip, tmp_path_factory):
    out = tmp_path_factory.mktemp("grades")
    grade_batch(toy_zip, klass[1], out, jobs=2, progress=False)
    return out


def _rows(book):
    with open(book) as f:
        return list(csv.DictReader(f))


def test_two_hundred_submissions_make_a_full_gradebook_with_feedback_and_charts(klass, graded):
    made, subs = klass
    rows = _rows(graded / "gradebook.csv")
    assert len(rows) == 200
    for name in ("scores.png", "mistakes.png", "summary.md"):
        assert (graded / name).stat().st_size > 0
    assert all((graded / s.name / "feedback.md").exists() for s in subs)
    by_name = {r["name"]: r for r in rows}
    kinds = {m.name: m.kind for m in made}
    for m in made:
        r = by_name[m.name]
        if m.kind == "correct":
            assert float(r["score"]) == 3.0
        elif m.kind == "blank":
            assert float(r["score"]) == 0.0
        elif m.kind == "mistakes":  # each catalogued mistake is named in its column
            for qm in m.mutants:
                q, name = qm.split("/")
                assert r[f"{q} mistake"] == name
        elif m.kind == "copy":
            source = m.mutants[0].removeprefix("copy of ")
            if kinds[source] != "blank":  # untouched blank notebooks are not flagged as copies
                assert source in r["identical_to"].split()
    assert "Most common mistakes" in (graded / "summary.md").read_text()


def test_feedback_never_shows_hidden_test_code(graded, toy_zip):
    from autograder.package import load_zip

    hidden = [t.code for q in load_zip(toy_zip).assignment.questions for t in q.tests if t.hidden]
    for fb in graded.glob("*/feedback.md"):
        text = fb.read_text()
        assert not any(line.strip() in text for code in hidden for line in code.splitlines()
                       if len(line.strip()) > 12)


def test_sharded_runs_merged_equal_the_unsharded_gradebook(klass, graded, toy_zip, tmp_path):
    subs = klass[1][:40]
    whole = tmp_path / "whole"
    grade_batch(toy_zip, subs, whole, jobs=2, progress=False)
    shards = []
    for k in (1, 2, 3):
        d = tmp_path / f"shard{k}"
        grade_batch(toy_zip, subs, d, jobs=2, progress=False, shard=(k, 3))
        shards.append(d)
    assert sum(len(_rows(d / "gradebook.csv")) for d in shards) == 40
    merged = merge_gradebooks(shards, tmp_path / "merged")
    assert merged.read_text() == (whole / "gradebook.csv").read_text()


def test_tamper_flags_are_flags_not_verdicts(graded, klass):
    made, _ = klass
    crash = [m.name for m in made if m.kind == "crash"]
    rows = {r["name"]: r for r in _rows(graded / "gradebook.csv")}
    for name in crash:
        assert "process control" in rows[name]["flags"]
        assert float(rows[name]["score"]) == 3.0  # the os._exit cell is lost, the answers still count
    assert json.loads((graded / crash[0] / "grading.json").read_text())["flags"]
