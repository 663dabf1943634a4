"""Leaving a command quickly.

With torch imported, Python's interpreter teardown (freeing every module's
objects, then a final garbage collection) takes about half a second: as long
as grading one submission. Commands that are done call :func:`exit_now`.
"""
from __future__ import annotations

import atexit
import os
import sys


def exit_now(code: int) -> None:
    """Run the atexit handlers (the zygotes' clean-up among them), flush the
    standard streams, and end the process with ``code``, skipping teardown."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1
    os._exit(code)
