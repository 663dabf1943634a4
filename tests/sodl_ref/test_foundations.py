"""Tests of sodl_ref.foundations against independent truth.

Truths used: exhaustive enumeration of dichotomies by LP feasibility
(scipy.optimize.linprog), Cover's closed-form special values and his
recursion, torch autograd in float64, torch.nn.init laws (Monte Carlo with
a stated sigma), torch.nn.functional in float64, numpy.interp.
"""

import itertools
import math

import numpy as np
import pytest
import scipy.optimize
import torch

from sodl_ref import foundations as F


# ---------------------------------------------------------------------------
# Perceptron
# ---------------------------------------------------------------------------


def _separable(rng, P, N, margin=0.1):
    """P points in R^N labelled by a random teacher, keeping only points with margin."""
    w_star = rng.normal(size=N)
    w_star /= np.linalg.norm(w_star)
    X = []
    while len(X) < P:
        x = rng.normal(size=N)
        if abs(x @ w_star) > margin:
            X.append(x)
    X = np.array(X)
    return X, np.sign(X @ w_star), w_star


def test_perceptron_separates_and_obeys_novikoff_bound_1962():
    """Novikoff (1962): on data with margin gamma and radius R the perceptron
    makes at most (R/gamma)^2 updates and ends with every point strictly
    correctly classified."""
    rng = np.random.default_rng(0)
    X, y, w_star = _separable(rng, 60, 4, margin=0.2)
    w, n = F.perceptron_train(X, y)
    assert isinstance(n, int) and n > 0
    assert w.dtype == torch.float64 and w.shape == (4,)
    assert bool((torch.as_tensor(y) * (torch.as_tensor(X) @ w) > 0).all())
    R = np.linalg.norm(X, axis=1).max()
    gamma = np.min(y * (X @ w_star))
    assert n <= (R / gamma) ** 2


def test_perceptron_matches_handworked_trace():
    """Trace by hand on x1 = (1, 0), y=+1; x2 = (0, 1), y=-1; x3 = (1, 1), y=+1
    from w = 0: update on x1 (w=(1,0)), update on x2 (w=(1,-1)), x3 gives 0 ->
    update (w=(2,0)); second sweep: x1 ok (2), x2 gives 0 -> update (w=(2,-1));
    x3 ok (1); third sweep: 2, 1, 1 all positive. 4 updates, w = (2, -1)."""
    X = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    y = [1.0, -1.0, 1.0]
    w, n = F.perceptron_train(X, y)
    assert n == 4
    torch.testing.assert_close(w, torch.tensor([2.0, -1.0], dtype=torch.float64), rtol=0, atol=0)


def test_perceptron_stops_at_max_epochs_on_xor():
    """XOR with a bias feature is not linearly separable: the rule never stops
    by itself, so it must stop after max_epochs sweeps with one update at
    least per sweep."""
    X = [[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]]
    y = [-1, 1, 1, -1]
    w, n = F.perceptron_train(X, y, max_epochs=7)
    assert 7 <= n <= 28


# ---------------------------------------------------------------------------
# Cover's counting function
# ---------------------------------------------------------------------------


def _count_dichotomies_by_lp(X):
    """Number of labelings y of the rows of X with y_i <w, x_i> >= 1 feasible."""
    P, N = X.shape
    count = 0
    for y in itertools.product([-1.0, 1.0], repeat=P):
        y = np.array(y)
        # y_i <w, x_i> >= 1  <=>  -(y_i x_i) . w <= -1
        res = scipy.optimize.linprog(
            np.zeros(N), A_ub=-(y[:, None] * X), b_ub=-np.ones(P),
            bounds=[(None, None)] * N, method="highs")
        count += res.status == 0
    return count


@pytest.mark.parametrize("P,N", [(3, 2), (5, 2), (6, 3), (7, 3), (4, 4), (7, 4)])
def test_cover_count_matches_exhaustive_lp_enumeration(P, N):
    """Cover (1965), Theorem 1: count every one of the 2^P labelings of P
    Gaussian (general position) points in R^N that a homogeneous halfspace
    realizes, by LP feasibility."""
    X = np.random.default_rng(P * 10 + N).normal(size=(P, N))
    assert F.cover_count(P, N) == _count_dichotomies_by_lp(X)


def test_cover_count_known_values_cover_1965():
    """Cover (1965): C(P, N) = 2^P for P <= N, C(2N, N) = 2^(2N-1) (half of all
    labelings at alpha = 2), C(N+1, N) = 2^(N+1) - 2, and the textbook value
    C(4, 2) = 8 (4 points in the plane through the origin: 8 of 16)."""
    for N in range(1, 12):
        for P in range(0, N + 1):
            assert F.cover_count(P, N) == 2 ** P
        assert F.cover_count(2 * N, N) == 2 ** (2 * N - 1)
        assert F.cover_count(N + 1, N) == 2 ** (N + 1) - 2
    assert F.cover_count(4, 2) == 8


def test_cover_count_exact_at_large_size_and_recursion():
    """Exact integers far beyond float precision: C(2000, 1000) = 2^1999 exactly;
    Cover's recursion C(P+1, N) = C(P, N) + C(P, N-1) holds for all P, N."""
    c = F.cover_count(2000, 1000)
    assert isinstance(c, int) and c == 2 ** 1999
    for P in range(1, 40):
        for N in range(1, 15):
            assert F.cover_count(P + 1, N) == F.cover_count(P, N) + F.cover_count(P, N - 1)


def test_cover_count_rejects_negative():
    with pytest.raises(ValueError):
        F.cover_count(-1, 3)


# ---------------------------------------------------------------------------
# MLP forward and backward
# ---------------------------------------------------------------------------


def _random_mlp(g, widths):
    Ws = [torch.randn(widths[i + 1], widths[i], generator=g, dtype=torch.float64) / math.sqrt(widths[i])
          for i in range(len(widths) - 1)]
    bs = [torch.randn(widths[i + 1], generator=g, dtype=torch.float64) * 0.3 for i in range(len(widths) - 1)]
    return Ws, bs


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_mlp_backward_matches_torch_autograd_float64(activation):
    """Delta equations vs torch.autograd on a 4-layer MLP of non-square widths
    (5 -> 7 -> 6 -> 4 -> 3), a random linear functional of the output as loss."""
    g = torch.Generator().manual_seed(1)
    widths = [5, 7, 6, 4, 3]
    Ws, bs = _random_mlp(g, widths)
    x = torch.randn(9, 5, generator=g, dtype=torch.float64)
    G = torch.randn(9, 3, generator=g, dtype=torch.float64)

    Wt = [W.clone().requires_grad_() for W in Ws]
    bt = [b.clone().requires_grad_() for b in bs]
    h = x
    for l, (W, b) in enumerate(zip(Wt, bt)):
        h = h @ W.T + b
        if l < len(Wt) - 1:
            h = torch.relu(h) if activation == "relu" else torch.tanh(h)
    (h * G).sum().backward()

    out, zs, hs = F.mlp_forward(x, Ws, bs, activation)
    torch.testing.assert_close(out, h.detach(), rtol=1e-13, atol=1e-13)
    gW, gb = F.mlp_backward(x, Ws, bs, G, activation)
    for l in range(len(Ws)):
        assert gW[l].shape == Ws[l].shape and gb[l].shape == bs[l].shape
        torch.testing.assert_close(gW[l], Wt[l].grad, rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(gb[l], bt[l].grad, rtol=1e-12, atol=1e-13)


def test_mlp_backward_with_cross_entropy_matches_autograd():
    """The output delta of mean cross-entropy is (softmax(z) - onehot(y)) / B;
    fed into the delta equations it must give autograd's gradient of F.cross_entropy."""
    g = torch.Generator().manual_seed(2)
    Ws, bs = _random_mlp(g, [3, 8, 4])
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 3, 1, 2, 3, 0])
    Wt = [W.clone().requires_grad_() for W in Ws]
    bt = [b.clone().requires_grad_() for b in bs]
    z = torch.tanh(x @ Wt[0].T + bt[0]) @ Wt[1].T + bt[1]
    torch.nn.functional.cross_entropy(z, y).backward()
    out, _, _ = F.mlp_forward(x, Ws, bs, "tanh")
    delta = (F.softmax(out) - torch.nn.functional.one_hot(y, 4).double()) / 6
    gW, gb = F.mlp_backward(x, Ws, bs, delta, "tanh")
    torch.testing.assert_close(gW[0], Wt[0].grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(gb[1], bt[1].grad, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------
# Initialization
# ---------------------------------------------------------------------------


def test_glorot_uniform_matches_torch_xavier_uniform_law():
    """Glorot & Bengio (2010), eq. 16: bound a = sqrt(6/(fan_in+fan_out)),
    variance 2/(fan_in+fan_out). Monte Carlo on 400*300 = 120000 entries:
    the sample variance has relative sd sqrt(0.8/n) ~ 0.0026 for a uniform law;
    we allow 2% (about 8 sigma). torch.nn.init.xavier_uniform_ on the same
    shape must give the same bound and variance."""
    fan_in, fan_out = 400, 300
    g = torch.Generator().manual_seed(3)
    W = F.glorot_uniform(fan_in, fan_out, generator=g)
    assert W.shape == (fan_out, fan_in) and W.dtype == torch.float64
    a = math.sqrt(6 / (fan_in + fan_out))
    assert W.abs().max() <= a and W.abs().max() > 0.999 * a
    T = torch.nn.init.xavier_uniform_(torch.empty(fan_out, fan_in, dtype=torch.float64),
                                      generator=torch.Generator().manual_seed(4))
    assert T.abs().max() <= a and T.abs().max() > 0.999 * a
    var = 2 / (fan_in + fan_out)
    assert abs(W.var().item() / var - 1) < 0.02
    assert abs(T.var().item() / var - 1) < 0.02
    assert abs(W.mean().item()) < 6 * math.sqrt(var / W.numel())


def test_he_and_glorot_normal_match_torch_init_std():
    """He et al. (2015), eq. 10: std sqrt(2/fan_in), as
    kaiming_normal_(mode='fan_in', nonlinearity='relu'); Glorot normal std
    sqrt(2/(fan_in+fan_out)), as xavier_normal_. 120000 Gaussian entries:
    relative sd of the sample variance sqrt(2/n) ~ 0.004; tolerance 2% (5 sigma)."""
    fan_in, fan_out = 300, 400
    g = torch.Generator().manual_seed(5)
    W = F.he_normal(fan_in, fan_out, generator=g)
    T = torch.nn.init.kaiming_normal_(torch.empty(fan_out, fan_in, dtype=torch.float64),
                                      mode="fan_in", nonlinearity="relu")
    assert W.shape == T.shape
    assert abs(W.var().item() / (2 / fan_in) - 1) < 0.02
    assert abs(T.var().item() / (2 / fan_in) - 1) < 0.02
    V = F.glorot_normal(fan_in, fan_out, generator=g)
    T2 = torch.nn.init.xavier_normal_(torch.empty(fan_out, fan_in, dtype=torch.float64))
    assert abs(V.var().item() / (2 / 700) - 1) < 0.02
    assert abs(T2.var().item() / (2 / 700) - 1) < 0.02


def test_init_is_reproducible_with_generator():
    a = F.he_normal(10, 20, generator=torch.Generator().manual_seed(7))
    b = F.he_normal(10, 20, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_second_moment_propagation_he_constant_glorot_halves_he_2015():
    """He et al. (2015), eq. 9: q_l = (fan_in Var w / 2) q_{l-1} for ReLU.
    Width 1000, 10 layers, batch 50. The mean log growth rate per layer,
    log(q_L / q_1) / (L - 1), is 0 for He and log(1/2) for Glorot on equal
    widths. Its sd over seeds is measured at 0.016 (per-layer sd 0.05,
    about sqrt(2/width) and a little more); tolerance 0.06 (about 4 sigma)."""
    g = torch.Generator().manual_seed(8)
    n, L = 1000, 10
    x = torch.randn(50, n, generator=g, dtype=torch.float64)
    q_he = F.preactivation_second_moments(x, [F.he_normal(n, n, g) for _ in range(L)])
    q_gl = F.preactivation_second_moments(x, [F.glorot_normal(n, n, g) for _ in range(L)])
    assert q_he.shape == (L,)
    rate_he = math.log(q_he[-1] / q_he[0]) / (L - 1)
    rate_gl = math.log(q_gl[-1] / q_gl[0]) / (L - 1)
    assert abs(rate_he) < 0.06
    assert abs(rate_gl - math.log(0.5)) < 0.06
    # first layer: q_1 = sigma_w^2 * mean(x^2) exactly in expectation, sigma_w^2 = 2
    assert abs(q_he[0].item() / (2 * (x ** 2).mean().item()) - 1) < 0.1


def test_second_moments_by_hand():
    """One input x = (1, -2), W1 = [[1, 1], [2, 0]] gives z1 = (-1, 2), q1 = 5/2;
    relu -> (0, 2), W2 = [[3, 1]] gives z2 = 2, q2 = 4."""
    q = F.preactivation_second_moments([[1.0, -2.0]], [[[1.0, 1.0], [2.0, 0.0]], [[3.0, 1.0]]])
    torch.testing.assert_close(q, torch.tensor([2.5, 4.0], dtype=torch.float64))


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------


def test_softmax_log_softmax_cross_entropy_match_torch_at_logits_1e3():
    """torch.nn.functional in float64 on logits of magnitude 1e3, where a naive
    exp overflows (exp(1000) = inf in float64)."""
    g = torch.Generator().manual_seed(9)
    z = torch.randn(16, 10, generator=g, dtype=torch.float64) * 1e3
    y = torch.randint(0, 10, (16,), generator=g)
    torch.testing.assert_close(F.softmax(z), torch.softmax(z, -1), rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(F.log_softmax(z), torch.log_softmax(z, -1), rtol=1e-12, atol=1e-12)
    ce = F.cross_entropy(z, y)
    assert isinstance(ce, float) and math.isfinite(ce)
    assert ce == pytest.approx(torch.nn.functional.cross_entropy(z, y).item(), rel=1e-12)
    # softmax along the batch axis too
    torch.testing.assert_close(F.softmax(z, dim=0), torch.softmax(z, 0), rtol=1e-12, atol=1e-300)


def test_cross_entropy_closed_form_uniform_logits():
    """Equal logits over K classes give CE = log K exactly, whatever the labels."""
    assert F.cross_entropy(np.full((5, 7), 1e3), [0, 1, 2, 3, 6]) == pytest.approx(math.log(7), rel=1e-14)


def test_mse_mae_match_torch():
    g = torch.Generator().manual_seed(10)
    a = torch.randn(4, 5, generator=g, dtype=torch.float64)
    b = torch.randn(4, 5, generator=g, dtype=torch.float64)
    assert F.mse(a, b) == pytest.approx(torch.nn.functional.mse_loss(a, b).item(), rel=1e-14)
    assert F.mae(a, b) == pytest.approx(torch.nn.functional.l1_loss(a, b).item(), rel=1e-14)


# ---------------------------------------------------------------------------
# ReLU interpolant
# ---------------------------------------------------------------------------


def test_relu_interpolant_hits_knots_and_matches_numpy_interp():
    """Knots hit to rounding, and between knots the network equals the
    piecewise linear interpolant numpy.interp (an independent implementation)."""
    rng = np.random.default_rng(11)
    x = np.sort(rng.uniform(-3, 3, size=12))
    y = np.sin(2 * x) + rng.normal(size=12)
    W1, b1, W2, b2 = F.relu_interpolant(x, y)
    assert W1.shape == (11, 1) and b1.shape == (11,) and W2.shape == (1, 11) and b2.shape == (1,)
    np.testing.assert_allclose(F.relu_net(x, W1, b1, W2, b2).numpy(), y, rtol=1e-12, atol=1e-12)
    t = rng.uniform(x[0], x[-1], size=500)
    np.testing.assert_allclose(F.relu_net(t, W1, b1, W2, b2).numpy(), np.interp(t, x, y), rtol=1e-11, atol=1e-11)


def test_relu_interpolant_uniform_error_decreases_like_h_squared():
    """Universal approximation, made quantitative: the interpolant of sin on a
    grid of spacing h has sup error <= h^2/8 * max|sin''| = h^2/8."""
    for K in (8, 32, 128):
        x = np.linspace(0, math.pi, K + 1)
        params = F.relu_interpolant(x, np.sin(x))
        t = np.linspace(0, math.pi, 5001)
        err = np.abs(F.relu_net(t, *params).numpy() - np.sin(t)).max()
        h = math.pi / K
        assert err <= h ** 2 / 8 + 1e-12
        assert err >= 0.5 * h ** 2 / 8  # and the bound is nearly attained


def test_relu_interpolant_rejects_unsorted_knots():
    with pytest.raises(ValueError):
        F.relu_interpolant([0.0, 2.0, 1.0], [0.0, 1.0, 2.0])
