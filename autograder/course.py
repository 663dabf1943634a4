"""The course on disk: which weeks exist and where their files are."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from autograder.config import AssignmentConfig, assignment_config, load_course_defaults
from autograder.errors import UserError
from autograder.master import Master, parse_master

WEEK_DIR = re.compile(r"^(week\d\d)-([a-z0-9-]+)$")


@dataclass(frozen=True)
class Week:
    """One week's files.

    Attributes:
        name: ``weekNN``.
        slug: the folder name, ``weekNN-topic``.
        root: the repository root.
    """

    name: str
    slug: str
    root: Path

    @property
    def master_path(self) -> Path:
        return self.root / "solutions" / self.slug / f"{self.name}.ipynb"

    @property
    def mutants_path(self) -> Path:
        return self.root / "solutions" / self.slug / "mutants.yml"

    @property
    def student_path(self) -> Path:
        return self.root / "assignments" / self.slug / f"{self.name}.ipynb"

    def load(self) -> tuple[Master, AssignmentConfig]:
        master = parse_master(self.master_path)
        defaults = load_course_defaults(self.root / "otter_config.yml")
        config = assignment_config(defaults, master.config, str(self.master_path))
        if config.name != self.name:
            raise UserError(f"{self.master_path}: config name {config.name!r} should be {self.name!r}")
        return master, config


def find_root(start: Path | None = None) -> Path:
    """The repository root: the nearest folder up holding ``solutions/``."""
    here = (start or Path.cwd()).resolve()
    for p in [here, *here.parents]:
        if (p / "solutions").is_dir() and (p / "otter_config.yml").exists():
            return p
    raise FileNotFoundError("not inside a course checkout (no solutions/ and otter_config.yml found)")


def weeks(root: Path) -> list[Week]:
    """Every week with a master notebook, in order."""
    out = []
    for d in sorted((root / "solutions").iterdir()):
        m = WEEK_DIR.match(d.name)
        if m and (d / f"{m.group(1)}.ipynb").exists():
            out.append(Week(m.group(1), d.name, root))
    return out


def select(root: Path, names: list[str], all_weeks: bool) -> list[Week]:
    """Weeks named on the command line (``week01`` or ``1``), or all."""
    available = weeks(root)
    if all_weeks or not names:
        return available
    by_name = {w.name: w for w in available}
    chosen = []
    for n in names:
        key = f"week{int(n):02d}" if n.isdigit() else n
        if key not in by_name:
            raise UserError(f"no week {n!r}; available: {', '.join(by_name) or 'none'}")
        chosen.append(by_name[key])
    return chosen
