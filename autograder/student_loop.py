"""The student's loop, replayed: the public tests through otter's own ``grader.check``.

Runs in: a child process of ``sodl check`` (``python -m autograder.student_loop
SPEC OUT``), never in the grader. The code it runs is the instructor's (the
answer key and the catalogue of mistakes), so it needs no sandbox; a child
keeps otter's imports, the key's global state and its plots out of the
checking process, and a time limit bounds it.

Students see their work through ``grader.check("q...")`` in the notebook,
which otter runs in their kernel from the tests in the notebook's metadata;
the hidden grade comes later from our grader. The two must agree on every
public case, and the public checks should already catch the usual mistakes.
The child executes the answer key's graded cells once, writes the built
student notebook beside it, and asks otter to check every question; then,
per catalogued mutant, it restores the key's namespace, runs the mutant's
code on top and checks the mutant's question again. ``sodl check`` compares
these verdicts with its own grader's, case by case (``week_check``).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHECK_SECONDS = 60  # one grader.check call, a question's public cases
TOTAL_SECONDS = 900  # the whole replay of one week


@dataclass
class OtterVerdicts:
    """What otter's ``grader.check`` said about one question.

    Attributes:
        question: the question.
        mutant: the mutant swapped in ("" for the answer key itself).
        passed: per public case, in the notebook's order, whether it passed.
        failures: per failed case, otter's message (clipped).
        error: when the check itself could not run (the mutant's code raised,
            the check timed out), why; ``passed`` is then empty.
    """

    question: str
    mutant: str = ""
    passed: list[bool] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def caught(self) -> bool:
        """Whether the public checks tell this answer is wrong."""
        return bool(self.error) or not all(self.passed)


@dataclass
class StudentLoop:
    """Every verdict of one week's replay.

    Attributes:
        key: per question, the answer key's verdicts (must all pass).
        mutants: one verdict per catalogued mutant, on its own question.
        error: when the replay could not run at all, why.
    """

    key: list[OtterVerdicts] = field(default_factory=list)
    mutants: list[OtterVerdicts] = field(default_factory=list)
    error: str = ""


@dataclass
class Replay:
    """A replay under way: the child process and its scratch folder."""

    proc: subprocess.Popen
    folder: Path


def replay(name: str, student_nb: dict, key_cells: list[str], mutants: list[dict],
           data_dir: Path | None = None) -> Replay:
    """Start the replay in a child process; :func:`collect` waits for it.

    ``student_nb`` is the built student notebook (its metadata holds the
    public tests otter runs), ``key_cells`` the answer key's graded cells,
    ``mutants`` ``{"question", "name", "code"}`` records, ``data_dir`` the
    week's folder, whose files a student has beside the notebook."""
    work = Path(tempfile.mkdtemp(prefix=f"sodl-loop-{name}-"))
    if data_dir is not None:
        for item in data_dir.iterdir():
            if item.suffix != ".ipynb" and item.name != "mutants.yml" and not item.name.startswith("."):
                (work / item.name).symlink_to(item.resolve())
    (work / f"{name}.ipynb").write_text(json.dumps(student_nb))
    spec = {"notebook": f"{name}.ipynb", "key_cells": key_cells, "mutants": mutants,
            "questions": list(student_nb["metadata"]["otter"]["tests"])}
    (work / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "autograder.student_loop", "spec.json", "out.json"],
                            cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return Replay(proc, work)


def collect(run: Replay) -> StudentLoop:
    """Wait for a replay started by :func:`replay` and read its verdicts."""
    import shutil

    try:
        try:
            _, err = run.proc.communicate(timeout=TOTAL_SECONDS)
        except subprocess.TimeoutExpired:
            run.proc.kill()
            run.proc.communicate()
            return StudentLoop(error=f"otter's checks did not finish within {TOTAL_SECONDS} s")
        try:
            data = json.loads((run.folder / "out.json").read_text())
        except (OSError, ValueError):
            tail = err.decode("utf-8", "replace").strip().splitlines()[-5:]
            return StudentLoop(error="otter's checks could not run: " + " | ".join(tail))
    finally:
        shutil.rmtree(run.folder, ignore_errors=True)
    return StudentLoop([OtterVerdicts(**v) for v in data["key"]],
                       [OtterVerdicts(**v) for v in data["mutants"]], data.get("error", ""))


# --- the child process -------------------------------------------------------

def _check(g: dict, question: str, mutant: str = "") -> OtterVerdicts:
    """One ``grader.check`` call in the namespace ``g``, time-limited."""
    out = OtterVerdicts(question, mutant)

    def expire(*_):
        raise TimeoutError

    signal.signal(signal.SIGALRM, expire)
    signal.alarm(CHECK_SECONDS)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            # as the student calls it: from the notebook's globals, which otter
            # reads from the calling frame
            exec(f"__sodl_check__ = grader.check({question!r})", g)
            result = g.pop("__sodl_check__")
    except TimeoutError:
        out.error = f"grader.check did not finish within {CHECK_SECONDS} s"
        return out
    except Exception as e:  # noqa: BLE001 - a failing check of a mutant is a verdict, not a crash
        out.error = f"grader.check raised {type(e).__name__}: {e}"[:500]
        return out
    finally:
        signal.alarm(0)
    test_file = getattr(result, "test_file", result)
    for r in test_file.test_case_results:
        out.passed.append(bool(r.passed))
        if not r.passed:
            out.failures.append(f"{r.test_case.name}: {str(r.message).strip()[-400:]}")
    return out


def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    result: dict = {"key": [], "mutants": [], "error": ""}
    g: dict = {"__name__": "__main__"}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            for i, src in enumerate(spec["key_cells"]):
                exec(compile(src, f"<answer key cell {i + 1}>", "exec"), g)
            import otter

            g["grader"] = otter.Notebook(spec["notebook"])
    except BaseException as e:  # noqa: BLE001 - reported to sodl check as the reason
        result["error"] = f"the answer key failed to run: {type(e).__name__}: {e}"[:800]
        Path(out_path).write_text(json.dumps(result))
        return
    snapshot = dict(g)
    for q in spec["questions"]:
        result["key"].append(_check(g, q).__dict__)
    for m in spec["mutants"]:
        g.clear()
        g.update(snapshot)
        verdict = OtterVerdicts(m["question"], m["name"])
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(m["code"], f"<mutant {m['name']}>", "exec"), g)
        except Exception as e:  # noqa: BLE001 - the mutant cannot even be defined: caught, trivially
            verdict.error = f"the mutant's code raised {type(e).__name__}"
        else:
            verdict = _check(g, m["question"], m["name"])
        result["mutants"].append(verdict.__dict__)
    Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    os._exit(0)  # no interpreter teardown: torch's takes half a second
