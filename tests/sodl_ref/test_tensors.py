"""Tests of sodl_ref.tensors: dtype, device and sharing rules of the input conversion every reference module uses."""

import numpy as np
import pytest
import torch

from sodl_ref.tensors import as_float64, as_long


@pytest.mark.parametrize("x, expected", [
    (3, 3.0),
    (0.1, 0.1),
    (True, 1.0),
    (np.float32(0.5), 0.5),
    ([1, 2.5], [1.0, 2.5]),
    ((1, 2), [1.0, 2.0]),
    ([[1, 2], [3, 4]], [[1.0, 2.0], [3.0, 4.0]]),
    (np.arange(3), [0.0, 1.0, 2.0]),
    (np.arange(3, dtype=np.float32), [0.0, 1.0, 2.0]),
    (torch.arange(3), [0.0, 1.0, 2.0]),
    (torch.ones(2, dtype=torch.float32), [1.0, 1.0]),
])
def test_as_float64_gives_float64_for_numbers_lists_arrays_and_tensors(x, expected):
    y = as_float64(x)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float64
    assert y.tolist() == expected


def test_as_float64_of_a_number_is_0d():
    assert as_float64(2).shape == ()


def test_as_float64_returns_a_float64_tensor_itself():
    """No copy: callers that need one (in-place loops) call .clone() themselves."""
    x = torch.randn(3, dtype=torch.float64)
    assert as_float64(x) is x
    assert as_float64(x, like=torch.zeros(1)) is x
    assert as_float64(x, device="cpu") is x


def test_as_float64_shares_memory_with_a_float64_array():
    a = np.arange(4.0)
    y = as_float64(a)
    a[0] = 7.0
    assert y[0].item() == 7.0


def test_as_float64_copies_an_array_it_must_cast():
    a = np.arange(4, dtype=np.float32)
    y = as_float64(a)
    a[0] = 7.0
    assert y[0].item() == 0.0


def test_as_float64_accepts_reversed_views_of_non_float64_arrays():
    """numpy does the cast, so negative strides (which torch.as_tensor rejects) are fine."""
    assert as_float64(np.arange(4)[::-1]).tolist() == [3.0, 2.0, 1.0, 0.0]
    assert as_float64(np.arange(4, dtype=np.float32)[::-1]).tolist() == [3.0, 2.0, 1.0, 0.0]


def test_as_float64_keeps_autograd_compare_with_torch():
    """Not detached: the gradient through the cast is the one torch gives for x.double()."""
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    (as_float64(x) ** 2).sum().backward()
    assert x.grad.tolist() == [2.0, -4.0]


def test_as_float64_keeps_a_tensors_device_when_none_is_given():
    meta = torch.ones(2, device="meta")
    assert as_float64(meta).device.type == "meta"
    assert as_float64(meta, like=None).device.type == "meta"


def test_as_float64_device_and_like_place_non_tensors_and_move_tensors():
    """The meta device stands in for a GPU here; the cuda test below covers a real one."""
    meta = torch.ones(2, device="meta")
    assert as_float64([1.0, 2.0], device="meta").device.type == "meta"
    assert as_float64([1.0, 2.0], like=meta).device.type == "meta"
    assert as_float64(np.ones(2), like=meta).device.type == "meta"
    assert as_float64(torch.ones(2), like=meta).device.type == "meta"
    assert as_float64(torch.ones(2), device="meta").device.type == "meta"


def test_as_float64_rejects_both_device_and_like():
    with pytest.raises(ValueError, match="device or like"):
        as_float64(1.0, device="cpu", like=torch.ones(1))


def test_like_is_keyword_only():
    """A tensor passed positionally would be taken for a device; refuse it outright."""
    with pytest.raises(TypeError):
        as_float64(1.0, None, torch.ones(1))


@pytest.mark.parametrize("x", [[3, 1, 2], (3, 1, 2), np.array([3, 1, 2], dtype=np.int32), torch.tensor([3, 1, 2])])
def test_as_long_gives_int64(x):
    y = as_long(x)
    assert y.dtype == torch.int64 and y.tolist() == [3, 1, 2]


def test_as_long_truncates_floats_toward_zero_compare_with_torch():
    values = [1.7, -1.7, 2.0]
    expected = torch.tensor(values).to(torch.int64).tolist()
    assert expected == [1, -1, 2]
    assert as_long(values).tolist() == expected
    assert as_long(np.array(values)).tolist() == expected


def test_as_long_follows_the_same_device_rule():
    ids = torch.tensor([0, 1])
    assert as_long(ids) is ids
    meta = torch.ones(1, device="meta")
    assert as_long([0, 1], like=meta).device.type == "meta"
    assert as_long(ids, device="meta").device.type == "meta"


@pytest.mark.cuda
def test_as_float64_on_cuda_moves_and_places():
    x = torch.ones(2, device="cuda")
    assert as_float64(x).device.type == "cuda"
    assert as_float64(np.ones(2), like=x).device.type == "cuda"
    assert as_float64(torch.ones(2), like=x).device.type == "cuda"
    assert as_float64(x, device="cpu").device.type == "cpu"
