"""Shared helpers: paths, the machine's description, timing of commands
and the peak memory of a process tree."""
from __future__ import annotations

import datetime
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from autograder.harness.accounts import descendants

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "_work"
BIN = Path(sys.executable).parent
SODL = str(BIN / "sodl")
OTTER = str(BIN / "otter")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def machine_info() -> dict:
    """CPU model, cores, memory, library versions, date, load."""
    import numpy
    import torch

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "load": os.getloadavg(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "(unset)"),
    }


def median(xs):
    return statistics.median(xs) if xs else float("nan")


# ---------------------------------------------------------------------------
# running commands


@dataclass
class Run:
    cmd: list[str]
    wall: float
    rc: int
    out: str
    peak_rss_mb: float = float("nan")   # max over time of the sum of RSS over the process tree
    peak_pss_mb: float = float("nan")   # the same with PSS (shared pages counted once)
    children_maxrss_mb: float = float("nan")  # ru_maxrss of RUSAGE_CHILDREN gained by this run


def _tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    return [root, *descendants(root)]


def _mem_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB (0, 0 if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    rss = pss = 0
    for line in text.splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


class TreeSampler(threading.Thread):
    """Polls a process and all its descendants; keeps the peak of the summed
    RSS and PSS. The sandbox is forked by sodl's zygote (a child of the sodl
    process), so it is a descendant and is counted."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss = self.peak_pss = 0
        self.peak_procs = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            rss = pss = 0
            pids = _tree(self.pid)
            for p in pids:
                r, s = _mem_kb(p)
                rss, pss = rss + r, pss + s
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, len(pids))
            self.stop.wait(self.interval)


def run_cmd(cmd: list[str], cwd: Path | None = None, env: dict | None = None, sample_memory: bool = False,
            timeout: float = 600) -> Run:
    """Run a command in a fresh process; wall time, exit code, output and
    (``sample_memory``) the peak memory of its process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    sampler = None
    if sample_memory:
        sampler = TreeSampler(proc.pid)
        sampler.start()
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        out += f"\n[bench: killed after {timeout} s]"
    wall = time.perf_counter() - t0
    r = Run(cmd, wall, proc.returncode, out)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of RUSAGE_CHILDREN is the largest single descendant that was
    # waited for; it only moves when this run's largest one beats every
    # earlier one, so it is a lower bound of this run's own largest process.
    r.children_maxrss_mb = (after if after > before else float("nan")) / 1024
    if sampler is not None:
        sampler.stop.set()
        sampler.join()
        r.peak_rss_mb, r.peak_pss_mb = sampler.peak_rss / 1024, sampler.peak_pss / 1024
    return r


_BUILD_HELP: str | None = None


def build_flags(execute: bool) -> list[str]:
    """Flags for ``sodl build`` that skip what a benchmark does not measure:
    ``--no-execute`` unless ``execute``, and ``--no-check`` (``sodl build``
    also validates every mutant since it grew that option)."""
    global _BUILD_HELP
    if _BUILD_HELP is None:
        _BUILD_HELP = subprocess.run([SODL, "build", "--help"], capture_output=True, text=True).stdout
    flags = [] if execute else ["--no-execute"]
    if "--no-check" in _BUILD_HELP:
        flags.append("--no-check")
    return flags


def child_env(**extra) -> dict:
    env = dict(os.environ)
    env.update({k: str(v) for k, v in extra.items()})
    return env
