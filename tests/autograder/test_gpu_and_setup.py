"""The GPU path: same grade on CUDA as on CPU; setup.sh picks the torch build by GPU presence."""
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from autograder.grade import grade_cells
from autograder.package import load_zip
from autograder.submission import grading_cells

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.cuda
def test_same_grade_on_cuda_as_on_cpu(toy_zip, key_notebook):
    packaged = load_zip(toy_zip)
    cells = grading_cells(key_notebook) + ["def mean(x):\n    return float(np.sum(x))"]
    cpu = grade_cells(packaged, cells, "cpu")
    gpu = grade_cells(packaged, cells, "gpu", device="cuda")
    assert [q.score for q in gpu.questions] == [q.score for q in cpu.questions]


def _fake_python(tmp_path: Path) -> Path:
    """A stand-in for python3 whose venv's pip records what it is asked to install."""
    log = tmp_path / "pip.log"
    fake = tmp_path / "python3"
    fake.write_text(f"""#!/usr/bin/env bash
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  printf '#!/usr/bin/env bash\\necho "$@" >> {log}\\n' > "$3/bin/pip"
  chmod +x "$3/bin/pip"
fi
""")
    fake.chmod(0o755)
    return log


@pytest.mark.parametrize("gpu", [False, True])
def test_setup_sh_chooses_torch_build_by_gpu(toy_zip, tmp_path, gpu):
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    zipfile.ZipFile(toy_zip).extractall(root / "source")
    log = _fake_python(tmp_path)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    if gpu:
        (bindir / "nvidia-smi").write_text("#!/usr/bin/env bash\nexit 0\n")
        (bindir / "nvidia-smi").chmod(0o755)
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), SODL_SETUP_PYTHON=str(tmp_path / "python3"),
               PATH=f"{bindir}:/usr/bin:/bin")
    done = subprocess.run(["bash", str(root / "source" / "setup.sh")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    torch_call = next(c for c in calls if "torch==" in c)
    assert ("download.pytorch.org/whl/cpu" in torch_call) is (not gpu)
    assert any("-r" in c and "requirements.txt" in c for c in calls)
    assert any("--target" in c and ".whl" in c for c in calls)


def test_dockerfiles_reproduce_the_autograder_layout():
    for name in ("Dockerfile", "Dockerfile.gpu"):
        text = (ROOT / "autograder" / "docker" / name).read_text()
        assert "/autograder/source" in text and "setup.sh" in text and "run_autograder" in text
    assert "nvidia/cuda" in (ROOT / "autograder" / "docker" / "Dockerfile.gpu").read_text()


@pytest.mark.timeout(600)
def test_real_setup_sh_then_run_autograder(toy_zip, toy_built, tmp_path):
    """`sodl gradescope --setup`: the zip's own setup.sh makes a fresh venv
    (pip only), installs the course wheel where students cannot read it, and
    run_autograder grades with that venv."""
    import json
    import sys

    out = subprocess.run([sys.executable, "-m", "autograder", "gradescope", "--zip", str(toy_zip),
                          "--submission", str(toy_built["samples"] / "correct"), "--root", str(tmp_path),
                          "--setup"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    ag = tmp_path / "autograder"
    assert (ag / "sodl-venv" / "bin" / "python").exists()
    assert (ag / "source" / "lib" / "sodl_ref").is_dir()
    assert oct((ag / "source").stat().st_mode)[-3:] == "700"
    assert json.loads((ag / "results" / "results.json").read_text())["score"] == 3.0
