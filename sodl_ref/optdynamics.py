"""Dynamical systems II: the dynamics of optimization.

Langevin dynamics and its stationary law, the noise of minibatch SGD and
the stationary covariance of linearized SGD (a Lyapunov equation), the
stability threshold of gradient descent (and the edge of stability), the
permutation symmetry of hidden units with weight matching, and loss
barriers along linear and curved paths between minima (mode connectivity).

Conventions: float64 torch tensors in and out (numpy arrays and numbers
accepted), on the device of the input; scalars are Python floats. A
one-hidden-layer MLP is a dict of tensors
``{"W1": [h, d], "b1": [h], "W2": [k, h], "b2": [k]}``,
f(x) = W2 phi(W1 x + b1) + b2.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import scipy.optimize
import torch

from sodl_ref.tensors import as_float64

Tensor = torch.Tensor


# ---------------------------------------------------------------------------
# Langevin dynamics
# ---------------------------------------------------------------------------

def ula_step(x, grad, lr, temperature, noise) -> Tensor:
    """One step of the unadjusted Langevin algorithm (Euler-Maruyama for
    dX = -grad U(X) dt + sqrt(2 T) dW; Roberts & Tweedie 1996, eq. 1.2):
        x' = x - lr * grad + sqrt(2 * lr * temperature) * noise,
    with ``noise`` standard normal of x's shape (passed in: the caller owns
    the randomness). The continuous-time process has the Gibbs law
    p(x) ~ exp(-U(x) / T) as its stationary distribution.
    Shapes: x, grad, noise [...] (same). Returns x' [...].
    """
    x = as_float64(x)
    return x - lr * as_float64(grad, like=x) + math.sqrt(2.0 * lr * temperature) * as_float64(noise, like=x)


def ula_quadratic(H, x0, lr, temperature, noise) -> Tensor:
    """ULA on U(x) = x^T H x / 2 (grad U = H x), driven by the given noise.

    Shapes: H [d, d] symmetric, x0 [d] or [m, d] (m independent chains),
    noise [n_steps, *x0.shape]. Returns the trajectory [n_steps + 1, *x0.shape].
    """
    H = as_float64(H)
    x = as_float64(x0, like=H)
    noise = as_float64(noise, like=H)
    traj = [x]
    for xi in noise:
        x = ula_step(x, x @ H.T, lr, temperature, xi)
        traj.append(x)
    return torch.stack(traj)


def ula_stationary_variance(a, lr, temperature) -> float:
    """Exact stationary variance of ULA on U(x) = a x^2 / 2.

    x' = (1 - lr a) x + sqrt(2 lr T) xi is an AR(1) process; its stationary
    variance v solves v = (1 - lr a)^2 v + 2 lr T, so
        v = T / (a (1 - lr a / 2)),   for 0 < lr a < 2,
    larger than the Gibbs variance T / a by the discretization bias
    (Durmus & Moulines 2017 study this bias in general). ``inf`` if unstable.
    """
    a, lr, T = float(a), float(lr), float(temperature)
    if not 0.0 < lr * a < 2.0:
        return math.inf
    return T / (a * (1.0 - lr * a / 2.0))


def ula_stationary_covariance(H, lr, temperature) -> Tensor:
    """Stationary covariance of ULA on U(x) = x^T H x / 2: the solution of
    the discrete Lyapunov equation S = M S M^T + 2 lr T I, M = I - lr H,
    i.e. in H's eigenbasis S = T / (lambda (1 - lr lambda / 2)) per direction.
    Shapes: H [d, d] symmetric positive definite. Returns S [d, d].
    """
    H = as_float64(H)
    lam, U = torch.linalg.eigh(H)
    s = temperature / (lam * (1.0 - lr * lam / 2.0))  # (d,)
    return (U * s) @ U.T


# ---------------------------------------------------------------------------
# SGD noise and the stationary covariance of linearized SGD
# ---------------------------------------------------------------------------

def linear_regression_per_sample_grads(X, y, w) -> Tensor:
    """Gradients of l_i(w) = (x_i . w - y_i)^2 / 2, one row per example.
    Shapes: X [n, p], y [n], w [p]. Returns G [n, p]."""
    X = as_float64(X)
    y, w = as_float64(y, like=X), as_float64(w, like=X)
    return (X @ w - y)[:, None] * X


def sgd_noise_covariance(per_sample_grads, batch_size: int, replacement: bool = True) -> Tensor:
    """Covariance of the minibatch gradient g_B = 1/B sum_{i in B} g_i around
    the full gradient g = 1/n sum_i g_i, for a batch of B examples drawn
    uniformly (Mandt, Hoffman & Blei 2017, sec. 3.1; Jastrzebski et al. 2018):
        Cov[g_B] = (1/B) Sigma_1,  Sigma_1 = 1/n sum_i (g_i - g)(g_i - g)^T,
    with replacement; without replacement multiply by (n - B) / (n - 1).
    Shapes: per_sample_grads [n, p]. Returns C [p, p].
    """
    G = as_float64(per_sample_grads)
    n = G.shape[0]
    dev = G - G.mean(0)  # (n, p)
    sigma1 = dev.T @ dev / n  # (p, p)
    factor = 1.0 if replacement else (n - batch_size) / (n - 1)
    return factor * sigma1 / batch_size


def sgd_stationary_covariance(H, C, lr, discrete: bool = True) -> Tensor:
    """Stationary covariance of linearized SGD near a minimum,
    theta' = theta - lr (H theta + xi), Cov[xi] = C (the minibatch noise).

    discrete=True: the exact stationary law of this linear recursion,
        S = (I - lr H) S (I - lr H)^T + lr^2 C      (discrete Lyapunov);
    discrete=False: the Ornstein-Uhlenbeck approximation of Mandt, Hoffman &
    Blei (2017, sec. 3.2), d theta = -lr H theta dt + lr C^{1/2} dW,
        H S + S H = lr C                             (continuous Lyapunov),
    which is the discrete one without the O(lr^2) term lr^2 H S H.
    Solved in H's eigenbasis: S~_ij = lr^2 C~_ij / (1 - (1 - lr l_i)(1 - lr l_j))
    or lr C~_ij / (l_i + l_j).
    Shapes: H [p, p] symmetric positive definite, C [p, p]. Returns S [p, p].
    """
    H = as_float64(H)
    C = as_float64(C, like=H)
    lam, U = torch.linalg.eigh(H)
    Ct = U.T @ C @ U  # (p, p) in H's eigenbasis
    if discrete:
        denom = 1.0 - (1.0 - lr * lam)[:, None] * (1.0 - lr * lam)[None, :]
        St = lr ** 2 * Ct / denom
    else:
        St = lr * Ct / (lam[:, None] + lam[None, :])
    return U @ St @ U.T


# ---------------------------------------------------------------------------
# Stability of gradient descent and the edge of stability
# ---------------------------------------------------------------------------

def gd_momentum_quadratic(H, x0, lr, momentum, n_steps: int) -> Tensor:
    """Heavy-ball GD on U(x) = x^T H x / 2 in the convention of
    ``torch.optim.SGD(momentum=beta)``: v' = beta v + H x, x' = x - lr v'
    (v starts at 0), equivalently x' = x - lr H x + beta (x - x_prev).
    Shapes: H [d, d], x0 [d]. Returns the trajectory [n_steps + 1, d].
    """
    H = as_float64(H)
    x = as_float64(x0, like=H)
    v = torch.zeros_like(x)
    traj = [x]
    for _ in range(n_steps):
        v = momentum * v + H @ x
        x = x - lr * v
        traj.append(x)
    return torch.stack(traj)


def max_stable_lr(H, momentum: float = 0.0) -> float:
    """Largest learning rate for which heavy-ball GD on a quadratic with
    Hessian H converges: lr < (2 + 2 beta) / lambda_max(H) (Cohen et al. 2021,
    sec. 2 and appendix: with momentum the sharpness settles at (2+2beta)/lr).
    Along an eigenvector the error obeys z^2 - (1 + beta - lr l) z + beta = 0,
    whose roots lie in the unit disk iff 0 < lr l < 2 + 2 beta (0 <= beta < 1).
    """
    lam_max = torch.linalg.eigvalsh(as_float64(H))[-1].item()
    return (2.0 + 2.0 * momentum) / lam_max


def hessian_top_eigenvalue(loss_fn: Callable, params: Tensor, n_iter: int = 50,
                           generator: torch.Generator | None = None) -> float:
    """Sharpness lambda_max of the Hessian of ``loss_fn`` at ``params`` (a flat
    tensor [p]) by power iteration on Hessian-vector products (Pearlmutter
    1994), the quantity Cohen et al. (2021) track. Assumes the top
    eigenvalue is the largest in absolute value (true near the edge of
    stability, where it dominates).
    """
    params = params.detach().clone().requires_grad_(True)
    grad = torch.autograd.grad(loss_fn(params), params, create_graph=True)[0]
    v = torch.randn(params.shape, dtype=params.dtype, generator=generator).to(params.device)
    v = v / v.norm()
    lam = 0.0
    for _ in range(n_iter):
        hv = torch.autograd.grad(grad, params, v, retain_graph=True)[0]
        lam = (v @ hv).item()
        v = hv / hv.norm()
    return lam


# ---------------------------------------------------------------------------
# Permutation symmetry and weight matching
# ---------------------------------------------------------------------------

def mlp_forward(params: dict, X, activation: str = "relu") -> Tensor:
    """f(x) = W2 phi(W1 x + b1) + b2. X [n, d] -> [n, k]."""
    X = as_float64(X)
    phi = {"relu": torch.relu, "tanh": torch.tanh}[activation]
    h = phi(X @ as_float64(params["W1"], like=X).T + as_float64(params["b1"], like=X))  # (n, h)
    return h @ as_float64(params["W2"], like=X).T + as_float64(params["b2"], like=X)  # (n, k)


def permute_hidden(params: dict, perm) -> dict:
    """Reorder the hidden units: unit i of the result is unit perm[i] of the
    input. W1 -> W1[perm], b1 -> b1[perm], W2 -> W2[:, perm]; the function
    computed is unchanged (Hecht-Nielsen 1990; Ainsworth et al. 2023, sec. 2).
    """
    perm = torch.as_tensor(np.asarray(perm), dtype=torch.long)
    out = {k: as_float64(v) for k, v in params.items()}
    out["W1"], out["b1"] = out["W1"][perm], out["b1"][perm]
    out["W2"] = out["W2"][:, perm]
    return out


def weight_matching(params_a: dict, params_b: dict) -> Tensor:
    """The permutation of b's hidden units that best aligns b with a
    (Ainsworth, Hayase & Srinivasa 2023, "Git Re-Basin", sec. 3.2):
        maximize_P <W1_a, P W1_b> + <b1_a, P b1_b> + <W2_a, W2_b P^T>,
    a linear assignment problem with similarity
        S_ij = W1_a[i] . W1_b[j] + b1_a[i] b1_b[j] + W2_a[:, i] . W2_b[:, j],
    solved exactly by the Hungarian algorithm (one hidden layer: no
    coordinate descent needed). Returns perm [h] (int64) such that
    ``permute_hidden(params_b, perm)`` is aligned with params_a.
    """
    a = {k: as_float64(v).cpu() for k, v in params_a.items()}
    b = {k: as_float64(v).cpu() for k, v in params_b.items()}
    S = a["W1"] @ b["W1"].T + torch.outer(a["b1"], b["b1"]) + a["W2"].T @ b["W2"]  # (h, h)
    rows, cols = scipy.optimize.linear_sum_assignment(S.numpy(), maximize=True)
    return torch.as_tensor(cols[np.argsort(rows)], dtype=torch.long)


# ---------------------------------------------------------------------------
# Loss barriers and mode connectivity
# ---------------------------------------------------------------------------

def path_point(theta_a, theta_b, t: float, control=None):
    """A point on the path from theta_a (t=0) to theta_b (t=1):
    linear (1 - t) a + t b, or, with a control point c, the quadratic Bezier
    curve (1 - t)^2 a + 2 t (1 - t) c + t^2 b (Garipov et al. 2018, sec. 3.1).
    The thetas are tensors of one shape or dicts of them (an MLP's params).
    """
    if isinstance(theta_a, dict):
        return {k: path_point(theta_a[k], theta_b[k], t,
                              None if control is None else control[k]) for k in theta_a}
    a = as_float64(theta_a)
    b = as_float64(theta_b, like=a)
    if control is None:
        return (1 - t) * a + t * b
    return (1 - t) ** 2 * a + 2 * t * (1 - t) * as_float64(control, like=a) + t ** 2 * b


def path_losses(loss_fn: Callable, theta_a, theta_b, ts, control=None) -> Tensor:
    """loss_fn evaluated along the (linear or Bezier) path at each t in ts. Returns [len(ts)]."""
    return torch.tensor([float(loss_fn(path_point(theta_a, theta_b, float(t), control))) for t in ts],
                        dtype=torch.float64)


def loss_barrier(losses) -> float:
    """Barrier height along a path sampled at t_0 = 0 < ... < t_K = 1:
        max_k L(t_k) - (L(0) + L(1)) / 2
    (the barrier of Garipov et al. 2018 and Draxler et al. 2018 measured
    from the mean endpoint loss; Frankle et al. 2020 subtract the linear
    interpolation (1 - t) L(0) + t L(1) instead, equal when L(0) = L(1)).
    Shapes: losses [K + 1], endpoints first and last. Returns a float.
    """
    losses = as_float64(losses)
    return (losses.max() - 0.5 * (losses[0] + losses[-1])).item()


def mlp_mse(params: dict, X, Y, activation: str = "relu") -> float:
    """Mean squared error 1/n sum_i ||f(x_i) - y_i||^2 of the MLP. X [n, d], Y [n, k]."""
    return ((mlp_forward(params, X, activation) - as_float64(Y)) ** 2).sum(-1).mean().item()
