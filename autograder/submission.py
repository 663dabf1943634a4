"""A submission as the grader reads it: the notebook found in what the
student sent, its graded cells, their content hash and the seed of the
grading inputs. Plain data only: no sandbox, no tests."""
from __future__ import annotations

import ast
import errno
import hashlib
import io
import json
import os
import stat
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from autograder.records import Assignment

# Reading and parsing a notebook takes about three times its size in the
# grader: 128 MB keeps the largest within Gradescope's smallest (768 MB) machine.
MAX_NOTEBOOK_BYTES = 128 << 20
IGNORE_TAG = "otter_ignore"


class SubmissionError(Exception):
    """The submission cannot be graded at all; the message says what to fix."""


MAX_SUBMISSION_ENTRIES = 10_000


def _regular_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The regular files of a submission folder (not below hidden folders),
    and a note per entry that is not read. Nothing is followed: a symbolic
    link, to a file or a folder, would make the grader (root) read whatever
    it points to (another student's notebook, the hidden tests); a FIFO
    would block the read; a device is not a file. Hard links are checked
    when the file is opened (:func:`read_submission_file`)."""
    files, notes = [], []
    seen = 0
    for top, dirs, names in os.walk(folder, followlinks=False):
        links = sorted(d for d in dirs if os.path.islink(os.path.join(top, d)))
        notes += [f"{Path(top, d).relative_to(folder)} is a symbolic link to a folder: links are not followed, "
                  "it was not read. Submit the files themselves." for d in links]
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in links)
        for name in sorted(names):
            seen += 1
            if seen > MAX_SUBMISSION_ENTRIES:
                notes.append(f"Your submission holds more than {MAX_SUBMISSION_ENTRIES} files; the rest were "
                             "not looked at.")
                return files, notes
            p = Path(top) / name
            try:
                mode = p.lstat().st_mode
            except OSError:
                continue
            rel = p.relative_to(folder)
            if stat.S_ISLNK(mode):
                notes.append(f"{rel} is a symbolic link: links are not followed, it was not read. "
                             "Submit the file itself.")
            elif not stat.S_ISREG(mode):
                notes.append(f"{rel} is not a regular file (a pipe, socket or device): it was not read.")
            elif not name.startswith("."):
                files.append(p)
    return files, notes


def find_notebook(path: Path, assignment: Assignment) -> tuple[Path, list[str]]:
    """The file to grade in a submission (a notebook, or a folder holding
    one), and notes for the student. Only regular files are considered."""
    notes = []
    if path.is_dir() and not path.is_symlink():
        files, notes = _regular_files(path)
        nbs = [p for p in files if p.suffix == ".ipynb" and ".ipynb_checkpoints" not in p.parts]
        if not nbs:
            pys = [p for p in files if p.suffix == ".py"]
            if len(pys) == 1:
                notes.append(f"You submitted {pys[0].name}, not a notebook: it was graded as one code cell. "
                             f"Submit {assignment.notebook_name} next time.")
                return pys[0], notes
            names = ", ".join(p.name for p in files[:5]) or "nothing"
            raise SubmissionError(" ".join(notes + [f"No notebook found in your submission (it holds: {names}). "
                                                    f"Submit {assignment.notebook_name}."]))
        if len(nbs) > 1:
            named = [p for p in nbs if p.name == assignment.notebook_name]
            chosen = named[0] if named else nbs[0]
            notes.append(f"Your submission holds {len(nbs)} notebooks; {chosen.name} was graded. "
                         "Submit only one.")
            return chosen, notes
        path = nbs[0]
    if not path.exists() and not path.is_symlink():
        raise SubmissionError(f"{path.name}: file not found")
    if path.suffix != ".ipynb" and path.suffix == ".py":
        notes.append(f"{path.name} is not a notebook: it was graded as one code cell.")
    elif path.name != assignment.notebook_name:
        notes.append(f"Your notebook is named {path.name}; expected {assignment.notebook_name} (graded anyway).")
    return path, notes


MAX_ZIP_MEMBERS = 1000
MAX_ZIP_DEPTH = 16


@contextmanager
def unpacked(path: Path):
    """The submission folder to grade, and notes for the student: ``path``
    itself, or, when it holds no notebook but one zip (what otter's
    ``grader.export()`` writes, and what students upload to Gradescope), a
    private temporary folder holding that zip's files, removed on exit.

    The zip is read as every submitted file is (:func:`read_submission_file`),
    then unpacked by this process alone: members are written as new regular
    files (never links, whatever the zip's attributes say) under names that
    stay inside the folder (no absolute paths, no ``..``, nothing hidden, at
    most ``MAX_ZIP_DEPTH`` folders deep), at most ``MAX_ZIP_MEMBERS`` of them
    and ``MAX_NOTEBOOK_BYTES`` in all, counted as they are decompressed (a
    zip bomb stops at the limit)."""
    if not path.is_dir() or path.is_symlink():
        yield path, []
        return
    files, _ = _regular_files(path)
    zips = [p for p in files if p.suffix == ".zip"]
    if any(p.suffix in (".ipynb", ".py") for p in files) or len(zips) != 1:
        yield path, []
        return
    with tempfile.TemporaryDirectory(prefix="sodl-export-") as tmp:
        _unzip(read_submission_file(zips[0]), zips[0].name, Path(tmp))  # the raw bytes freed once unpacked
        yield Path(tmp), [f"Your submission is a zip ({zips[0].name}, as otter's export writes): "
                          "the notebook in it was graded."]


def _unzip(raw: bytes, name: str, into: Path) -> None:
    """Unpack ``raw`` into ``into`` within the limits :func:`unpacked`
    states. Bounded before zipfile parses anything: zipfile builds a record
    per central-directory entry, so entries are counted by their signature
    first; only stored and deflated members (what otter's export writes)
    are read, as zipfile caps a deflated member's output per read but
    inflates a bzip2 or lzma chunk whole (a few hundred bytes could become
    gigabytes before the budget is checked); folders nest at most
    ``MAX_ZIP_DEPTH`` deep (os.walk and rmtree recurse)."""
    budget = MAX_NOTEBOOK_BYTES
    if raw.count(b"PK\x01\x02") > MAX_ZIP_MEMBERS:  # an upper bound on the entries zipfile would parse
        raise SubmissionError(f"{name} holds more than {MAX_ZIP_MEMBERS} files: submit the notebook itself.")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            odd = sorted({m.compress_type for m in members} - {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
            if odd:
                raise SubmissionError(f"{name} uses a compression otter's export does not (method {odd[0]}): "
                                      "export the notebook again, or submit it itself.")
            for m in members:
                parts = PurePosixPath(m.filename.replace("\\", "/")).parts
                if not parts or m.filename.startswith("/") or len(parts) > MAX_ZIP_DEPTH or any(
                        p in ("", ".", "..") or p.startswith(".") or p == "__MACOSX" for p in parts):
                    continue
                target = into.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                with os.fdopen(fd, "wb") as out, zf.open(m) as src:
                    while chunk := src.read(min(1 << 20, budget + 1)):
                        budget -= len(chunk)
                        if budget < 0:
                            raise SubmissionError(f"{name} unpacks to more than {MAX_NOTEBOOK_BYTES >> 20} MB: "
                                                  "clear the notebook's outputs and export again.")
                        out.write(chunk)
    except SubmissionError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, ValueError, OSError,
            EOFError, zlib.error) as e:
        raise SubmissionError(f"{name} could not be unpacked ({type(e).__name__}): submit the notebook itself, "
                              "or export it again.") from None


MAX_STUDENT_FILE_BYTES = 8 << 20


def read_student_files(folder: Path | None, wanted: tuple[str, ...]) -> tuple[list[tuple[str, bytes]], list[str]]:
    """The files an otter assignment asks the student to submit beside the
    notebook (``student_files``, names from the packaged assignment, never
    from the submission), read from the submission folder as the notebook
    is (found by :func:`_regular_files`, so no link is followed; read by
    :func:`read_submission_file`, at most ``MAX_STUDENT_FILE_BYTES`` each),
    and a note per file missing or refused (all are missing when the
    submission is a notebook alone, ``folder`` None). They are only ever written
    into the sandbox (``otter_runtime.runtime_cells``)."""
    if not wanted:
        return [], []
    present = {str(p.relative_to(folder)): p for p in _regular_files(folder)[0]} if folder else {}
    found, notes = [], []
    for rel in wanted:
        if rel not in present:
            notes.append(f"Your submission has no {rel}: submit it beside your notebook (otter's export cell puts "
                         "it in the zip); the tests that use it fail without it.")
            continue
        try:
            found.append((rel, read_submission_file(present[rel], MAX_STUDENT_FILE_BYTES)))
        except SubmissionError as e:
            notes.append(f"{e} The tests that use {rel} fail without it.")
    return found, notes


def read_submission_file(path: Path, limit: int = MAX_NOTEBOOK_BYTES) -> bytes:
    """The bytes of one submitted file, read only if it is what it claims.

    Opened with ``O_NOFOLLOW`` (a link swapped in after the folder was
    listed is refused, not followed) and ``O_NONBLOCK`` (a FIFO cannot
    block the grader), then checked on the open descriptor (``fstat``, so
    nothing can change between check and read): a regular file, with one
    name (a hard link to a file elsewhere, such as another student's
    notebook, has ``st_nlink`` > 1), at most ``limit`` bytes; and never
    more than ``limit`` bytes are read, whatever the file grows to.
    SubmissionError says what to fix. A hard link has no direction: when
    staff unpack a class with hard links (``cp -al``), every linked
    notebook is refused, and the message says to submit a copy."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SubmissionError(f"{path.name} is a symbolic link: links are not followed. "
                                  "Submit the file itself.") from None
        raise SubmissionError(f"{path.name} could not be read ({e.strerror}).") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SubmissionError(f"{path.name} is not a regular file (a pipe, socket, device or folder): "
                                  "submit the notebook file itself.")
        if st.st_nlink > 1:
            raise SubmissionError(f"{path.name} is a hard link to another file: it was not read. "
                                  "Submit a copy of the notebook itself.")
        if st.st_size > limit:
            raise SubmissionError(f"{path.name} is {st.st_size >> 20} MB; the limit is {limit >> 20} MB. "
                                  "Clear the outputs (Kernel > Restart & Clear Output) and submit again.")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise SubmissionError(f"{path.name} grew past the limit of {limit >> 20} MB while it was read. "
                                  "Clear the outputs (Kernel > Restart & Clear Output) and submit again.")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_cells(path: Path) -> list[str]:
    """The graded code of a submission file; SubmissionError if unreadable."""
    raw = read_submission_file(path)
    if path.suffix == ".py":
        return [raw.decode("utf-8", "replace")]
    try:
        nb = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: JSON nested too deeply
        raise SubmissionError(f"{path.name} is not a valid notebook (it is not JSON). Download your "
                              "notebook again from Jupyter (File > Download .ipynb) and resubmit.") from None
    if not isinstance(nb, dict):
        raise SubmissionError(f"{path.name} is not a valid notebook (expected a JSON object).")
    if "worksheets" in nb and "cells" not in nb:  # nbformat 3
        cells = []
        for ws in nb.get("worksheets") or []:
            for c in (ws.get("cells") or []) if isinstance(ws, dict) else []:
                if isinstance(c, dict):
                    c = dict(c, source=c.get("input", ""))
                    cells.append(c)
        nb = {"cells": cells}
    if not isinstance(nb.get("cells"), list):
        raise SubmissionError(f"{path.name} is not a valid notebook (no list of cells).")
    # JSON may escape a lone surrogate ("\\ud800"), which no UTF-8 encoding
    # takes: the cells are hashed, seeded and sent as UTF-8, and one in a
    # comment made a grader failure of a correct notebook. U+FFFD instead.
    return [c.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for c in grading_cells(nb)]


def content_hash(cells: list[str]) -> str:
    """Hash of a submission's graded code (whitespace at line ends ignored)."""
    norm = "\0".join("\n".join(line.rstrip() for line in c.strip().splitlines()) for c in cells)
    return hashlib.sha256(norm.encode()).hexdigest()[:16]


def submission_seed(cells: list[str]) -> int:
    """Seed of a submission's grading inputs: from its content, so regrades agree."""
    return int.from_bytes(hashlib.sha256("\0".join(cells).encode()).digest()[:4], "big")


def submission_name(path: Path) -> str:
    return path.name if path.is_dir() else path.stem


def grading_cells(nb: dict) -> list[str]:
    """The code a submission contributes to grading: its code cells without
    the ``otter_ignore`` tag, in order. ``nb`` is a loosely validated
    notebook dict (whatever the student sent)."""
    out = []
    for cell in nb.get("cells", []):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        tags = meta.get("tags") if isinstance(meta.get("tags"), list) else []
        if IGNORE_TAG in tags:
            continue
        src = cell.get("source", "")
        if isinstance(src, list):
            src = "".join(s for s in src if isinstance(s, str))
        if isinstance(src, str) and src.strip():
            out.append(src)
    return out


def top_level_imports(cells: list[str]) -> list[str]:
    """Modules the cells import at their top level, in order of first
    appearance: ``import a.b`` gives ``a.b``; ``from a import b`` gives ``a``
    and ``a.b`` (which may not be a module; the zygote skips what it cannot
    import). Relative imports and cells that do not parse are skipped
    (magics are not Python: they are read as the sandbox runs them)."""
    found: dict[str, None] = {}
    for src in cells:
        try:
            tree = ast.parse(strip_magics(src))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                found.update(dict.fromkeys(alias.name for alias in node.names))
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found[node.module] = None
                found.update(dict.fromkeys(f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*"))
    return list(found)


def strip_magics(source: str) -> str:
    """Replace IPython magics and shell escapes by ``pass`` (same indentation):
    what the sandbox executes of a cell, and what the build reads of the
    answer key (``names``: ``import pandas as pd`` beside ``%matplotlib
    inline`` is still an import)."""
    out = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            out.append(line[: len(line) - len(stripped)] + "pass  # magic removed")
        else:
            out.append(line)
    return "\n".join(out)
