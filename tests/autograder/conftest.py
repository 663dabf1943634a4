"""Shared fixtures: a tiny course (numpy only) and its built zip."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from autograder import course
from autograder.build import build_week, prepare
from autograder.gradescope_env import build_wheel

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "course"


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(FIXTURE, root, dirs_exist_ok=True)
    return root


@pytest.fixture(scope="session")
def toy_week(toy_root):
    return course.weeks(toy_root)[0]


@pytest.fixture(scope="session")
def toy_built(toy_root, toy_week, tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    wheel = build_wheel(out / "_wheel")
    paths = build_week(toy_week, out, wheel, execute=False)
    return paths


@pytest.fixture(scope="session")
def toy_zip(toy_built) -> Path:
    return toy_built["zip"]


@pytest.fixture
def key_notebook(toy_week):
    return prepare(toy_week).key


def write_nb(path: Path, nb) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.from_dict(nb), str(path))
    return path


def with_extra_cell(nb, source: str):
    """The notebook with one more code cell at the end (a student's edit)."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    cell = nbformat.v4.new_code_cell(source)
    nb.cells.append(cell)
    return nb


@pytest.fixture(scope="session", autouse=True)
def every_results_json_validates(tmp_path_factory):
    """After the session, every results.json any test wrote (directly, in a
    batch, or through the Gradescope layout) keeps to Gradescope's
    documented format (``gradescope.validate_results``; issue 13)."""
    yield
    from autograder.gradescope import validate_results

    bad = {}
    for path in tmp_path_factory.getbasetemp().rglob("results.json"):
        try:
            problems = validate_results(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as e:
            problems = [f"unreadable: {type(e).__name__}"]
        if problems:
            bad[str(path)] = problems[:3]
    assert not bad, bad
