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
