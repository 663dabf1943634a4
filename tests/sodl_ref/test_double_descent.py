"""Tests of sodl_ref.double_descent: Hastie et al. (2022) limits, Belkin-Hsu-Xu finite-n formula, Monte Carlo."""

import math

import numpy as np
import pytest
import torch

from sodl_ref import double_descent as dd


def test_isotropic_ridgeless_risk_values_hastie_2022_theorem_1():
    """gamma = 1/2: sigma^2 * 1; gamma = 2: r^2 / 2 + sigma^2; gamma = 1: inf; gamma -> inf: r^2."""
    assert dd.isotropic_ridgeless_risk(0.5) == pytest.approx(1.0, rel=1e-15)
    assert dd.isotropic_ridgeless_risk(2.0) == pytest.approx(1.5, rel=1e-15)
    assert dd.isotropic_ridgeless_risk(1.0) == math.inf
    assert dd.isotropic_ridgeless_risk(2.0, signal=3.0, noise=0.5) == pytest.approx(1.5 + 0.5, rel=1e-15)
    assert dd.isotropic_ridgeless_risk(0.25, signal=7.0, noise=2.0) == pytest.approx(2.0 / 3.0, rel=1e-15)
    assert dd.isotropic_ridgeless_risk(1e9, signal=3.0) == pytest.approx(3.0, rel=1e-8)
    assert isinstance(dd.isotropic_ridgeless_risk(3), float)


def test_overparametrized_minimum_at_gamma_star_when_snr_above_one():
    """Hastie et al. (2022), after Thm 1: for SNR = r^2/sigma^2 > 1 the gamma > 1 branch is
    minimized at gamma* = sqrt(SNR) / (sqrt(SNR) - 1), with risk below the null risk r^2."""
    r2, s2 = 4.0, 1.0
    snr = r2 / s2
    gstar = math.sqrt(snr) / (math.sqrt(snr) - 1)
    grid = np.linspace(1.01, 20, 20000)
    risks = [dd.isotropic_ridgeless_risk(g, r2, s2) for g in grid]
    assert grid[int(np.argmin(risks))] == pytest.approx(gstar, abs=2e-3)
    assert min(risks) < r2


def test_finite_sample_formula_tends_to_the_limit():
    for gamma in (0.3, 0.5, 0.8, 1.25, 2.0, 5.0):
        n = 10 ** 6
        assert dd.finite_sample_min_norm_risk(n, round(gamma * n), 2.0, 0.7) == pytest.approx(
            dd.isotropic_ridgeless_risk(gamma, 2.0, 0.7), rel=1e-4)


@pytest.mark.parametrize("n,p", [(30, 10), (30, 20), (30, 45), (30, 90)])
def test_monte_carlo_matches_finite_sample_closed_form_belkin_hsu_xu(n, p):
    """400 trials; the tolerance is 4 standard errors (two-sided p ~ 6e-5), seeded."""
    mean, sem = dd.simulate_min_norm_risk(n, p, signal=1.5, noise=0.5, trials=400,
                                          generator=torch.Generator().manual_seed(n * 1000 + p))
    assert abs(mean - dd.finite_sample_min_norm_risk(n, p, 1.5, 0.5)) < 4 * sem


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_monte_carlo_at_n_200_matches_the_pinned_limit(gamma):
    """Tolerance: 4 standard errors plus the O(1/n) finite-size gap |finite(n, p) - limit|."""
    n = 200
    p = int(gamma * n)
    mean, sem = dd.simulate_min_norm_risk(n, p, trials=40, generator=torch.Generator().manual_seed(7))
    limit = dd.isotropic_ridgeless_risk(gamma)
    assert abs(mean - limit) < 4 * sem + abs(dd.finite_sample_min_norm_risk(n, p) - limit)
    assert abs(mean - limit) < 0.1 * limit


def test_min_norm_least_squares_matches_numpy_lstsq_and_interpolates():
    rng = np.random.default_rng(0)
    for n, p in [(10, 4), (4, 10)]:
        X, y = rng.normal(size=(n, p)), rng.normal(size=n)
        b = dd.min_norm_least_squares(X, y)
        np.testing.assert_allclose(b.numpy(), np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(X @ b.numpy(), y, atol=1e-10)  # p > n: zero training error
