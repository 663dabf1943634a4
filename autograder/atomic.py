"""Writing a file so that a reader never sees it half-written.

Every output a grader or a batch reads back (``results.json``, the
gradebook, feedback) goes through :func:`write_atomic`: a temporary file in
the same folder, flushed to disk, then renamed over the target.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (fsync before the rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json_atomic(path: Path, data: dict) -> None:
    """:func:`write_atomic` of ``data`` as indented JSON."""
    write_atomic(path, json.dumps(data, indent=1))
