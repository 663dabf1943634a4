"""Comparisons for hidden tests: clear messages, never the expected value.

Values reaching a test are genuine ``int``/``float``/``numpy``/``torch``
objects (the wire rebuilt them), but a student may still return the wrong
kind of thing: these helpers check the type, the shape and finiteness
before closeness, and say which of these went wrong.
"""
from __future__ import annotations

import numbers

import numpy as np


class CheckFailed(AssertionError):
    """A comparison failed; the message is safe to show a student."""


def _as_array(x, what: str) -> np.ndarray:
    if isinstance(x, bool) or x is None or x is Ellipsis:
        raise CheckFailed(f"{what}: expected a number or an array, got {type(x).__name__}"
                          + (" (did you return the result?)" if x is None or x is Ellipsis else ""))
    if type(x) in (int, float) or isinstance(x, (np.generic,)):
        return np.asarray(x, dtype=np.float64)
    if type(x) is np.ndarray:
        if x.dtype.kind not in "biuf":
            raise CheckFailed(f"{what}: expected a real-valued array, got dtype {x.dtype}")
        return x.astype(np.float64)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a course dependency
        torch = None
    if torch is not None and type(x) is torch.Tensor:
        if x.is_complex():
            raise CheckFailed(f"{what}: expected a real-valued tensor")
        return x.detach().cpu().to(torch.float64).numpy()
    if type(x) in (list, tuple) and all(type(v) in (int, float) for v in x):
        return np.asarray(x, dtype=np.float64)
    raise CheckFailed(f"{what}: expected a number, numpy array or torch tensor, got {type(x).__name__}")


def expect_shape(actual, shape, what: str = "the result") -> None:
    """Fail unless ``actual`` has exactly ``shape``."""
    arr = _as_array(actual, what)
    if tuple(arr.shape) != tuple(shape):
        raise CheckFailed(f"{what}: expected shape {tuple(shape)}, got {tuple(arr.shape)}")


def expect_close(actual, expected, rtol: float = 1e-7, atol: float = 1e-10, what: str = "the result") -> None:
    """Fail unless ``actual`` matches ``expected`` (shape, finiteness, values)."""
    exp = _as_array(expected, "the reference")
    act = _as_array(actual, what)
    if act.shape != exp.shape:
        raise CheckFailed(f"{what}: expected shape {exp.shape}, got {act.shape}")
    if np.isfinite(exp).all() and not np.isfinite(act).all():
        raise CheckFailed(f"{what}: contains NaN or infinity")
    if not np.allclose(act, exp, rtol=rtol, atol=atol, equal_nan=True):
        bad = ~np.isclose(act, exp, rtol=rtol, atol=atol, equal_nan=True)
        frac = bad.mean() if bad.size else 1.0
        raise CheckFailed(f"{what}: values are wrong ({frac:.0%} of entries outside tolerance)"
                          + _near_miss(act, exp, rtol, atol))


NEAR_MISS = 1e-5  # a relative error below this is a precision problem, not a wrong formula


def _near_miss(act: np.ndarray, exp: np.ndarray, rtol: float, atol: float) -> str:
    """A hint when every entry agrees to better than ``NEAR_MISS`` relative:
    the formula is right but loses precision (cancellation, float32, a
    non-convergent series cut short). Only the size of the error is told,
    never an expected value; the inputs are drawn per submission, so the
    size teaches nothing about the answer."""
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(act - exp) / np.maximum(np.abs(exp), atol / max(rtol, 1e-300))
    finite = np.isfinite(exp) & np.isfinite(act)
    if not finite.any() or (~finite & ~(np.isnan(exp) & np.isnan(act))).any():
        return ""
    worst = float(np.max(err[finite]))
    if not worst < NEAR_MISS:
        return ""
    return (f"; but every entry agrees to {worst:.1g} relative and the test needs {rtol:.0e}: the formula "
            "looks right and loses precision (look for cancellation, float32, or a less stable form)")


def expect_equal(actual, expected, what: str = "the result") -> None:
    """Exact equality for integers, booleans, strings and integer arrays."""
    if isinstance(expected, (str, bool)) or expected is None:
        if type(actual) is not type(expected) or actual != expected:
            raise CheckFailed(f"{what}: wrong value")
        return
    if isinstance(expected, numbers.Integral) and not isinstance(expected, bool):
        if type(actual) is bool or not isinstance(actual, (int, np.integer)):
            if not (type(actual) is float and actual.is_integer()):
                raise CheckFailed(f"{what}: expected an integer, got {type(actual).__name__}")
        if int(actual) != int(expected):
            raise CheckFailed(f"{what}: wrong value")
        return
    exp = _as_array(expected, "the reference")
    act = _as_array(actual, what)
    if act.shape != exp.shape:
        raise CheckFailed(f"{what}: expected shape {exp.shape}, got {act.shape}")
    if not np.array_equal(act, exp):
        raise CheckFailed(f"{what}: wrong values ({(act != exp).mean():.0%} of entries differ)")


def expect_true(condition, message: str) -> None:
    """Fail with ``message`` unless ``condition`` is the genuine ``True``."""
    ok = condition is True or (type(condition) is np.bool_ and bool(condition))
    if not ok and type(condition).__name__ == "Tensor":
        ok = condition.dtype.is_floating_point is False and condition.numel() == 1 and bool(condition.item() is True)
    if not ok:
        raise CheckFailed(message)
