"""Foundations: perceptrons, counting dichotomies, MLPs by hand, init, losses.

Week 1 of the course. Everything a deep network is built from, written out
so that each line is one equation of the classic papers:

- Rosenblatt's perceptron learning rule (Rosenblatt 1958; convergence
  theorem of Novikoff 1962),
- Cover's function counting theorem (Cover 1965, Theorem 1),
- forward and backward passes of a multilayer perceptron by the delta
  equations (Rumelhart, Hinton & Williams 1986, eqs. 14-16),
- Glorot/Xavier (Glorot & Bengio 2010, eqs. 12 and 16) and He/Kaiming
  (He et al. 2015, eq. 10) initialization, and the layer-to-layer
  propagation of second moments that motivates them,
- numerically stable softmax, log-softmax and cross-entropy, MSE and MAE,
- a one-hidden-layer ReLU network that interpolates given knots exactly
  (the constructive proof of universal approximation in one dimension).

Conventions: float64 torch tensors in and out (numpy arrays and Python
numbers are accepted), the input's device is kept, random numbers come from
an explicit ``torch.Generator``. Weight matrices follow ``torch.nn.Linear``:
``W: [fan_out, fan_in]``, a layer computes ``z = h @ W.T + b``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from sodl_ref.tensors import as_float64

Tensor = torch.Tensor


# ---------------------------------------------------------------------------
# The perceptron and Cover's counting function
# ---------------------------------------------------------------------------


def perceptron_train(X, y, max_epochs: int = 1000) -> tuple[Tensor, int]:
    """Rosenblatt's perceptron learning rule for a homogeneous threshold unit.

    Starting from w = 0, sweep the P examples in their given order; whenever
    example i is not strictly on the right side, y_i <w, x_i> <= 0, update

        w <- w + y_i x_i                       (Rosenblatt 1958)

    and stop after the first sweep without an update (or after
    ``max_epochs`` sweeps). On data separable with margin gamma and radius
    R the number of updates is at most (R / gamma)^2 (Novikoff 1962).
    A bias is learned by appending a constant feature to X.

    Args:
        X: [P, N] inputs.
        y: [P] labels in {-1, +1}.
        max_epochs: maximum number of sweeps through the data.

    Returns:
        (w, n_updates): w [N] float64 weights, n_updates the number of
        updates made (a Python int).
    """
    X = as_float64(X)
    y = as_float64(y, device=X.device)
    P, N = X.shape
    w = torch.zeros(N, dtype=torch.float64, device=X.device)  # [N]
    n_updates = 0
    for _ in range(max_epochs):
        mistakes = 0
        for i in range(P):
            if y[i] * (X[i] @ w) <= 0:  # wrong side or on the boundary
                w = w + y[i] * X[i]
                n_updates += 1
                mistakes += 1
        if mistakes == 0:
            break
    return w, n_updates


def cover_count(P: int, N: int) -> int:
    """Number of dichotomies of P points realized by a homogeneous threshold unit in R^N.

    Cover's function counting theorem (Cover 1965, Theorem 1): for P points
    in general position in R^N, the number of labelings y in {-1,+1}^P with
    y_i = sign(<w, x_i>) for some w is

        C(P, N) = 2 * sum_{k=0}^{N-1} binom(P - 1, k).

    Exact integer arithmetic for any size. C(P, N) = 2^P when P <= N, and
    C(2N, N) = 2^(2N-1): at load alpha = P/N = 2 exactly half of all
    labelings are realizable, the perceptron's capacity.
    C(0, N) = 1 (the empty labeling) and C(P, 0) = 0 for P >= 1.

    Args:
        P: number of points, P >= 0.
        N: dimension, N >= 0.

    Returns:
        C(P, N) as a Python int.
    """
    P, N = int(P), int(N)
    if P < 0 or N < 0:
        raise ValueError(f"cover_count needs P >= 0 and N >= 0, got P={P}, N={N}")
    if P == 0:
        return 1
    return 2 * sum(math.comb(P - 1, k) for k in range(min(N, P)))


# ---------------------------------------------------------------------------
# Multilayer perceptron: forward pass and backward pass by the delta equations
# ---------------------------------------------------------------------------


def activation_fn(z: Tensor, activation: str = "relu") -> Tensor:
    """phi(z) for ``activation`` in {"relu", "tanh"} (elementwise, same shape)."""
    if activation == "relu":
        return torch.clamp(z, min=0.0)
    if activation == "tanh":
        return torch.tanh(z)
    raise ValueError(f"unknown activation {activation!r}; use 'relu' or 'tanh'")


def activation_derivative(z: Tensor, activation: str = "relu") -> Tensor:
    """phi'(z) at the pre-activation z (ReLU'(0) = 0, as torch uses)."""
    if activation == "relu":
        return (z > 0).to(z.dtype)
    if activation == "tanh":
        return 1.0 - torch.tanh(z) ** 2
    raise ValueError(f"unknown activation {activation!r}; use 'relu' or 'tanh'")


def mlp_forward(x, weights: Sequence, biases: Sequence, activation: str = "relu"):
    """Forward pass of a fully connected network with a linear readout.

        h_0 = x,   z_l = h_{l-1} W_l^T + b_l,   h_l = phi(z_l)   (l = 1..L-1),
        output = z_L = h_{L-1} W_L^T + b_L   (no activation on the last layer).

    Args:
        x: [B, n_0] inputs.
        weights: L matrices, weights[l]: [n_{l+1}, n_l].
        biases: L vectors, biases[l]: [n_{l+1}].
        activation: "relu" or "tanh" for the hidden layers.

    Returns:
        (output [B, n_L], zs, hs): zs[l] the pre-activation of layer l+1
        ([B, n_{l+1}], L entries, zs[-1] is the output), hs[l] the input of
        layer l+1 (hs[0] = x, L entries). Both are what the backward pass needs.
    """
    h = as_float64(x)
    weights = [as_float64(W, device=h.device) for W in weights]
    biases = [as_float64(b, device=h.device) for b in biases]
    if len(weights) != len(biases):
        raise ValueError("need one bias per weight matrix")
    zs, hs = [], []
    for l, (W, b) in enumerate(zip(weights, biases)):
        hs.append(h)
        z = h @ W.T + b  # [B, n_{l+1}]
        zs.append(z)
        h = z if l == len(weights) - 1 else activation_fn(z, activation)
    return zs[-1], zs, hs


def mlp_backward(x, weights: Sequence, biases: Sequence, grad_output, activation: str = "relu"):
    """Gradients of a loss with respect to all weights and biases, by the delta equations.

    With delta_l = dLoss/dz_l (a [B, n_l] matrix, one row per example), the
    backward pass of Rumelhart, Hinton & Williams (1986, eqs. 14-16) reads

        delta_L = dLoss/d output                       (given: grad_output)
        delta_l = (delta_{l+1} W_{l+1}) * phi'(z_l)     (l = L-1..1)
        dLoss/dW_l = delta_l^T h_{l-1}                  [n_l, n_{l-1}]
        dLoss/db_l = sum over the batch of delta_l      [n_l]

    (sums over the batch because the loss is a sum over examples of
    per-example terms; a mean loss already carries its 1/B in grad_output).

    Args:
        x: [B, n_0] inputs.
        weights, biases: as in :func:`mlp_forward`.
        grad_output: [B, n_L], dLoss/d output.
        activation: "relu" or "tanh".

    Returns:
        (grad_weights, grad_biases): lists with the shapes of weights and
        biases.
    """
    _, zs, hs = mlp_forward(x, weights, biases, activation)
    weights = [as_float64(W, device=zs[0].device) for W in weights]
    delta = as_float64(grad_output, device=zs[0].device)  # [B, n_L]
    L = len(weights)
    grad_weights: list[Tensor] = [None] * L  # type: ignore[list-item]
    grad_biases: list[Tensor] = [None] * L  # type: ignore[list-item]
    for l in range(L - 1, -1, -1):
        grad_weights[l] = delta.T @ hs[l]  # [n_{l+1}, n_l]
        grad_biases[l] = delta.sum(0)  # [n_{l+1}]
        if l > 0:
            delta = (delta @ weights[l]) * activation_derivative(zs[l - 1], activation)  # [B, n_l]
    return grad_weights, grad_biases


# ---------------------------------------------------------------------------
# Initialization
# ---------------------------------------------------------------------------


def glorot_uniform(fan_in: int, fan_out: int, generator: torch.Generator | None = None,
                   gain: float = 1.0) -> Tensor:
    """Glorot (Xavier) uniform initialization, Glorot & Bengio (2010), eq. 16.

    W_ij ~ U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)), so that
    Var W_ij = gain^2 * 2 / (fan_in + fan_out): the compromise between
    keeping forward (fan_in) and backward (fan_out) variances (eq. 12).
    Same law as ``torch.nn.init.xavier_uniform_``.

    Returns:
        W: [fan_out, fan_in] float64 (on the generator's device).
    """
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    device = generator.device if generator is not None else None
    u = torch.rand(fan_out, fan_in, generator=generator, dtype=torch.float64, device=device)
    return (2.0 * u - 1.0) * a


def glorot_normal(fan_in: int, fan_out: int, generator: torch.Generator | None = None,
                  gain: float = 1.0) -> Tensor:
    """Glorot (Xavier) normal initialization: W_ij ~ N(0, gain^2 * 2 / (fan_in + fan_out)).

    Glorot & Bengio (2010), eq. 12 with a Gaussian instead of a uniform law;
    same law as ``torch.nn.init.xavier_normal_``.

    Returns:
        W: [fan_out, fan_in] float64.
    """
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    device = generator.device if generator is not None else None
    return std * torch.randn(fan_out, fan_in, generator=generator, dtype=torch.float64, device=device)


def he_normal(fan_in: int, fan_out: int, generator: torch.Generator | None = None) -> Tensor:
    """He (Kaiming) normal initialization for ReLU layers, He et al. (2015), eq. 10.

    W_ij ~ N(0, 2 / fan_in): a ReLU halves the second moment, the factor 2
    restores it, so (1/2) fan_in Var W = 1 keeps E[z^2] constant with depth.
    Same law as ``torch.nn.init.kaiming_normal_(W, mode="fan_in",
    nonlinearity="relu")``.

    Returns:
        W: [fan_out, fan_in] float64.
    """
    std = math.sqrt(2.0 / fan_in)
    device = generator.device if generator is not None else None
    return std * torch.randn(fan_out, fan_in, generator=generator, dtype=torch.float64, device=device)


def preactivation_second_moments(x, weights: Sequence) -> Tensor:
    """Mean squared pre-activation, layer by layer, of a bias-free ReLU network.

        z_1 = x W_1^T,   z_l = relu(z_{l-1}) W_l^T,   q_l = mean over batch and units of z_l^2.

    With i.i.d. weights of variance sigma_w^2 / fan_in and a wide layer,
    q_l = sigma_w^2 q_{l-1} / 2 (He et al. 2015, eq. 9): He init
    (sigma_w^2 = 2) keeps q_l constant; Glorot on equal widths
    (sigma_w^2 = 1) halves it at every layer.

    Args:
        x: [B, n_0] inputs.
        weights: L matrices, weights[l]: [n_{l+1}, n_l].

    Returns:
        q: [L] float64, q[l] = mean(z_{l+1}^2).
    """
    h = as_float64(x)
    q = []
    for l, W in enumerate(weights):
        W = as_float64(W, device=h.device)
        z = (h if l == 0 else torch.clamp(h, min=0.0)) @ W.T  # [B, n_{l+1}]
        q.append((z ** 2).mean())
        h = z
    return torch.stack(q)


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------


def softmax(z, dim: int = -1) -> Tensor:
    """Numerically stable softmax: exp(z - max z) / sum exp(z - max z) along ``dim``.

    Subtracting the maximum changes nothing mathematically (softmax is
    invariant to adding a constant) and keeps every exponential in (0, 1],
    so logits of magnitude 1e3 neither overflow nor give 0/0. Same shape as z.
    """
    z = as_float64(z)
    z = z - z.amax(dim=dim, keepdim=True)
    e = torch.exp(z)
    return e / e.sum(dim=dim, keepdim=True)


def log_softmax(z, dim: int = -1) -> Tensor:
    """Numerically stable log-softmax: (z - m) - log sum exp(z - m), m = max z along ``dim``.

    The log-sum-exp trick; unlike log(softmax(z)) it stays finite when a
    probability underflows to 0. Same shape as z.
    """
    z = as_float64(z)
    z = z - z.amax(dim=dim, keepdim=True)
    return z - torch.log(torch.exp(z).sum(dim=dim, keepdim=True))


def cross_entropy(logits, labels) -> float:
    """Mean cross-entropy of integer labels under softmax(logits).

        CE = -(1/B) sum_i log softmax(z_i)[y_i]

    Args:
        logits: [B, K] unnormalized scores.
        labels: [B] integers in 0..K-1.

    Returns:
        The mean loss (Python float), as
        ``torch.nn.functional.cross_entropy(logits, labels)``.
    """
    logits = as_float64(logits)
    labels = torch.as_tensor(labels, device=logits.device).long()
    logp = log_softmax(logits, dim=-1)  # [B, K]
    return float(-logp.gather(1, labels[:, None]).mean())


def mse(pred, target) -> float:
    """Mean squared error, mean over all entries: mean((pred - target)^2)."""
    pred = as_float64(pred)
    target = as_float64(target, device=pred.device)
    return float(((pred - target) ** 2).mean())


def mae(pred, target) -> float:
    """Mean absolute error, mean over all entries: mean(|pred - target|)."""
    pred = as_float64(pred)
    target = as_float64(target, device=pred.device)
    return float((pred - target).abs().mean())


# ---------------------------------------------------------------------------
# Constructive universal approximation in one dimension
# ---------------------------------------------------------------------------


def relu_interpolant(knots, values) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One-hidden-layer ReLU network that interpolates (x_k, y_k) exactly.

    For knots x_0 < x_1 < ... < x_K with values y_k, the piecewise linear
    interpolant on [x_0, x_K] is

        f(x) = y_0 + sum_{k=0}^{K-1} a_k relu(x - x_k),
        a_0 = s_0,  a_k = s_k - s_{k-1},  s_k = (y_{k+1} - y_k) / (x_{k+1} - x_k):

    each hidden unit switches on at a knot and changes the slope by a_k.
    (This is the constructive step of universal approximation: a continuous
    function on an interval is uniformly approximated by its piecewise linear
    interpolant on a fine grid, and that interpolant is a ReLU network with
    K hidden units.) Left of x_0 the network is constant y_0, right of x_K it
    continues with slope s_{K-1}.

    Args:
        knots: [K+1] strictly increasing.
        values: [K+1].

    Returns:
        (W1 [K, 1], b1 [K], W2 [1, K], b2 [1]) so that
        f(x) = relu(x[:, None] @ W1.T + b1) @ W2.T + b2, see :func:`relu_net`.
    """
    x = as_float64(knots)
    y = as_float64(values, device=x.device)
    if x.ndim != 1 or x.shape != y.shape or x.numel() < 2:
        raise ValueError("knots and values must be 1-D of the same length >= 2")
    if not bool((x[1:] > x[:-1]).all()):
        raise ValueError("knots must be strictly increasing")
    s = (y[1:] - y[:-1]) / (x[1:] - x[:-1])  # [K] slopes
    a = torch.cat([s[:1], s[1:] - s[:-1]])  # [K] slope changes
    K = s.numel()
    W1 = torch.ones(K, 1, dtype=torch.float64, device=x.device)  # [K, 1]
    b1 = -x[:-1]  # [K] unit k turns on at x_k
    W2 = a[None, :]  # [1, K]
    b2 = y[:1].clone()  # [1]
    return W1, b1, W2, b2


def relu_net(x, W1, b1, W2, b2) -> Tensor:
    """Evaluates the scalar one-hidden-layer ReLU network f(x) = relu(x W1^T + b1) W2^T + b2.

    Args:
        x: [n] scalar inputs; W1: [H, 1]; b1: [H]; W2: [1, H]; b2: [1].

    Returns:
        f(x): [n].
    """
    x = as_float64(x)
    W1, b1, W2, b2 = (as_float64(t, device=x.device) for t in (W1, b1, W2, b2))
    h = torch.clamp(x[:, None] @ W1.T + b1, min=0.0)  # [n, H]
    return (h @ W2.T + b2)[:, 0]  # [n]
