"""Runs in: both the grader and the sandbox. The words of the sandbox protocol.

Every message between the grader (``sandbox_handle``) and the sandbox
(``sandbox_server``) is a ``wire`` frame: a JSON object plus binary blobs.
This module lists what those objects may say, and the one record of limits
that crosses at start-up.

Start-up (grader -> sandbox, once): ``{"cells": [{"index", "source"}],
"workdir", "user": {"uid", "gid"} | None, "limits": SandboxLimits}``.

Events (sandbox -> grader, while the notebook executes), the value of
``"event"``: see :class:`Event`. Then requests (grader -> sandbox), the
value of ``"op"``: see :class:`Op`; each is answered by ``{"ok": value,
"seconds"}`` or ``{"error": {"type", "message", "traceback"}, "seconds"}``.

The zygote's own socket (grader -> zygote) carries less: first
``{"preload": [...]}``, answered ``ready``; then one ``spawn`` per sandbox
with its three file descriptors (requests, replies, output), answered by
the sandbox's pid.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autograder.config import GradingConfig


class Event:
    """What the sandbox reports while it starts and executes the notebook."""

    STARTED = "started"  # jailed, limited, confined; "layers": [{"name", "active", "detail"}], each protection
    FATAL = "fatal"  # set-up failed before any student code ran; "error"
    CELL_START = "cell_start"  # "index": the cell about to run (its timeout starts)
    CELL_DONE = "cell_done"  # "index", "error" (or None), "seconds" in student code
    READY = "ready"  # the notebook has run; "names": the namespace's names and kinds


class Op:
    """The requests the grader sends once the notebook has run."""

    NAMES = "names"  # the namespace's names and their kinds
    GET = "get"  # the value of a variable ("name")
    CALL = "call"  # call a function or handle with "args"/"kwargs" (encoded values)
    GETATTR = "getattr"  # an attribute ("attr") of a handle or name
    GETITEM = "getitem"  # an item ("key") of a handle or name
    LEN = "len"  # len() of a handle or name
    LIST = "list"  # the items of an iterable handle or name
    IMPORT = "import"  # a module the student submitted ("module"), imported here: answered by a handle
    FORK_VARIANT = "fork_variant"  # diagnosis only: serve a fork with "code" (a mutant) executed in it
    BYE = "bye"  # stop serving (a forked variant ends; the parent serves again)


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandbox: built from the assignment's
    ``GradingConfig`` by :meth:`from_config` (the only construction path),
    and sent to the sandbox whole, as one record.

    Attributes:
        cell_timeout: wall-clock seconds per notebook cell (enforced by the grader).
        startup_timeout: seconds for the zygote and the sandbox to start.
        memory_mb: memory student code may allocate beyond the preloaded libraries.
        cpu_seconds: CPU seconds of the sandbox process in all.
        max_processes: processes the sandbox account may run (when dropped to it).
        max_file_mb: largest file student code may write.
        max_output_kb: printed output kept (enforced by the grader).
        preload: modules the zygote imports before forking sandboxes.
        hidden_packages: packages whose folders the jail hides.
        device: ``cpu`` or ``cuda``: where tensors sent to student code go.
    """

    cell_timeout: float = 60.0
    startup_timeout: float = 60.0
    memory_mb: int = 700
    cpu_seconds: int = 600
    max_processes: int = 64
    max_file_mb: int = 16
    max_output_kb: int = 64
    preload: tuple[str, ...] = ()
    hidden_packages: tuple[str, ...] = ()
    device: str = "cpu"

    @classmethod
    def from_config(cls, grading: GradingConfig, device: str = "cpu") -> "SandboxLimits":
        """The sandbox limits of an assignment's grading configuration."""
        return cls(cell_timeout=grading.cell_timeout, memory_mb=grading.memory_mb,
                   cpu_seconds=grading.cpu_seconds, max_processes=grading.max_processes,
                   max_file_mb=grading.max_file_mb, max_output_kb=grading.max_output_kb,
                   preload=tuple(grading.preload), hidden_packages=tuple(grading.hidden_packages),
                   device=device)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["preload"], d["hidden_packages"] = list(self.preload), list(self.hidden_packages)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SandboxLimits":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        for k in ("preload", "hidden_packages"):
            if k in values:
                values[k] = tuple(values[k])
        return cls(**values)
