"""What Gradescope runs: ``python -m autograder.run_autograder --root /autograder``.

The zip's ``run_autograder`` script calls this module (as otter's
``otter/run/run_autograder`` is called). It grades ``root/submission``
with the assignment in ``root/source`` and writes
``root/results/results.json``, always, last, after every student process
is gone.
"""
from __future__ import annotations

import os
import traceback
from pathlib import Path

from autograder.atomic import write_json_atomic
from autograder.gradescope import failure_json, results_json, validate_results
from autograder.package import ASSIGNMENT_FILE, load_packaged_assignment


# Seconds past the submission's total limit (``grading.total_timeout``, which
# bounds every phase of grading) before the watchdog stops a stuck grader.
WATCHDOG_MARGIN_S = 45.0


def run_autograder(root: Path, device: str = "cpu", watchdog_s: float | None = None) -> Path:
    """Grade ``root/submission`` with ``root/source``; write ``root/results/results.json``.

    Under a watchdog (``watchdog_s``, by default the submission's total
    limit plus :data:`WATCHDOG_MARGIN_S`): Gradescope's own time limit ends
    the container without any results.json, so a grader stuck anywhere (an
    event flood once kept it waiting forever) still writes one, saying so,
    before that limit when ``total_timeout`` leaves the margin (the
    course's 540 s in Gradescope's default 600 s)."""
    from autograder.batch import call_with_watchdog
    from autograder.grade import grade_submission

    results = root / "results" / "results.json"
    try:
        packaged = load_packaged_assignment((root / "source" / ASSIGNMENT_FILE).read_bytes())
    except Exception as e:  # noqa: BLE001
        write_json_atomic(results, failure_json(f"The autograder is misconfigured ({type(e).__name__}); "
                                                "please tell your instructor."))
        return results
    try:
        done, result = call_with_watchdog(
            lambda: grade_submission(packaged, root / "submission", name="submission", device=device),
            watchdog_s or packaged.grading.total_timeout + WATCHDOG_MARGIN_S)
        data = results_json(result) if done else failure_json(
            "Grading took longer than the autograder allows and was stopped; please tell your instructor. "
            "Your submission was not graded.", packaged.assignment.total_points)
    except Exception:  # noqa: BLE001 - whatever happened, a valid results.json
        traceback.print_exc()
        data = failure_json("The autograder failed while grading your submission; please tell your "
                            "instructor. Your submission was not graded.", packaged.assignment.total_points)
    if validate_results(data):  # never a file Gradescope rejects: say so instead (a bug of ours)
        print("sodl: results.json would not validate:", validate_results(data)[:5])
        data = failure_json("The autograder produced an invalid result; please tell your instructor. "
                            "Your submission was not graded.", packaged.assignment.total_points)
    write_json_atomic(results, data)  # last: every student process is gone by now
    return results


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m autograder.run_autograder")
    p.add_argument("--root", default=os.environ.get("AUTOGRADER_ROOT", "/autograder"))
    # The GPU image (docker/Dockerfile.gpu) sets SODL_DEVICE=cuda; read here, at the edge, only.
    p.add_argument("--device", choices=("cpu", "cuda"), default=os.environ.get("SODL_DEVICE", "cpu"))
    args = p.parse_args(argv)
    run_autograder(Path(args.root), args.device)
    return 0


if __name__ == "__main__":
    from autograder.shutdown import exit_now

    exit_now(main())
