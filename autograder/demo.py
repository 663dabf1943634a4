"""``sodl demo``: build every week and grade its samples through Gradescope's layout."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from autograder import course
from autograder.build import build_week
from autograder.gradescope_env import build_wheel, reproduce


def run_demo(root: Path, out: Path, execute: bool = False) -> int:
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
    return 0
