"""The Gradescope zip and a local reproduction of Gradescope's layout.

The zip holds ``setup.sh`` and ``run_autograder`` at its root, pinned
``requirements.txt``, the course wheel (``autograder`` + ``sodl_ref``) and
``sodl-assignment.json`` (questions, tests, limits). ``reproduce`` lays it
out as Gradescope does (``autograder/{source,submission,results}``,
``submission_metadata.json``) and runs it.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from importlib import resources
from pathlib import Path

from autograder.package import ASSIGNMENT_FILE, PackagedAssignment

TORCH_VERSION = "2.13.0"
REQUIREMENTS = """\
# Pinned for the Gradescope image (torch is installed first by setup.sh).
numpy>=1.26,<3
scipy>=1.11
scikit-learn>=1.4
matplotlib>=3.8
nbformat>=5.9
pyyaml>=6
tqdm>=4.66
"""


def _template(name: str) -> str:
    return resources.files("autograder").joinpath("templates", name).read_text()


def write_zip(path: Path, packaged: PackagedAssignment, wheel: Path, extra_requirements=()) -> Path:
    """Write the autograder zip; deterministic entry order and timestamps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    reqs = REQUIREMENTS + "".join(f"{r}\n" for r in extra_requirements)
    entries = [
        ("setup.sh", _template("setup.sh").replace("__TORCH_VERSION__", TORCH_VERSION).encode(), 0o755),
        ("run_autograder", _template("run_autograder").encode(), 0o755),
        ("requirements.txt", reqs.encode(), 0o644),
        (ASSIGNMENT_FILE, packaged.to_json(), 0o644),
        (wheel.name, wheel.read_bytes(), 0o644),
    ]
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    os.replace(tmp, path)
    return path


def build_wheel(out: Path) -> Path:
    """The course wheel (``sodl``: ``autograder`` and ``sodl_ref``), built
    offline from the source checkout this package was loaded from."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").exists():
        raise FileNotFoundError(f"building a zip needs the sodl source checkout (no pyproject.toml in {root})")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("sodl-*.whl"):
        old.unlink()
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(out), str(root)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building the sodl wheel failed:\n{done.stderr[-2000:]}")
    wheels = sorted(out.glob("sodl-*.whl"))
    if not wheels:
        raise RuntimeError("building the sodl wheel produced nothing")
    return wheels[-1]


def submission_metadata(name: str) -> dict:
    """A minimal ``submission_metadata.json`` in Gradescope's shape."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    return {"id": 1, "created_at": now, "assignment": {"title": name, "due_date": None},
            "users": [{"email": "student@example.edu", "id": 1, "name": "Sample Student"}],
            "previous_submissions": []}


def reproduce(zip_path: Path, submission: Path, root: Path, setup: bool = False,
              wheelhouse: Path | None = None) -> Path:
    """Lay out ``root/autograder`` as Gradescope does, run it, return results.json's path."""
    ag = root / "autograder"
    if ag.exists():
        shutil.rmtree(ag)
    for d in ("source", "submission", "results"):
        (ag / d).mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(ag / "source")
    for name in ("setup.sh", "run_autograder"):
        os.chmod(ag / "source" / name, 0o755)
    shutil.copy(ag / "source" / "run_autograder", ag / "run_autograder")
    if submission.is_dir():
        shutil.copytree(submission, ag / "submission", symlinks=True, dirs_exist_ok=True)  # links stay links, as unzip leaves them
    else:
        shutil.copy(submission, ag / "submission" / submission.name)
    (ag / "submission_metadata.json").write_text(json.dumps(submission_metadata(submission.name), indent=1))
    env = dict(os.environ, AUTOGRADER_ROOT=str(ag))
    if setup:
        if wheelhouse is not None:
            env["SODL_WHEELHOUSE"] = str(wheelhouse)
        subprocess.run(["bash", str(ag / "source" / "setup.sh")], check=True, env=env, cwd=ag / "source")
    else:
        env["SODL_PYTHON"] = sys.executable  # grade with the current environment
    subprocess.run(["bash", str(ag / "run_autograder")], env=env, cwd=ag, check=False)
    return ag / "results" / "results.json"
