"""Assignment configuration: every key declared once, with default and description.

The course-wide defaults live in ``otter_config.yml`` at the repository
root; each master notebook's ``# ASSIGNMENT CONFIG`` cell is merged over
them (the notebook's values win). A key that is not declared here fails
loudly, with the list of valid keys.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from autograder.errors import UserError

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")


class ConfigError(UserError):
    """A configuration value is missing, unknown or of the wrong type."""


def _key(default, doc: str):
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class GradingConfig:
    """Limits and behaviour of grading (``grading:`` in the config)."""

    question_timeout: float = _key(30.0, "wall-clock seconds for all tests of one question")
    cell_timeout: float = _key(60.0, "wall-clock seconds for one notebook cell while the notebook is executed")
    total_timeout: float = _key(540.0, "wall-clock seconds for one whole submission (under Gradescope's 600 s, "
                                       "with run_autograder's watchdog margin)")
    memory_mb: int = _key(700, "memory (MB) student code may allocate beyond the preloaded libraries")
    cpu_seconds: int = _key(600, "CPU seconds for the student process in all")
    max_processes: int = _key(64, "processes the sandbox user may run at once (only when the user is dropped)")
    max_file_mb: int = _key(16, "largest file student code may write (MB)")
    max_output_kb: int = _key(64, "printed output kept per submission (KB); the rest is dropped")
    sandbox_user: str = _key("sodl-student", "unprivileged account that runs student code when grading as root")
    hidden_packages: tuple = _key((), "packages whose files student code must not see (e.g. the reference library)")
    preload: tuple = _key(("numpy", "torch"),
                          "modules the zygote imports once for every sandbox, besides the answer key's own "
                          "top-level imports, which the build adds (others are imported lazily, read-only)")


@dataclass(frozen=True)
class AssignmentConfig:
    """One week's configuration (notebook values merged over course defaults)."""

    name: str = _key("", "assignment identifier, e.g. week01 (also the notebook's file name)")
    title: str = _key("", "human title of the week")
    init_cell: bool = _key(True, "add the `grader = otter.Notebook(...)` cell to the student notebook")
    check_all_cell: bool = _key(True, "add a `grader.check_all()` cell at the end")
    export_cell: bool = _key(False, "add otter's export cell (a zip of the notebook) at the end")
    requirements: tuple = _key((), "extra pip requirements for the Gradescope image")
    hidden_visibility: str = _key("after_published", "Gradescope visibility of hidden-test results: " + ", ".join(VISIBILITIES))
    show_stdout: bool = _key(False, "show students their notebook's printed output in the results")
    grading: GradingConfig = _key(GradingConfig(), "grading limits (see GradingConfig)")

    @classmethod
    def describe(cls) -> str:
        lines = []
        for f in fields(cls):
            lines.append(f"{f.name}: {f.metadata['doc']} (default {f.default!r})")
        for f in fields(GradingConfig):
            lines.append(f"grading.{f.name}: {f.metadata['doc']} (default {f.default!r})")
        return "\n".join(lines)


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(known)}")
    kwargs = {}
    for name, value in values.items():
        f = known[name]
        default = f.default
        if isinstance(default, GradingConfig):
            value = _build(GradingConfig, value, f"{where} grading")
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: {name} must be true or false")
        elif isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}: {name} must be a number")
            value = type(default)(value)
        elif isinstance(default, tuple):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where}: {name} must be a list")
            value = tuple(value)
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise ConfigError(f"{where}: {name} must be a string")
        kwargs[name] = value
    obj = cls(**kwargs)
    if isinstance(obj, AssignmentConfig) and obj.hidden_visibility not in VISIBILITIES:
        raise ConfigError(f"{where}: hidden_visibility must be one of {', '.join(VISIBILITIES)}")
    return obj


def merge(base: dict, over: dict) -> dict:
    """Deep merge: values of ``over`` win; nested mappings are merged."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_course_defaults(path: Path) -> dict:
    """Read ``otter_config.yml`` (a missing file means no course defaults)."""
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys")
    _build(AssignmentConfig, data, str(path))  # validate early
    return data


def assignment_config(course_defaults: dict, notebook_values: dict, where: str) -> AssignmentConfig:
    """The effective config of one week."""
    return _build(AssignmentConfig, merge(course_defaults, notebook_values), where)
