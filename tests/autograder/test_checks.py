"""The comparison helpers hidden tests use (``autograder.checks``): what a
student is told, and that wrong answers never pass."""
import numpy as np
import pytest
import torch

from autograder.checks import CheckFailed, expect_close, expect_equal, expect_true


def test_close_values_pass_and_wrong_values_fail_without_revealing_them():
    x = np.linspace(0.1, 1, 5)
    expect_close(x * (1 + 1e-12), x, rtol=1e-10)
    with pytest.raises(CheckFailed) as e:
        expect_close(x + 0.5, x, what="the loss")
    assert "values are wrong" in str(e.value) and "agrees" not in str(e.value)
    assert "0.35" not in str(e.value)  # no expected entry is printed


def test_a_precision_loss_is_told_as_one():
    """issue 15, point 4: an exact formula that loses precision is not 'a wrong formula'."""
    x = np.linspace(0.1, 1, 5)
    with pytest.raises(CheckFailed) as e:
        expect_close(x * (1 + 4e-9), x, rtol=1e-12, atol=0)
    msg = str(e.value)
    assert "values are wrong" in msg and "agrees to 4e-09 relative" in msg and "1e-12" in msg


def test_a_near_miss_hint_needs_every_entry_close():
    x = np.linspace(0.1, 1, 5)
    y = x * (1 + 4e-9)
    y[2] = 7.0
    with pytest.raises(CheckFailed) as e:
        expect_close(y, x, rtol=1e-12, atol=0)
    assert "agrees" not in str(e.value)
    y[2] = np.nan
    with pytest.raises(CheckFailed) as e:
        expect_close(y, x, rtol=1e-12, atol=0)
    assert "NaN" in str(e.value)


def test_types_are_checked_before_values():
    with pytest.raises(CheckFailed, match="did you return"):
        expect_close(None, 1.0)
    with pytest.raises(CheckFailed, match="shape"):
        expect_close(torch.zeros(3), np.zeros(4))
    with pytest.raises(CheckFailed, match="integer"):
        expect_equal("3", 3)
    with pytest.raises(CheckFailed):
        expect_true(1, "must be the genuine True")
    expect_true(torch.tensor(True), "a boolean tensor is a truth value")
