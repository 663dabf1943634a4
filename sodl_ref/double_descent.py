"""Double descent of minimum-norm least squares with isotropic features.

The model (Hastie, Montanari, Rosset & Tibshirani 2022, "Surprises in
high-dimensional ridgeless least squares interpolation", Sec. 2):
    x_i ~ N(0, I_p),  y_i = <x_i, beta> + eps_i,  eps_i ~ N(0, sigma^2),
    ||beta||^2 = r^2 (`signal`),  sigma^2 (`noise`),  gamma = p / n,
and the min-norm least-squares estimate beta_hat = X^+ y. Its (excess)
test risk is R = E_x0[(<x0, beta_hat> - <x0, beta>)^2] = ||beta_hat - beta||^2
for isotropic x0.

Conventions: float64 torch tensors, scalars as Python floats, explicit
generators. Other modules (week 12) import `isotropic_ridgeless_risk`:
keep its signature stable.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "isotropic_ridgeless_risk",
    "finite_sample_min_norm_risk",
    "min_norm_least_squares",
    "simulate_min_norm_risk",
]


def isotropic_ridgeless_risk(gamma, signal=1.0, noise=1.0) -> float:
    """Limiting test risk of min-norm least squares, isotropic features, gamma = p / n.

    Hastie et al. (2022), Theorem 1 (isotropic features; n, p -> inf, p/n -> gamma):
        gamma < 1:  R = noise * gamma / (1 - gamma)                      (variance only)
        gamma > 1:  R = signal * (1 - 1/gamma) + noise / (gamma - 1)      (bias + variance)
    and R = inf at the interpolation threshold gamma = 1.
    signal = ||beta||^2 = r^2, noise = sigma^2. The risk excludes the
    irreducible noise of the test label.
    """
    gamma, signal, noise = float(gamma), float(signal), float(noise)
    if gamma <= 0:
        raise ValueError("gamma = p / n must be positive")
    if gamma == 1.0:
        return math.inf
    if gamma < 1.0:
        return noise * gamma / (1.0 - gamma)
    return signal * (1.0 - 1.0 / gamma) + noise / (gamma - 1.0)


def finite_sample_min_norm_risk(n: int, p: int, signal=1.0, noise=1.0) -> float:
    """Exact expected risk E ||beta_hat - beta||^2 for Gaussian X: [n, p], any finite n, p.

    Belkin, Hsu & Xu (2020), "Two models of double descent for weak
    features", Theorem 1 (all features observed), from the means of inverse
    Wishart matrices and of a random projection:
        p <= n - 2:  noise * p / (n - p - 1)
        p >= n + 2:  signal * (1 - n/p) + noise * n / (p - n - 1)
        otherwise (|p - n| <= 1): inf.
    Tends to `isotropic_ridgeless_risk(p / n)` as n -> inf.
    """
    n, p = int(n), int(p)
    if p <= n - 2:
        return float(noise) * p / (n - p - 1)
    if p >= n + 2:
        return float(signal) * (1.0 - n / p) + float(noise) * n / (p - n - 1)
    return math.inf


def min_norm_least_squares(X, y) -> torch.Tensor:
    """beta_hat = X^+ y, the minimum-norm minimizer of ||X beta - y||^2. X: [n, p], y: [n] -> [p]."""
    X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X, dtype=torch.float64)
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y, dtype=torch.float64, device=X.device)
    return torch.linalg.pinv(X) @ y


def simulate_min_norm_risk(n: int, p: int, signal=1.0, noise=1.0, trials: int = 50,
                           generator: torch.Generator | None = None) -> tuple[float, float]:
    """Monte Carlo of the risk ||X^+ y - beta||^2 over fresh (X, beta, eps).

    X ~ N(0, I) of shape [n, p], beta uniform on the sphere of radius
    sqrt(signal) (the risk only depends on ||beta|| for isotropic X),
    eps ~ N(0, noise I). Returns (mean, standard error of the mean) over
    `trials` draws.
    """
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    risks = torch.empty(trials, dtype=torch.float64)
    for t in range(trials):
        X = torch.randn(n, p, generator=g, dtype=torch.float64)
        beta = torch.randn(p, generator=g, dtype=torch.float64)
        beta = beta * math.sqrt(signal) / beta.norm()
        y = X @ beta + math.sqrt(noise) * torch.randn(n, generator=g, dtype=torch.float64)  # [n]
        risks[t] = (min_norm_least_squares(X, y) - beta).pow(2).sum()
    sem = float(risks.std() / math.sqrt(trials)) if trials > 1 else math.nan
    return float(risks.mean()), sem
