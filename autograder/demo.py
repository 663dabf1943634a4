"""``sodl demo``: build every week and grade its samples through Gradescope's layout."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from autograder import course

from autograder.build import build_week, prepare
from autograder.batch import grade_batch
from autograder.synthetic import make_class
from autograder.gradescope_env import build_wheel, reproduce


def run_demo(root: Path, out: Path, execute: bool = False, class_size: int = 24, jobs: int = 2) -> int:
    wheel = build_wheel(out / "_wheel")
    rows = [("week", "sample", "score", "max")]
    for w in course.weeks(root):
        paths = build_week(w, out, wheel, execute=execute)
        for sample in ("correct", "partly_wrong", "blank"):
            with tempfile.TemporaryDirectory(prefix="sodl-demo-") as tmp:
                results = reproduce(paths["zip"], paths["samples"] / sample, Path(tmp))
                data = json.loads(results.read_text())
            max_score = sum(t["max_score"] for t in data["tests"])
            rows.append((w.name, sample, f"{data['score']:g}", f"{max_score:g}"))
            print(f"  {w.name} {sample}: {data['score']:g}/{max_score:g}", flush=True)
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print("\nGradebook (through the Gradescope layout):")
    for r in rows:
        print("  ".join(r[i].ljust(widths[i]) for i in range(4)))

    weeks = course.weeks(root)
    if weeks:  # a synthetic class for the first week: what a TA sees after a deadline
        first = weeks[0]
        klass = out / first.name / "synthetic-class"
        if klass.exists():
            shutil.rmtree(klass)
        make_class(prepare(first), class_size, klass, seed=0)
        grades = out / first.name / "synthetic-grades"
        if grades.exists():
            shutil.rmtree(grades)
        print(f"\nGrading a synthetic class of {class_size} for {first.name} (mistakes, blanks, crashes, loops, copies):")
        grade_batch(out / first.name / f"{first.name}-autograder.zip",
                    sorted(p for p in klass.iterdir() if p.is_dir()), grades, jobs=jobs)
        print((grades / "summary.md").read_text())
        print(f"gradebook, feedback and charts: {grades}")
    return 0
