"""The README's SLURM script is the one `make test-cluster` submits, and the shell scripts parse."""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SBATCH = ROOT / "scripts" / "grade-array.sbatch"


def test_readme_cluster_section_shows_the_submitted_script_verbatim():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("**A cluster.**"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    assert block == SBATCH.read_text()


def test_sbatch_directives_come_before_the_first_command():
    """sbatch stops reading #SBATCH lines at the first command."""
    lines = SBATCH.read_text().splitlines()[1:]
    first_command = next(i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#"))
    assert all(not ln.startswith("#SBATCH") for ln in lines[first_command:])
    assert any(ln.startswith("#SBATCH --array=") for ln in lines[:first_command])


@pytest.mark.parametrize("script", ["grade-array.sbatch", "slurm-local.sh"])
def test_shell_scripts_parse(script):
    done = subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
