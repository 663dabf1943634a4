"""Course convention: reference functions compute in float64 by default, and their inputs may be tensors, numpy arrays or numbers."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def as_float64(x, device=None, *, like: Tensor | None = None) -> Tensor:
    """x as a float64 tensor.

    x: a tensor of any dtype, a numpy array, a (nested) list or tuple of
    numbers, or a Python or numpy number (giving a 0-d tensor).

    Device: a tensor stays on its own device unless ``device``, or the device
    of the tensor ``like``, names another; anything else is created there, or
    on torch's default device when neither is given. Passing both is an error.

    Copies: a tensor goes through ``Tensor.to``, so it is returned as is when
    it is already float64 on the target device, and otherwise converted
    without detaching (gradients flow back to the caller's tensor). A float64
    numpy array shares memory with the CPU result, so a caller that updates
    the result in place must ``.clone()`` it first. Other arrays are cast by
    numpy, which also accepts views with negative strides such as ``a[::-1]``
    (torch.as_tensor rejects them when it would have to share their memory).
    """
    return _convert(x, torch.float64, np.float64, device, like)


def as_long(x, device=None, *, like: Tensor | None = None) -> Tensor:
    """x as an int64 tensor (token ids, class labels); floats truncate toward zero.

    Same inputs, device rule and copy rule as ``as_float64``, with int64 in
    place of float64.
    """
    return _convert(x, torch.int64, np.int64, device, like)


def _convert(x, dtype: torch.dtype, np_dtype: type, device, like: Tensor | None) -> Tensor:
    if like is not None:
        if device is not None:
            raise ValueError("pass device or like, not both")
        device = like.device
    if isinstance(x, Tensor):
        return x.to(dtype=dtype, device=device)  # device=None keeps x's device
    if isinstance(x, np.ndarray):
        x = x.astype(np_dtype, copy=False)
    # as_tensor, not torch.tensor: it shares memory with an array of the right dtype.
    return torch.as_tensor(x, dtype=dtype, device=device)
