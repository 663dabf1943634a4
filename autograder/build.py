"""``sodl build``: master notebook -> student notebook, answer key, zip, samples."""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import nbformat

from autograder.authoring import make_notebook
from autograder.config import AssignmentConfig, GradingConfig
from autograder.course import Week
from autograder.gradescope_env import write_zip
from autograder.master import Master
from autograder.mutants import Mutant, load_mutants
from autograder.names import declared_names, module_aliases
from autograder.package import PackagedAssignment
from autograder.records import Assignment
from autograder.submission import content_hash, grading_cells, top_level_imports


@dataclass
class BuiltWeek:
    """Everything ``sodl build`` makes for one week, in memory.

    Attributes:
        week: the week.
        config: its effective configuration.
        packaged: the assignment and limits that go in the zip.
        student: the student notebook (no solutions).
        key: the answer key (solutions, not executed).
        mutants: the week's wrong answers.
    """

    week: Week
    config: AssignmentConfig
    packaged: PackagedAssignment
    student: nbformat.NotebookNode
    key: nbformat.NotebookNode
    mutants: list[Mutant]


def prepare(week: Week) -> BuiltWeek:
    """Parse and validate a week and make its notebooks (nothing written)."""
    master, config = week.load()
    mutants = load_mutants(week.mutants_path, [q.name for q in master.questions])
    key = make_notebook(master, config, True)
    student = make_notebook(master, config, False)
    packaged = package(master, config, grading_cells(key), mutants)
    packaged = replace(packaged, blank_hash=content_hash(grading_cells(student)))
    return BuiltWeek(week, config, packaged, student, key, mutants)


def package(master: Master, config: AssignmentConfig, key_cells: list[str], mutants: list[Mutant]) -> PackagedAssignment:
    """What the zip carries: questions and tests, limits, and for diagnosis
    the answer key's graded cells and the catalogue of mistakes."""
    assignment = Assignment(config.name, config.title, tuple(master.questions),
                            config.hidden_visibility, config.show_stdout,
                            declared_names(key_cells), module_aliases(key_cells))
    return PackagedAssignment(assignment, with_notebook_preload(config.grading, key_cells),
                              tuple(key_cells), tuple(mutants))


def with_notebook_preload(grading: GradingConfig, key_cells: list[str]) -> GradingConfig:
    """``grading`` with the answer key's own top-level imports added to the
    zygote's preload (every submission runs the same import cell; importing
    matplotlib.pyplot alone costs each sandbox about 0.4 s). ``otter`` is
    stubbed in the sandbox and hidden packages stay hidden."""
    hidden = tuple(grading.hidden_packages) + ("otter", "autograder")
    extra = [m for m in top_level_imports(key_cells)
             if m not in grading.preload and not any(m == h or m.startswith(h + ".") for h in hidden)]
    return replace(grading, preload=tuple(grading.preload) + tuple(extra))


def write_notebook(nb, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.validate(nb)
    text = nbformat.writes(nb) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def execute_key(built: BuiltWeek, timeout: int = 600) -> nbformat.NotebookNode:
    """Run the answer key top to bottom (plots included) in a scratch folder
    that also holds the week's data, as a student's folder would."""
    from nbclient import NotebookClient

    src_dir = built.week.master_path.parent
    nb = nbformat.from_dict(built.key)
    with tempfile.TemporaryDirectory(prefix=f"sodl-{built.week.name}-") as tmp:
        for item in src_dir.iterdir():
            if item.name not in (built.week.master_path.name, "mutants.yml") and not item.name.startswith("."):
                (Path(tmp) / item.name).symlink_to(item)
        nbformat.write(nb, str(Path(tmp) / f"{built.week.name}.ipynb"))
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": tmp}})
        client.execute()
    return nb


def sample_submissions(built: BuiltWeek) -> dict[str, nbformat.NotebookNode]:
    """Correct, blank and partly wrong notebooks for the demo: the partly
    wrong one swaps in the first mutant of every other question."""
    partly = nbformat.from_dict(built.key)
    wrong = []
    for i, q in enumerate(built.packaged.assignment.questions):
        ms = [m for m in built.mutants if m.question == q.name]
        if i % 2 == 1 and ms:
            wrong.append(ms[0].code)
    cell = nbformat.v4.new_code_cell("\n\n".join(wrong) or "pass")
    cell.id = "partly-wrong"
    partly.cells.insert(len(partly.cells) - 2 if built.config.check_all_cell else len(partly.cells), cell)
    return {"correct": built.key, "blank": built.student, "partly_wrong": partly}


def build_week(week: Week, out: Path, wheel: Path, execute: bool = True) -> dict[str, Path]:
    """Write every artefact of a week; returns their paths by kind."""
    built = prepare(week)
    name = week.name
    paths = {
        "assignment": write_notebook(built.student, week.student_path),
        "student": write_notebook(built.student, out / name / "student" / f"{name}.ipynb"),
    }
    key = execute_key(built) if execute else built.key
    paths["solution"] = write_notebook(key, out / name / "solution" / f"{name}.ipynb")
    paths["zip"] = write_zip(out / name / f"{name}-autograder.zip", built.packaged, wheel,
                             built.config.requirements)
    samples = out / name / "samples"
    if samples.exists():
        shutil.rmtree(samples)
    for label, nb in sample_submissions(built).items():
        write_notebook(nb, samples / label / f"{name}.ipynb")
    paths["samples"] = samples
    return paths
