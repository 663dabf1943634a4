"""`make gpu-check`: the GPU promise of the README, checked; writes bench/GPU.md.

On a GPU machine (at most 6 minutes on one GPU):
1. the tests marked `cuda`, among them the adversarial suite's GPU attacks
   (CUDA out of memory in student code, a kernel that never returns, reading
   another sandbox's GPU memory), each with its honest grade;
2. every week's three samples (correct, blank, partly wrong), graded with
   `sodl grade --device cuda` and `--device cpu`: the scores must be
   identical; both are timed.
Without a GPU (`--device cpu`, or `auto` on a CPU-only machine) only the CPU
half runs, the `cuda` tests are reported as skipped, and GPU.md says that
the GPU run is still to be made. `--device cuda` without a GPU fails.

Only `sodl` and `pytest` command lines are used.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORK = ROOT / "build" / "gpu-check"
SAMPLES = ("correct", "blank", "partly_wrong")
ENV = dict(os.environ, OMP_NUM_THREADS="1")


@dataclass
class WeekRun:
    """One week's samples graded on one device."""
    scores: dict[str, str]   # sample -> "score/max" from the gradebook
    seconds: float           # wall time of the whole `sodl grade` (start-up included)


@dataclass
class WeekResult:
    week: str
    runs: dict[str, WeekRun] = field(default_factory=dict)  # device -> run

    @property
    def same(self) -> bool:
        return len({tuple(sorted(r.scores.items())) for r in self.runs.values()}) == 1


def problems(w: WeekResult) -> list[str]:
    """What is wrong with a week's runs: devices that disagree, or samples
    whose grade is not the obvious one (the correct one full, the blank one 0)."""
    out = [] if w.same else [f"{w.week}: devices disagree"]
    for device, run in w.runs.items():
        top = run.scores["correct"].split("/")[1]
        if run.scores["correct"] != f"{top}/{top}" or run.scores["blank"] != f"0/{top}":
            out.append(f"{w.week} on {device}: correct {run.scores['correct']}, blank {run.scores['blank']}")
    return out


def say(msg: str) -> None:
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def torch_version() -> str:
    import torch

    return torch.__version__


def gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def cuda_tests() -> list[tuple[str, str]]:
    """Run the tests marked `cuda`; (test id, passed/skipped/failed) each."""
    xml = WORK / "cuda-tests.xml"
    subprocess.run([BIN / "python", "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                    f"--junitxml={xml}", "tests"], cwd=ROOT, env=ENV, check=False)
    out = []
    for case in ET.parse(xml).iter("testcase"):
        verdict = "passed"
        for child in case:
            if child.tag == "skipped":
                verdict = "skipped: " + child.get("message", "")
            elif child.tag in ("failure", "error"):
                verdict = "FAILED"
        out.append((f"{case.get('classname')}::{case.get('name')}", verdict))
    return out


def grade_samples(week: str, dist: Path, device: str) -> WeekRun:
    out = WORK / device / week
    samples = [dist / week / "samples" / s for s in SAMPLES]
    t0 = time.monotonic()
    subprocess.run([BIN / "sodl", "grade", "--zip", dist / week / f"{week}-autograder.zip", *samples,
                    "--device", device, "--jobs", str(min(3, os.cpu_count() or 1)), "--regrade",
                    "--out", out], env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.monotonic() - t0
    with (out / "gradebook.csv").open(newline="") as f:
        scores = {r["name"]: f"{r['score']}/{r['max_score']}" for r in csv.DictReader(f)}
    return WeekRun(scores, seconds)


def write_report(path: Path, gpu: str | None, tests: list[tuple[str, str]], weeks: list[WeekResult],
                 seconds: float) -> None:
    import torch

    lines = ["# GPU check (`make gpu-check`)", ""]
    if gpu is None:
        lines += ["**The GPU run is still to be made.** This file was written on a machine without a",
                  "CUDA GPU: only `--device cpu` ran, and the tests marked `cuda` were skipped.",
                  "Run `make gpu-check` on a GPU machine (a CUDA build of torch in .venv) and commit the file it writes.", ""]
    lines += [f"- machine: {platform.node()}, {os.cpu_count()} CPUs, GPU: {gpu or 'none'}",
              f"- torch {torch.__version__}, CUDA {torch.version.cuda or 'none (CPU build)'}",
              f"- written {time.strftime('%Y-%m-%d %H:%M')}; the whole check took {seconds:.0f} s"
              + (" (budget on one GPU: 360 s)" if gpu else ""), "",
              "## Tests marked `cuda` (the adversarial GPU attacks among them)", "",
              "| test | result |", "|---|---|"]
    lines += [f"| `{name}` | {verdict} |" for name, verdict in tests]
    lines += ["", "## Every week's samples, graded on each device", "",
              "Scores are `score/max` for " + ", ".join(SAMPLES) + "; seconds are the wall time of one",
              "`sodl grade` of the three samples, start-up included.", "",
              "| week | cpu scores | cuda scores | same | cpu s | cuda s |", "|---|---|---|---|---|---|"]
    for w in weeks:
        cpu = w.runs["cpu"]
        cuda = w.runs.get("cuda")
        cells = [w.week, " ".join(cpu.scores[s] for s in SAMPLES),
                 " ".join(cuda.scores[s] for s in SAMPLES) if cuda else "no GPU",
                 ("yes" if w.same else "**NO**") if cuda else "-",
                 f"{cpu.seconds:.1f}", f"{cuda.seconds:.1f}" if cuda else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: cuda and cpu when a GPU is visible, cpu alone otherwise")
    p.add_argument("--weeks", nargs="*", default=None, help="default: every week")
    p.add_argument("--report", default=str(ROOT / "bench" / "GPU.md"))
    args = p.parse_args(argv)

    gpu = gpu_name()
    if args.device == "cuda" and gpu is None:
        print("gpu-check: --device cuda asked for, but no CUDA GPU is visible to torch", file=sys.stderr)
        return 2
    devices = ["cpu", "cuda"] if gpu and args.device != "cpu" else ["cpu"]
    if gpu is None and shutil.which("nvidia-smi"):
        say(f"nvidia-smi answers but torch {torch_version()} sees no GPU: for the CUDA half, install a CUDA "
            "build of torch into .venv first (`make` installs the CPU one)")
    say(f"GPU: {gpu}; devices {', '.join(devices)}" if gpu else
        "no CUDA GPU visible: the CUDA half (tests marked cuda, --device cuda grading) is skipped")
    WORK.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    tests = cuda_tests()
    say(f"tests marked cuda: {len(tests)}, " + ", ".join(
        f"{k} {sum(1 for _, v in tests if v.split(':')[0] == k)}" for k in ("passed", "skipped", "FAILED")))

    dist = WORK / "dist"
    weeks = args.weeks or sorted(p.name.split("-")[0] for p in (ROOT / "solutions").iterdir() if p.is_dir())
    subprocess.run([BIN / "sodl", "build", *weeks, "--no-check", "--no-execute", "--out", dist],
                   env=ENV, check=True, stdout=subprocess.DEVNULL)
    say(f"built {len(weeks)} weeks in {time.monotonic() - t0:.0f} s")
    results = []
    for week in weeks:
        r = WeekResult(week, {d: grade_samples(week, dist, d) for d in devices})
        say(f"{week}: " + "; ".join(f"{d} {' '.join(run.scores[s] for s in SAMPLES)} in {run.seconds:.1f} s"
                                     for d, run in r.runs.items()))
        results.append(r)
    seconds = time.monotonic() - t0
    write_report(Path(args.report), gpu if "cuda" in devices else None, tests, results, seconds)
    failed = [n for n, v in tests if v == "FAILED"] + [p for w in results for p in problems(w)]
    say(f"{args.report} written; {seconds:.0f} s in all")
    if failed:
        print("gpu-check FAILED: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
