"""Feature learning: normalization, parametrizations (SP / NTK / muP), lazy
versus rich training, mean-field particles.

Shapes: a batch ``x: [n, d]`` has one example per row. Weights of a layer
are ``[fan_out, fan_in]`` (as ``torch.nn.Linear``). Everything is float64
and stays on the input's device.

References
- Ioffe & Szegedy 2015, "Batch Normalization", Algorithm 1 (forward) and
  Section 3 (backward by the chain rule).
- Arora, Li & Lyu 2019, "Theoretical analysis of auto rate-tuning by batch
  normalization", Lemma 2.4 (a scale-invariant loss has a gradient
  orthogonal to the weights, scaling as 1/||w||).
- Yang & Hu 2021, "Feature Learning in Infinite-Width Neural Networks"
  (Tensor Programs IV), eq. (1)-(2) (abc-parametrization), Table 3 (SP,
  NTK, muP), and the symmetry (a, b, c) -> (a + t, b - t, c - 2t) of SGD.
- Yang et al. 2021, "Tensor Programs V", Table 3 (muP as per-layer init
  variance and learning rate for SGD) and Section 9 (coordinate check).
- Chizat, Oyallon & Bach 2019, "On Lazy Training in Differentiable
  Programming", Section 2 (the scaled model alpha (h(w) - h(w0)) and the
  loss L / alpha^2).
- Mei, Montanari & Nguyen 2018, "A mean field view of the landscape of
  two-layer neural networks", eq. (2)-(6) (particle SGD and its PDE limit).
"""

from __future__ import annotations

import math

import torch

from sodl_ref.tensors import as_float64

__all__ = [
    "batch_norm",
    "batch_norm_backward",
    "bn_linear_loss_grad",
    "ABC_TABLE",
    "abc_exponents",
    "effective_init_std_and_lr",
    "abc_init",
    "coordinate_check",
    "lazy_training_relative_change",
    "loglog_slope",
    "mean_field_two_layer",
]


# ---------------------------------------------------------------------------
# Batch normalization
# ---------------------------------------------------------------------------


def batch_norm(x, gamma, beta, eps: float = 1e-5) -> torch.Tensor:
    """Training-mode batch normalization (Ioffe & Szegedy 2015, Algorithm 1).

    y = gamma * (x - mu_B) / sqrt(var_B + eps) + beta, with the batch mean
    mu_B and the *biased* batch variance var_B (divide by n), per feature.
    Identical to ``torch.nn.functional.batch_norm(x, None, None, gamma,
    beta, training=True, eps=eps)``.

    x: [n, d]; gamma, beta: [d]. Returns y: [n, d].
    """
    x = as_float64(x)
    gamma, beta = as_float64(gamma, like=x), as_float64(beta, like=x)
    mu = x.mean(0)  # [d]
    var = ((x - mu) ** 2).mean(0)  # [d], biased
    xhat = (x - mu) / torch.sqrt(var + eps)  # [n, d]
    return gamma * xhat + beta


def batch_norm_backward(x, gamma, dy, eps: float = 1e-5):
    """Closed-form backward pass of training-mode batch normalization.

    With xhat = (x - mu) / sigma, sigma = sqrt(var + eps), the chain rule
    through mu and var (Ioffe & Szegedy 2015, Section 3) collapses to

        dbeta  = sum_i dy_i
        dgamma = sum_i dy_i * xhat_i
        dx_i   = gamma / (n sigma) * (n dy_i - sum_j dy_j - xhat_i sum_j dy_j xhat_j)

    x, dy: [n, d]; gamma: [d]. Returns (dx [n, d], dgamma [d], dbeta [d]).
    """
    x = as_float64(x)
    gamma, dy = as_float64(gamma, like=x), as_float64(dy, like=x)
    n = x.shape[0]
    mu = x.mean(0)
    sigma = torch.sqrt(((x - mu) ** 2).mean(0) + eps)  # [d]
    xhat = (x - mu) / sigma  # [n, d]
    dbeta = dy.sum(0)  # [d]
    dgamma = (dy * xhat).sum(0)  # [d]
    dx = gamma / (n * sigma) * (n * dy - dbeta - xhat * dgamma)  # [n, d]
    return dx, dgamma, dbeta


def bn_linear_loss_grad(W, X, T, eps: float = 0.0):
    """Loss and gradient of a linear layer followed by batch normalization.

    L(W) = 1 / (2 n) * ||BN(X W^T) - T||_F^2 with gamma = 1, beta = 0. With
    eps = 0 each output unit is scale invariant in its weight row w_j:
    L(c w_j) = L(w_j) for c > 0, hence (Arora, Li & Lyu 2019, Lemma 2.4)
    <w_j, dL/dw_j> = 0 and dL/dw_j (c w) = dL/dw_j (w) / c.

    W: [k, d]; X: [n, d]; T: [n, k]. Returns (loss float, grad [k, d]).
    """
    W = as_float64(W)
    X, T = as_float64(X, like=W), as_float64(T, like=W)
    n, k = X.shape[0], W.shape[0]
    Z = X @ W.T  # [n, k]
    ones = torch.ones(k, dtype=torch.float64, device=W.device)
    Y = batch_norm(Z, ones, torch.zeros_like(ones), eps=eps)  # [n, k]
    loss = 0.5 * ((Y - T) ** 2).sum() / n
    dZ, _, _ = batch_norm_backward(Z, ones, (Y - T) / n, eps=eps)  # [n, k]
    return float(loss), dZ.T @ X  # [k, d]


# ---------------------------------------------------------------------------
# abc-parametrizations (Yang & Hu 2021)
# ---------------------------------------------------------------------------

# Yang & Hu 2021, Table 3, for an MLP with L hidden layers of width n and a
# fixed input dimension: layer l = 1 (input), 2..L (hidden), L+1 (readout).
# W^l = n^{-a_l} w^l, w^l ~ N(0, n^{-2 b_l}), SGD on w with lr eta n^{-c}.
ABC_TABLE = {
    "sp": {"a": (0.0, 0.0, 0.0), "b": (0.0, 0.5, 0.5), "c": 0.0},
    "ntk": {"a": (0.0, 0.5, 0.5), "b": (0.0, 0.0, 0.0), "c": 0.0},
    "mup": {"a": (-0.5, 0.0, 0.5), "b": (0.5, 0.5, 0.5), "c": 0.0},
}


def abc_exponents(parametrization: str, n_hidden: int) -> dict:
    """The exponents (a_l, b_l) for l = 1..L+1 and c of Yang & Hu 2021, Table 3.

    parametrization: "sp", "ntk" or "mup"; n_hidden = L >= 1.
    Returns {"a": [L+1] list of floats, "b": [L+1] list, "c": float}; the
    entries (input, hidden, readout) of ABC_TABLE are laid out as
    [input] + [hidden] * (L - 1) + [readout].
    """
    row = ABC_TABLE[parametrization.lower()]
    a_in, a_hid, a_out = row["a"]
    b_in, b_hid, b_out = row["b"]
    a = [a_in] + [a_hid] * (n_hidden - 1) + [a_out]
    b = [b_in] + [b_hid] * (n_hidden - 1) + [b_out]
    return {"a": a, "b": b, "c": float(row["c"])}


def effective_init_std_and_lr(a, b, c: float, width: int, lr: float):
    """Per-layer init std and SGD learning rate of the equivalent network
    trained directly in W (multiplier 1), for an abc-parametrization.

    W = n^{-a} w with w ~ N(0, n^{-2b}) gives std(W) = n^{-(a+b)}. SGD on w
    with rate eta n^{-c}: dW = n^{-a} dw = -eta n^{-c} n^{-a} dL/dw and
    dL/dw = n^{-a} dL/dW, so W follows SGD with rate eta n^{-(2a+c)}. This is
    the symmetry (a, b, c) -> (a + t, b - t, c - 2t) of Yang & Hu 2021 (their
    eq. (3)); for muP it yields Tensor Programs V, Table 3 (SGD): input lr
    eta n, hidden eta, readout eta / n, readout std 1 / n.

    a, b: [L+1]. Returns (std [L+1], lr [L+1]) float64 tensors.
    """
    a, b = as_float64(a), as_float64(b)
    n = float(width)
    std = n ** (-(a + b))
    lrs = lr * n ** (-(2 * a + c))
    return std, lrs


def abc_init(d_in: int, width: int, b, generator: torch.Generator | None = None,
             device=None) -> list:
    """Draw the trainable parameters w^l ~ N(0, n^{-2 b_l}) of an abc-MLP.

    Shapes: w^1: [n, d_in], w^l: [n, n] for l = 2..L, w^{L+1}: [1, n].
    b: [L+1] (L = len(b) - 1 hidden layers). Returns a list of L+1 tensors.
    """
    b = [float(v) for v in b]
    L = len(b) - 1
    shapes = [(width, d_in)] + [(width, width)] * (L - 1) + [(1, width)]
    ws = []
    for (fo, fi), bl in zip(shapes, b):
        w = torch.randn(fo, fi, generator=generator, dtype=torch.float64)
        ws.append((w * width ** (-bl)).to(device))
    return ws


def _abc_forward(ws, X, a, n):
    """Forward pass of the abc-MLP; returns (f [N], last hidden x^L [N, n])."""
    h = X
    for l in range(len(ws) - 1):
        h = torch.relu(n ** (-a[l]) * h @ ws[l].T)  # [N, n]
    f = n ** (-a[-1]) * h @ ws[-1].T  # [N, 1]
    return f[:, 0], h


def coordinate_check(ws, X, y, a, c: float, lr: float, steps: int) -> dict:
    """Coordinate check of an abc-parametrized ReLU MLP (Yang et al. 2021,
    Tensor Programs V, Section 9; Yang & Hu 2021, eq. (1)-(2)).

    Forward: x^0 = X, x^l = relu(n^{-a_l} x^{l-1} w^{l T}) for l = 1..L,
    f = n^{-a_{L+1}} x^L w^{L+1 T}. Full-batch SGD on the raw parameters w
    with rate lr * n^{-c} on the loss 1 / (2 N) sum_i (f(X_i) - y_i)^2, where
    n = ws[0].shape[0] is the width. After each step t = 1..steps, records

        feature_change[t-1] = RMS(x^L_t - x^L_0)   (over examples and units)
        output_change[t-1]  = RMS(f_t - f_0)       (over examples)

    Under muP both are Theta(1) in n; under NTK the feature change decays as
    n^{-1/2}; under SP with a width-independent lr they grow with n.

    ws: list of L+1 tensors ([n, d], [n, n] * (L-1), [1, n]), already drawn
    with std n^{-b_l}; X: [N, d]; y: [N]; a: [L+1]. The inputs are not
    modified. Returns {"feature_change": [steps], "output_change": [steps]}.
    """
    ws = [as_float64(w).clone().requires_grad_(True) for w in ws]
    X, y = as_float64(X, like=ws[0]), as_float64(y, like=ws[0])
    a = [float(v) for v in a]
    n = ws[0].shape[0]
    rate = lr * n ** (-c)
    with torch.no_grad():
        f0, x0 = _abc_forward(ws, X, a, n)
    feat, out = [], []
    for _ in range(steps):
        f, _ = _abc_forward(ws, X, a, n)
        loss = 0.5 * ((f - y) ** 2).mean()
        grads = torch.autograd.grad(loss, ws)
        with torch.no_grad():
            for w, g in zip(ws, grads):
                w -= rate * g
            f, x = _abc_forward(ws, X, a, n)
            feat.append(torch.sqrt(((x - x0) ** 2).mean()))
            out.append(torch.sqrt(((f - f0) ** 2).mean()))
    return {"feature_change": torch.stack(feat), "output_change": torch.stack(out)}


def loglog_slope(xs, ys) -> float:
    """Least-squares slope of log(ys) against log(xs) (a power-law exponent)."""
    lx, ly = torch.log(as_float64(xs)), torch.log(as_float64(ys))
    lx = lx - lx.mean()
    return float((lx * (ly - ly.mean())).sum() / (lx * lx).sum())


# ---------------------------------------------------------------------------
# Lazy versus rich training (Chizat, Oyallon & Bach 2019)
# ---------------------------------------------------------------------------


def lazy_training_relative_change(W, v, X, y, alpha: float, lr: float, steps: int) -> float:
    """Relative change of the first-layer weights under alpha-scaled training.

    Two-layer net h(W; x) = v . relu(W x) / sqrt(m) (W: [m, d], v: [m],
    fixed readout). Chizat et al. 2019 (Section 2) train the centred scaled
    model alpha (h(W) - h(W0)) on the loss rescaled by 1 / alpha^2:

        L_alpha(W) = 1 / (2 N alpha^2) sum_i (alpha (h(W; x_i) - h(W0; x_i)) - y_i)^2,

    here by ``steps`` steps of full-batch gradient descent with rate lr.
    As alpha grows, training becomes lazy: the function moves by O(1) while
    ||W_T - W_0||_F / ||W_0||_F = O(1 / alpha).

    X: [N, d]; y: [N]. Returns ||W_T - W_0||_F / ||W_0||_F (float).
    """
    W0 = as_float64(W)
    v, X, y = as_float64(v, like=W0), as_float64(X, like=W0), as_float64(y, like=W0)
    m = W0.shape[0]
    f0 = torch.relu(X @ W0.T) @ v / math.sqrt(m)  # [N]
    W = W0.clone()
    for _ in range(steps):
        pre = X @ W.T  # [N, m]
        f = torch.relu(pre) @ v / math.sqrt(m)  # [N]
        r = (alpha * (f - f0) - y) / (len(y) * alpha)  # dL/df, [N]
        gW = ((r[:, None] * (pre > 0)) * v / math.sqrt(m)).T @ X  # [m, d]
        W = W - lr * gW
    return float(torch.linalg.norm(W - W0) / torch.linalg.norm(W0))


# ---------------------------------------------------------------------------
# Mean-field two-layer network (Mei, Montanari & Nguyen 2018)
# ---------------------------------------------------------------------------


def mean_field_two_layer(theta, X, y, lr: float, steps: int):
    """Particle gradient descent of a two-layer net in the mean-field scaling.

    f(x) = 1/N sum_j a_j tanh(w_j . x), particle theta_j = (a_j, w_j). GD on
    R = 1/(2 M) sum_i (f(x_i) - y_i)^2 with rate lr * N per particle (Mei,
    Montanari & Nguyen 2018, eq. (6): time step scaled so that each particle
    moves O(1), the empirical measure follows the distributional dynamics
    of their eq. (7)-(8) as N -> infinity).

    theta: [N, 1 + d] (column 0 is a_j); X: [M, d]; y: [M].
    Returns (theta_T [N, 1 + d], risks [steps + 1]).
    """
    th = as_float64(theta).clone()
    X, y = as_float64(X, like=th), as_float64(y, like=th)
    N, M = th.shape[0], X.shape[0]
    risks = []
    for t in range(steps + 1):
        a, w = th[:, 0], th[:, 1:]  # [N], [N, d]
        act = torch.tanh(X @ w.T)  # [M, N]
        r = act @ a / N - y  # [M]
        risks.append(0.5 * (r ** 2).mean())
        if t == steps:
            break
        # per-particle gradient of R times N (the mean-field time scale)
        ga = act.T @ r / M  # [N]
        gw = ((r[:, None] * (1 - act ** 2)) * a).T @ X / M  # [N, d]
        th = th - lr * torch.cat([ga[:, None], gw], dim=1)
    return th, torch.stack(risks)
