"""Benchmark 4: analytic ``sodl_ref.kernels.nngp`` and ``ntk`` (ReLU)
against a plain numpy float64 recursion (arc-cosine kernels, Cho & Saul
2009), written here independently."""
from __future__ import annotations

import time

import numpy as np

from sodl_ref import kernels


def relu_kernels_numpy(x1, x2, depth: int, weight_var: float = 2.0, bias_var: float = 0.0):
    """(NNGP K^depth, NTK Theta^depth) of a ReLU network in NTK
    parametrization, by the layer recursion in numpy float64:

        K^0 = b + w <x, x'>/d,  Theta^0 = K^0,
        K^l = b + w sqrt(k11 k22)/(2 pi) (sin t + (pi - t) cos t),
        Theta^l = K^l + w (pi - t)/(2 pi) Theta^{l-1},  t = arccos(K^{l-1}_12 / sqrt(k11 k22)),

    and on the diagonal E[relu(u)^2] = k/2, so k <- b + w k / 2."""
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = np.asarray(x2, dtype=np.float64)
    d = x1.shape[1]
    k12 = bias_var + weight_var * (x1 @ x2.T) / d
    k11 = bias_var + weight_var * np.einsum("ij,ij->i", x1, x1) / d
    k22 = bias_var + weight_var * np.einsum("ij,ij->i", x2, x2) / d
    theta = k12
    for _ in range(depth):
        norm = np.sqrt(np.outer(k11, k22))
        cos_t = np.clip(k12 / norm, -1.0, 1.0)
        t = np.arccos(cos_t)
        sin_t = np.sqrt(np.maximum(1.0 - cos_t * cos_t, 0.0))
        k12 = bias_var + weight_var * norm / (2 * np.pi) * (sin_t + (np.pi - t) * cos_t)
        theta = k12 + weight_var * (np.pi - t) / (2 * np.pi) * theta
        k11 = bias_var + weight_var * k11 / 2
        k22 = bias_var + weight_var * k22 / 2
    return k12, theta


def nngp_numpy(x1, x2, depth):
    return relu_kernels_numpy(x1, x2, depth)[0]


def ntk_numpy(x1, x2, depth):
    return relu_kernels_numpy(x1, x2, depth)[1]


def run(n: int = 1000, d: int = 100, depth: int = 3, repeats: int = 15, seed: int = 0) -> dict:
    """Time sodl_ref against numpy (calls alternate; best of ``repeats``)
    and compare the kernels, also with the exact diagonal: for ReLU with
    weight_var 2 and no bias, K^l(x, x) = K^0(x, x) and Theta^L(x, x) =
    (L + 1) K^0(x, x)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    k0 = 2.0 * np.einsum("ij,ij->i", x, x) / d
    res = {"n": n, "d": d, "depth": depth}
    off = ~np.eye(n, dtype=bool)
    for name, ours, theirs, exact in (("nngp", kernels.nngp, nngp_numpy, k0),
                                      ("ntk", kernels.ntk, ntk_numpy, (depth + 1) * k0)):
        ours(x[:4], x[:4], depth), theirs(x[:4], x[:4], depth)  # warm-up
        t_sodl = t_np = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            k_sodl = ours(x, x, depth)
            t_sodl = min(t_sodl, time.perf_counter() - t)
            t = time.perf_counter()
            k_np = theirs(x, x, depth)
            t_np = min(t_np, time.perf_counter() - t)
        k_sodl = k_sodl.cpu().numpy()
        scale = np.abs(k_np).max()
        res[name] = {"t_sodl": t_sodl, "t_numpy": t_np, "ratio": t_sodl / t_np,
                     "max_rel_err": float(np.abs(k_sodl - k_np).max() / scale),
                     "offdiag_rel_err": float(np.abs(k_sodl - k_np)[off].max() / scale),
                     "diag_err_sodl": float(np.abs(np.diag(k_sodl) - exact).max() / exact.max()),
                     "diag_err_numpy": float(np.abs(np.diag(k_np) - exact).max() / exact.max()),
                     "agree": bool(np.allclose(k_sodl, k_np, rtol=1e-7, atol=0))}
    res["acos_torch"], res["acos_numpy"] = acos_timings()
    return res


def acos_timings(n: int = 1_000_000, repeats: int = 9) -> tuple[float, float]:
    """Best time of one float64 arccos over ``n`` values, torch and numpy."""
    import torch

    a = np.random.default_rng(1).uniform(-1, 1, n)
    ta = torch.from_numpy(a.copy())
    t_torch = t_np = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.arccos(ta)
        t_torch = min(t_torch, time.perf_counter() - t)
        t = time.perf_counter()
        np.arccos(a)
        t_np = min(t_np, time.perf_counter() - t)
    return t_torch, t_np
