"""Tests of sodl_ref.optimization against closed forms, torch.optim, eigvalsh, pinv and an SVM."""

import math

import numpy as np
import pytest
import torch

from sodl_ref import optimization as opt


def _spd(d, kappa, seed):
    """Random SPD matrix with eigenvalues spread log-uniformly in [1, kappa], and them."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    lam = np.geomspace(1.0, kappa, d)
    return torch.tensor(Q @ np.diag(lam) @ Q.T), lam


# ---------------------------------------------------------------- GD on quadratics

def test_gd_quadratic_error_matches_matrix_power_closed_form():
    """x_k - x* = (I - lr A)^k (x0 - x*) exactly (Nesterov 2004, Sec. 1.2.3)."""
    A, _ = _spd(5, 30.0, 0)
    rng = np.random.default_rng(1)
    b, x0 = torch.tensor(rng.normal(size=5)), torch.tensor(rng.normal(size=5))
    lr, steps = 0.05, 40
    xs = opt.gd_quadratic(A, b, x0, lr, steps)
    assert xs.shape == (steps + 1, 5) and xs.dtype == torch.float64
    xstar = torch.linalg.solve(A, b)
    M = torch.eye(5, dtype=torch.float64) - lr * A
    for k in (0, 1, 7, steps):
        expected = torch.linalg.matrix_power(M, k) @ (x0 - xstar)
        torch.testing.assert_close(xs[k] - xstar, expected, rtol=1e-10, atol=1e-12)


def test_gd_rate_at_optimal_lr_is_kappa_minus_one_over_kappa_plus_one():
    """At lr = 2/(L+mu) the contraction is (kappa-1)/(kappa+1): for kappa = 9, exactly 0.8."""
    A, lam = _spd(4, 9.0, 2)
    lr = opt.gd_optimal_lr(A)
    assert lr == pytest.approx(2.0 / 10.0, rel=1e-12)
    assert opt.gd_optimal_rate(A) == pytest.approx(0.8, rel=1e-12)
    assert opt.gd_contraction_rate(A, lr) == pytest.approx(0.8, rel=1e-12)
    # the optimal step minimises the rate: any other step is worse
    for other in (0.9 * lr, 1.1 * lr):
        assert opt.gd_contraction_rate(A, other) > 0.8
    # spectral norm of the error map, computed independently
    M = np.eye(4) - lr * A.numpy()
    assert opt.gd_contraction_rate(A, lr) == pytest.approx(np.linalg.norm(M, 2), rel=1e-10)


def test_gd_diverges_past_two_over_L_and_converges_below():
    """The edge of divergence: rate < 1 iff lr < 2/L; the top-eigenvector error grows past it."""
    A, lam = _spd(3, 10.0, 3)
    L = lam[-1]
    assert opt.gd_contraction_rate(A, 1.99 / L) < 1.0
    assert opt.gd_contraction_rate(A, 2.01 / L) > 1.0
    b = torch.zeros(3, dtype=torch.float64)
    x0 = torch.ones(3, dtype=torch.float64)
    loss = lambda xs: opt.quadratic_loss(A, b, xs)  # noqa: E731
    assert loss(opt.gd_quadratic(A, b, x0, 1.99 / L, 400))[-1] < 1e-3
    assert loss(opt.gd_quadratic(A, b, x0, 2.01 / L, 400))[-1] > 1e2


# ---------------------------------------------------------------- heavy ball

def test_polyak_tuning_closed_form_and_rate_sqrt_kappa():
    """Polyak 1964, Thm 9: for kappa = 16, lr = 4/(sqrt L + sqrt mu)^2, momentum = (3/5)^2, rate 3/5."""
    A, lam = _spd(6, 16.0, 4)
    lr, m = opt.polyak_heavy_ball_params(A)
    assert lr == pytest.approx(4.0 / (4.0 + 1.0) ** 2, rel=1e-12)
    assert m == pytest.approx(0.36, rel=1e-12)
    assert opt.heavy_ball_rate(A, lr, m) == pytest.approx(0.6, rel=1e-6)
    # spectral radius of the full 2d x 2d iteration matrix, by numpy
    d = 6
    An = A.numpy()
    T = np.block([[(1 + m) * np.eye(d) - lr * An, -m * np.eye(d)], [np.eye(d), np.zeros((d, d))]])
    assert np.abs(np.linalg.eigvals(T)).max() == pytest.approx(0.6, rel=1e-6)


def test_heavy_ball_matches_torch_sgd_momentum_on_quadratic():
    """Heavy ball = torch.optim.SGD(momentum) up to reparametrisation: buf_1 = g_0, lr * buf = step."""
    A, _ = _spd(4, 20.0, 5)
    rng = np.random.default_rng(6)
    b, x0 = torch.tensor(rng.normal(size=4)), torch.tensor(rng.normal(size=4))
    lr, m, steps = 0.03, 0.7, 25
    xs = opt.heavy_ball_quadratic(A, b, x0, lr, m, steps)
    x = x0.clone().requires_grad_(True)
    sgd = torch.optim.SGD([x], lr=lr, momentum=m)
    for k in range(steps):
        sgd.zero_grad()
        opt.quadratic_loss(A, b, x).backward()
        sgd.step()
        torch.testing.assert_close(xs[k + 1], x.detach(), rtol=1e-11, atol=1e-12)


def test_heavy_ball_with_polyak_tuning_beats_best_gd():
    """After 60 steps with kappa = 100, heavy ball's error is far below optimal GD's."""
    A, _ = _spd(8, 100.0, 7)
    rng = np.random.default_rng(8)
    b, x0 = torch.tensor(rng.normal(size=8)), torch.zeros(8, dtype=torch.float64)
    xstar = torch.linalg.solve(A, b)
    lr, m = opt.polyak_heavy_ball_params(A)
    e_hb = (opt.heavy_ball_quadratic(A, b, x0, lr, m, 60)[-1] - xstar).norm()
    e_gd = (opt.gd_quadratic(A, b, x0, opt.gd_optimal_lr(A), 60)[-1] - xstar).norm()
    assert e_hb < 1e-2 * e_gd


# ---------------------------------------------------------------- optimizer steps

def _rosenbrock_like(p):
    return ((p[1:] - p[:-1] ** 2) ** 2).sum() + 0.1 * ((1 - p) ** 2).sum()


@pytest.mark.parametrize("kw", [
    dict(lr=1e-2, momentum=0.9),
    dict(lr=5e-3, momentum=0.8, dampening=0.1, weight_decay=0.01),
    dict(lr=1e-2, momentum=0.9, nesterov=True, weight_decay=0.05),
])
def test_sgd_momentum_step_matches_torch_optim_sgd_float64(kw):
    p0 = torch.tensor(np.random.default_rng(9).normal(size=7))
    p_t = p0.clone().requires_grad_(True)
    sgd = torch.optim.SGD([p_t], **kw)
    p, buf = p0.clone(), None
    for _ in range(20):
        q = p.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(_rosenbrock_like(q), q)
        p, buf = opt.sgd_momentum_step(p, g, buf, **kw)
        sgd.zero_grad()
        _rosenbrock_like(p_t).backward()
        sgd.step()
        torch.testing.assert_close(p, p_t.detach(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kw", [
    dict(),
    dict(lr=3e-2, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=1e-2, weight_decay=0.1),
])
def test_adam_step_matches_torch_optim_adam_float64(kw):
    """adam_step (pinned) reproduces torch.optim.Adam's trajectory for 30 steps, in float64."""
    p0 = torch.tensor(np.random.default_rng(10).normal(size=(3, 4)))
    p_t = p0.clone().requires_grad_(True)
    adam = torch.optim.Adam([p_t], **kw)
    p, state = p0.clone(), None
    for _ in range(30):
        q = p.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(_rosenbrock_like(q.flatten()), q)
        g_before, p_before = g.clone(), p.clone()
        p, state = opt.adam_step(p, g, state, **kw)
        assert torch.equal(g, g_before) and torch.equal(p_before, p_before)  # pure
        adam.zero_grad()
        _rosenbrock_like(p_t.flatten()).backward()
        adam.step()
        torch.testing.assert_close(p, p_t.detach(), rtol=1e-12, atol=1e-14)
    assert state["step"] == 30


def test_adam_first_step_moves_each_coordinate_by_lr():
    """Kingma & Ba 2015, Sec. 2.1: with bias correction the first step is lr * sign(g) (eps -> 0)."""
    g = torch.tensor([3.0, -1e-3, 250.0], dtype=torch.float64)
    p, state = opt.adam_step(torch.zeros(3, dtype=torch.float64), g, None, lr=0.1, eps=0.0)
    torch.testing.assert_close(p, -0.1 * torch.sign(g), rtol=1e-14, atol=0.0)
    assert state["step"] == 1


def _lion_paper(theta, grads, lr, beta1, beta2, wd):
    """Chen et al. 2023, Algorithm 2, transcribed in numpy loop by loop."""
    theta = np.array(theta, dtype=np.float64)
    m = np.zeros_like(theta)
    out = []
    for g in grads:
        c = beta1 * m + (1 - beta1) * g
        theta = theta - lr * (np.sign(c) + wd * theta)
        m = beta2 * m + (1 - beta2) * g
        out.append(theta.copy())
    return out


def test_lion_step_matches_paper_algorithm_2():
    rng = np.random.default_rng(11)
    theta0 = rng.normal(size=6)
    grads = [rng.normal(size=6) for _ in range(15)]
    expected = _lion_paper(theta0, grads, 0.01, 0.9, 0.99, 0.1)
    p, state = torch.tensor(theta0), None
    for g, e in zip(grads, expected):
        p, state = opt.lion_step(p, torch.tensor(g), state, lr=0.01, betas=(0.9, 0.99), weight_decay=0.1)
        np.testing.assert_allclose(p.numpy(), e, rtol=1e-13, atol=1e-15)


def test_lion_update_has_magnitude_lr_in_every_coordinate():
    """Without weight decay Lion is a sign method: |delta theta_i| = lr exactly."""
    rng = np.random.default_rng(12)
    p, state = torch.tensor(rng.normal(size=50)), None
    for _ in range(5):
        p_new, state = opt.lion_step(p, torch.tensor(rng.normal(size=50)), state, lr=0.003)
        torch.testing.assert_close((p_new - p).abs(), torch.full((50,), 0.003, dtype=torch.float64),
                                   rtol=1e-12, atol=1e-15)
        p = p_new


# ---------------------------------------------------------------- Hessian

def _mlp_problem(seed, n=32, d=3, h=6):
    g = torch.Generator().manual_seed(seed)
    p = opt.mlp_num_params(d, h)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    teacher = torch.randn(p, generator=g, dtype=torch.float64)
    W1, b1 = teacher[: h * d].reshape(h, d), teacher[h * d: h * d + h]
    y = torch.tanh(X @ W1.T + b1) @ teacher[h * d + h: h * d + 2 * h] + teacher[-1]
    theta = teacher + 0.1 * torch.randn(p, generator=g, dtype=torch.float64)
    v0 = torch.randn(p, generator=g, dtype=torch.float64)
    return theta, X, y, h, v0


def test_mlp_loss_matches_torch_nn_mse():
    theta, X, y, h, _ = _mlp_problem(0)
    d = X.shape[1]
    net = torch.nn.Sequential(torch.nn.Linear(d, h), torch.nn.Tanh(), torch.nn.Linear(h, 1)).double()
    with torch.no_grad():
        net[0].weight.copy_(theta[: h * d].reshape(h, d))
        net[0].bias.copy_(theta[h * d: h * d + h])
        net[2].weight.copy_(theta[h * d + h: h * d + 2 * h][None])
        net[2].bias.copy_(theta[-1:])
    expected = 0.5 * torch.nn.functional.mse_loss(net(X)[:, 0], y)
    torch.testing.assert_close(opt.mlp_loss(theta, X, y, h), expected, rtol=1e-13, atol=0.0)


def test_hessian_vector_product_matches_full_autograd_hessian():
    theta, X, y, h, v = _mlp_problem(1)
    loss = lambda t: opt.mlp_loss(t, X, y, h)  # noqa: E731
    H = torch.autograd.functional.hessian(loss, theta)
    torch.testing.assert_close(opt.hessian_vector_product(loss, theta, v), H @ v, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_top_hessian_eigenvalue_matches_full_hessian_eigvalsh(seed):
    theta, X, y, h, v0 = _mlp_problem(seed)
    H = torch.autograd.functional.hessian(lambda t: opt.mlp_loss(t, X, y, h), theta)
    ev = torch.linalg.eigvalsh(H)
    top = ev[ev.abs().argmax()]
    lam = opt.top_hessian_eigenvalue(theta, X, y, h, v0, iters=300)
    assert isinstance(lam, float)
    assert lam == pytest.approx(float(top), rel=1e-9)


# ---------------------------------------------------------------- implicit bias

def test_gd_from_zero_on_underdetermined_least_squares_converges_to_pinv():
    """Min-norm implicit bias: GD from 0 -> X^+ y; from w0 != 0 -> X^+ y + (I - X^+ X) w0."""
    rng = np.random.default_rng(13)
    n, p = 8, 20
    X, y = torch.tensor(rng.normal(size=(n, p))), torch.tensor(rng.normal(size=n))
    lr = n / torch.linalg.matrix_norm(X, 2).item() ** 2  # = 1/L of the loss
    w = opt.gd_least_squares(X, y, lr, 3000)
    pinv = torch.linalg.pinv(X)
    torch.testing.assert_close(w, pinv @ y, rtol=1e-8, atol=1e-9)
    w0 = torch.tensor(rng.normal(size=p))
    w_off = opt.gd_least_squares(X, y, lr, 3000, w0=w0)
    torch.testing.assert_close(w_off, pinv @ y + (torch.eye(p, dtype=torch.float64) - pinv @ X) @ w0,
                               rtol=1e-8, atol=1e-9)
    assert w_off.norm() > w.norm()  # both interpolate; only the one from 0 has minimal norm


def _separable(seed, n=20, d=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.sign(X @ rng.normal(size=d))
    return X, y


def test_max_margin_direction_matches_sklearn_svc_on_symmetrised_data():
    """Hard SVM without bias via SVC (C = 1e8): adding (-x, -y) forces the intercept to 0."""
    from sklearn.svm import SVC

    X, y = _separable(14)
    u = opt.max_margin_direction(X, y).numpy()
    svc = SVC(kernel="linear", C=1e8, tol=1e-10).fit(np.vstack([X, -X]), np.concatenate([y, -y]))
    w = svc.coef_[0] / np.linalg.norm(svc.coef_[0])
    np.testing.assert_allclose(u, w, atol=1e-6)


@pytest.mark.parametrize("seed", [15, 16])
def test_normalized_gd_logistic_direction_converges_to_max_margin_soudry_2018(seed):
    X, y = _separable(seed)
    u = opt.max_margin_direction(X, y)
    cos = [float(w @ u / w.norm()) for w in (opt.normalized_gd_logistic(X, y, 0.1, s) for s in (100, 2000))]
    assert 1 - cos[1] < 1e-3 and 1 - cos[1] < 0.1 * (1 - cos[0])
    # the normalized margin min_i y_i x_i . w / ||w|| approaches the SVM margin from below
    w = opt.normalized_gd_logistic(X, y, 0.1, 2000)
    Z = torch.tensor(y[:, None] * X)
    assert float((Z @ w).min() / w.norm()) == pytest.approx(float((Z @ u).min()), rel=2e-2)


def test_normalized_gd_logistic_stays_finite_when_loss_underflows():
    X, y = _separable(17)
    w = opt.normalized_gd_logistic(X, y, 100.0, 300)
    Z = torch.tensor(y[:, None] * X)
    # the naive gradient weights sigmoid(-margin) all underflow to 0 here ...
    assert (torch.sigmoid(-(Z @ w)) == 0).all()
    # ... yet the iterate is finite and separates the data
    assert torch.isfinite(w).all() and (Z @ w).min() > 0
