"""Benchmarks 1 and 2: grading week-1 submissions with ``sodl grade``
against ``otter run`` on otter's own autograder zip for the same master
notebook."""
from __future__ import annotations

import json
import shutil
import sys
import time
import types
from pathlib import Path

import yaml

from bench.common import OTTER, ROOT, SODL, WORK, build_flags, fresh_dir, median, run_cmd

WEEK = "week01"
MASTER = ROOT / "solutions" / "week01-foundations" / "week01.ipynb"
# ASSIGNMENT CONFIG keys otter-grader 7.0.0 knows (otter/assign/assignment.py)
OTTER_KEYS = {"name", "config_file", "requirements", "overwrite_requirements", "environment", "run_tests",
              "solutions_pdf", "template_pdf", "init_cell", "check_all_cell", "export_cell", "seed",
              "generate", "save_environment", "variables", "ignore_modules", "files", "autograder_files",
              "plugins", "tests", "show_question_points", "runs_on", "python_version",
              "channel_priority_strict", "exclude_conda_defaults"}
OTTER_SEED = 12345


def build_sodl_zip(work: Path = WORK) -> dict:
    """``sodl build week01 --no-execute [--no-check]`` into ``work/dist``."""
    r = run_cmd([SODL, "build", WEEK, "--out", str(work / "dist"), *build_flags(False)], cwd=ROOT)
    if r.rc != 0:
        raise RuntimeError(f"sodl build failed:\n{r.out[-2000:]}")
    d = work / "dist" / WEEK
    return {"zip": d / f"{WEEK}-autograder.zip", "samples": {k: d / "samples" / k for k in
                                                              ("correct", "partly_wrong", "blank")}}


def otter_notebook(master: Path, dest: Path) -> list[str]:
    """A copy of the master notebook that ``otter assign`` accepts; returns
    what was changed. Our config cell has keys otter rejects (``title``...);
    our hidden tests read ``seed``, which sodl's grader binds per question
    and otter does not, so each test that uses it gets ``seed = 12345``."""
    import nbformat

    nb = nbformat.read(str(master), as_version=4)
    changes = []
    for cell in nb.cells:
        src = cell.source
        if cell.cell_type == "raw" and src.lstrip().startswith("# ASSIGNMENT CONFIG"):
            cfg = yaml.safe_load(src.split("\n", 1)[1]) or {}
            dropped = sorted(k for k in cfg if k not in OTTER_KEYS)
            if dropped:
                changes.append(f"dropped config key(s) otter rejects: {', '.join(dropped)}")
            cfg = {k: v for k, v in cfg.items() if k in OTTER_KEYS}
            cell.source = "# ASSIGNMENT CONFIG\n" + yaml.safe_dump(cfg, sort_keys=False)
    n = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and "# END TEST CONFIG" in cell.source and "seed" in cell.source:
            head, tail = cell.source.split("# END TEST CONFIG\n", 1)
            cell.source = f"{head}# END TEST CONFIG\nseed = {OTTER_SEED}\n{tail}"
            n += 1
    if n:
        changes.append(f"added `seed = {OTTER_SEED}` to the {n} test cells that read `seed` "
                       "(sodl binds it at grading time; otter does not)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(dest))
    return changes


def build_otter_zip(work: Path = WORK) -> dict:
    """``otter assign --no-run-tests`` on the otter-compatible copy."""
    folder = fresh_dir(work / "otter")
    changes = otter_notebook(MASTER, folder / f"{WEEK}.ipynb")
    r = run_cmd([OTTER, "assign", "--no-run-tests", f"{WEEK}.ipynb", "out"], cwd=folder)
    zips = sorted((folder / "out" / "autograder").glob("*.zip"))
    if r.rc != 0 or not zips:
        raise RuntimeError(f"otter assign failed:\n{r.out[-2000:]}")
    return {"zip": zips[-1], "changes": changes, "assign_s": r.wall}


def sodl_grade(zip_path: Path, subs: list[Path], out: Path, jobs: int | None = None, sample_memory=False):
    cmd = [SODL, "grade", "--zip", str(zip_path), *map(str, subs), "--out", str(fresh_dir(out)), "--regrade"]
    if jobs:
        cmd += ["--jobs", str(jobs)]
    r = run_cmd(cmd, cwd=ROOT, sample_memory=sample_memory)
    if r.rc != 0:
        raise RuntimeError(f"sodl grade failed:\n{r.out[-3000:]}")
    return r, read_gradebook(out / "gradebook.csv")


def read_gradebook(path: Path) -> dict[str, float]:
    import csv

    with open(path) as f:
        return {row["name"]: float(row["score"]) for row in csv.DictReader(f)}


def otter_run(zip_path: Path, sub: Path, out: Path):
    """``otter run`` on one notebook; returns (Run, score)."""
    nb = sub / f"{WEEK}.ipynb" if sub.is_dir() else sub
    r = run_cmd([OTTER, "run", "-a", str(zip_path), "-o", str(fresh_dir(out)), str(nb)], cwd=ROOT)
    score = float("nan")
    try:
        data = json.loads((out / "results.json").read_text())
        score = sum(t.get("score") or 0.0 for t in data.get("tests", []))
    except (OSError, ValueError):
        pass
    return r, score


# ---------------------------------------------------------------------------
# benchmark 1


def bench_single(sodl_zip: Path, otter_zip: Path, sample: Path, repeats: int = 3) -> dict:
    """One correct submission, cold: a fresh ``sodl grade`` process against
    a fresh ``otter run`` process, alternated ``repeats`` times."""
    t_sodl, t_otter, scores = [], [], {}
    for i in range(repeats):
        r, book = sodl_grade(sodl_zip, [sample], WORK / "single" / "sodl")
        t_sodl.append(r.wall)
        scores["sodl"] = book
        r, score = otter_run(otter_zip, sample, WORK / "single" / "otter")
        if r.rc != 0:
            raise RuntimeError(f"otter run failed:\n{r.out[-3000:]}")
        t_otter.append(r.wall)
        scores["otter"] = score
    return {"t_sodl": t_sodl, "t_otter": t_otter, "sodl": median(t_sodl), "otter": median(t_otter),
            "ratio": median(t_sodl) / median(t_otter), "score_sodl": list(scores["sodl"].values())[0],
            "score_otter": scores["otter"]}


# ---------------------------------------------------------------------------
# benchmark 2

KINDS = ("correct", "partly_wrong", "blank")


def make_batch(samples: dict[str, Path], n: int, folder: Path) -> list[tuple[Path, str]]:
    """``n`` copies of the samples, cycling correct / partly wrong / blank,
    each in its own folder with a distinct name."""
    fresh_dir(folder)
    subs = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        d = folder / f"s{i:03d}-{kind}"
        d.mkdir()
        shutil.copy(samples[kind] / f"{WEEK}.ipynb", d / f"{WEEK}.ipynb")
        subs.append((d, kind))
    return subs


def _otter_stub() -> types.ModuleType:
    mod = types.ModuleType("otter")

    class Notebook:
        def __init__(self, *a, **k):
            pass

        def check(self, *a, **k):
            return None

        def check_all(self, *a, **k):
            return None

    mod.Notebook = Notebook
    return mod


def student_compute(nb_path: Path, repeats: int = 3) -> float:
    """Seconds to exec a notebook's graded code cells (not tagged
    ``otter_ignore``) once, in this already-warm process (numpy, torch,
    matplotlib imported; one untimed run first; compiling
    included), with ``otter`` stubbed so
    that ``grader.check`` cells are no-ops, as in sodl's sandbox."""
    import matplotlib

    matplotlib.use("Agg")
    from autograder.submission import grading_cells

    cells = grading_cells(json.loads(nb_path.read_text()))
    saved = sys.modules.get("otter")
    sys.modules["otter"] = _otter_stub()
    import torch

    dtype = torch.get_default_dtype()
    try:
        def once():
            ns = {"__name__": "__main__"}
            t = time.perf_counter()
            for i, src in enumerate(cells):
                try:
                    exec(compile(src, f"<cell {i}>", "exec"), ns)
                except Exception:  # noqa: BLE001 - a blank or wrong answer may raise
                    pass
            return time.perf_counter() - t

        once()
        return min(once() for _ in range(repeats))
    finally:
        torch.set_default_dtype(dtype)
        if saved is None:
            sys.modules.pop("otter", None)
        else:
            sys.modules["otter"] = saved


def bench_batch(sodl_zip: Path, otter_zip: Path, samples: dict[str, Path], n: int = 50, jobs: int = 2,
                n_otter: int = 5) -> dict:
    subs = make_batch(samples, n, WORK / "batch" / "subs")
    r, book = sodl_grade(sodl_zip, [p for p, _ in subs], WORK / "batch" / "sodl", jobs=jobs)
    t_sodl = r.wall
    per_kind_scores = {k: sorted({book[p.name] for p, kk in subs if kk == k}) for k in KINDS}
    # otter: the first n_otter of the same batch, one after another
    t_otter, otter_scores = {k: [] for k in KINDS}, {k: set() for k in KINDS}
    for p, kind in subs[:n_otter]:
        ro, score = otter_run(otter_zip, p, WORK / "batch" / "otter" / p.name)
        if ro.rc != 0:
            raise RuntimeError(f"otter run failed:\n{ro.out[-3000:]}")
        t_otter[kind].append(ro.wall)
        otter_scores[kind].add(score)
    counts = {k: sum(1 for _, kk in subs if kk == k) for k in KINDS}
    # linear extrapolation, per kind (the mean of that kind's otter runs)
    all_otter = [t for ts in t_otter.values() for t in ts]
    mean_all = sum(all_otter) / len(all_otter)
    t_otter_n = sum(counts[k] * (sum(t_otter[k]) / len(t_otter[k]) if t_otter[k] else mean_all) for k in KINDS)
    compute = {k: student_compute(samples[k] / f"{WEEK}.ipynb") for k in KINDS}
    compute_mean = sum(counts[k] * compute[k] for k in KINDS) / n
    per_sub_wall = t_sodl / n
    # steady state: each results.json's execution_time (one submission in a
    # worker, from sandbox start to the last test; the first submission of
    # each worker also pays for starting its zygote, so take the median)
    # The student's own computation: the seconds the sandbox spent in student
    # code (executing the graded cells, and the calls the tests made), which
    # sodl records per submission in grading.json (capped by the grader's clock).
    exec_times, student = {k: [] for k in KINDS}, {k: [] for k in KINDS}
    for p, kind in subs:
        try:
            side = json.loads((WORK / "batch" / "sodl" / p.name / "grading.json").read_text())
            exec_times[kind].append(side["execution_time"])
            student[kind].append(side["student_seconds"])
        except (OSError, ValueError, KeyError):
            pass
    steady = {k: median(v) for k, v in exec_times.items()}
    steady_mean = sum(counts[k] * steady[k] for k in KINDS) / n
    student_median = {k: median(v) for k, v in student.items()}
    student_mean = sum(sum(v) for v in student.values()) / max(1, sum(len(v) for v in student.values()))
    # per submission: execution_time minus its own student seconds; median per kind, weighted
    own = {k: median([e - s for e, s in zip(exec_times[k], student[k])]) for k in KINDS}
    per_sub_core = t_sodl * jobs / n
    return {"n": n, "jobs": jobs, "n_otter": n_otter, "counts": counts, "t_sodl": t_sodl,
            "t_otter_measured": sum(all_otter), "t_otter_runs": t_otter, "t_otter_n": t_otter_n,
            "throughput_sodl": n / t_sodl, "throughput_otter": n / t_otter_n,
            "ratio": t_otter_n / t_sodl, "sodl_scores": per_kind_scores,
            "otter_scores": {k: sorted(v) for k, v in otter_scores.items()},
            "compute": compute, "compute_mean": compute_mean,
            "student": student_median, "student_mean": student_mean,
            "per_sub_wall": per_sub_wall, "per_sub_core": per_sub_core,
            "overhead": per_sub_core - student_mean, "steady": steady, "steady_mean": steady_mean,
            "overhead_steady": sum(counts[k] * own[k] for k in KINDS) / n}


def startup_costs(zip_path: Path, repeats: int = 2) -> dict:
    """Fresh-process times: a bare interpreter; importing what sodl's zygote
    preloads for this zip (the sandbox side); importing the trusted side
    that runs the tests (the grader, torch, ``sodl_ref``); importing
    otter's grading."""
    from autograder.package import load_zip

    mods = list(load_zip(zip_path).grading.preload)
    codes = {
        "python": "pass",
        "preload": f"import importlib, os\nos.environ['MPLBACKEND'] = 'Agg'\nfor m in {mods!r}:\n"
                   "    try:\n        importlib.import_module(m)\n    except ImportError:\n        pass",
        "trusted": "import autograder.grade, torch, sodl_ref.foundations",
        "otter": "import otter.run.run_autograder, otter.execute, nbconvert",
    }
    out = {label: min(run_cmd([sys.executable, "-c", code], cwd=ROOT).wall for _ in range(repeats))
           for label, code in codes.items()}
    out["preload_modules"] = mods
    return out
