"""The zip's assignment file: what an autograder zip carries for grading.

One home for the format: :class:`PackagedAssignment` (questions, tests,
limits, and for diagnosis the answer key's cells and the mutants), its
JSON (written by ``sodl build`` into the zip, read by every grader) and
the file's name inside the zip. Light on purpose: building a zip imports
this module, never the grading runtime.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from autograder.config import GradingConfig, _build
from autograder.errors import UserError
from autograder.mutants import Mutant
from autograder.names import declared_names, module_aliases
from autograder.records import Assignment

ASSIGNMENT_FILE = "sodl-assignment.json"


class NotAnAutograderZip(UserError):
    """The file given as an autograder zip is not one."""


@dataclass(frozen=True)
class PackagedAssignment:
    """What the zip carries for grading: the assignment and its limits.

    Attributes:
        assignment: questions and tests.
        grading: the grading limits and behaviour.
        key_cells: the answer key's graded cells (replayed to diagnose mistakes).
        mutants: the catalogue of mistakes.
        blank_hash: content hash of the blank student notebook.
        files: an otter master's ``files:`` as (relative path, base64 bytes),
            written into the sandbox's working folder before the notebook runs.
        seed: otter's intercell seed at grading time (None: no seeding).
        seed_variable: the variable the seed is assigned to (None: numpy's and
            random's seeds are set), see ``otter_format.seeded_cells``.
        student_files: an otter master's ``student_files:`` (relative paths):
            read from the submission's folder and written into the sandbox's
            working folder after ``files`` (``grade.grade_submission``).
    """

    assignment: Assignment
    grading: GradingConfig
    key_cells: tuple[str, ...] = ()
    mutants: tuple[Mutant, ...] = ()
    blank_hash: str = ""
    files: tuple[tuple[str, str], ...] = ()
    seed: int | None = None
    seed_variable: str | None = None
    student_files: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        grading = asdict(self.grading)
        grading["preload"] = list(grading["preload"])
        grading["hidden_packages"] = list(grading["hidden_packages"])
        return json.dumps({"assignment": self.assignment.to_dict(), "grading": grading,
                           "key_cells": list(self.key_cells), "blank_hash": self.blank_hash,
                           "mutants": [m.to_dict() for m in self.mutants],
                           "files": [list(f) for f in self.files], "seed": self.seed,
                           "seed_variable": self.seed_variable,
                           "student_files": list(self.student_files)}, indent=1).encode()


def load_packaged_assignment(data: bytes) -> PackagedAssignment:
    """The inverse of :meth:`PackagedAssignment.to_json`."""
    d = json.loads(data)
    assignment, key_cells = Assignment.from_dict(d["assignment"]), tuple(d.get("key_cells", ()))
    if "student_names" not in d["assignment"]:  # a zip built before the names were packaged
        assignment = replace(assignment, student_names=declared_names(list(key_cells)),
                             modules=module_aliases(list(key_cells)))
    return PackagedAssignment(assignment, _build(GradingConfig, d["grading"], "zip"), key_cells,
                              tuple(Mutant.from_dict(m) for m in d.get("mutants", ())), d.get("blank_hash", ""),
                              tuple((str(a), str(b)) for a, b in d.get("files", ())), d.get("seed"),
                              d.get("seed_variable"), tuple(str(f) for f in d.get("student_files", ())))


def load_zip(path: Path) -> PackagedAssignment:
    """Read the assignment out of an autograder zip (without installing it)."""
    try:
        with zipfile.ZipFile(path) as z:
            return load_packaged_assignment(z.read(ASSIGNMENT_FILE))
    except (OSError, KeyError, zipfile.BadZipFile, ValueError, UserError) as e:
        raise NotAnAutograderZip(f"{path}: not a sodl autograder zip ({type(e).__name__}: {e})") from None
