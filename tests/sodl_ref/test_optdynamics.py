"""Tests of sodl_ref.optdynamics against closed forms, scipy and Monte Carlo."""
import math

import numpy as np
import scipy.linalg
import torch

from sodl_ref import optdynamics as od


def _spd(rng, d, lo=0.5, hi=3.0):
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (Q * rng.uniform(lo, hi, size=d)) @ Q.T


def test_ula_step_is_the_pinned_formula():
    x, g, xi = np.array([1.0, -2.0]), np.array([0.5, 4.0]), np.array([0.3, -1.1])
    out = od.ula_step(x, g, 0.01, 0.5, xi)
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), x - 0.01 * g + math.sqrt(2 * 0.01 * 0.5) * xi, rtol=1e-15)


def test_ula_stationary_variance_monte_carlo_and_continuous_limit():
    """U = a x^2/2, a = 2, T = 0.5, lr = 0.4: exact discrete variance
    T / (a (1 - lr a / 2)) = 0.5 / (2 * 0.6) = 0.41667, vs Gibbs T/a = 0.25.
    Monte Carlo: 4000 chains x 60 steps from x = 0 (the AR(1) factor 0.2^120 has
    forgotten the start); the sample variance has relative sigma sqrt(2/4000) = 2.2%,
    we allow 4 sigma."""
    a, lr, T = 2.0, 0.4, 0.5
    v = od.ula_stationary_variance(a, lr, T)
    assert abs(v - 0.5 / 1.2) < 1e-15
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(60, 4000, 1, generator=g, dtype=torch.float64)
    xs = od.ula_quadratic([[a]], torch.zeros(4000, 1, dtype=torch.float64), lr, T, noise)
    v_mc = xs[-1].var().item()
    assert abs(v_mc / v - 1) < 4 * math.sqrt(2 / 4000), v_mc
    assert abs(v_mc / (T / a) - 1) > 0.3  # the continuous-time law is visibly wrong at this lr
    # lr -> 0 recovers the Gibbs variance T/a; lr a >= 2 is unstable
    assert abs(od.ula_stationary_variance(a, 1e-9, T) - T / a) < 1e-9
    assert od.ula_stationary_variance(a, 1.0, T) == math.inf


def test_ula_stationary_covariance_matches_scipy_discrete_lyapunov():
    """S = M S M^T + 2 lr T I with M = I - lr H, solved by scipy.linalg.solve_discrete_lyapunov."""
    rng = np.random.default_rng(1)
    H = _spd(rng, 4)
    lr, T = 0.2, 0.7
    M = np.eye(4) - lr * H
    ref = scipy.linalg.solve_discrete_lyapunov(M, 2 * lr * T * np.eye(4))
    np.testing.assert_allclose(od.ula_stationary_covariance(H, lr, T).numpy(), ref, rtol=1e-11, atol=1e-12)


def test_sgd_noise_covariance_matches_enumeration_of_all_batches():
    """Exact covariance of the minibatch gradient by enumerating all n^B ordered
    batches (with replacement) and all C(n, B) subsets (without), n = 6, B = 2."""
    import itertools
    rng = np.random.default_rng(2)
    n, p, B = 6, 3, 2
    X, y, w = rng.normal(size=(n, p)), rng.normal(size=n), rng.normal(size=p)
    G = od.linear_regression_per_sample_grads(X, y, w).numpy()
    np.testing.assert_allclose(G[0], (X[0] @ w - y[0]) * X[0], rtol=1e-14)
    for replacement, batches in ((True, itertools.product(range(n), repeat=B)),
                                 (False, itertools.combinations(range(n), B))):
        gb = np.array([G[list(b)].mean(0) for b in batches])
        ref = np.cov(gb.T, bias=True)
        np.testing.assert_allclose(od.sgd_noise_covariance(G, B, replacement).numpy(), ref, rtol=1e-12, atol=1e-14)


def test_sgd_stationary_covariance_matches_scipy_lyapunov_solvers_mandt_2017():
    """Discrete: S = (I - lr H) S (I - lr H)^T + lr^2 C (scipy solve_discrete_lyapunov);
    continuous (Mandt et al. 2017): H S + S H = lr C (scipy solve_continuous_lyapunov)."""
    rng = np.random.default_rng(3)
    p, lr = 4, 0.15
    H = _spd(rng, p)
    Z = rng.normal(size=(p, p))
    C = Z @ Z.T
    S_d = od.sgd_stationary_covariance(H, C, lr).numpy()
    S_c = od.sgd_stationary_covariance(H, C, lr, discrete=False).numpy()
    M = np.eye(p) - lr * H
    np.testing.assert_allclose(S_d, scipy.linalg.solve_discrete_lyapunov(M, lr ** 2 * C), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(S_c, scipy.linalg.solve_continuous_lyapunov(H, lr * C), rtol=1e-10, atol=1e-13)
    assert np.abs(S_d - S_c).max() > 1e-3 * np.abs(S_c).max()  # they differ at finite lr
    # as lr -> 0 they agree to first order
    S_d0 = od.sgd_stationary_covariance(H, C, 1e-6).numpy()
    S_c0 = od.sgd_stationary_covariance(H, C, 1e-6, discrete=False).numpy()
    np.testing.assert_allclose(S_d0, S_c0, rtol=1e-5)


def test_gd_momentum_quadratic_matches_torch_optim_sgd_float64():
    rng = np.random.default_rng(4)
    H, x0 = _spd(rng, 3), rng.normal(size=3)
    traj = od.gd_momentum_quadratic(H, x0, 0.2, 0.7, 15)
    x = torch.tensor(x0, requires_grad=True)
    Ht = torch.tensor(H)
    opt = torch.optim.SGD([x], lr=0.2, momentum=0.7)
    for t in range(15):
        opt.zero_grad()
        (0.5 * x @ Ht @ x).backward()
        opt.step()
        torch.testing.assert_close(traj[t + 1], x.detach(), rtol=1e-12, atol=1e-13)


def test_divergence_threshold_on_quadratics_is_2_plus_2beta_over_lambda_max():
    """Cohen et al. 2021: GD is stable iff lr < (2 + 2 beta)/lambda_max. Just below the
    threshold (x0.98) the iterates shrink, just above (x1.02) they blow up."""
    rng = np.random.default_rng(5)
    H = _spd(rng, 5, 0.1, 4.0)
    lam_max = np.linalg.eigvalsh(H)[-1]
    x0 = rng.normal(size=5)
    for beta in (0.0, 0.5, 0.9):
        lr_c = od.max_stable_lr(H, beta)
        assert abs(lr_c - (2 + 2 * beta) / lam_max) < 1e-12
        below = od.gd_momentum_quadratic(H, x0, 0.98 * lr_c, beta, 3000)[-1].norm().item()
        above = od.gd_momentum_quadratic(H, x0, 1.02 * lr_c, beta, 3000)[-1].norm().item()
        assert below < 1e-3 * np.linalg.norm(x0) and above > 1e3 * np.linalg.norm(x0), (beta, below, above)


def test_hessian_top_eigenvalue_matches_eigvalsh_on_a_quadratic():
    """Power iteration on Hessian-vector products vs the exact spectrum (gap 4 vs 2)."""
    rng = np.random.default_rng(6)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    H = torch.tensor((Q * np.array([4.0, 2.0, 1.5, 1.0, 0.5, 0.1])) @ Q.T)
    lam = od.hessian_top_eigenvalue(lambda p: 0.5 * p @ H @ p, torch.ones(6, dtype=torch.float64), 100,
                                    torch.Generator().manual_seed(0))
    assert abs(lam - 4.0) < 1e-10


def _mlp(g, d=3, h=7, k=2):
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    return {"W1": r(h, d), "b1": r(h), "W2": r(k, h), "b2": r(k)}


def test_permuted_network_gives_identical_outputs_and_weight_matching_recovers_perm():
    """Permuting hidden units leaves f unchanged (to 1e-12); weight matching
    (Ainsworth et al. 2023) recovers a hidden permutation exactly, also under a small
    perturbation, and its objective beats 200 random permutations."""
    g = torch.Generator().manual_seed(7)
    pa = _mlp(g)
    X = torch.randn(20, 3, generator=g, dtype=torch.float64)
    perm = torch.randperm(7, generator=g)
    pb = od.permute_hidden(pa, perm)
    for act in ("relu", "tanh"):
        torch.testing.assert_close(od.mlp_forward(pb, X, act), od.mlp_forward(pa, X, act), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(pb["W1"], pa["W1"])
    found = od.weight_matching(pa, pb)
    assert torch.equal(od.permute_hidden(pb, found)["W1"], pa["W1"])
    noisy = {k: v + 0.01 * torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in pb.items()}
    assert torch.equal(od.permute_hidden(noisy, od.weight_matching(pa, noisy))["W1"].argmax(0),
                       pa["W1"].argmax(0))

    def objective(p):
        q = od.permute_hidden(noisy, p)
        return sum((pa[k] * q[k]).sum().item() for k in ("W1", "b1", "W2"))

    best = objective(od.weight_matching(pa, noisy))
    assert all(objective(torch.randperm(7, generator=g)) <= best + 1e-12 for _ in range(200))


def test_barrier_of_double_well_linear_is_one_and_bezier_through_ring_is_one_sixteenth():
    """1-D double well U(x) = (x^2 - 1)^2 between -1 and 1: linear barrier U(0) = 1.
    Mexican hat U = (|x|^2 - 1)^2 between (-1, 0) and (1, 0): the linear path crosses the
    top (barrier 1); the Bezier curve with control (0, 2) is (s, (1 - s^2)) with s = 2t - 1,
    on which U = s^4 (1 - s^2)^2, maximal 1/16 at s^2 = 1/2 (Garipov et al. 2018's point:
    a curved path between minima can have a much lower barrier)."""
    ts = np.linspace(0, 1, 101)
    dw = lambda x: ((x ** 2 - 1) ** 2).sum()
    assert abs(od.loss_barrier(od.path_losses(dw, [-1.0], [1.0], ts)) - 1.0) < 1e-15
    hat = lambda x: ((x ** 2).sum() - 1) ** 2
    a, b, c = [-1.0, 0.0], [1.0, 0.0], [0.0, 2.0]
    assert abs(od.loss_barrier(od.path_losses(hat, a, b, ts)) - 1.0) < 1e-15
    ts_c = np.sort(np.r_[ts, (1 - 2 ** -0.5) / 2, (1 + 2 ** -0.5) / 2])
    assert abs(od.loss_barrier(od.path_losses(hat, a, b, ts_c, control=c)) - 1 / 16) < 1e-14
    # endpoints with different losses: barrier measured from their mean
    assert od.loss_barrier([1.0, 5.0, 3.0]) == 3.0


def test_path_point_on_param_dicts_hits_endpoints_and_midpoint():
    g = torch.Generator().manual_seed(8)
    pa, pb, pc = _mlp(g), _mlp(g), _mlp(g)
    for k in pa:
        torch.testing.assert_close(od.path_point(pa, pb, 0.0, pc)[k], pa[k], rtol=0, atol=0)
        torch.testing.assert_close(od.path_point(pa, pb, 1.0, pc)[k], pb[k], rtol=0, atol=0)
        torch.testing.assert_close(od.path_point(pa, pb, 0.5, pc)[k], 0.25 * pa[k] + 0.5 * pc[k] + 0.25 * pb[k])
        torch.testing.assert_close(od.path_point(pa, pb, 0.5)[k], 0.5 * (pa[k] + pb[k]))
