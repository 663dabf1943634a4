"""Tests of sodl_ref.attribution: exact leave-one-out by refitting, autograd Hessians,
finite differences of upweighted fits, planted datamodels."""

import numpy as np
import pytest
import torch

from sodl_ref import attribution as at


def _ridge_refit_loo(X, y, lam):
    n, d = X.shape
    out = []
    for i in range(n):
        keep = np.arange(n) != i
        Xi, yi = X[keep], y[keep]
        out.append(np.linalg.solve(Xi.T @ Xi + lam * np.eye(d), Xi.T @ yi))
    return np.array(out)


def _logistic_data(rng, n, d):
    X = rng.normal(size=(n, d))
    theta = rng.normal(size=d)
    y = (rng.random(n) < 1 / (1 + np.exp(-X @ theta))).astype(float)
    return X, y


def test_ridge_loo_params_match_refitting_n_times():
    """Sherman-Morrison LOO = n independent numpy refits, to 1e-10."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 5)), rng.normal(size=30)
    loo = at.ridge_loo_params(X, y, 0.7)
    assert loo.shape == (30, 5) and loo.dtype == torch.float64
    np.testing.assert_allclose(loo.numpy(), _ridge_refit_loo(X, y, 0.7), rtol=1e-10, atol=1e-12)
    # unregularized least squares too (n > d)
    np.testing.assert_allclose(at.ridge_loo_params(X, y, 0.0).numpy(), _ridge_refit_loo(X, y, 0.0), rtol=1e-10, atol=1e-12)


def test_press_residuals_match_refits_allen_1974():
    """PRESS (Allen 1974): y_i - x_i . theta_{-i} = r_i / (1 - h_ii), vs refits."""
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(25, 4)), rng.normal(size=25)
    loo = _ridge_refit_loo(X, y, 0.3)
    np.testing.assert_allclose(at.ridge_loo_residuals(X, y, 0.3).numpy(), y - (X * loo).sum(1), rtol=1e-10)


def test_ridge_influence_is_loo_times_one_minus_leverage():
    """For a quadratic loss the influence function misses exactly the leverage factor:
    influence_i = (theta_{-i} - theta) (1 - h_ii), with h_ii the hat-matrix diagonal
    (computed here independently as diag(X (X^T X + lam I)^{-1} X^T))."""
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(40, 6)), rng.normal(size=40)
    lam = 2.0
    theta = np.linalg.solve(X.T @ X + lam * np.eye(6), X.T @ y)
    h = np.diag(X @ np.linalg.solve(X.T @ X + lam * np.eye(6), X.T))
    np.testing.assert_allclose(at.ridge_hat_diagonal(X, lam).numpy(), h, rtol=1e-12)
    infl = at.ridge_influence(X, y, lam).numpy()
    np.testing.assert_allclose(infl, (_ridge_refit_loo(X, y, lam) - theta) * (1 - h)[:, None], rtol=1e-9, atol=1e-12)


def test_logistic_fit_is_a_stationary_point_autograd():
    rng = np.random.default_rng(3)
    X, y = _logistic_data(rng, 50, 3)
    theta = at.logistic_fit(X, y, 0.5).requires_grad_()
    Xt, yt = torch.tensor(X), torch.tensor(y)
    J = (torch.nn.functional.softplus(Xt @ theta) - yt * (Xt @ theta)).sum() + 0.25 * (theta ** 2).sum()
    (g,) = torch.autograd.grad(J, theta)
    assert g.abs().max() < 1e-10


def test_logistic_hessian_matches_torch_func_hessian():
    rng = np.random.default_rng(4)
    X, y = _logistic_data(rng, 20, 4)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    theta = torch.randn(4, dtype=torch.float64)
    J = lambda th: (torch.nn.functional.softplus(Xt @ th) - yt * (Xt @ th)).sum() + 0.15 * (th ** 2).sum()
    torch.testing.assert_close(at.logistic_hessian(X, theta, 0.3), torch.func.hessian(J)(theta), rtol=1e-12, atol=1e-12)


def test_logistic_influence_is_derivative_of_upweighted_fit_koh_liang_2017():
    """Koh & Liang (2017), eq. 1: d theta_eps / d eps = -H^{-1} grad L_i when example i's
    weight is 1 + eps; by central finite differences of refits (eps = 1e-4, error O(eps^2))."""
    rng = np.random.default_rng(5)
    X, y = _logistic_data(rng, 40, 3)
    lam = 0.2
    theta = at.logistic_fit(X, y, lam)
    infl = at.logistic_influence(X, y, theta, lam)
    eps = 1e-4
    for i in (0, 7, 23):
        w = np.ones(40)
        w[i] = 1 + eps
        tp = at.logistic_fit(X, y, lam, sample_weight=w)
        w[i] = 1 - eps
        tm = at.logistic_fit(X, y, lam, sample_weight=w)
        torch.testing.assert_close((tp - tm) / (2 * eps), -infl[i], rtol=1e-6, atol=1e-9)


def test_logistic_influence_predicts_exact_leave_one_out():
    """With n = 200 examples in d = 3, the first-order influence and exact LOO refits
    agree to a relative error of O(leverage) ~ d/n: we require < 10% on the parameter
    changes and a correlation above 0.999 on the test-loss changes (Koh & Liang 2017, Fig. 2)."""
    rng = np.random.default_rng(6)
    X, y = _logistic_data(rng, 200, 3)
    lam = 0.1
    theta = at.logistic_fit(X, y, lam)
    exact = at.logistic_loo_params(X, y, lam) - theta
    infl = at.logistic_influence(X, y, theta, lam)
    assert float((infl - exact).norm() / exact.norm()) < 0.1
    x_test, y_test = torch.tensor(rng.normal(size=3)), 1.0
    loss = lambda th: torch.nn.functional.softplus(x_test @ th) - y_test * (x_test @ th)
    actual = torch.stack([loss(theta + e) - loss(theta) for e in exact])
    pred = at.logistic_test_loss_influence(X, y, theta, lam, x_test, y_test)
    assert pred.shape == (200,)
    assert np.corrcoef(actual.numpy(), pred.numpy())[0, 1] > 0.999


def test_datamodel_recovers_planted_linear_function():
    """A planted f(S) = b + sum_{i in S} theta_i (noise-free) is recovered exactly by
    least squares on 300 random subsets of 40 examples; with Gaussian noise of sd 0.1,
    the error of each weight has sd ~ 0.1 / sqrt(m alpha (1 - alpha)) ~ 0.012 for
    m = 300, alpha = 0.5; we allow 0.06 (5 sigma)."""
    g = torch.Generator().manual_seed(7)
    n, m = 40, 300
    masks = at.sample_subset_masks(n, m, 0.5, generator=g)
    assert masks.shape == (m, n) and masks.dtype == torch.bool
    theta = torch.randn(n, generator=g, dtype=torch.float64)
    f = 1.5 + masks.double() @ theta
    w, b = at.fit_datamodel(masks, f)
    torch.testing.assert_close(w, theta, rtol=1e-9, atol=1e-9)
    assert b == pytest.approx(1.5, rel=1e-9)
    w2, _ = at.fit_datamodel(masks, f + 0.1 * torch.randn(m, generator=g, dtype=torch.float64))
    assert (w2 - theta).abs().max() < 0.06


def test_datamodel_ridge_matches_closed_form_normal_equations():
    """lam > 0: the solution satisfies the normal equations with the intercept unpenalized."""
    rng = np.random.default_rng(8)
    M = (rng.random((50, 10)) < 0.3).astype(float)
    f = rng.normal(size=50)
    w, b = at.fit_datamodel(M, f, lam=2.0)
    A = np.c_[np.ones(50), M]
    sol = np.linalg.solve(A.T @ A + np.diag([0.0] + [2.0] * 10), A.T @ f)
    np.testing.assert_allclose(np.r_[b, w.numpy()], sol, rtol=1e-10, atol=1e-12)


def test_ridge_subset_predictions_match_loop_and_datamodel_tracks_loo():
    """Batched subset fits equal one ridge fit per subset; and the datamodel weights of
    a ridge model's prediction correlate with the exact LOO change of that prediction
    (Ilyas et al. 2022: datamodels and influence rank examples alike)."""
    rng = np.random.default_rng(9)
    n, d, lam = 30, 3, 1.0
    X = rng.normal(size=(n, d))
    y = X @ rng.normal(size=d) + 0.5 * rng.normal(size=n)
    x_test = rng.normal(size=d)
    g = torch.Generator().manual_seed(9)
    masks = at.sample_subset_masks(n, 2000, 0.5, generator=g)
    f = at.ridge_subset_predictions(X, y, masks, lam, x_test)
    for j in (0, 5, 1999):
        keep = masks[j].numpy()
        theta = np.linalg.solve(X[keep].T @ X[keep] + lam * np.eye(d), X[keep].T @ y[keep])
        assert float(f[j]) == pytest.approx(theta @ x_test, rel=1e-10, abs=1e-12)
    w, _ = at.fit_datamodel(masks, f, lam=1.0)
    loo_change = (at.ridge_loo_params(X, y, lam).numpy() - at.ridge_fit(X, y, lam).numpy()) @ x_test
    assert np.corrcoef(w.numpy(), -loo_change)[0, 1] > 0.9  # 0.97-0.99 over seeds
