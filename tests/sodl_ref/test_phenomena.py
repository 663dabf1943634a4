"""Tests of sodl_ref.phenomena: min-norm solves, the double-descent peak, exact dataset sizes, emergence."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from sodl_ref import phenomena


def _problem(seed, n=100, d=20, m=1000, p_max=800, noise=0.5):
    g = torch.Generator().manual_seed(seed)
    X, y, beta = phenomena.linear_teacher_data(n, d, noise, g)
    Xt = torch.randn(m, d, generator=g, dtype=torch.float64)
    yt = Xt @ beta + noise * torch.randn(m, generator=g, dtype=torch.float64)
    W = torch.randn(p_max, d, generator=g, dtype=torch.float64)
    return X, y, Xt, yt, W


def test_relu_features_match_torch_linear_layer():
    """phi = relu(W x / sqrt(d)) equals torch.nn.Linear (no bias, weight W/sqrt(d)) followed by ReLU."""
    X, _, _, _, W = _problem(0, p_max=30)
    lin = torch.nn.Linear(20, 30, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(W / math.sqrt(20))
    torch.testing.assert_close(phenomena.relu_random_features(X, W), torch.relu(lin(X)), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("p", [30, 150])
def test_min_norm_matches_scipy_gelsd(p):
    """Phi^+ y equals LAPACK gelsd's minimum-norm least-squares solution (under- and over-parametrized)."""
    X, y, _, _, W = _problem(1)
    Phi = phenomena.relu_random_features(X, W[:p])
    a = phenomena.min_norm_least_squares(Phi, y)
    a_ref = scipy.linalg.lstsq(Phi.numpy(), y.numpy(), lapack_driver="gelsd")[0]
    np.testing.assert_allclose(a.numpy(), a_ref, rtol=1e-8, atol=1e-10)


def test_min_norm_is_the_vanishing_ridge_limit():
    """a(lambda) = Phi^T (Phi Phi^T + lambda I)^-1 y -> Phi^+ y as lambda -> 0 (p > n)."""
    X, y, _, _, W = _problem(2)
    Phi = phenomena.relu_random_features(X, W[:300])
    ridge = Phi.T @ torch.linalg.solve(Phi @ Phi.T + 1e-9 * torch.eye(100, dtype=torch.float64), y)
    torch.testing.assert_close(phenomena.min_norm_least_squares(Phi, y), ridge, rtol=1e-5, atol=1e-6)


def test_double_descent_peak_at_interpolation_threshold_p_equals_n():
    """Mei & Montanari 2022: ridgeless test error peaks at p = n (here n = 100, mean of 3 seeds);
    the training error vanishes exactly from p = n on and is positive below."""
    ps = [20, 50, 80, 90, 95, 100, 105, 110, 120, 200, 400, 800]
    tests = []
    for s in range(3):
        r = phenomena.random_features_regression(*_problem(s), ps)
        tests.append(r["test_mse"])
        assert torch.all(r["train_mse"][ps.index(100):] < 1e-18)
        assert torch.all(r["train_mse"][: ps.index(100)] > 1e-4)
    mean = torch.stack(tests).mean(0)
    assert ps[int(mean.argmax())] == 100
    # second descent: very wide models beat the peak by an order of magnitude
    assert mean[-1] < 0.1 * mean.max()


@pytest.mark.parametrize("p", [5, 7, 97])
def test_modular_dataset_exact_sizes_and_labels_against_loops(p):
    """Power et al. 2022: p^2 equations for +, -, *; p(p-1) for / (b != 0); labels from Python integer arithmetic."""
    for op, size in (("+", p * p), ("-", p * p), ("*", p * p), ("/", p * (p - 1))):
        pairs, labels = phenomena.modular_dataset(p, op)
        assert pairs.shape == (size, 2) and labels.shape == (size,) and pairs.dtype == torch.int64
        if p <= 7:
            expected = []
            for a in range(p):
                for b in range(p):
                    if op == "/":
                        if b == 0:
                            continue
                        c = next(c for c in range(p) if (c * b) % p == a)
                    else:
                        c = {"+": a + b, "-": a - b, "*": a * b}[op] % p
                    expected.append((a, b, c))
            assert torch.equal(torch.cat([pairs, labels[:, None]], 1), torch.tensor(expected))
        else:
            a, b = pairs.T
            if op == "/":
                assert torch.equal((labels * b) % p, a)


def test_train_test_split_partitions_with_exact_sizes():
    """round(f n) training indices, the rest for testing, disjoint and covering 0..n-1; reproducible from the generator."""
    n = 97 * 97
    tr, te = phenomena.train_test_split(n, 0.3, torch.Generator().manual_seed(0))
    assert len(tr) == round(0.3 * n) == 2823 and len(te) == n - 2823
    assert torch.equal(torch.sort(torch.cat([tr, te])).values, torch.arange(n))
    tr2, _ = phenomena.train_test_split(n, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(tr, tr2)


def test_exact_match_matches_monte_carlo():
    """p^L against 200000 simulated sequences; sigma = sqrt(q (1-q) / n) ~ 1.1e-3, tolerance 5 sigma."""
    out = phenomena.emergence_metrics(torch.tensor([3e9]), L=10, N_c=1e9, alpha=0.5)
    q = float(out["exact_match"][0])
    mc = phenomena.sample_exact_match(float(out["per_token"][0]), 10, 200_000, torch.Generator().manual_seed(0))
    assert abs(mc - q) < 5 * math.sqrt(q * (1 - q) / 200_000)


def test_emergence_threshold_and_linear_metric():
    """Schaeffer et al. 2023: exact match = 1/2 at N* = N_c (L/ln 2)^(1/alpha); edit distance is L(1-p), linear in p."""
    out = phenomena.emergence_metrics(torch.logspace(6, 14, 50), L=20, N_c=1e8, alpha=0.4)
    N_star = out["threshold"]
    at = phenomena.emergence_metrics(torch.tensor([N_star], dtype=torch.float64), L=20, N_c=1e8, alpha=0.4)
    assert math.isclose(float(at["exact_match"][0]), 0.5, rel_tol=1e-12)
    torch.testing.assert_close(out["edit_distance"], 20 * (1 - out["per_token"]))
    torch.testing.assert_close(out["exact_match"], out["per_token"] ** 20)
    assert torch.all(out["per_token"].diff() > 0)
