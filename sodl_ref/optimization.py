"""Optimization: gradient descent, momentum, adaptive steps, curvature, implicit bias.

Week 2 of the course. Everything acts on data (matrices, vectors, flat
parameter tensors), never on user callbacks, so that the same functions
grade student answers and reproduce the papers' numbers.

Conventions: float64 torch tensors in and out (numpy arrays and Python
numbers accepted), the input's device is kept, scalars are Python floats.

The quadratic model used throughout is
    f(x) = 1/2 x^T A x - b^T x,    grad f(x) = A x - b,    x* = A^{-1} b,
with A symmetric positive definite, eigenvalues mu = lambda_min <= ... <=
lambda_max = L and condition number kappa = L / mu.

Sources: Polyak (1964) "Some methods of speeding up the convergence of
iteration methods"; Nesterov (2004) "Introductory Lectures on Convex
Optimization"; Kingma & Ba (2015) "Adam"; Chen et al. (2023) "Symbolic
Discovery of Optimization Algorithms" (Lion); Pearlmutter (1994) "Fast
exact multiplication by the Hessian"; Soudry et al. (2018) "The implicit
bias of gradient descent on separable data"; Nacson et al. (2019)
"Convergence of gradient descent on separable data".
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sodl_ref.tensors import as_float64

__all__ = [
    "quadratic_loss",
    "gd_quadratic",
    "gd_contraction_rate",
    "gd_optimal_lr",
    "gd_optimal_rate",
    "heavy_ball_quadratic",
    "polyak_heavy_ball_params",
    "heavy_ball_rate",
    "sgd_momentum_step",
    "adam_step",
    "lion_step",
    "mlp_loss",
    "mlp_num_params",
    "hessian_vector_product",
    "top_hessian_eigenvalue",
    "gd_least_squares",
    "logistic_loss",
    "normalized_gd_logistic",
    "max_margin_direction",
]


def _spd_eigenvalues(A: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of the symmetric part of A, ascending. A: [d, d] -> [d]."""
    return torch.linalg.eigvalsh((A + A.T) / 2)


# ---------------------------------------------------------------------------
# Gradient descent on a quadratic
# ---------------------------------------------------------------------------

def quadratic_loss(A, b, x) -> torch.Tensor:
    """f(x) = 1/2 x^T A x - b^T x for a batch of points.

    A: [d, d] symmetric, b: [d], x: [..., d] -> [...].
    """
    A = as_float64(A)
    b = as_float64(b, A.device)
    x = as_float64(x, A.device)
    return 0.5 * ((x @ A) * x).sum(-1) - x @ b


def gd_quadratic(A, b, x0, lr: float, steps: int) -> torch.Tensor:
    """Gradient descent x_{k+1} = x_k - lr (A x_k - b) on f(x) = 1/2 x^T A x - b^T x.

    Nesterov (2004), Section 1.2.3; the error obeys
    x_{k+1} - x* = (I - lr A)(x_k - x*).
    A: [d, d] symmetric, b: [d], x0: [d]. Returns all iterates [steps + 1, d]
    (row 0 is x0).
    """
    A = as_float64(A)
    b = as_float64(b, A.device)
    x = as_float64(x0, A.device).clone()
    iterates = [x]
    for _ in range(int(steps)):
        x = x - lr * (A @ x - b)  # [d]
        iterates.append(x)
    return torch.stack(iterates)  # [steps + 1, d]


def gd_contraction_rate(A, lr: float) -> float:
    """Worst-case per-step contraction of GD on a quadratic: max_i |1 - lr lambda_i|.

    The spectral norm of the error map I - lr A (Nesterov 2004, Thm 2.1.15
    for the optimal choice). GD converges from every start iff this is < 1,
    i.e. 0 < lr < 2 / L: the "edge of divergence" is lr = 2 / L.
    A: [d, d] symmetric.
    """
    lam = _spd_eigenvalues(as_float64(A))
    return float((1.0 - lr * lam).abs().max())


def gd_optimal_lr(A) -> float:
    """The step minimising max_i |1 - lr lambda_i|: lr* = 2 / (L + mu). A: [d, d]."""
    lam = _spd_eigenvalues(as_float64(A))
    return float(2.0 / (lam[-1] + lam[0]))


def gd_optimal_rate(A) -> float:
    """Contraction of GD at lr* = 2 / (L + mu): (kappa - 1) / (kappa + 1). A: [d, d]."""
    lam = _spd_eigenvalues(as_float64(A))
    kappa = float(lam[-1] / lam[0])
    return (kappa - 1.0) / (kappa + 1.0)


# ---------------------------------------------------------------------------
# Heavy ball (Polyak momentum)
# ---------------------------------------------------------------------------

def heavy_ball_quadratic(A, b, x0, lr: float, momentum: float, steps: int) -> torch.Tensor:
    """Polyak's heavy ball on f(x) = 1/2 x^T A x - b^T x.

    x_{k+1} = x_k - lr (A x_k - b) + momentum (x_k - x_{k-1}),  x_{-1} = x0
    (Polyak 1964, eq. 9). A: [d, d], b: [d], x0: [d]. Returns the iterates
    [steps + 1, d] (row 0 is x0).
    """
    A = as_float64(A)
    b = as_float64(b, A.device)
    x = as_float64(x0, A.device).clone()
    x_prev = x
    iterates = [x]
    for _ in range(int(steps)):
        x, x_prev = x - lr * (A @ x - b) + momentum * (x - x_prev), x
        iterates.append(x)
    return torch.stack(iterates)  # [steps + 1, d]


def polyak_heavy_ball_params(A) -> tuple[float, float]:
    """Polyak's optimal tuning of the heavy ball on a quadratic.

    lr = 4 / (sqrt(L) + sqrt(mu))^2, momentum = ((sqrt(kappa) - 1) / (sqrt(kappa) + 1))^2
    (Polyak 1964, Theorem 9), giving the asymptotic rate
    (sqrt(kappa) - 1) / (sqrt(kappa) + 1). A: [d, d] SPD. Returns (lr, momentum).
    """
    lam = _spd_eigenvalues(as_float64(A))
    L, mu = float(lam[-1]), float(lam[0])
    lr = 4.0 / (math.sqrt(L) + math.sqrt(mu)) ** 2
    sk = math.sqrt(L / mu)
    momentum = ((sk - 1.0) / (sk + 1.0)) ** 2
    return lr, momentum


def heavy_ball_rate(A, lr: float, momentum: float) -> float:
    """Asymptotic rate of the heavy ball on a quadratic: spectral radius of its iteration.

    In A's eigenbasis each coordinate evolves by the 2x2 companion matrix
    [[1 + momentum - lr lambda, -momentum], [1, 0]] acting on (e_k, e_{k-1});
    the rate is the largest modulus of its eigenvalues over the spectrum
    (Polyak 1964, proof of Theorem 9). A: [d, d].
    """
    lam = _spd_eigenvalues(as_float64(A))
    # roots of z^2 - (1 + m - lr lam) z + m = 0, one pair per eigenvalue
    t = 1.0 + momentum - lr * lam  # [d]
    disc = (t * t - 4.0 * momentum).to(torch.complex128)
    roots = torch.stack([(t + disc.sqrt()) / 2, (t - disc.sqrt()) / 2])  # [2, d]
    return float(roots.abs().max())


# ---------------------------------------------------------------------------
# Single optimizer steps (pure: inputs are never modified)
# ---------------------------------------------------------------------------

def sgd_momentum_step(param, grad, buf=None, lr: float = 1e-2, momentum: float = 0.9,
                      dampening: float = 0.0, weight_decay: float = 0.0,
                      nesterov: bool = False):
    """One step of SGD with momentum, identical to ``torch.optim.SGD``.

    g = grad + weight_decay * param; buf = g at the first step (buf None),
    else buf = momentum * buf + (1 - dampening) * g; the update direction is
    g + momentum * buf (Nesterov, Sutskever et al. 2013) or buf; param -= lr * direction.
    param, grad, buf: same shape. Returns (param_next, buf_next).
    """
    p = as_float64(param)
    g = as_float64(grad, p.device)
    if weight_decay != 0.0:
        g = g + weight_decay * p
    if buf is None:
        buf_next = g.clone()
    else:
        buf_next = momentum * as_float64(buf, p.device) + (1.0 - dampening) * g
    direction = g + momentum * buf_next if nesterov else buf_next
    return p - lr * direction, buf_next


def adam_step(param, grad, state=None, lr: float = 1e-3, betas=(0.9, 0.999),
              eps: float = 1e-8, weight_decay: float = 0.0):
    """One step of Adam (Kingma & Ba 2015, Algorithm 1), identical to ``torch.optim.Adam``.

    g = grad + weight_decay * param (L2, as torch.optim.Adam);
    m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
    param -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
    Note eps is added after the bias correction of v, as in torch (the paper
    writes eps next to sqrt(v_hat), which is the same thing).

    param, grad: same shape. `state` is None before the first step, else the
    dict returned by the previous call: {"step": int, "exp_avg": m,
    "exp_avg_sq": v}. Pure: inputs are not modified.
    Returns (param_next, state_next).
    """
    p = as_float64(param)
    g = as_float64(grad, p.device)
    beta1, beta2 = float(betas[0]), float(betas[1])
    if weight_decay != 0.0:
        g = g + weight_decay * p
    if state is None:
        step, m, v = 0, torch.zeros_like(p), torch.zeros_like(p)
    else:
        step = int(state["step"])
        m = as_float64(state["exp_avg"], p.device)
        v = as_float64(state["exp_avg_sq"], p.device)
    step += 1
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    bias1 = 1.0 - beta1 ** step
    bias2 = 1.0 - beta2 ** step
    denom = v.sqrt() / math.sqrt(bias2) + eps
    p_next = p - (lr / bias1) * m / denom
    return p_next, {"step": step, "exp_avg": m, "exp_avg_sq": v}


def lion_step(param, grad, state=None, lr: float = 1e-4, betas=(0.9, 0.99),
              weight_decay: float = 0.0):
    """One step of Lion (Chen et al. 2023, Algorithm 2).

    c = beta1 m + (1 - beta1) g;  param -= lr (sign(c) + weight_decay * param);
    m = beta2 m + (1 - beta2) g   (m = 0 before the first step; decoupled
    weight decay). Every coordinate moves by exactly lr when weight_decay = 0.
    param, grad: same shape; state None or {"exp_avg": m}.
    Returns (param_next, state_next). Pure.
    """
    p = as_float64(param)
    g = as_float64(grad, p.device)
    beta1, beta2 = float(betas[0]), float(betas[1])
    m = torch.zeros_like(p) if state is None else as_float64(state["exp_avg"], p.device)
    c = beta1 * m + (1.0 - beta1) * g  # interpolation used for the update only
    p_next = p - lr * (torch.sign(c) + weight_decay * p)
    m_next = beta2 * m + (1.0 - beta2) * g
    return p_next, {"exp_avg": m_next}


# ---------------------------------------------------------------------------
# Curvature: Hessian-vector products and power iteration
# ---------------------------------------------------------------------------

def mlp_num_params(d: int, hidden: int) -> int:
    """Number of parameters of the tanh MLP of `mlp_loss`: hidden*d + 2*hidden + 1."""
    return hidden * d + 2 * hidden + 1


def mlp_loss(theta, X, y, hidden: int) -> torch.Tensor:
    """Mean squared error 1/(2n) sum_i (f(x_i) - y_i)^2 of a one-hidden-layer tanh MLP.

    f(x) = w2 . tanh(W1 x + b1) + b2 with the flat parameter vector
    theta = [W1 (row-major, [hidden, d]), b1 [hidden], w2 [hidden], b2 [1]].
    theta: [hidden*d + 2*hidden + 1], X: [n, d], y: [n]. Returns a 0-dim
    tensor, differentiable in theta (autograd graph kept).
    """
    theta = theta if isinstance(theta, torch.Tensor) else as_float64(theta)
    X = as_float64(X, theta.device).to(theta.dtype)
    y = as_float64(y, theta.device).to(theta.dtype)
    n, d = X.shape
    h = int(hidden)
    W1 = theta[: h * d].reshape(h, d)
    b1 = theta[h * d: h * d + h]
    w2 = theta[h * d + h: h * d + 2 * h]
    b2 = theta[h * d + 2 * h]
    out = torch.tanh(X @ W1.T + b1) @ w2 + b2  # [n]
    return 0.5 * ((out - y) ** 2).mean()


def hessian_vector_product(loss_fn, theta, v) -> torch.Tensor:
    """H(theta) v by double backpropagation (Pearlmutter 1994).

    Differentiates g(theta) . v, where g = grad loss_fn(theta), without
    forming H. loss_fn: flat parameters [p] -> scalar; theta, v: [p].
    Returns [p].
    """
    theta = as_float64(theta).detach().requires_grad_(True)
    v = as_float64(v, theta.device)
    (g,) = torch.autograd.grad(loss_fn(theta), theta, create_graph=True)
    (hv,) = torch.autograd.grad(g @ v, theta)
    return hv.detach()


def top_hessian_eigenvalue(theta, X, y, hidden: int, v0, iters: int = 100) -> float:
    """Eigenvalue of largest magnitude of the Hessian of `mlp_loss` by power iteration.

    v_{k+1} = H v_k / ||H v_k||, returning the Rayleigh quotient v^T H v of
    the final unit vector (Pearlmutter 1994 for H v; the "sharpness" of
    Cohen et al. 2021 when the top eigenvalue is positive). Converges
    geometrically with ratio |lambda_2| / |lambda_1|.
    theta: [p] flat parameters, X: [n, d], y: [n], v0: [p] start vector
    (nonzero). Returns a float.
    """
    theta = as_float64(theta).detach()
    X = as_float64(X, theta.device)
    y = as_float64(y, theta.device)
    v = as_float64(v0, theta.device)
    v = v / v.norm()
    loss = lambda t: mlp_loss(t, X, y, hidden)  # noqa: E731
    # one graph for the gradient, reused by every HVP
    t = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(t), t, create_graph=True)
    for _ in range(int(iters)):
        (hv,) = torch.autograd.grad(g @ v, t, retain_graph=True)
        v = hv / hv.norm()
    (hv,) = torch.autograd.grad(g @ v, t, retain_graph=True)
    return float(v @ hv)


# ---------------------------------------------------------------------------
# Implicit bias
# ---------------------------------------------------------------------------

def gd_least_squares(X, y, lr: float, steps: int, w0=None) -> torch.Tensor:
    """GD on L(w) = 1/(2n) ||X w - y||^2 from w0 (default 0); returns the final w.

    w_{k+1} = w_k - lr / n X^T (X w_k - y). Every iterate stays in
    w0 + rowspace(X), so from w0 = 0 on an underdetermined problem (p > n)
    GD converges to the minimum-norm interpolant X^+ y (e.g. Gunasekar et
    al. 2018, Zhang et al. 2017 Sec. 5). Converges for 0 < lr < 2n / ||X||_2^2.
    X: [n, p], y: [n] -> [p].
    """
    X = as_float64(X)
    y = as_float64(y, X.device)
    n, p = X.shape
    w = torch.zeros(p, dtype=torch.float64, device=X.device) if w0 is None else as_float64(w0, X.device).clone()
    for _ in range(int(steps)):
        w = w - (lr / n) * (X.T @ (X @ w - y))  # [p]
    return w


def logistic_loss(X, y, w) -> torch.Tensor:
    """L(w) = 1/n sum_i log(1 + exp(-y_i x_i . w)), computed stably.

    X: [n, d], y: [n] in {-1, +1}, w: [d] -> 0-dim tensor.
    """
    X = as_float64(X)
    y = as_float64(y, X.device)
    w = as_float64(w, X.device)
    return torch.nn.functional.softplus(-y * (X @ w)).mean()


def normalized_gd_logistic(X, y, lr: float, steps: int) -> torch.Tensor:
    """Normalized GD w_{k+1} = w_k - lr grad L(w_k) / ||grad L(w_k)|| from w_0 = 0.

    L is the logistic loss of `logistic_loss` on linearly separable data
    without bias. Soudry et al. (2018, Theorem 3) show that GD's direction
    w / ||w|| converges to the hard-margin SVM direction (slowly, 1/log t);
    normalizing the step (Nacson et al. 2019) makes ||w|| grow linearly and
    the direction converge much faster. The gradient direction is computed
    from log-weights so it stays finite when the loss underflows.
    X: [n, d], y: [n] in {-1, +1}. Returns the final w: [d].
    """
    X = as_float64(X)
    y = as_float64(y, X.device)
    Z = y[:, None] * X  # [n, d] signed examples
    w = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device)
    for _ in range(int(steps)):
        # -grad L = 1/n sum_i sigmoid(-z_i . w) z_i; only its direction matters
        logit = torch.nn.functional.logsigmoid(-(Z @ w))  # [n]
        direction = torch.exp(logit - logit.max()) @ Z  # [d]
        w = w + lr * direction / direction.norm()
    return w


def max_margin_direction(X, y) -> torch.Tensor:
    """Unit direction of the hard-margin SVM without bias.

    Solves min ||w||^2 / 2 s.t. y_i x_i . w >= 1 (the limit of Soudry et al.
    2018, eq. 4) with scipy's SLSQP and returns w / ||w||.
    X: [n, d] linearly separable through the origin, y: [n] in {-1, +1} -> [d].
    """
    from scipy.optimize import minimize

    Xt = as_float64(X)
    Z = (as_float64(y, Xt.device)[:, None] * Xt).cpu().numpy()  # [n, d]
    # a feasible start: scale the least-squares direction until every margin is >= 1
    w0 = np.linalg.lstsq(Z, np.ones(Z.shape[0]), rcond=None)[0]
    margins = Z @ w0
    if margins.min() > 0:
        w0 = w0 / margins.min()
    res = minimize(
        lambda w: 0.5 * w @ w, w0, jac=lambda w: w, method="SLSQP",
        constraints=[{"type": "ineq", "fun": lambda w: Z @ w - 1.0, "jac": lambda w: Z}],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    w = torch.as_tensor(res.x, dtype=torch.float64, device=Xt.device)
    return w / w.norm()
