"""Tests of sodl_ref.alignment: DPO loss vs a direct formula, the tabular optimum of
Rafailov et al. (2023) vs numerical optimization, the Gibbs variational principle."""

import math

import numpy as np
import pytest
import scipy.optimize
import torch

from sodl_ref import alignment as al


def test_dpo_loss_matches_direct_formula_and_is_stable():
    """Rafailov et al. (2023), eq. 7, evaluated term by term in numpy with
    log1p(exp(-u)); and finite for log-probabilities of size 1e4 (where the naive
    -log(sigmoid(u)) underflows to -log(0) = inf)."""
    rng = np.random.default_rng(0)
    pw, pl, rw, rl_ = (rng.normal(size=8) * 5 - 20 for _ in range(4))
    beta = 0.3
    u = beta * ((pw - rw) - (pl - rl_))
    expected = np.mean(np.log1p(np.exp(-u)))
    assert al.dpo_loss(pw, pl, rw, rl_, beta) == pytest.approx(expected, rel=1e-13)
    # huge margins: loss ~ mean(max(-u, 0))
    big = al.dpo_loss([-1e4, 0.0], [0.0, -1e4], [0.0, 0.0], [0.0, 0.0], beta=1.0)
    assert math.isfinite(big) and big == pytest.approx(5e3, rel=1e-12)


def test_dpo_loss_at_reference_policy_is_log_2():
    """When pi = pi_ref every implicit reward margin is 0 and the loss is log 2."""
    lp = torch.randn(5, dtype=torch.float64)
    lq = torch.randn(5, dtype=torch.float64)
    assert al.dpo_loss(lp, lq, lp, lq, beta=0.7) == pytest.approx(math.log(2), rel=1e-14)


def test_dpo_gradient_weights_matches_paper_section_4():
    """Rafailov et al. (2023), section 4 ('What does the DPO update do?'):
    d loss / d log pi(y_w) = -beta sigma(r_hat(y_l) - r_hat(y_w)) / B, checked with autograd."""
    g = torch.Generator().manual_seed(1)
    pw, pl, rw, rl_ = (torch.randn(6, generator=g, dtype=torch.float64) for _ in range(4))
    beta = 0.5
    pw_ = pw.clone().requires_grad_()
    loss = torch.nn.functional.softplus(-beta * ((pw_ - rw) - (pl - rl_))).mean()
    loss.backward()
    rhat_w = al.dpo_implicit_reward(pw, rw, beta)
    rhat_l = al.dpo_implicit_reward(pl, rl_, beta)
    torch.testing.assert_close(pw_.grad, -beta * torch.sigmoid(rhat_l - rhat_w) / 6, rtol=1e-12, atol=1e-14)
    assert loss.item() == pytest.approx(al.dpo_loss(pw, pl, rw, rl_, beta), rel=1e-14)


def test_optimal_policy_maximizes_kl_regularized_objective_scipy():
    """Rafailov et al. (2023), eq. 4: pi* = pi_ref exp(r/beta) / Z maximizes
    E_pi r - beta KL(pi || pi_ref). Checked against scipy.optimize on the softmax
    parametrization, and the optimal value equals beta log Z (Gibbs)."""
    rng = np.random.default_rng(2)
    K, beta = 6, 0.4
    ref = rng.dirichlet(np.ones(K))
    r = rng.normal(size=K)

    def neg(z):
        pi = np.exp(z - z.max()); pi /= pi.sum()
        return -(pi @ r - beta * np.sum(pi * np.log(pi / ref)))

    res = scipy.optimize.minimize(neg, np.zeros(K), method="BFGS", options={"gtol": 1e-12})
    pi_num = np.exp(res.x - res.x.max()); pi_num /= pi_num.sum()
    pi_star = al.optimal_policy(ref, r, beta)
    np.testing.assert_allclose(pi_star.numpy(), pi_num, atol=1e-6)
    J = al.kl_regularized_objective(pi_star, ref, r, beta)
    assert float(J) == pytest.approx(-res.fun, rel=1e-10)
    assert float(J) == pytest.approx(float(al.optimal_objective_value(ref, r, beta)), rel=1e-12)
    # any other policy does worse
    for _ in range(20):
        other = rng.dirichlet(np.ones(K))
        assert float(al.kl_regularized_objective(other, ref, r, beta)) < float(J)


def test_dpo_population_optimum_is_pi_ref_exp_r_over_beta():
    """Tabular DPO (Rafailov et al. 2023, section 5, Theorem 1): with Bradley-Terry
    labels from reward r, the expected DPO loss over all pairs is minimized at
    pi* = pi_ref exp(r/beta) / Z. Its autograd gradient vanishes there, and
    L-BFGS from the reference policy converges to it."""
    g = torch.Generator().manual_seed(3)
    K, beta = 5, 0.5
    ref = torch.softmax(torch.randn(K, generator=g, dtype=torch.float64), 0)
    r = torch.randn(K, generator=g, dtype=torch.float64)
    pi_star = al.optimal_policy(ref, r, beta)
    z = torch.log(pi_star).clone().requires_grad_()
    al.dpo_population_loss(z, ref, r, beta).backward()
    assert z.grad.abs().max() < 1e-14
    z = torch.log(ref).clone().requires_grad_()
    opt = torch.optim.LBFGS([z], lr=1, max_iter=200, tolerance_grad=1e-14, tolerance_change=1e-16,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = al.dpo_population_loss(z, ref, r, beta)
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(torch.softmax(z.detach(), 0), pi_star, rtol=1e-6, atol=1e-8)


def test_optimal_policy_limits_and_stability():
    """beta -> infinity gives pi_ref; beta -> 0 the argmax of r (on pi_ref's support);
    tiny beta (r/beta ~ 1e4) stays finite; zero-probability responses stay at 0."""
    ref = torch.tensor([0.5, 0.3, 0.2, 0.0], dtype=torch.float64)
    r = torch.tensor([0.0, 1.0, 0.5, 9.0], dtype=torch.float64)
    torch.testing.assert_close(al.optimal_policy(ref, r, 1e8), ref, atol=1e-7, rtol=0)
    p = al.optimal_policy(ref, r, 1e-4)
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p, torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-12, rtol=0)
    # batched rows
    P = al.optimal_policy(torch.stack([ref, ref]), torch.stack([r, -r]), 1.0)
    assert P.shape == (2, 4)
    torch.testing.assert_close(P.sum(-1), torch.ones(2, dtype=torch.float64))


def test_bradley_terry():
    assert float(al.bradley_terry_prob(1.0, 1.0)) == 0.5
    assert float(al.bradley_terry_prob(math.log(3), 0.0)) == pytest.approx(0.75, rel=1e-14)
