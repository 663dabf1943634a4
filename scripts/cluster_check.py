"""`make test-cluster`: the README's SLURM regrade, run on a real one-node cluster.

1. `scripts/slurm-local.sh start` (Debian's slurm-wlm and munge; stopped again
   at the end, whatever happens).
2. A synthetic class of 60 week-01 submissions, graded once without SLURM:
   the gradebook to match.
3. `sbatch --array=1-4 scripts/grade-array.sbatch` (the file the README
   shows); task 2 is cancelled with `scancel` while it is grading, and
   resubmitted alone once the others are done.
4. `sodl gradebook merge` of the four shards must equal the unsharded
   gradebook byte for byte (60 rows), and the resubmitted task must not have
   graded again what the cancelled one had finished.

Only the `sodl` and SLURM command lines are used, as a TA would use them.
There is no slurmdbd here, so `sacct` has no records: task states come from
`squeue` while tasks are queued and `scontrol show job` afterwards.
"""
from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SODL = ROOT / ".venv" / "bin" / "sodl"
WEEK, CLASS_SIZE, SHARDS, VICTIM = "week01", 60, 4, 2
WORK = ROOT / "build" / "cluster-check"
SLURM = ROOT / "scripts" / "slurm-local.sh"
SLURM_CONF = Path(os.environ.get("SODL_SLURM_DIR", "/tmp/sodl-slurm")) / "slurm.conf"
# One thread per grading process, as in `make test`; the daemons get the plain environment.
ENV = dict(os.environ, SLURM_CONF=str(SLURM_CONF), OMP_NUM_THREADS="1")


def say(msg: str) -> None:
    print(f"[cluster-check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(*cmd, **kw) -> str:
    return subprocess.run([str(c) for c in cmd], env=ENV, check=True, text=True,
                          stdout=subprocess.PIPE, **kw).stdout


def submit(array: str) -> str:
    """sbatch the README's script with this check's folders; returns the job id."""
    exports = f"ALL,WEEK={WEEK},SHARDS={SHARDS},SUBMISSIONS={WORK / 'class'},GRADES={WORK / 'grades'}"
    out = run("sbatch", "--parsable", f"--array={array}", f"--chdir={ROOT}", f"--export={exports}",
              f"--output={WORK / 'logs' / 'slurm-%A_%a.out'}", ROOT / "scripts" / "grade-array.sbatch")
    return out.strip().split(";")[0]


def queued(job: str) -> dict[str, str]:
    """Array index -> state of the tasks of ``job`` still in the queue."""
    out = run("squeue", "-h", "-r", "-j", job, "-o", "%K %T")
    return dict(line.split() for line in out.splitlines() if line.strip())


def final_state(job: str, index: int) -> str:
    """`JobState ExitCode` of a finished task, from slurmctld's memory (MinJobAge)."""
    fields = dict(kv.split("=", 1) for kv in run("scontrol", "-o", "show", "job", f"{job}_{index}").split()
                  if "=" in kv)
    return f"{fields['JobState']} {fields['ExitCode']}"


def wait_done(job: str, timeout: float = 600) -> None:
    t0, last = time.monotonic(), None
    while (q := queued(job)):
        if q != last:
            say(f"squeue {job}: " + ", ".join(f"task {k} {v}" for k, v in sorted(q.items())))
            last = q
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"job {job} still queued after {timeout:.0f} s")
        time.sleep(0.5)


def graded(shard: int) -> dict[str, tuple[int, int]]:
    """Finished submissions of a shard: name -> (inode, mtime_ns) of its results.json."""
    return {p.parent.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in (WORK / "grades" / f"shard-{shard}").glob("*/results.json")}


def rows(book: Path) -> list[list[str]]:
    with book.open(newline="") as f:
        return list(csv.reader(f))[1:]


def cancel_mid_run(job: str) -> dict[str, tuple[int, int]]:
    """scancel task VICTIM once it has finished some submissions but not all;
    return what it had finished."""
    t0 = time.monotonic()
    while queued(job).get(str(VICTIM)) != "RUNNING" or not graded(VICTIM):
        if str(VICTIM) not in queued(job):
            raise SystemExit(f"task {VICTIM} ended before it could be cancelled: nothing was tested")
        if time.monotonic() - t0 > 300:
            raise SystemExit(f"task {VICTIM} never started grading")
        time.sleep(0.05)
    run("scancel", f"{job}_{VICTIM}")
    say(f"scancel {job}_{VICTIM} while RUNNING: it had graded {len(graded(VICTIM))} submissions")
    while str(VICTIM) in queued(job):
        time.sleep(0.2)
    state = final_state(job, VICTIM)
    if not state.startswith("CANCELLED"):
        raise SystemExit(f"task {VICTIM} was not cancelled: {state}")
    done = graded(VICTIM)
    say(f"task {VICTIM} is {state}; {len(done)} submissions finished before it died")
    return done


def check() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "logs").mkdir(parents=True)
    t = time.monotonic()
    # the zip alone: grading needs neither the executed answer key nor the mutant check
    run(SODL, "build", WEEK, "--no-check", "--no-execute")
    run(SODL, "synth", WEEK, "--n", CLASS_SIZE, "--out", WORK / "class")
    # what each synthetic student is; not a submission, so out of the glob the sbatch script grades
    (WORK / "class" / "manifest.json").rename(WORK / "manifest.json")
    zip_path = ROOT / "dist" / WEEK / f"{WEEK}-autograder.zip"
    say(f"built {WEEK} and a class of {CLASS_SIZE} in {time.monotonic() - t:.0f} s")

    t = time.monotonic()
    run(SODL, "grade", "--zip", zip_path, *sorted((WORK / "class").iterdir()), "--jobs", "2",
        "--out", WORK / "unsharded", stderr=subprocess.DEVNULL)
    say(f"unsharded sodl grade: {time.monotonic() - t:.0f} s")

    t = time.monotonic()
    job = submit(f"1-{SHARDS}")
    say(f"sbatch --array=1-{SHARDS}: job {job}")
    before = cancel_mid_run(job)
    wait_done(job)
    say(f"job {job}: " + ", ".join(f"task {k} {final_state(job, k)}" for k in range(1, SHARDS + 1)))
    for k in range(1, SHARDS + 1):
        if k != VICTIM and final_state(job, k) != "COMPLETED 0:0":
            raise SystemExit(f"task {k}: {final_state(job, k)}; see {WORK / 'logs'}")
    again = submit(str(VICTIM))
    say(f"resubmitted task {VICTIM}: job {again}")
    wait_done(again)
    if final_state(again, VICTIM) != "COMPLETED 0:0":
        raise SystemExit(f"resubmitted task {VICTIM}: {final_state(again, VICTIM)}")
    after = graded(VICTIM)
    regraded = [n for n, stamp in before.items() if after.get(n) != stamp]
    if regraded:
        raise SystemExit(f"graded twice by task {VICTIM}: {', '.join(regraded)}")
    if len(after) <= len(before):
        raise SystemExit(f"task {VICTIM} had already finished when cancelled: the kill tested nothing")
    say(f"task {VICTIM} resumed: {len(after) - len(before)} graded now, {len(before)} left as they were")
    say(f"SLURM: {time.monotonic() - t:.0f} s for the array, the kill and the resubmission")

    shards = [WORK / "grades" / f"shard-{k}" for k in range(1, SHARDS + 1)]
    run(SODL, "gradebook", "merge", *shards, "--out", WORK / "merged")
    merged, unsharded = WORK / "merged" / "gradebook.csv", WORK / "unsharded" / "gradebook.csv"
    names = [r[0] for r in rows(merged)]
    per_shard = [len(graded(k)) for k in range(1, SHARDS + 1)]
    say(f"merged: {len(names)} rows from shards of {per_shard}; total score "
        f"{sum(float(r[1]) for r in rows(merged)):g} (unsharded {sum(float(r[1]) for r in rows(unsharded)):g})")
    if len(names) != CLASS_SIZE or len(set(names)) != CLASS_SIZE:
        raise SystemExit(f"merged gradebook has {len(names)} rows, {len(set(names))} names; want {CLASS_SIZE}")
    if merged.read_bytes() != unsharded.read_bytes():
        raise SystemExit(f"merged gradebook differs from the unsharded one: diff {merged} {unsharded}")
    say("PASS: merged gradebook == unsharded gradebook")


def main() -> int:
    # SIGTERM (CI's timeout, a kill) must still reach the `finally` that stops the daemons.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    try:
        subprocess.run(["bash", str(SLURM), "start"], check=True)
        say(f"cluster up in {time.monotonic() - t0:.0f} s")
        check()
    finally:
        subprocess.run(["bash", str(SLURM), "stop"])
        say(f"total {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
