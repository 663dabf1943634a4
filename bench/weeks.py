"""Benchmark 5: a table of every week: ``sodl build`` time with the answer
key executed, the answer key's run time, the grading time of the correct
sample and the peak memory of that grading.

Builds run with a scratch course root (``_work/course``: symlinks to
``solutions/`` and ``otter_config.yml``, its own ``assignments/``), so
that the benchmark never rewrites the committed student notebooks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, SODL, WORK, build_flags, fresh_dir, run_cmd

GRADESCOPE_MB = 768


def course_root(work: Path = WORK) -> Path:
    root = work / "course"
    root.mkdir(parents=True, exist_ok=True)
    for name in ("solutions", "otter_config.yml"):
        link = root / name
        if not link.is_symlink():
            if link.exists():
                raise RuntimeError(f"{link} exists and is not a symlink")
            link.symlink_to(ROOT / name)
    (root / "assignments").mkdir(exist_ok=True)
    return root


def list_weeks() -> list[dict]:
    out = subprocess.run([SODL, "list", "--json"], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def build(week: str, out: Path, execute: bool, check: bool = False):
    """``sodl build WEEK`` in a fresh process; ``--no-check`` unless ``check``."""
    flags = build_flags(execute)
    if check:
        flags = [f for f in flags if f != "--no-check"]
    return run_cmd([SODL, "build", week, "--out", str(out), *flags], cwd=course_root())


def grade_correct(week: str, dist: Path):
    """``sodl grade`` of the correct sample in a fresh process, wrapped in
    ``bench.rusage`` (ru_maxrss of RUSAGE_CHILDREN) and sampled every 0.1 s
    for the summed RSS / PSS of the whole process tree."""
    zip_path = dist / week / f"{week}-autograder.zip"
    sample = dist / week / "samples" / "correct"
    out = fresh_dir(WORK / "weeks" / "grades" / week)
    cmd = [sys.executable, "-m", "bench.rusage", SODL, "grade", "--zip", str(zip_path), str(sample),
           "--out", str(out), "--regrade", "--jobs", "1"]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = run_cmd(cmd, cwd=ROOT, env=env, sample_memory=True)
    maxrss = float("nan")
    for line in r.out.splitlines():
        if line.startswith("BENCH_MAXRSS_KB="):
            maxrss = int(line.split("=", 1)[1]) / 1024
    score = max_score = float("nan")
    try:
        res = json.loads((out / "correct" / "results.json").read_text())
        score, max_score = res.get("score"), res.get("max_score")
    except (OSError, ValueError):
        pass
    return r, maxrss, score, max_score


def run(deadline: float, exec_weeks: list[str] | None = None, log=print) -> dict:
    """Cheap columns for every week first (build without execution, grade the
    correct sample, its memory); then builds with execution
    (``--no-check``) in week order, each only while ``time.monotonic()``
    plus the longest one so far stays before ``deadline`` (or only
    ``exec_weeks``); then, if time is left, one complete ``sodl build`` of
    the first week (answer key executed and every mutant checked), for
    reference."""
    weeks = list_weeks()
    dist = WORK / "weeks" / "dist"
    dist_exec = WORK / "weeks" / "dist-exec"
    fresh_dir(WORK / "weeks")
    checks_in_build = "--no-check" in build_flags(True)
    rows = []
    for w in weeks:
        rows.append({"week": w["week"], "title": w["title"], "questions": len(w["questions"])})

    def longest(*keys, floor=5.0):
        return max([sum(r.get(k, 0.0) for k in keys) for r in rows] + [floor])

    for row in rows:
        name = row["week"]
        if time.monotonic() + longest("build_noexec_s", "grade_s") > deadline:
            row["cheap_skipped"] = True
            continue
        b = build(name, dist, execute=False)
        row["build_noexec_s"] = b.wall
        if b.rc != 0:
            row["error"] = "build --no-execute failed: " + b.out.strip().splitlines()[-1][:200]
            log(f"  {name}: {row['error']}")
            continue
        g, maxrss, score, max_score = grade_correct(name, dist)
        row.update(grade_s=g.wall, grade_rc=g.rc, ru_maxrss_mb=maxrss, peak_rss_mb=g.peak_rss_mb,
                   peak_pss_mb=g.peak_pss_mb, score=score, max_score=max_score)
        log(f"  {name}: build --no-execute {b.wall:.1f} s, grade {g.wall:.1f} s, "
            f"peak PSS {g.peak_pss_mb:.0f} MB, score {score}/{max_score}")
    for row in rows:
        name = row["week"]
        if "error" in row or row.get("cheap_skipped"):
            continue
        if exec_weeks is not None and name not in exec_weeks:
            continue
        if time.monotonic() + longest("build_s", floor=10.0) > deadline:
            row["exec_skipped"] = True
            continue
        b = build(name, dist_exec, execute=True)
        if b.rc != 0:
            row["exec_error"] = b.out.strip().splitlines()[-1][:200]
            log(f"  {name}: build with execution failed: {row['exec_error']}")
            continue
        row["build_s"] = b.wall
        row["solution_s"] = max(b.wall - row["build_noexec_s"], 0.0)
        log(f"  {name}: build {b.wall:.1f} s (answer key ~{row['solution_s']:.1f} s)")
    full = None
    if checks_in_build and rows and "build_s" in rows[0] and time.monotonic() + 6 * rows[0]["build_s"] < deadline:
        name = rows[0]["week"]
        b = build(name, WORK / "weeks" / "dist-full", execute=True, check=True)
        full = {"week": name, "s": b.wall, "rc": b.rc}
        log(f"  {name}: complete sodl build (execute + check) {b.wall:.1f} s, rc {b.rc}")
    return {"rows": rows, "gradescope_mb": GRADESCOPE_MB, "checks_in_build": checks_in_build, "full": full}
