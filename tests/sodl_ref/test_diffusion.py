"""Tests of sodl_ref.diffusion against explicit loops, Bayes' rule, torch.distributions and Monte Carlo."""

import math

import numpy as np
import torch
from torch.distributions import MultivariateNormal, Normal

from sodl_ref import diffusion as dif


def _t(v):
    return torch.tensor(v, dtype=torch.float64)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- schedules


def test_linear_schedule_endpoints_and_dtype_ho_2020():
    """Ho et al. 2020, sec. 4: T = 1000, beta_1 = 1e-4, beta_T = 0.02, linear."""
    b = dif.linear_beta_schedule()
    assert b.shape == (1000,) and b.dtype == torch.float64
    assert b[0].item() == 1e-4 and abs(b[-1].item() - 0.02) < 1e-17
    assert torch.allclose(torch.diff(b), torch.full((999,), (0.02 - 1e-4) / 999, dtype=torch.float64), atol=1e-15)


def test_alphas_cumprod_and_posterior_variance_match_explicit_loops():
    betas = dif.linear_beta_schedule(50, 1e-3, 0.2).tolist()
    abar, prod = [], 1.0
    for b in betas:
        prod *= 1.0 - b
        abar.append(prod)
    beta_tilde = [(1 - (abar[t - 2] if t >= 2 else 1.0)) / (1 - abar[t - 1]) * betas[t - 1] for t in range(1, 51)]
    assert np.allclose(dif.alphas_cumprod(betas).numpy(), abar, rtol=1e-14)
    assert np.allclose(dif.posterior_variance(np.array(betas)).numpy(), beta_tilde, rtol=1e-13)
    assert dif.posterior_variance(betas)[0].item() == 0.0
    # alpha_bar_T of the standard schedule: x_T is almost pure noise (~4e-5)
    assert 3e-5 < dif.alphas_cumprod(dif.linear_beta_schedule())[-1].item() < 5e-5


# --------------------------------------------------------------------------- forward and posterior


def test_q_sample_composes_the_one_step_kernels_in_distribution():
    """Eq. 4 from eq. 2: running q(x_t|x_{t-1}) = N(sqrt(1-beta_t) x_{t-1}, beta_t) t times gives mean
    sqrt(abar_t) x0 and variance 1 - abar_t (exact linear recursion), and q_sample realizes them."""
    betas = dif.linear_beta_schedule(30, 1e-3, 0.3)
    m, v = 1.7, 0.0
    for t in range(1, 31):
        b = betas[t - 1].item()
        m, v = math.sqrt(1 - b) * m, (1 - b) * v + b
        abar = dif.alphas_cumprod(betas)[t - 1].item()
        assert abs(m - math.sqrt(abar) * 1.7) < 1e-12 and abs(v - (1 - abar)) < 1e-12
        x = dif.q_sample(_t([[1.7]]), t, betas, _t([[1.0]]))
        assert abs(x.item() - (m + math.sqrt(v))) < 1e-12
    # per-sample steps [B]
    x0 = torch.ones(3, 2, dtype=torch.float64)
    eps = torch.zeros(3, 2, dtype=torch.float64)
    xt = dif.q_sample(x0, torch.tensor([1, 10, 30]), betas, eps)
    assert torch.allclose(xt[:, 0], dif.alphas_cumprod(betas)[[0, 9, 29]].sqrt())


def test_posterior_matches_bayes_rule_for_scalar_gaussian():
    """q(x_{t-1}|x_t,x_0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x_0): product of two Gaussians in x_{t-1},
    precision 1/(1-abar_{t-1}) + alpha_t/beta_t, computed independently of eq. 7."""
    betas = dif.linear_beta_schedule(40, 1e-3, 0.1)
    abar = dif.alphas_cumprod(betas)
    x0, xt = 0.8, -0.3
    for t in (2, 7, 40):
        a_t = 1 - betas[t - 1].item()
        ab_prev = abar[t - 2].item()
        prec = 1 / (1 - ab_prev) + a_t / betas[t - 1].item()
        mean = (math.sqrt(ab_prev) * x0 / (1 - ab_prev) + math.sqrt(a_t) * xt / betas[t - 1].item()) / prec
        assert abs(dif.posterior_variance(betas)[t - 1].item() - 1 / prec) < 1e-14
        mu = dif.posterior_mean(_t([[x0]]), _t([[xt]]), t, betas)
        assert abs(mu.item() - mean) < 1e-12
    # t = 1: the posterior is a point mass at x0
    assert abs(dif.posterior_mean(_t([[x0]]), _t([[xt]]), 1, betas).item() - x0) < 1e-14


def test_posterior_matches_bayes_rule_by_numerical_integration():
    """Same posterior from a grid: density ∝ N(x_t; sqrt(alpha_t) y, beta_t) N(y; sqrt(abar_{t-1}) x0, 1 - abar_{t-1})."""
    betas = dif.linear_beta_schedule(10, 0.05, 0.3)
    abar = dif.alphas_cumprod(betas)
    t, x0, xt = 5, 1.2, 0.4
    y = torch.linspace(-8, 8, 400001, dtype=torch.float64)
    logp = Normal(math.sqrt(1 - betas[t - 1]) * y, betas[t - 1].sqrt()).log_prob(_t(xt)) + Normal(
        abar[t - 2].sqrt() * x0, (1 - abar[t - 2]).sqrt()
    ).log_prob(y)
    w = torch.softmax(logp, 0)
    m = (w * y).sum().item()
    v = (w * (y - m) ** 2).sum().item()
    assert abs(dif.posterior_mean(_t([[x0]]), _t([[xt]]), t, betas).item() - m) < 1e-9
    assert abs(dif.posterior_variance(betas)[t - 1].item() - v) < 1e-9


def test_predict_x0_inverts_q_sample():
    g = _gen(1)
    betas = dif.linear_beta_schedule()
    x0 = torch.randn(5, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(5, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 10, 100, 500, 1000])
    assert torch.allclose(dif.predict_x0_from_eps(dif.q_sample(x0, t, betas, eps), t, eps, betas), x0, atol=1e-9)


# --------------------------------------------------------------------------- scores


def _autograd_score(log_prob, x):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(log_prob(x).sum(), x)
    return grad


def _random_spd(d, gen):
    A = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return A @ A.T / d + 0.3 * torch.eye(d, dtype=torch.float64)


def test_diffused_gaussian_score_matches_autograd_of_torch_distributions():
    g = _gen(2)
    mean = torch.randn(3, generator=g, dtype=torch.float64)
    cov = _random_spd(3, g)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    for ab in (1.0, 0.7, 0.05):
        dist = MultivariateNormal(math.sqrt(ab) * mean, ab * cov + (1 - ab) * torch.eye(3, dtype=torch.float64))
        assert torch.allclose(dif.diffused_gaussian_score(x, mean, cov, ab), _autograd_score(dist.log_prob, x), atol=1e-12)


def test_diffused_gmm_score_and_log_density_match_torch_mixture_same_family():
    """Mixture diffused by eq. 4 = MixtureSameFamily of the diffused components; score by autograd in float64."""
    g = _gen(3)
    K, d = 3, 2
    w = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    means = 3 * torch.randn(K, d, generator=g, dtype=torch.float64)
    covs = torch.stack([_random_spd(d, g) for _ in range(K)])
    x = 2 * torch.randn(8, d, generator=g, dtype=torch.float64)
    for ab in (1.0, 0.5, 0.01):
        mix = torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(probs=w),
            MultivariateNormal(math.sqrt(ab) * means, ab * covs + (1 - ab) * torch.eye(d, dtype=torch.float64)),
        )
        assert torch.allclose(dif.diffused_gmm_score(x, w, means, covs, ab), _autograd_score(mix.log_prob, x), atol=1e-11)
    assert torch.allclose(dif.gmm_log_density(x, w, means, covs), torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=w), MultivariateNormal(means, covs)).log_prob(x), atol=1e-12)


def test_gmm_score_is_finite_far_from_all_modes():
    """Responsibilities in log space: at |x| = 1e3 the densities underflow but the score does not."""
    w = torch.tensor([0.5, 0.5], dtype=torch.float64)
    means = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    covs = 0.01 * torch.eye(2, dtype=torch.float64).expand(2, 2, 2)
    s = dif.gmm_score(torch.tensor([[1e3, 0.0]], dtype=torch.float64), w, means, covs)
    assert torch.allclose(s, torch.tensor([[-(1e3 - 1) / 0.01, 0.0]], dtype=torch.float64))


def test_eps_from_score_is_tweedie_posterior_mean_of_noise():
    """For x0 ~ N(m, s2) in 1-D, E[eps | x_t] by Gaussian conditioning equals -sqrt(1-abar) * score."""
    betas = dif.linear_beta_schedule(100, 1e-3, 0.05)
    m, s2, t = 0.5, 2.0, 60
    ab = dif.alphas_cumprod(betas)[t - 1].item()
    xt = torch.tensor([[-1.0], [0.3], [2.5]], dtype=torch.float64)
    # Cov(eps, x_t) = sqrt(1-ab), Var(x_t) = ab s2 + 1 - ab
    e_eps = math.sqrt(1 - ab) * (xt - math.sqrt(ab) * m) / (ab * s2 + 1 - ab)
    score = dif.diffused_gaussian_score(xt, torch.tensor([m]), torch.tensor([[s2]]), ab)
    assert torch.allclose(dif.eps_from_score(score, t, betas), e_eps, atol=1e-14)


# --------------------------------------------------------------------------- sampling


def test_ddpm_step_matches_posterior_mean_of_predicted_x0():
    """Eq. 11 equals mu_tilde(x_t, x0_hat) with x0_hat from eq. 4 (Ho et al. 2020, sec. 3.2)."""
    g = _gen(4)
    betas = dif.linear_beta_schedule()
    xt = torch.randn(4, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(4, 2, generator=g, dtype=torch.float64)
    zero = torch.zeros(4, 2, dtype=torch.float64)
    for t in (1, 2, 300, 1000):
        x0_hat = dif.predict_x0_from_eps(xt, t, eps, betas)
        assert torch.allclose(dif.ddpm_step(xt, t, eps, betas, zero), dif.posterior_mean(x0_hat, xt, t, betas), atol=1e-10)
    z = torch.ones(4, 2, dtype=torch.float64)
    diff = dif.ddpm_step(xt, 500, eps, betas, z) - dif.ddpm_step(xt, 500, eps, betas, zero)
    assert torch.allclose(diff, betas[499].sqrt().expand(4, 2))
    diff = dif.ddpm_step(xt, 500, eps, betas, z, "beta_tilde") - dif.ddpm_step(xt, 500, eps, betas, zero)
    assert torch.allclose(diff, dif.posterior_variance(betas)[499].sqrt().expand(4, 2))
    assert torch.equal(dif.ddpm_step(xt, 1, eps, betas, z), dif.ddpm_step(xt, 1, eps, betas, zero))


def test_ancestral_sampling_with_exact_score_matches_1d_gaussian_moments():
    """x0 ~ N(2, 0.25). The exact output law of the sampler (affine recursion) differs from the target by
    the discretization error only (< 2e-3 here); n = 20000 samples match its mean within 4 sigma
    (sigma = sqrt(v/n) ~ 3.5e-3) and its variance within 4 sigma (sigma = v sqrt(2/n) ~ 2.5e-3)."""
    betas = dif.linear_beta_schedule()
    mean, var = 2.0, 0.25
    m_exact, v_exact = dif.ddpm_gaussian_output_moments(mean, var, betas)
    assert abs(m_exact - mean) < 2e-3 and abs(v_exact - var) < 2e-3
    n = 20000
    g = _gen(5)
    x_T = torch.randn(n, 1, generator=g, dtype=torch.float64)
    score = lambda x, t: dif.diffused_gaussian_score(x, torch.tensor([mean]), torch.tensor([[var]]), dif.alphas_cumprod(betas)[t - 1].item())
    x0 = dif.ancestral_sample(score, x_T, betas, generator=g)
    assert abs(x0.mean().item() - m_exact) < 4 * math.sqrt(v_exact / n)
    assert abs(x0.var().item() - v_exact) < 4 * v_exact * math.sqrt(2 / n)


def test_ancestral_sampling_with_exact_score_matches_2d_gaussian_mean_and_covariance():
    """2-D N(mu, Sigma) with correlation: sample mean within 4 sigma (sigma_i = sqrt(Sigma_ii / n)),
    sample covariance entries within 4 sigma (sigma_ij = sqrt((Sigma_ii Sigma_jj + Sigma_ij^2) / n)) plus
    a 5e-3 allowance for the sampler's discretization bias (T = 1000)."""
    betas = dif.linear_beta_schedule()
    mu = torch.tensor([1.0, -2.0], dtype=torch.float64)
    Sigma = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    n = 20000
    g = _gen(6)
    abar = dif.alphas_cumprod(betas)
    x0 = dif.ancestral_sample(lambda x, t: dif.diffused_gaussian_score(x, mu, Sigma, abar[t - 1].item()),
                              torch.randn(n, 2, generator=g, dtype=torch.float64), betas, generator=g)
    assert ((x0.mean(0) - mu).abs() < 4 * (Sigma.diagonal() / n).sqrt()).all()
    C = torch.cov(x0.T)
    sd = ((Sigma.diagonal()[:, None] * Sigma.diagonal()[None, :] + Sigma**2) / n).sqrt()
    assert ((C - Sigma).abs() < 4 * sd + 5e-3).all()


def test_gmm_sampling_puts_mass_on_modes_with_mixture_weights():
    """Well-separated 2-D mixture (weights 0.25/0.75): the fraction of samples nearest each mode matches the
    weight within 4 sigma (sigma = sqrt(w(1-w)/n) ~ 0.014 at n = 1000); the trajectory starts at x_T."""
    betas = dif.linear_beta_schedule(200, 1e-4, 0.1)
    w = torch.tensor([0.25, 0.75], dtype=torch.float64)
    means = torch.tensor([[-4.0, 0.0], [4.0, 0.0]], dtype=torch.float64)
    covs = 0.1 * torch.eye(2, dtype=torch.float64).expand(2, 2, 2)
    g = _gen(7)
    x_T = torch.randn(1000, 2, generator=g, dtype=torch.float64)
    x0, traj = dif.sample_gmm_ddpm(x_T, w, means, covs, betas, generator=g, return_trajectory=True)
    assert traj.shape == (201, 1000, 2) and torch.equal(traj[0], x_T) and torch.equal(traj[-1], x0)
    right = (x0[:, 0] > 0).double().mean().item()
    assert abs(right - 0.75) < 4 * math.sqrt(0.75 * 0.25 / 1000)
    assert ((x0 - means[(x0[:, 0] > 0).long()]).norm(dim=1) < 2.0).float().mean() > 0.99


# --------------------------------------------------------------------------- denoising score matching


def test_dsm_loss_minus_its_value_at_true_score_is_explicit_score_matching_vincent_2011():
    """Vincent 2011: E_{x0,xt} (1-abar)||s(xt) - grad log q(xt|x0)||^2 = E (1-abar)||s(xt) - grad log p_t(xt)||^2 + C.
    For the data N(0, 1), p_t = N(0, 1) for every abar; with s(x) = -c x the difference
    DSM(s) - DSM(s*) = (1 - abar) (c - 1)^2 E[x^2] = (1 - abar)(c - 1)^2. Monte Carlo with common random
    numbers, n = 200000: sigma of the difference ~ 2e-3."""
    g = _gen(8)
    n, ab = 200000, 0.6
    x0 = torch.randn(n, 1, generator=g, dtype=torch.float64)
    xt = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * torch.randn(n, 1, generator=g, dtype=torch.float64)
    base = dif.dsm_loss(-xt, x0, xt, ab)
    # constant C = (1-abar) E||grad log q - grad log p||^2 = (1 - abar)(abar/(1-abar)) = abar in 1-D
    assert abs(base - ab) < 0.01
    for c in (0.5, 1.5, 2.0):
        diff = dif.dsm_loss(-c * xt, x0, xt, ab) - base
        assert abs(diff - (1 - ab) * (c - 1) ** 2) < 0.01
    # equals L_simple ||eps - eps_pred||^2 for eps_pred = -sqrt(1 - abar) s
    eps = (xt - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
    s = -0.3 * xt
    assert abs(dif.dsm_loss(s, x0, xt, ab) - ((eps + math.sqrt(1 - ab) * s) ** 2).sum(1).mean().item()) < 1e-10
    # per-sample alpha_bar [B]
    abs_ = torch.full((n,), ab, dtype=torch.float64)
    assert abs(dif.dsm_loss(s, x0, xt, abs_) - dif.dsm_loss(s, x0, xt, ab)) < 1e-12


def test_ancestral_sample_with_explicit_noise_equals_generator_run():
    """Passing the generator's draws as noise[t - 1] reproduces the generator-driven run exactly."""
    betas = dif.linear_beta_schedule(20, 1e-3, 0.2)
    w = torch.tensor([0.5, 0.5], dtype=torch.float64)
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0]], dtype=torch.float64)
    covs = 0.2 * torch.eye(2, dtype=torch.float64).expand(2, 2, 2)
    x_T = torch.randn(7, 2, generator=_gen(9), dtype=torch.float64)
    g = _gen(10)
    draws = [torch.randn(7, 2, generator=g, dtype=torch.float64) for _ in range(20)]  # drawn for t = 20..1
    noise = torch.stack(draws[::-1])  # noise[t - 1] = draw of step t
    a = dif.sample_gmm_ddpm(x_T, w, means, covs, betas, generator=_gen(10))
    b = dif.sample_gmm_ddpm(x_T, w, means, covs, betas, noise=noise)
    assert torch.equal(a, b)
