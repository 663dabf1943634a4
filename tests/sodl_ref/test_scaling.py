"""Tests of sodl_ref.scaling against closed forms, numerical optimization and planted parameters."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from sodl_ref import scaling


@pytest.mark.parametrize("C", [1e18, 5.76e23, 1e26])
def test_chinchilla_optimal_matches_scipy_minimization_on_the_isoflop_curve(C):
    """Hoffmann et al. 2022 eq. 4: the closed form equals a numerical minimum of L(N, C/(6N)) over log N."""
    res = minimize_scalar(lambda lN: scaling.chinchilla_loss(math.exp(lN), C / (6 * math.exp(lN))),
                          bounds=(math.log(1e3), math.log(C / 6) - math.log(1e3)), method="bounded",
                          options={"xatol": 1e-10})
    N_opt, D_opt = scaling.chinchilla_optimal(C)
    assert isinstance(N_opt, float) and isinstance(D_opt, float)
    assert math.isclose(math.log(N_opt), res.x, abs_tol=1e-6)
    assert math.isclose(N_opt * D_opt * 6, C, rel_tol=1e-12)
    # and it is a minimum: moving along the iso-FLOP curve increases the loss
    L0 = scaling.chinchilla_loss(N_opt, D_opt)
    for f in (0.9, 1.1):
        assert scaling.chinchilla_loss(N_opt * f, D_opt / f) > L0


def test_chinchilla_optimal_with_random_constants_matches_minimization():
    """The closed form holds for any (A, B, alpha, beta), not only the paper's fit."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        A, B = rng.uniform(10, 1000, 2)
        alpha, beta = rng.uniform(0.1, 0.6, 2)
        C = 10 ** rng.uniform(18, 24)
        res = minimize_scalar(lambda lN: scaling.chinchilla_loss(math.exp(lN), C / (6 * math.exp(lN)), 1.0, A, B, alpha, beta),
                              bounds=(0.0, math.log(C / 6)), method="bounded", options={"xatol": 1e-10})
        N_opt, _ = scaling.chinchilla_optimal(C, 1.0, A, B, alpha, beta)
        assert math.isclose(math.log(N_opt), res.x, abs_tol=1e-5)


def test_chinchilla_frontier_slopes_equal_exponents_hoffmann_table2():
    """Hoffmann et al. 2022 Table 2, approach 3: N_opt ∝ C^0.46, D_opt ∝ C^0.54 (0.4516 / 0.5484 from eq. 10's rounded constants)."""
    a, b = scaling.compute_optimal_exponents()
    assert abs(a - 0.46) < 0.01 and abs(b - 0.54) < 0.01 and math.isclose(a + b, 1.0)
    C = torch.tensor([1e20, 1e24], dtype=torch.float64)
    N, D = scaling.chinchilla_optimal(C)
    assert N.dtype == torch.float64 and N.shape == (2,)
    assert math.isclose(float(torch.log(N[1] / N[0]) / torch.log(C[1] / C[0])), a, rel_tol=1e-12)
    assert math.isclose(float(torch.log(D[1] / D[0]) / torch.log(C[1] / C[0])), b, rel_tol=1e-12)


def test_chinchilla_loss_limits_and_broadcasting():
    """L -> E as N, D -> inf (the irreducible loss); arrays broadcast."""
    assert math.isclose(scaling.chinchilla_loss(1e30, 1e30), 1.69, rel_tol=1e-6)
    assert math.isclose(scaling.chinchilla_loss(1.0, 1.0), 1.69 + 406.4 + 410.7, rel_tol=1e-14)
    L = scaling.chinchilla_loss(np.array([[1e9], [1e10]]), np.array([1e10, 1e11, 1e12]))
    assert L.shape == (2, 3) and L.dtype == torch.float64
    assert math.isclose(float(L[1, 2]), 1.69 + 406.4 / 1e10**0.34 + 410.7 / 1e12**0.28, rel_tol=1e-14)


def test_kaplan_joint_law_reduces_to_eqs_1_1_and_1_2():
    """Kaplan et al. 2020 eq. 1.5 with D = inf is eq. 1.1 (N_c/N)^0.076; with N = inf, eq. 1.2 (D_c/D)^0.095."""
    N = 1.5e9
    assert math.isclose(scaling.kaplan_loss(N), (8.8e13 / N) ** 0.076, rel_tol=1e-13)
    assert math.isclose(scaling.kaplan_loss(math.inf, 2e10), (5.4e13 / 2e10) ** 0.095, rel_tol=1e-13)
    # finite data only adds loss
    assert scaling.kaplan_loss(N, 1e10) > scaling.kaplan_loss(N)


def test_variable_projection_recovers_planted_power_law_exactly():
    """Noise-free data and the planted exponent on the grid: (E, A, alpha) recovered to 1e-9, rss ~ 0."""
    x = np.logspace(6, 10, 20)
    y = scaling.offset_power_law(x, 1.7, 400.0, 0.3)
    fit = scaling.fit_offset_power_law(x, y, np.linspace(0.1, 0.6, 51))
    assert math.isclose(fit["alpha"], 0.3, rel_tol=1e-12)
    assert math.isclose(fit["E"], 1.7, rel_tol=1e-9) and math.isclose(fit["A"], 400.0, rel_tol=1e-9)
    assert fit["rss"] < 1e-20


def test_curve_fit_recovers_planted_parameters_under_noise():
    """0.1% multiplicative noise (seeded): E within 0.01, alpha within 0.01 of the planted (1.7, 400, 0.3)."""
    rng = np.random.default_rng(0)
    x = np.logspace(6, 10, 30)
    y = scaling.offset_power_law(x, 1.7, 400.0, 0.3).numpy() * (1 + 1e-3 * rng.normal(size=30))
    fit = scaling.fit_scaling_law(x, y)
    assert abs(fit["E"] - 1.7) < 0.01 and abs(fit["alpha"] - 0.3) < 0.01
    # a fit without the irreducible term (straight line in log-log) is much worse
    slope, icpt = np.polyfit(np.log(x), np.log(y), 1)
    rss_line = ((np.exp(icpt) * x**slope - y) ** 2).sum()
    rss_fit = ((scaling.offset_power_law(x, fit["E"], fit["A"], fit["alpha"]).numpy() - y) ** 2).sum()
    assert rss_fit < 0.1 * rss_line


def test_huber_fit_recovers_hoffmann_eq10_parameters():
    """Hoffmann et al. 2022 eq. 3 fitted to noise-free losses from eq. 10 returns (1.69, 406.4, 410.7, 0.34, 0.28)."""
    N = np.repeat(np.logspace(7, 10, 6), 6)
    D = np.tile(np.logspace(9, 12, 6), 6)
    L = scaling.chinchilla_loss(N, D)
    grid = {"a": [0.0, 5.0, 10.0], "b": [0.0, 5.0, 10.0], "e": [0.5], "alpha": [0.3], "beta": [0.3]}
    fit = scaling.fit_chinchilla_huber(N, D, L, init_grid=grid)
    for k, v in scaling.CHINCHILLA.items():
        assert math.isclose(fit[k], v, rel_tol=1e-3), k
