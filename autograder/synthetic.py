"""A realistic class of synthetic submissions, for demos and load tests.

Made from a week's answer key, its student notebook and its catalogue of
mistakes: most students are right or make one or two catalogued
mistakes; some leave questions blank; a few crash the kernel, loop
forever, or hand in a copy of a classmate's notebook.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder.build import BuiltWeek

KINDS = (("correct", 0.30), ("mistakes", 0.37), ("blank", 0.08), ("partly_blank", 0.08),
         ("crash", 0.05), ("timeout", 0.05), ("copy", 0.07))


@dataclass(frozen=True)
class SyntheticSubmission:
    """One made-up student.

    Attributes:
        name: folder name.
        kind: one of KINDS.
        mutants: the catalogued mistakes it contains, as ``question/name``.
    """

    name: str
    kind: str
    mutants: tuple[str, ...] = ()


def _with_cell(nb, source: str):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    cell = nbformat.v4.new_code_cell(source)
    cell.id = f"synthetic-{abs(hash(source)) % 10**8}"
    index = len(nb.cells) - 2 if len(nb.cells) > 2 else len(nb.cells)
    nb.cells.insert(index, cell)
    return nb


def make_class(built: BuiltWeek, n: int, out: Path, seed: int = 0) -> list[SyntheticSubmission]:
    """Write ``n`` submissions under ``out/student_NNN/WEEK.ipynb``; returns what each is."""
    rng = random.Random(seed)
    names = [q.name for q in built.packaged.assignment.questions]
    by_q = {q: [m for m in built.mutants if m.question == q] for q in names}
    first_fn = {m.question: m.code.split("def ", 1)[1].split("(", 1)[0]
                for m in built.mutants if m.code.lstrip().startswith("def ")}
    made, written = [], []
    for i in range(n):
        name = f"student_{i:03d}"
        kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        if kind == "copy" and not written:
            kind = "correct"
        mutants: tuple[str, ...] = ()
        nb = built.key
        if kind == "mistakes":
            qs = rng.sample([q for q in names if by_q[q]], k=min(rng.choice([1, 1, 2]), sum(1 for q in names if by_q[q])))
            chosen = [rng.choice(by_q[q]) for q in qs]
            mutants = tuple(f"{m.question}/{m.name}" for m in chosen)
            nb = _with_cell(nb, "\n\n".join(m.code for m in chosen))
        elif kind == "blank":
            nb = built.student
        elif kind == "partly_blank":
            q = rng.choice([q for q in names if q in first_fn] or names)
            fn = first_fn.get(q)
            nb = _with_cell(nb, f"def {fn}(*args, **kwargs):\n    ..." if fn else "pass")
        elif kind == "crash":
            nb = _with_cell(nb, "import os\nos._exit(1)")
        elif kind == "timeout":
            q = rng.choice([q for q in names if q in first_fn] or names)
            fn = first_fn.get(q)
            nb = _with_cell(nb, f"def {fn}(*args, **kwargs):\n    while True:\n        pass" if fn else "pass")
        elif kind == "copy":
            source = rng.choice(written)
            nb = nbformat.read(str(out / source / f"{built.week.name}.ipynb"), as_version=4)
            mutants = (f"copy of {source}",)
        path = out / name / f"{built.week.name}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(path))
        made.append(SyntheticSubmission(name, kind, mutants))
        written.append(name)
    (out / "manifest.json").write_text(json.dumps([m.__dict__ for m in made], indent=1))
    return made
