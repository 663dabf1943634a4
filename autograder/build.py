"""``sodl build``: master notebook -> student notebook, answer key, zip, samples."""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat

from autograder.authoring import make_notebook
from autograder.config import AssignmentConfig, GradingConfig
from autograder.course import Week
from autograder.errors import UserError
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
                            declared_names(key_cells), module_aliases(key_cells), tuple(master.manual))
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
    from nbclient.exceptions import CellExecutionError

    src_dir = built.week.master_path.parent
    nb = nbformat.from_dict(built.key)
    with tempfile.TemporaryDirectory(prefix=f"sodl-{built.week.name}-") as tmp:
        for item in src_dir.iterdir():
            if item.name not in (built.week.master_path.name, "mutants.yml") and not item.name.startswith("."):
                (Path(tmp) / item.name).symlink_to(item)
        nbformat.write(nb, str(Path(tmp) / f"{built.week.name}.ipynb"))
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": tmp}})
        try:
            client.execute()
        except CellExecutionError as e:
            raise key_failed(built.week.master_path, e) from None
    return nb


def key_failed(master: Path, error: Exception) -> UserError:
    """The answer key raised while executed: the error's last line (the
    exception, without nbclient's colour codes) and what to do."""
    last = re.sub(r"\x1b\[[0-9;]*m", "", str(error).strip().splitlines()[-1])[:500]
    return UserError(f"{master}: the answer key failed to execute (fix the master, or build with "
                     f"--no-execute): {last}")


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


@dataclass
class BuiltMaster:
    """What ``sodl build MASTER.ipynb --out DIR`` makes of an otter master.

    Attributes:
        master: the parsed master.
        packaged: what the zip carries for grading.
        student: the student notebook (as ``otter assign`` writes it).
        key: the answer key (solutions, not executed).
        files: the master's ``files:`` and ``autograder_files:`` as (relative path, bytes).
        zip_only: the paths of ``files`` that came from ``autograder_files`` (never in the student folder).
        warnings: what the author may want to know (no mutants, ignored keys).
    """

    master: object
    packaged: PackagedAssignment
    student: nbformat.NotebookNode
    key: nbformat.NotebookNode
    files: list[tuple[str, bytes]]
    warnings: list[str]
    zip_only: list[str] = field(default_factory=list)


def prepare_master(path: Path) -> BuiltMaster:
    """Parse an otter master at any path and make its notebooks and package."""
    from autograder.otter_format import OtterFormatError, grading_seed, key_notebook, parse_otter_master, \
        student_notebook
    from autograder.otter_runtime import encode_files

    om = parse_otter_master(path)
    problems, files, zip_only = [], [], []
    for key in ("files", "autograder_files"):
        for rel in om.config.get(key, []):
            src = (path.parent / rel)
            found = []
            if not src.resolve().is_relative_to(path.parent.resolve()):
                problems.append(f"{key}: {rel!r} is outside the master's folder: move it beside the master")
            elif src.is_file():
                found = [(rel, src.read_bytes())]
            elif src.is_dir():
                found = [(str(f.relative_to(path.parent)), f.read_bytes()) for f in sorted(src.rglob("*")) if f.is_file()]
            else:
                problems.append(f"{key}: {rel!r} does not exist beside the master")
            files += found
            zip_only += [name for name, _ in found] if key == "autograder_files" else []
    req = om.config.get("requirements")
    if isinstance(req, str) and not (path.parent / req).is_file():
        problems.append(f"requirements: {req!r} is not a file beside the master: add it, or list the packages")
    submitted = [str(rel) for rel in om.config.get("student_files", [])]
    for rel in submitted:
        src = path.parent / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not src.resolve().is_relative_to(path.parent.resolve()):
            problems.append(f"student_files: {rel!r} is outside the master's folder: give a path relative to it")
        elif not src.is_file():
            problems.append(f"student_files: {rel!r} is not a file beside the master: add the model answer's "
                            "file (it goes to the solution folder), or remove the entry")
    if problems:
        raise OtterFormatError(path, problems)
    key, student = key_notebook(om), student_notebook(om)
    questions, manual = om.records()
    gen = om.config.get("generate") if isinstance(om.config.get("generate"), dict) else {}
    key_cells = grading_cells(key)
    modules = student_modules(submitted)
    assignment = Assignment(om.name, str(om.config.get("name") or om.path.stem), tuple(questions),
                            # otter shows hidden-test results once published with show_hidden, else never
                            hidden_visibility="after_published" if gen.get("show_hidden") else "hidden",
                            show_stdout=bool(gen.get("show_stdout", False)),
                            student_names=declared_names(key_cells), modules=module_aliases(key_cells),
                            manual_questions=tuple(manual), student_modules=modules, notebook=path.name)
    seed, variable = grading_seed(om.config)
    grading = with_notebook_preload(GradingConfig(), key_cells)
    grading = replace(grading, preload=tuple(m for m in grading.preload if m.split(".")[0] not in modules))
    packaged = PackagedAssignment(assignment, grading, tuple(key_cells), (), content_hash(grading_cells(student)),
                                  encode_files(files), seed, variable, tuple(submitted))
    warnings = list(om.warnings)
    warnings.append(f"no mutants.yml beside {path.name}: the build cannot prove each test can fail; a catalogue of "
                    "wrong answers per question would let `sodl check` show that every mistake loses points and "
                    "name it in the student's feedback")
    if manual:
        warnings.append(f"graded by hand, not in the autograded score: {', '.join(manual)}")
    return BuiltMaster(om, packaged, student, key, files, warnings, zip_only)


def student_modules(student_files: list[str]) -> tuple[str, ...]:
    """The top-level module names of the Python files a student submits
    (``student_file.py`` -> ``student_file``, ``pkg/mod.py`` -> ``pkg``).
    Never imported by the grader, nor preloaded in the zygote (a cached
    module would outlive the submission that sent it): a test's import of
    one is served by the sandbox (``trusted.test_builtins``)."""
    return tuple(sorted({Path(rel).parts[0].removesuffix(".py") for rel in student_files
                         if rel.endswith(".py") and Path(rel).parts}))


def master_requirements(om) -> list[str]:
    """The master's ``requirements:`` (a list, or a requirements file beside it)."""
    req = om.config.get("requirements")
    if isinstance(req, list):
        return [str(r) for r in req]
    if isinstance(req, str):
        p = om.path.parent / req
        if p.is_file():
            return [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return []


def build_master(path: Path, out: Path, wheel: Path, execute: bool = True) -> dict[str, Path]:
    """``otter assign MASTER DIST`` for sodl: ``DIR/<name>/<name>-autograder.zip``,
    ``DIR/<name>/student/`` (notebook and files) and ``DIR/<name>/solution/``."""
    built = prepare_master(Path(path))
    name, nb_name = built.master.name, Path(path).name
    base = out / name
    paths = {"student": write_notebook(built.student, base / "student" / nb_name)}
    student_files = [(rel, (Path(path).parent / rel).read_bytes())
                     for rel in built.master.config.get("student_files", []) if (Path(path).parent / rel).is_file()]
    from autograder.otter_format import public_test_files

    tests = [(rel, text.encode()) for rel, text in public_test_files(built.master).items()]
    shared = [(rel, data) for rel, data in built.files if rel not in built.zip_only]  # autograder_files: zip only
    for folder, items in (("student", shared + tests), ("solution", shared + tests + student_files)):
        for rel, data in items:  # the solution folder is what a model student hands in
            (base / folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (base / folder / rel).write_bytes(data)
    paths["solution"] = write_notebook(built.key, base / "solution" / nb_name)
    if execute:  # in the solution folder: its files, and the key's own tests for otter's grader.check
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError

        run = nbformat.from_dict(built.key)
        has_grader = built.master.config.get("init_cell", True)
        for cell in run.cells:  # otter's export cell zips (and makes a PDF of) the run: not wanted here;
            # with `init_cell: false` there is no `grader` for the check cells to call
            if cell.cell_type == "code" and ("grader.export(" in cell.source
                                             or (not has_grader and cell.source.startswith("grader."))):
                cell.source = "pass"
        try:
            NotebookClient(run, timeout=600, kernel_name="python3",
                           resources={"metadata": {"path": str(base / "solution")}}).execute()
        except CellExecutionError as e:
            raise key_failed(path, e) from None
        (base / "solution" / ".OTTER_LOG").unlink(missing_ok=True)
        key = nbformat.from_dict(built.key)
        for done, cell in zip(run.cells, key.cells):
            if cell.cell_type == "code" and done.source == cell.source:
                cell.outputs, cell.execution_count = done.outputs, done.execution_count
        write_notebook(key, paths["solution"])
    paths["zip"] = write_zip(base / f"{name}-autograder.zip", built.packaged, wheel,
                             master_requirements(built.master))
    paths["warnings"] = built.warnings
    return paths
