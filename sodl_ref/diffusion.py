"""Diffusion: DDPM schedules, the forward and reverse processes, exact scores.

Week 9 of the course. Denoising diffusion probabilistic models (Ho, Jain &
Abbeel 2020) written out for data whose score is known exactly (a Gaussian,
a Gaussian mixture), so that every piece can be checked against Bayes' rule:

- the variance schedule beta_1..beta_T, alpha_bar_t = prod_{s<=t}(1 - beta_s)
  and the posterior variance beta_tilde_t (eqs. 4, 7),
- the forward marginal q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
  (eq. 4) and the posterior q(x_{t-1} | x_t, x_0) (eqs. 6-7),
- exact scores of a Gaussian and of a Gaussian mixture diffused to time t,
  the link eps = -sqrt(1 - alpha_bar_t) * score (Tweedie's formula; Song et
  al. 2021, eq. 17 in the VP case),
- ancestral sampling (eq. 11, Algorithm 2) and denoising score matching
  (Vincent 2011, eq. 11; Ho et al. 2020, eq. 14).

Conventions (docs/REFERENCE_API.md): schedule arrays are indexed t - 1 for step
t = 1..T, and alpha_bar_0 = 1. Steps ``t`` passed to functions are the
1-based DDPM steps (ints or integer tensors of shape [B]). Data are
``x: [B, d]``. float64 torch tensors in and out (numpy arrays and Python
numbers accepted), the input's device is kept, randomness from an explicit
``torch.Generator`` or passed in as a noise tensor.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from sodl_ref.tensors import as_float64

Tensor = torch.Tensor


def _gather(arr: Tensor, t, like: Tensor) -> Tensor:
    """arr[t - 1] for 1-based steps t (int or [B]), shaped to broadcast against ``like`` ([B, ...])."""
    t = torch.as_tensor(t, device=arr.device, dtype=torch.long)
    vals = arr[t - 1]  # [] or [B]
    return vals.reshape(vals.shape + (1,) * (like.dim() - vals.dim()))


# ---------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------


def linear_beta_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """The linear variance schedule of Ho et al. 2020 (sec. 4): beta_t from 1e-4 to 0.02 over T = 1000 steps.

    Returns:
        [T] with entry t - 1 holding beta_t.
    """
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float64)


def alphas_cumprod(betas) -> Tensor:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s) (Ho et al. 2020, eq. 4). betas: [T] -> [T]."""
    betas = as_float64(betas)
    return torch.cumprod(1.0 - betas, dim=0)


def _alphas_cumprod_prev(betas: Tensor) -> Tensor:
    """alpha_bar_{t-1} for t = 1..T, with alpha_bar_0 = 1. [T] -> [T]."""
    abar = alphas_cumprod(betas)
    return torch.cat([abar.new_ones(1), abar[:-1]])


def posterior_variance(betas) -> Tensor:
    """beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) * beta_t (Ho et al. 2020, eq. 7).

    beta_tilde_1 = 0: given x_1 and x_0, x_0 is known. betas: [T] -> [T].
    """
    betas = as_float64(betas)
    abar = alphas_cumprod(betas)
    return (1.0 - _alphas_cumprod_prev(betas)) / (1.0 - abar) * betas


def posterior_mean_coefficients(betas) -> tuple[Tensor, Tensor]:
    """The two coefficients of mu_tilde_t(x_t, x_0) = c0_t x_0 + ct_t x_t (Ho et al. 2020, eq. 7).

        c0_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t)
        ct_t = sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)

    Returns:
        (c0 [T], ct [T]).
    """
    betas = as_float64(betas)
    abar = alphas_cumprod(betas)
    abar_prev = _alphas_cumprod_prev(betas)
    c0 = abar_prev.sqrt() * betas / (1.0 - abar)
    ct = (1.0 - betas).sqrt() * (1.0 - abar_prev) / (1.0 - abar)
    return c0, ct


# ---------------------------------------------------------------------------
# Forward process and its posterior
# ---------------------------------------------------------------------------


def q_sample(x0, t, betas, noise) -> Tensor:
    """A sample of the forward marginal q(x_t | x_0) (Ho et al. 2020, eq. 4).

        x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,   eps ~ N(0, I)

    Args:
        x0: [B, ...] clean data.
        t: int or [B] integer steps in 1..T.
        betas: [T] schedule.
        noise: eps, same shape as x0 (standard normal, passed in).

    Returns:
        [B, ...] noisy data x_t.
    """
    x0 = as_float64(x0)
    noise = as_float64(noise, x0.device)
    abar = _gather(alphas_cumprod(as_float64(betas, x0.device)), t, x0)
    return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise


def posterior_mean(x0, xt, t, betas) -> Tensor:
    """Mean mu_tilde_t(x_t, x_0) of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eqs. 6-7).

    Args:
        x0, xt: [B, ...].
        t: int or [B] integer steps in 1..T.
        betas: [T].
    Returns:
        [B, ...].
    """
    x0 = as_float64(x0)
    xt = as_float64(xt, x0.device)
    c0, ct = posterior_mean_coefficients(as_float64(betas, x0.device))
    return _gather(c0, t, x0) * x0 + _gather(ct, t, x0) * xt


def predict_x0_from_eps(xt, t, eps, betas) -> Tensor:
    """Invert eq. 4: x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t) (Ho et al. 2020, eq. 4)."""
    xt = as_float64(xt)
    eps = as_float64(eps, xt.device)
    abar = _gather(alphas_cumprod(as_float64(betas, xt.device)), t, xt)
    return (xt - (1.0 - abar).sqrt() * eps) / abar.sqrt()


def eps_from_score(score, t, betas) -> Tensor:
    """The noise prediction of an exact score: eps(x_t) = -sqrt(1 - alpha_bar_t) * grad log p_t(x_t).

    Tweedie: E[x_0 | x_t] = (x_t + (1 - alpha_bar_t) score) / sqrt(alpha_bar_t); with eq. 4 this is the
    minimizer of Ho et al.'s L_simple (their eq. 14) (Song et al. 2021, VP SDE).
    """
    score = as_float64(score)
    abar = _gather(alphas_cumprod(as_float64(betas, score.device)), t, score)
    return -(1.0 - abar).sqrt() * score


# ---------------------------------------------------------------------------
# Exact scores
# ---------------------------------------------------------------------------


def gaussian_score(x, mean, cov) -> Tensor:
    """grad_x log N(x; mean, cov) = -cov^{-1} (x - mean).

    Args:
        x: [B, d]; mean: [d]; cov: [d, d] symmetric positive definite.
    Returns:
        [B, d].
    """
    x = as_float64(x)
    mean = as_float64(mean, x.device)
    cov = as_float64(cov, x.device)
    return -torch.linalg.solve(cov, (x - mean).T).T


def diffuse_gaussian(mean, cov, alpha_bar) -> tuple[Tensor, Tensor]:
    """p_t of x_0 ~ N(mean, cov) pushed through eq. 4: N(sqrt(abar) mean, abar cov + (1 - abar) I).

    Args:
        mean: [..., d]; cov: [..., d, d]; alpha_bar: float.
    Returns:
        (mean_t [..., d], cov_t [..., d, d]).
    """
    mean = as_float64(mean)
    cov = as_float64(cov, mean.device)
    ab = float(alpha_bar)
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    return math.sqrt(ab) * mean, ab * cov + (1.0 - ab) * eye


def diffused_gaussian_score(x, mean, cov, alpha_bar) -> Tensor:
    """Exact score of N(mean, cov) diffused to alpha_bar (eq. 4). x: [B, d] -> [B, d]."""
    m_t, c_t = diffuse_gaussian(mean, cov, alpha_bar)
    return gaussian_score(x, m_t, c_t)


def gmm_log_density(x, weights, means, covs) -> Tensor:
    """log sum_k pi_k N(x; mu_k, Sigma_k).

    Args:
        x: [B, d]; weights: [K] (summing to 1); means: [K, d]; covs: [K, d, d].
    Returns:
        [B].
    """
    x = as_float64(x)
    weights = as_float64(weights, x.device)
    means = as_float64(means, x.device)
    covs = as_float64(covs, x.device)
    d = x.shape[-1]
    chol = torch.linalg.cholesky(covs)  # [K, d, d]
    diff = x[:, None, :] - means[None]  # [B, K, d]
    z = torch.linalg.solve_triangular(chol[None], diff[..., None], upper=False)[..., 0]  # [B, K, d]
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # [K]
    log_comp = -0.5 * (z * z).sum(-1) - 0.5 * logdet - 0.5 * d * math.log(2 * math.pi)  # [B, K]
    return torch.logsumexp(torch.log(weights) + log_comp, dim=-1)


def gmm_score(x, weights, means, covs) -> Tensor:
    """grad_x log sum_k pi_k N(x; mu_k, Sigma_k) = sum_k r_k(x) (-Sigma_k^{-1} (x - mu_k)).

    r_k(x) = pi_k N(x; mu_k, Sigma_k) / sum_j pi_j N(x; mu_j, Sigma_j) are the
    posterior responsibilities, computed in log space (log-sum-exp) so that
    far-away points do not underflow.

    Args:
        x: [B, d]; weights: [K]; means: [K, d]; covs: [K, d, d].
    Returns:
        [B, d].
    """
    x = as_float64(x)
    weights = as_float64(weights, x.device)
    means = as_float64(means, x.device)
    covs = as_float64(covs, x.device)
    d = x.shape[-1]
    diff = x[:, None, :] - means[None]  # [B, K, d]
    prec_diff = torch.linalg.solve(covs[None], diff[..., None])[..., 0]  # [B, K, d], Sigma_k^{-1}(x - mu_k)
    logdet = torch.linalg.slogdet(covs).logabsdet  # [K]
    log_comp = -0.5 * (diff * prec_diff).sum(-1) - 0.5 * logdet - 0.5 * d * math.log(2 * math.pi)  # [B, K]
    resp = torch.softmax(torch.log(weights) + log_comp, dim=-1)  # [B, K]
    return -(resp[..., None] * prec_diff).sum(1)  # [B, d]


def diffused_gmm_score(x, weights, means, covs, alpha_bar) -> Tensor:
    """Exact score of a Gaussian mixture diffused to alpha_bar.

    Eq. 4 is linear-Gaussian, so each component diffuses on its own:
    mu_k -> sqrt(abar) mu_k, Sigma_k -> abar Sigma_k + (1 - abar) I, with the
    same weights.

    Args:
        x: [B, d]; weights: [K]; means: [K, d]; covs: [K, d, d]; alpha_bar: float in (0, 1].
    Returns:
        [B, d].
    """
    means_t, covs_t = diffuse_gaussian(means, covs, alpha_bar)
    return gmm_score(x, weights, means_t, covs_t)


# ---------------------------------------------------------------------------
# Reverse process
# ---------------------------------------------------------------------------


def ddpm_step(xt, t: int, eps, betas, noise, variance: str = "beta") -> Tensor:
    """One ancestral step x_t -> x_{t-1} (Ho et al. 2020, eq. 11 / Algorithm 2, line 4).

        x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sigma_t z

    with sigma_t^2 = beta_t (``variance="beta"``) or beta_tilde_t
    (``"beta_tilde"``), and no noise at the last step t = 1.

    Args:
        xt: [B, d]; t: int in 1..T; eps: [B, d] predicted noise;
        betas: [T]; noise: z, [B, d] standard normal.
    Returns:
        [B, d].
    """
    xt = as_float64(xt)
    eps = as_float64(eps, xt.device)
    noise = as_float64(noise, xt.device)
    betas = as_float64(betas, xt.device)
    beta = betas[t - 1]
    abar = alphas_cumprod(betas)[t - 1]
    mean = (xt - beta / (1.0 - abar).sqrt() * eps) / (1.0 - beta).sqrt()
    if t == 1:
        return mean
    var = beta if variance == "beta" else posterior_variance(betas)[t - 1]
    return mean + var.sqrt() * noise


def ancestral_sample(score_fn: Callable[[Tensor, int], Tensor], x_T, betas, generator: torch.Generator | None = None,
                     variance: str = "beta", return_trajectory: bool = False, noise=None):
    """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) driven by a score function.

    eps_theta(x_t, t) = -sqrt(1 - alpha_bar_t) score_fn(x_t, t) (``eps_from_score``).

    Args:
        score_fn: (x [B, d], t int) -> [B, d], the score of p_t.
        x_T: [B, d] starting points (N(0, I) draws).
        betas: [T].
        generator: torch.Generator for the noise z (on x_T's device).
        return_trajectory: also return all iterates [T + 1, B, d], from x_T to x_0.
        noise: optional [T, B, d]; if given, noise[t - 1] is the z of step t
            (noise[0] is unused: the last step adds no noise) and ``generator`` is ignored.
    Returns:
        x_0 [B, d] (and the trajectory).
    """
    x = as_float64(x_T)
    betas = as_float64(betas, x.device)
    T = betas.shape[0]
    traj = [x]
    for t in range(T, 0, -1):
        eps = eps_from_score(score_fn(x, t), t, betas)
        if noise is not None:
            z = as_float64(noise, x.device)[t - 1]
        else:
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = ddpm_step(x, t, eps, betas, z, variance)
        if return_trajectory:
            traj.append(x)
    if return_trajectory:
        return x, torch.stack(traj)
    return x


def sample_gmm_ddpm(x_T, weights, means, covs, betas, generator: torch.Generator | None = None,
                    variance: str = "beta", return_trajectory: bool = False, noise=None):
    """Ancestral sampling from a Gaussian mixture with its exact diffused score (``diffused_gmm_score``).

    Arguments as ``ancestral_sample``; weights: [K], means: [K, d], covs: [K, d, d].
    """
    abar = alphas_cumprod(betas)

    def score(x, t):
        return diffused_gmm_score(x, weights, means, covs, float(abar[t - 1]))

    return ancestral_sample(score, x_T, betas, generator, variance, return_trajectory, noise)


def ddpm_gaussian_output_moments(mean, var, betas, variance: str = "beta") -> tuple[float, float]:
    """Exact mean and variance of x_0 produced by ancestral sampling (eq. 11) of 1-D N(mean, var) with its exact score.

    With the exact score every step is affine-Gaussian, x_{t-1} = a_t x_t + b_t + sigma_t z,
    so the law of x_0 is Gaussian with moments given by a recursion from x_T ~ N(0, 1). The gap to
    (mean, var) is the discretization error of the sampler.
    """
    betas = as_float64(betas)
    abar = alphas_cumprod(betas)
    beta_tilde = posterior_variance(betas)
    m, v = 0.0, 1.0
    T = betas.shape[0]
    for t in range(T, 0, -1):
        ab, b = float(abar[t - 1]), float(betas[t - 1])
        var_t = ab * var + (1 - ab)
        # score(x) = -(x - sqrt(ab) mean) / var_t ; eps = -sqrt(1 - ab) score
        # x_{t-1} = (x - b/sqrt(1-ab) * eps) / sqrt(1-b) = (x (1 - b / var_t) + b sqrt(ab) mean / var_t) / sqrt(1-b)
        a = (1 - b / var_t) / math.sqrt(1 - b)
        c = b * math.sqrt(ab) * mean / var_t / math.sqrt(1 - b)
        s2 = 0.0 if t == 1 else (b if variance == "beta" else float(beta_tilde[t - 1]))
        m, v = a * m + c, a * a * v + s2
    return m, v


# ---------------------------------------------------------------------------
# Denoising score matching
# ---------------------------------------------------------------------------


def dsm_loss(score_pred, x0, xt, alpha_bar) -> float:
    """Denoising score matching loss at noise level alpha_bar (Vincent 2011, eq. 11), weighted by 1 - alpha_bar.

        L = mean_i (1 - abar_i) || s_i - grad_{x_t} log q(x_t,i | x_0,i) ||^2,
        grad log q(x_t | x_0) = -(x_t - sqrt(abar) x_0) / (1 - abar).

    The weight 1 - abar makes the loss equal Ho et al.'s L_simple (eq. 14)
    for eps = -sqrt(1 - abar) s. In expectation it differs from the explicit
    score matching loss E (1 - abar) ||s - grad log p_t||^2 by a constant
    independent of s, so the exact score is its minimizer.

    Args:
        score_pred: [B, d] predicted scores at x_t; x0, xt: [B, d];
        alpha_bar: float or [B].
    Returns:
        float.
    """
    score_pred = as_float64(score_pred)
    x0 = as_float64(x0, score_pred.device)
    xt = as_float64(xt, score_pred.device)
    ab = as_float64(alpha_bar, score_pred.device)
    ab = ab.reshape(ab.shape + (1,) * (x0.dim() - ab.dim())) if ab.dim() else ab
    target = -(xt - ab.sqrt() * x0) / (1.0 - ab)  # [B, d]
    per_sample = ((1.0 - ab) * (score_pred - target).pow(2)).reshape(x0.shape[0], -1).sum(-1)  # [B]
    return float(per_sample.mean())
