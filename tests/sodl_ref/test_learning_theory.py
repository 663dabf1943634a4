"""Tests of sodl_ref.learning_theory: exact enumeration, Cover's count, LP feasibility, residuals, scipy."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.optimize import brentq

from sodl_ref import learning_theory as lt


# ---------------------------------------------------------------- Rademacher

def test_all_sign_vectors_are_the_2_pow_n_distinct_sign_patterns():
    S = lt.all_sign_vectors(5)
    assert S.shape == (32, 5) and S.dtype == torch.float64
    assert set(map(tuple, S.tolist())) == set(itertools.product([-1.0, 1.0], repeat=5))


def test_rademacher_finite_class_matches_itertools_brute_force():
    rng = np.random.default_rng(0)
    H = rng.normal(size=(4, 7))
    brute = np.mean([max(np.dot(s, h) for h in H) for s in itertools.product([-1, 1], repeat=7)]) / 7
    assert lt.rademacher_finite_class(H) == pytest.approx(brute, rel=1e-12)


def test_rademacher_known_values_single_all_and_plus_minus_classes():
    """One hypothesis: 0. All 2^n sign patterns: 1. {h, -h} with h = 1: E|S_4|/4 = 1.5/4 = 0.375."""
    assert lt.rademacher_finite_class(np.ones((1, 6))) == pytest.approx(0.0, abs=1e-15)
    assert lt.rademacher_finite_class(lt.all_sign_vectors(6)) == pytest.approx(1.0, rel=1e-14)
    assert lt.rademacher_finite_class(np.array([[1.0] * 4, [-1.0] * 4])) == pytest.approx(0.375, rel=1e-14)


def test_massart_bound_holds_on_random_classes():
    rng = np.random.default_rng(1)
    for m in (2, 5, 20):
        H = np.sign(rng.normal(size=(m, 10)))
        assert lt.rademacher_finite_class(H) <= lt.massart_bound(H) + 1e-12


def test_linear_class_orthonormal_points_attain_jensen_bound_exactly():
    """For x_i = e_i, ||sum sigma_i e_i|| = sqrt(n) always, so R = B / sqrt(n) = the Jensen bound."""
    X = torch.eye(6, dtype=torch.float64)
    assert lt.rademacher_linear_class(X, 2.5) == pytest.approx(2.5 / math.sqrt(6), rel=1e-14)
    assert lt.rademacher_linear_bound(X, 2.5) == pytest.approx(2.5 / math.sqrt(6), rel=1e-14)


def test_linear_class_between_khintchine_kahane_and_jensen():
    """Szarek/Latala-Oleszkiewicz: E||S|| >= sqrt(E||S||^2) / sqrt(2) >= ... <= sqrt(E||S||^2)."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(10, 3))
    r, ub = lt.rademacher_linear_class(X, 1.0), lt.rademacher_linear_bound(X, 1.0)
    assert ub / math.sqrt(2) <= r <= ub


def test_linear_class_is_the_limit_of_a_fine_finite_class_of_directions():
    """The unit ball of R^2 approximated by N directions: R_N <= R <= R_N / cos(pi / N)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(9, 2))
    N = 720
    angles = np.arange(N) * 2 * np.pi / N
    W = np.c_[np.cos(angles), np.sin(angles)]  # [N, 2]
    r_finite = lt.rademacher_finite_class(W @ X.T)  # predictions [N, n]
    r = lt.rademacher_linear_class(X, 1.0)
    assert r_finite <= r + 1e-12
    assert r <= r_finite / math.cos(math.pi / N) + 1e-12


# ---------------------------------------------------------------- halfspaces

def _cover(n, dim):
    """Cover (1965): C(n, N) = 2 sum_{k<N} binom(n-1, k) dichotomies, points in general position."""
    return 2 * sum(math.comb(n - 1, k) for k in range(dim))


def test_xor_is_not_separable_and_and_is():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    assert not lt.halfspace_separable(X, [-1, 1, 1, -1])
    assert lt.halfspace_separable(X, [-1, -1, -1, 1])


@pytest.mark.parametrize("n,d", [(5, 1), (5, 2), (6, 2), (6, 3)])
def test_count_halfspace_dichotomies_matches_cover_1965(n, d):
    X = np.random.default_rng(10 * n + d).normal(size=(n, d))
    assert lt.count_halfspace_dichotomies(X) == _cover(n, d + 1)
    assert lt.count_halfspace_dichotomies(X, bias=False) == _cover(n, d)


def test_vc_dimension_of_halfspaces_in_the_plane_is_three():
    rng = np.random.default_rng(4)
    assert lt.shattered_by_halfspaces(rng.normal(size=(3, 2)))
    assert not lt.shattered_by_halfspaces(rng.normal(size=(4, 2)))  # Radon
    # three collinear points cannot be shattered (the middle one cannot be isolated)
    assert not lt.shattered_by_halfspaces(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]))


# ---------------------------------------------------------------- memorization

def test_memorizing_relu_net_fits_random_labels_zhang_2017_theorem_1():
    g = torch.Generator().manual_seed(5)
    n, d = 60, 5
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    net = lt.memorizing_relu_net(X, y, generator=g)
    assert sum(v.numel() for v in net.values()) == 2 * n + d
    residual = lt.relu_net_forward(X, **net) - y
    scale = net["w"].abs().sum() * (X @ net["a"]).abs().max()
    assert residual.abs().max() <= 1e-12 * scale
    # the design matrix in sorted order is lower triangular with a positive diagonal
    z = torch.sort(X @ net["a"]).values
    M = torch.relu(z[:, None] - net["b"][None, :])
    assert torch.equal(M, torch.tril(M)) and bool((torch.diagonal(M) > 0).all())


def test_relu_net_forward_matches_torch_nn_two_layer_net():
    rng = np.random.default_rng(6)
    X, a, b, w = rng.normal(size=(7, 3)), rng.normal(size=3), rng.normal(size=4), rng.normal(size=4)
    lin1 = torch.nn.Linear(3, 4).double()
    lin2 = torch.nn.Linear(4, 1, bias=False).double()
    with torch.no_grad():
        lin1.weight.copy_(torch.tensor(np.tile(a, (4, 1))))
        lin1.bias.copy_(torch.tensor(-b))
        lin2.weight.copy_(torch.tensor(w[None]))
    expected = lin2(torch.relu(lin1(torch.tensor(X))))[:, 0]
    torch.testing.assert_close(lt.relu_net_forward(X, a, b, w), expected, rtol=1e-13, atol=1e-14)


# ---------------------------------------------------------------- concentration

@pytest.mark.parametrize("n,p,eps", [(50, 0.5, 0.1), (37, 0.3, 0.05), (200, 0.9, 0.07), (10, 0.0, 0.1)])
def test_binomial_deviation_probability_matches_scipy_binom(n, p, eps):
    k = np.arange(n + 1)
    expected = stats.binom.pmf(k, n, p)[np.abs(k - n * p) >= n * eps - 1e-9].sum()
    assert lt.binomial_deviation_probability(n, p, eps) == pytest.approx(expected, rel=1e-10, abs=1e-300)


def test_boundary_counts_as_deviation():
    """n = 50, p = 1/2, eps = 1/10: k = 20 and 30 sit exactly on the boundary (|k - 25| = 5)."""
    k = np.arange(51)
    strict = stats.binom.pmf(k, 50, 0.5)[np.abs(k - 25) > 5].sum()
    assert lt.binomial_deviation_probability(50, 0.5, 0.1) == pytest.approx(strict + 2 * stats.binom.pmf(20, 50, 0.5), rel=1e-12)


def test_hoeffding_bounds_the_exact_binomial_tail():
    for n in (10, 100, 1000):
        for p in (0.05, 0.3, 0.5):
            for eps in (0.01, 0.05, 0.1, 0.2):
                assert lt.binomial_deviation_probability(n, p, eps) <= 2 * math.exp(-2 * n * eps ** 2) + 1e-15
    # and hoeffding_epsilon inverts it: at eps(n, delta) the bound equals delta (M = 1), delta / M per hypothesis
    eps = lt.hoeffding_epsilon(500, 0.05, num_hypotheses=20)
    assert 20 * 2 * math.exp(-2 * 500 * eps ** 2) == pytest.approx(0.05, rel=1e-12)


def test_kl_bernoulli_matches_scipy_rel_entr():
    from scipy.special import rel_entr

    for q, p in [(0.1, 0.3), (0.0, 0.4), (0.7, 0.2), (1.0, 0.5)]:
        assert lt.kl_bernoulli(q, p) == pytest.approx(rel_entr(q, p) + rel_entr(1 - q, 1 - p), rel=1e-13, abs=1e-15)
    assert lt.kl_bernoulli(0.3, 0.0) == math.inf


def test_kl_inverse_closed_form_brentq_and_pinsker():
    """kl(0 || p) = -log(1 - p), so kl^{-1}(0, log 2) = 1/2 exactly."""
    assert lt.kl_inverse_upper(0.0, math.log(2)) == pytest.approx(0.5, abs=1e-13)
    for q, c in [(0.05, 0.01), (0.3, 0.2), (0.5, 0.001)]:
        p = lt.kl_inverse_upper(q, c)
        assert p == pytest.approx(brentq(lambda t: lt.kl_bernoulli(q, t) - c, q, 1 - 1e-15, xtol=1e-15), abs=1e-12)
        assert p <= q + math.sqrt(c / 2) + 1e-12  # Pinsker: kl >= 2 (p - q)^2
    assert lt.kl_inverse_upper(0.2, 0.0) == 0.2


def test_pac_bayes_kl_bound_is_valid_exact_binomial_coverage():
    """Q = P a point mass (KL = 0): P(bound(R_hat) < R) <= delta, computed exactly over Binomial(n, R)."""
    n, delta = 100, 0.1
    for R in (0.05, 0.2, 0.5):
        k = np.arange(n + 1)
        fails = [lt.pac_bayes_kl_bound(j / n, 0.0, n, delta) < R for j in k]
        assert stats.binom.pmf(k, n, R)[fails].sum() <= delta


def test_pac_bayes_kl_bound_tighter_than_pinsker_relaxation_at_small_risk():
    n, delta, kl = 10000, 0.05, 20.0
    rhs = (kl + math.log(2 * math.sqrt(n) / delta)) / n
    b = lt.pac_bayes_kl_bound(0.01, kl, n, delta)
    assert 0.01 < b < 0.01 + math.sqrt(rhs / 2)
    assert lt.kl_bernoulli(0.01, b) == pytest.approx(rhs, rel=1e-9)
