"""Reading a submitted file (``submission.read_submission_file``): what is
too big is refused with what to do, before it is read."""
import os

import pytest

from autograder.submission import MAX_NOTEBOOK_BYTES, SubmissionError, read_submission_file


def test_a_notebook_past_the_limit_is_refused_with_the_fix(tmp_path):
    big = tmp_path / "week01.ipynb"
    with open(big, "wb") as f:  # sparse: costs no disk
        f.truncate(MAX_NOTEBOOK_BYTES + 1)
    with pytest.raises(SubmissionError, match=r"the limit is 128 MB\. Clear the outputs"):
        read_submission_file(big)


def test_a_notebook_at_the_limit_is_read(tmp_path):
    path = tmp_path / "week01.ipynb"
    path.write_bytes(b"x" * 4096)
    assert read_submission_file(path, limit=4096) == b"x" * 4096
    with pytest.raises(SubmissionError, match="limit"):
        read_submission_file(path, limit=4095)


def test_a_link_is_not_followed(tmp_path):
    (tmp_path / "other.ipynb").write_text("{}")
    os.symlink(tmp_path / "other.ipynb", tmp_path / "week01.ipynb")
    with pytest.raises(SubmissionError, match="symbolic link"):
        read_submission_file(tmp_path / "week01.ipynb")


def _zip(path, members: dict[str, bytes], method=None):
    import zipfile

    with zipfile.ZipFile(path, "w", method or zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_otters_export_zip_is_unpacked_into_a_private_folder(tmp_path):
    from autograder.submission import unpacked

    (tmp_path / "sub").mkdir()
    _zip(tmp_path / "sub" / "hw01_2026.zip", {"hw01.ipynb": b"{}", "student_file.py": b"X = 1",
                                                "../escape.py": b"no", "/abs.py": b"no", ".hidden": b"no",
                                                "__MACOSX/hw01.ipynb": b"no"})
    with unpacked(tmp_path / "sub") as (folder, notes):
        assert sorted(p.name for p in folder.iterdir()) == ["hw01.ipynb", "student_file.py"]
        assert (folder / "student_file.py").read_bytes() == b"X = 1" and "zip" in notes[0]
    assert not folder.exists() and not (tmp_path / "escape.py").exists()


def test_a_zip_bomb_stops_at_the_limit(tmp_path, monkeypatch):
    from autograder import submission

    monkeypatch.setattr(submission, "MAX_NOTEBOOK_BYTES", 1 << 20)
    (tmp_path / "sub").mkdir()
    _zip(tmp_path / "sub" / "export.zip", {"hw01.ipynb": b"\0" * (8 << 20)})  # 8 MB of zeros, a few KB zipped
    with pytest.raises(SubmissionError, match="unpacks to more than 1 MB"):
        with submission.unpacked(tmp_path / "sub"):
            pass


def test_a_broken_zip_is_named_and_a_notebook_beside_a_zip_wins(tmp_path):
    from autograder.submission import unpacked

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "export.zip").write_bytes(b"PK not really")
    with pytest.raises(SubmissionError, match="could not be unpacked"):
        with unpacked(tmp_path / "sub"):
            pass
    (tmp_path / "sub" / "hw01.ipynb").write_text("{}")
    with unpacked(tmp_path / "sub") as (folder, notes):
        assert folder == tmp_path / "sub" and notes == []


def test_a_zip_is_bounded_before_it_is_decompressed(tmp_path):
    """bzip2 and lzma members are refused (zipfile inflates their chunks
    whole: 242 bytes of bzip2 hold 300 MB), entries are counted before
    zipfile parses them, and folders nest only so deep."""
    import zipfile

    from autograder.submission import MAX_ZIP_DEPTH, MAX_ZIP_MEMBERS, unpacked

    cases = {"bzip2": ({"hw01.ipynb": b"{}"}, zipfile.ZIP_BZIP2, "compression"),
             "many": ({f"f{i}.py": b"" for i in range(MAX_ZIP_MEMBERS + 1)}, None, "more than 1000 files")}
    for label, (members, method, message) in cases.items():
        (tmp_path / label).mkdir()
        _zip(tmp_path / label / "export.zip", members, method)
        with pytest.raises(SubmissionError, match=message):
            with unpacked(tmp_path / label):
                pass
    (tmp_path / "deep").mkdir()
    _zip(tmp_path / "deep" / "export.zip", {"a/" * MAX_ZIP_DEPTH + "f.py": b"", "hw01.ipynb": b"{}"})
    with unpacked(tmp_path / "deep") as (folder, _):
        assert [p.name for p in folder.rglob("*") if p.is_file()] == ["hw01.ipynb"]
