"""Neural scaling laws: Kaplan et al. 2020 and Chinchilla (Hoffmann et al. 2022).

Loss as a function of parameters N and training tokens D, the
compute-optimal split of a budget C = 6 N D, and fitting a scaling law with
an irreducible term to measured losses (recovering planted parameters).

Scalars in, Python floats out; arrays in, float64 torch tensors out
(broadcast like torch).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from sodl_ref.tensors import as_float64

# Hoffmann et al. 2022, eq. 10 (approach 3 fit).
CHINCHILLA = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
# Kaplan et al. 2020, eqs. 1.1, 1.2 and 1.5 (non-embedding parameters, tokens).
KAPLAN = dict(N_c=8.8e13, D_c=5.4e13, alpha_N=0.076, alpha_D=0.095)


def _is_scalar(*xs) -> bool:
    return all(isinstance(x, (int, float)) or (hasattr(x, "ndim") and x.ndim == 0) for x in xs)


def _out(value: torch.Tensor, scalar: bool):
    return float(value) if scalar else value


def chinchilla_loss(N, D, E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28):
    """Parametric loss of Hoffmann et al. 2022 (approach 3, eq. 2).

    L(N, D) = E + A / N^alpha + B / D^beta

    N: parameters, D: training tokens (numbers or broadcastable arrays).
    E is the irreducible loss of natural text; the two power laws are the
    excess loss of a finite model and of finite data. Returns a float for
    scalar inputs, a float64 tensor of the broadcast shape otherwise.
    """
    scalar = _is_scalar(N, D)
    N, D = as_float64(N), as_float64(D)
    return _out(E + A * N ** (-alpha) + B * D ** (-beta), scalar)


def chinchilla_optimal(C, E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28):
    """Compute-optimal (N_opt, D_opt) at budget C = 6 N D (Hoffmann et al. 2022, eq. 4 and appendix D.2).

    Minimizing A N^-alpha + B D^-beta on the curve D = C / (6 N) gives
        G     = (alpha A / (beta B))^(1 / (alpha + beta))
        N_opt = G       (C / 6)^(beta  / (alpha + beta))
        D_opt = G^(-1)  (C / 6)^(alpha / (alpha + beta))
    so N_opt D_opt = C / 6 exactly. E does not move the optimum (it is
    accepted for a uniform signature). C: FLOPs, a number or an array;
    returns two floats, or two float64 tensors of C's shape.
    """
    scalar = _is_scalar(C)
    C = as_float64(C)
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    N_opt = G * (C / 6.0) ** (beta / (alpha + beta))
    D_opt = (C / 6.0) ** (alpha / (alpha + beta)) / G
    return _out(N_opt, scalar), _out(D_opt, scalar)


def chinchilla_optimal_loss(C, E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28):
    """Loss on the compute-optimal frontier, L(N_opt(C), D_opt(C)) (Hoffmann et al. 2022, eq. 4)."""
    N_opt, D_opt = chinchilla_optimal(C, E, A, B, alpha, beta)
    return chinchilla_loss(N_opt, D_opt, E, A, B, alpha, beta)


def compute_optimal_exponents(alpha=0.34, beta=0.28):
    """Exponents (a, b) of N_opt ∝ C^a and D_opt ∝ C^b (Hoffmann et al. 2022, eq. 4): a = beta/(alpha+beta), b = alpha/(alpha+beta)."""
    return beta / (alpha + beta), alpha / (alpha + beta)


def kaplan_loss(N, D=math.inf, N_c=8.8e13, D_c=5.4e13, alpha_N=0.076, alpha_D=0.095):
    """Joint loss law of Kaplan et al. 2020, eq. 1.5 (in nats, non-embedding N).

    L(N, D) = [ (N_c / N)^(alpha_N / alpha_D) + D_c / D ]^alpha_D

    With D = inf it reduces to eq. 1.1, L(N) = (N_c / N)^alpha_N; with
    N = inf to eq. 1.2, L(D) = (D_c / D)^alpha_D. Unlike Chinchilla's law it
    has no irreducible term: it extrapolates to zero loss.
    """
    scalar = _is_scalar(N, D)
    N, D = as_float64(N), as_float64(D)
    L = ((N_c / N) ** (alpha_N / alpha_D) + D_c / D) ** alpha_D
    return _out(L, scalar)


def offset_power_law(x, E, A, alpha):
    """Saturating power law L(x) = E + A x^(-alpha) (x: [n] -> [n]); E is the irreducible loss."""
    return E + A * as_float64(x) ** (-alpha)


def fit_offset_power_law(x, y, alphas):
    """Least-squares fit of y ≈ E + A x^(-alpha) by variable projection over a grid of exponents.

    For a fixed alpha the model is linear in (E, A), so the best (E, A) is an
    ordinary least-squares solve of [1, x^-alpha] (E, A)^T = y; the exponent
    is the grid value with the smallest residual sum of squares (the
    "profile" of the nonlinear problem; Golub & Pereyra 1973).

    x, y: [n]; alphas: [g] candidate exponents. Returns a dict with floats
    "E", "A", "alpha", "rss" (sum of squared residuals at the optimum).
    """
    x, y, alphas = as_float64(x), as_float64(y), as_float64(alphas).reshape(-1)
    X = torch.stack(torch.broadcast_tensors(torch.ones_like(x)[None, :], x[None, :] ** -alphas[:, None]), -1)  # (g, n, 2)
    coef = torch.linalg.lstsq(X, y[None, :, None].expand(len(alphas), -1, -1)).solution  # (g, 2, 1)
    rss = ((X @ coef).squeeze(-1) - y).pow(2).sum(-1)  # (g,)
    i = int(torch.argmin(rss))
    return {"E": float(coef[i, 0, 0]), "A": float(coef[i, 1, 0]), "alpha": float(alphas[i]), "rss": float(rss[i])}


def fit_scaling_law(x, y, p0=None):
    """Nonlinear least squares fit of y ≈ E + A x^(-alpha) with scipy.optimize.curve_fit.

    Started from the best grid point of `fit_offset_power_law` unless p0 =
    (E, A, alpha) is given, so the local solver starts in the right basin.
    x, y: [n]. Returns a dict with floats "E", "A", "alpha".
    """
    from scipy.optimize import curve_fit

    x = np.asarray(as_float64(x).cpu().numpy())
    y = np.asarray(as_float64(y).cpu().numpy())
    if p0 is None:
        g = fit_offset_power_law(x, y, np.linspace(0.02, 2.0, 100))
        p0 = (g["E"], g["A"], g["alpha"])
    # Work in log x for conditioning: A x^-alpha = A exp(-alpha log x).
    f = lambda lx, E, A, alpha: E + A * np.exp(-alpha * lx)  # noqa: E731
    popt, _ = curve_fit(f, np.log(x), y, p0=p0, maxfev=20000)
    return {"E": float(popt[0]), "A": float(popt[1]), "alpha": float(popt[2])}


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r**2, delta * (a - 0.5 * delta))


def fit_chinchilla_huber(N, D, L, delta=1e-3, init_grid=None):
    """Fit (E, A, B, alpha, beta) of L = E + A/N^alpha + B/D^beta as Hoffmann et al. 2022 (approach 3, eq. 3).

    Minimizes sum_i Huber_delta( LSE(a - alpha log N_i, b - beta log D_i, e) - log L_i )
    over (a, b, e, alpha, beta), with A = exp(a), B = exp(b), E = exp(e),
    by L-BFGS from every point of a grid of initializations, keeping the
    best. N, D, L: [n]. `init_grid` maps each of "a", "b", "e", "alpha",
    "beta" to candidate starting values (default: a small version of the
    paper's grid). Returns a dict of floats "E", "A", "B", "alpha", "beta",
    "objective".
    """
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    lN, lD, lL = (np.log(np.asarray(as_float64(v).cpu().numpy())) for v in (N, D, L))
    if init_grid is None:
        init_grid = {"a": [0.0, 5.0, 10.0], "b": [0.0, 5.0, 10.0], "e": [-1.0, 0.5], "alpha": [0.2, 0.5], "beta": [0.2, 0.5]}

    def objective(theta):
        a, b, e, alpha, beta = theta
        terms = np.stack([a - alpha * lN, b - beta * lD, np.full_like(lN, e)])  # (3, n)
        return _huber(logsumexp(terms, axis=0) - lL, delta).sum()

    best = None
    keys = ("a", "b", "e", "alpha", "beta")
    for start in itertools.product(*(init_grid[k] for k in keys)):
        res = minimize(objective, np.array(start, dtype=np.float64), method="L-BFGS-B",
                       options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})
        if best is None or res.fun < best.fun:
            best = res
    a, b, e, alpha, beta = best.x
    return {"E": math.exp(e), "A": math.exp(a), "B": math.exp(b), "alpha": float(alpha), "beta": float(beta),
            "objective": float(best.fun)}
