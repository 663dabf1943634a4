"""Random networks at initialization: NNGP, NTK, signal propagation, finite width.

A fully connected network with ``depth`` hidden layers and a linear readout,
in NTK parametrization (Jacot et al. 2018):

    z^1(x)     = sqrt(weight_var / d)   W^0 x       + sqrt(bias_var) b^0,
    z^{l+1}(x) = sqrt(weight_var / n_l) W^l phi(z^l) + sqrt(bias_var) b^l,
    f(x)       = z^{depth+1}(x),         all W, b ~ N(0, 1).

As the widths n_l -> infinity, f is a Gaussian process with kernel K^depth
(Neal 1996; Lee et al. 2018; Matthews et al. 2018) and gradient descent
follows the kernel Theta^depth (Jacot et al. 2018):

    K^0 = bias_var + weight_var <x, x'> / d,
    K^l = bias_var + weight_var E[phi(u) phi(v)],           (u, v) ~ N(0, K^{l-1}),
    Theta^0 = K^0,
    Theta^l = K^l + weight_var E[phi'(u) phi'(v)] Theta^{l-1}.

This is the convention of neural-tangents' ``stax`` (Novak et al. 2020)
with ``W_std**2 = weight_var`` and ``b_std**2 = bias_var``. The Gaussian
expectations have closed forms for ReLU (arc-cosine kernel of degree 1 and
0, Cho & Saul 2009) and erf (Williams 1997).

Arrays come back as float64 torch tensors on the input's device, scalars as
Python floats.
"""
import math

import numpy as np
import torch
from torch import nn

from sodl_ref.tensors import as_float64

ACTIVATIONS = ("relu", "erf")


# ---------------------------------------------------------------------------
# Gaussian expectations E[phi(u) phi(v)] and E[phi'(u) phi'(v)]
# ---------------------------------------------------------------------------


def relu_dual(k11, k22, k12):
    """Arc-cosine kernels for ReLU, (u, v) ~ N(0, [[k11, k12], [k12, k22]]).

    Cho & Saul (2009), eq. (6) with n = 1 and n = 0:
        E[relu(u) relu(v)] = sqrt(k11 k22) / (2 pi) (sin t + (pi - t) cos t),
        E[step(u) step(v)] = (pi - t) / (2 pi),
    t = arccos(k12 / sqrt(k11 k22)). Broadcasting shapes; returns
    ``(E[phi phi], E[phi' phi'])`` as float64 tensors.
    """
    k11, k22, k12 = as_float64(k11), as_float64(k22), as_float64(k12)
    norm = torch.sqrt(k11 * k22)
    cos_t = (k12 / norm).clamp(-1.0, 1.0)
    sin_t = torch.sqrt((1.0 - cos_t**2).clamp_min(0.0))
    # t = arccos(cos_t), as atan2: several times faster than torch's float64
    # arccos, and accurate where cos_t rounds to just below 1 (the diagonal).
    t = torch.atan2(sin_t, cos_t)
    e_phi = norm / (2 * math.pi) * (sin_t + (math.pi - t) * cos_t)
    e_dphi = (math.pi - t) / (2 * math.pi)
    return e_phi, e_dphi


def erf_dual(k11, k22, k12):
    """Gaussian expectations for phi = erf, (u, v) ~ N(0, [[k11, k12], [k12, k22]]).

    Williams (1997), "Computing with infinite networks", eq. (11):
        E[erf(u) erf(v)] = (2/pi) arcsin(2 k12 / sqrt((1 + 2 k11)(1 + 2 k22))),
    and, with erf'(u) = (2/sqrt(pi)) exp(-u^2), a Gaussian integral:
        E[erf'(u) erf'(v)] = (4/pi) / sqrt((1 + 2 k11)(1 + 2 k22) - 4 k12^2).
    Broadcasting shapes; returns ``(E[phi phi], E[phi' phi'])``.
    """
    k11, k22, k12 = as_float64(k11), as_float64(k22), as_float64(k12)
    a = (1 + 2 * k11) * (1 + 2 * k22)
    e_phi = (2 / math.pi) * torch.arcsin((2 * k12 / torch.sqrt(a)).clamp(-1.0, 1.0))
    e_dphi = (4 / math.pi) / torch.sqrt(a - 4 * k12**2)
    return e_phi, e_dphi


def gauss_hermite_dual(activation, k11, k22, k12, n_nodes=100):
    """E[phi(u) phi(v)] and E[phi'(u) phi'(v)] by 2-D Gauss-Hermite quadrature.

    For any activation in ``{"relu", "erf", "tanh"}`` (exact up to the
    quadrature error: spectral for smooth phi, slow for ReLU's kink).
    Writes u = sqrt(k11) z1, v = sqrt(k22) (c z1 + sqrt(1 - c^2) z2) with
    z ~ N(0, I). Broadcasting shapes.
    """
    phi, dphi = _activation_fns(activation)
    k11, k22, k12 = torch.broadcast_tensors(as_float64(k11), as_float64(k22), as_float64(k12))
    z, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    z = torch.as_tensor(z, device=k11.device)
    w = torch.as_tensor(w / math.sqrt(2 * math.pi), device=k11.device)
    c = (k12 / torch.sqrt(k11 * k22)).clamp(-1.0, 1.0)[..., None, None]
    z1, z2 = z[:, None], z[None, :]  # [n, 1], [1, n]
    u = torch.sqrt(k11)[..., None, None] * z1  # [..., n, 1]
    v = torch.sqrt(k22)[..., None, None] * (c * z1 + torch.sqrt(1 - c**2) * z2)  # [..., n, n]
    ww = w[:, None] * w[None, :]
    e_phi = (ww * phi(u) * phi(v)).sum((-1, -2))
    e_dphi = (ww * dphi(u) * dphi(v)).sum((-1, -2))
    return e_phi, e_dphi


def _activation_fns(activation):
    if activation == "relu":
        return torch.relu, lambda u: (u > 0).to(u.dtype)
    if activation == "erf":
        return torch.erf, lambda u: 2 / math.sqrt(math.pi) * torch.exp(-(u**2))
    if activation == "tanh":
        return torch.tanh, lambda u: 1 - torch.tanh(u) ** 2
    raise ValueError(f"unknown activation {activation!r}")


def _dual(activation, k11, k22, k12):
    if activation == "relu":
        return relu_dual(k11, k22, k12)
    if activation == "erf":
        return erf_dual(k11, k22, k12)
    if activation == "tanh":
        return gauss_hermite_dual("tanh", k11, k22, k12)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


# ---------------------------------------------------------------------------
# NNGP and NTK
# ---------------------------------------------------------------------------


def _kernel_recursion(x1, x2, depth, activation, weight_var, bias_var, with_ntk=True):
    """Joint NNGP / NTK recursion; returns (K^depth, Theta^depth or None), [n1, n2]."""
    x1 = as_float64(x1)
    x2 = as_float64(x2, device=x1.device)
    d = x1.shape[-1]
    # K^0 on the pairs and on each input's own diagonal.
    k12 = (x1 @ x2.T).mul_(weight_var / d).add_(bias_var)  # [n1, n2], in place: see _relu_recursion
    k11 = bias_var + weight_var * (x1 * x1).sum(-1) / d  # [n1]
    k22 = bias_var + weight_var * (x2 * x2).sum(-1) / d  # [n2]
    if activation == "relu":
        theta = k12.clone() if with_ntk else None
        return _relu_recursion(k11, k22, k12, theta, depth, weight_var, bias_var)
    theta = k12 if with_ntk else None
    for _ in range(depth):
        e_phi, e_dphi = _dual(activation, k11[:, None], k22[None, :], k12)  # [n1, n2]
        e11, _ = _dual(activation, k11, k11, k11)  # [n1]
        e22, _ = _dual(activation, k22, k22, k22)  # [n2]
        k12_next = bias_var + weight_var * e_phi
        if with_ntk:
            theta = k12_next + weight_var * e_dphi * theta
        k12 = k12_next
        k11 = bias_var + weight_var * e11
        k22 = bias_var + weight_var * e22
    return k12, theta


def _relu_recursion(k11, k22, k12, theta, depth, weight_var, bias_var, block_elements=1 << 18):
    """The ReLU case of :func:`_kernel_recursion`: the same formulas as
    :func:`relu_dual` (Cho & Saul 2009), in place. Overwrites ``k12`` and
    ``theta`` ([n1, n2]).

    A dozen elementwise passes per layer make it memory-bound. So on the
    CPU it runs every layer on one block of rows at a time (about 2 MB per
    buffer), which stays in cache across the passes, with two work buffers
    of one block allocated once (fresh [n1, n2] results would also pay a
    page fault per 4 kB); the norms sqrt(k11 k22) are applied as row and
    column factors, never as a matrix.
    """
    scale = weight_var / (2 * math.pi)
    n1, n2 = k12.shape
    rows = n1 if k12.is_cuda else max(1, min(n1, block_elements // max(1, n2)))
    aux = torch.empty(rows, n2, dtype=k12.dtype, device=k12.device)  # sin t
    pmt = torch.empty_like(aux)  # pi - t
    k22_by_layer = [k22]
    for _ in range(depth - 1):  # the diagonal: t = 0, so E[relu(u)^2] = k / 2
        k22_by_layer.append(bias_var + weight_var * k22_by_layer[-1] / 2)
    for start in range(0, n1, rows):
        stop = min(n1, start + rows)
        k, sin_buf, pmt_buf = k12[start:stop], aux[: stop - start], pmt[: stop - start]
        k11_block = k11[start:stop]
        for layer in range(depth):
            root11, root22 = k11_block.sqrt()[:, None], k22_by_layer[layer].sqrt()[None, :]
            cos_t = k.div_(root11).div_(root22)  # |cos t| may exceed 1 by rounding; then sin t = 0 below
            sin_t = torch.mul(cos_t, cos_t, out=sin_buf).neg_().add_(1.0).clamp_(min=0.0).sqrt_()
            neg_cos = cos_t.neg_()
            torch.atan2(sin_t, neg_cos, out=pmt_buf)  # pi - arccos(c) = arccos(-c), in [0, pi]
            # K^l = b + w/(2 pi) * sqrt(k11 k22) * (sin t + (pi - t) cos t), into K^{l-1}'s rows
            torch.addcmul(sin_t, pmt_buf, neg_cos, value=-1.0, out=k).mul_(root11 * scale).mul_(root22)
            if bias_var:
                k.add_(bias_var)
            if theta is not None:  # Theta^l = K^l + w (pi - t)/(2 pi) Theta^{l-1}
                th = theta[start:stop]
                torch.addcmul(k, th, pmt_buf, value=scale, out=th)
            k11_block = bias_var + weight_var * k11_block / 2
    return k12, theta


def nngp(x1, x2, depth, activation="relu", weight_var=2.0, bias_var=0.0):
    """NNGP kernel K^depth of a fully connected network (Lee et al. 2018, eq. 4).

    K^0 = bias_var + weight_var <x, x'>/d; K^l = bias_var + weight_var
    E[phi(u) phi(v)] with (u, v) ~ N(0, the 2x2 block of K^{l-1}); closed
    forms for ``activation`` "relu" (Cho & Saul 2009) and "erf" (Williams
    1997). ``x1: [n1, d]``, ``x2: [n2, d]`` -> ``[n1, n2]`` float64.
    """
    return _kernel_recursion(x1, x2, depth, activation, float(weight_var), float(bias_var), with_ntk=False)[0]


def ntk(x1, x2, depth, activation="relu", weight_var=2.0, bias_var=0.0):
    """Analytic neural tangent kernel Theta^depth (Jacot et al. 2018, Thm. 1).

    NTK parametrization of the network of :func:`nngp`: Theta^0 = K^0,
    Theta^l = K^l + weight_var E[phi'(u) phi'(v)] Theta^{l-1}, with
    (u, v) ~ N(0, K^{l-1}) (Arora et al. 2019, eq. 7, with biases).
    ``x1: [n1, d]``, ``x2: [n2, d]`` -> ``[n1, n2]`` float64.
    """
    return _kernel_recursion(x1, x2, depth, activation, float(weight_var), float(bias_var))[1]


# ---------------------------------------------------------------------------
# Signal propagation: length map, correlation map, chi_1
# ---------------------------------------------------------------------------


def length_map(q, activation="relu", weight_var=2.0, bias_var=0.0):
    """One layer of the length map q -> bias_var + weight_var E[phi(sqrt(q) z)^2].

    Poole et al. (2016), eq. (3). ``q``: number or tensor -> same shape.
    """
    q = as_float64(q)
    e, _ = _dual(activation, q, q, q)
    return bias_var + weight_var * e


def length_fixed_point(activation="relu", weight_var=2.0, bias_var=0.0, q0=1.0, tol=1e-13, max_iter=100_000):
    """Fixed point q* of :func:`length_map`, by iteration from ``q0``.

    Poole et al. (2016), the fixed point of eq. (3). For ReLU the map is
    linear, q -> bias_var + weight_var q / 2, solved in closed form (every q
    is fixed at weight_var = 2, bias_var = 0: returns q0; no finite fixed
    point for weight_var > 2: returns inf). Returns a Python float.
    """
    if activation == "relu":
        slope = weight_var / 2
        if abs(slope - 1) < 1e-15 and bias_var == 0:
            return float(q0)
        if slope >= 1:
            return math.inf
        return bias_var / (1 - slope)
    q = float(q0)
    for _ in range(max_iter):
        q_next = float(length_map(q, activation, weight_var, bias_var))
        if abs(q_next - q) <= tol * max(1.0, abs(q)):
            return q_next
        q = q_next
    return q


def correlation_map(c, q, activation="relu", weight_var=2.0, bias_var=0.0):
    """One layer of the correlation map of two inputs of equal length q.

    Poole et al. (2016), eq. (5): c -> (bias_var + weight_var E[phi(u1)
    phi(u2)]) / q', (u1, u2) ~ N(0, q [[1, c], [c, 1]]), normalized by the
    next length q' = length_map(q) (equal to Poole's 1/q* at the fixed
    point q = q*). ``c``: number or tensor in [-1, 1] -> same shape.
    """
    c = as_float64(c)
    q = as_float64(q, device=c.device)
    e12, _ = _dual(activation, q, q, c * q)
    e11, _ = _dual(activation, q, q, q)
    return (bias_var + weight_var * e12) / (bias_var + weight_var * e11)


def correlation_trajectory(c0, q0, depth, activation="relu", weight_var=2.0, bias_var=0.0):
    """Correlations c^0..c^depth of two inputs of equal length q0 and correlation c0.

    Iterates the length and correlation maps jointly (exact infinite-width
    propagation; Poole et al. 2016, eqs. 3 and 5). ``c0``: number or
    tensor ``[k]`` -> ``[depth + 1]`` or ``[depth + 1, k]``.
    """
    c = as_float64(c0)
    q = as_float64(q0, device=c.device)
    out = [c]
    for _ in range(depth):
        c = correlation_map(c, q, activation, weight_var, bias_var)
        q = length_map(q, activation, weight_var, bias_var)
        out.append(c)
    return torch.stack(out)


def chi1(q, activation="relu", weight_var=2.0, bias_var=0.0):
    """chi_1 = weight_var E[phi'(sqrt(q) z)^2], the slope of the correlation map at c = 1.

    Poole et al. (2016), eq. (7); Schoenholz et al. (2017), eq. (5). At the
    length fixed point q*: chi_1 < 1 ordered (correlations -> 1), chi_1 > 1
    chaotic, chi_1 = 1 the edge of chaos. ReLU: weight_var / 2; erf:
    weight_var (4/pi) / sqrt(1 + 4 q). Returns a Python float for scalar q.
    """
    q_t = as_float64(q)
    _, e = _dual(activation, q_t, q_t, q_t)
    out = weight_var * e
    return float(out) if out.ndim == 0 else out


def depth_scale_correlation(q, activation="relu", weight_var=2.0, bias_var=0.0):
    """xi_c = -1 / log(chi_c), chi_c = slope of the correlation map at its fixed point c*=1.

    Schoenholz et al. (2017), eq. (9) for the case c* = 1 (ordered phase,
    chi_1 < 1): correlations approach 1 as exp(-l / xi_c). Diverges at the
    edge of chaos. Returns a Python float.
    """
    x = chi1(q, activation, weight_var, bias_var)
    return math.inf if x >= 1 else -1.0 / math.log(x)


# ---------------------------------------------------------------------------
# Finite width: exact fourth moment of a ReLU network's output
# ---------------------------------------------------------------------------


def relu_output_moments(x, widths, weight_var=2.0):
    """Exact E[f(x)^2] and E[f(x)^4] of a bias-free ReLU network of finite widths.

    Network of :func:`nngp` with bias_var = 0 and hidden widths
    ``widths = [n_1, ..., n_L]``. Given layer l, the next pre-activations
    are i.i.d. N(0, s_l), s_{l+1} = s_l (weight_var / n) sum_i relu(g_i)^2,
    g ~ N(0, 1), a product of independent factors with
    E[factor] = weight_var/2, E[factor^2] = (weight_var/2)^2 (1 + 5/n). So
        E[f^2] = K^0 (weight_var/2)^L,
        E[f^4] = 3 K^0^2 (weight_var/2)^{2L} prod_l (1 + 5/n_l),
    and f is Gaussian only as n -> infinity: the excess kurtosis is
    3 (prod_l (1 + 5/n_l) - 1) ~ 15 L / n (Hanin 2018, Thm. 1; Hanin & Nica
    2020; Roberts, Yaida & Hanin 2022, ch. 4). ``x: [n, d]`` ->
    ``(second [n], fourth [n])``.
    """
    x = as_float64(x)
    k0 = weight_var * (x * x).sum(-1) / x.shape[-1]  # [n]
    gain = (weight_var / 2) ** len(widths)
    ratio = math.prod(1 + 5 / n for n in widths)
    second = k0 * gain
    return second, 3 * second**2 * ratio


# ---------------------------------------------------------------------------
# Networks and the empirical NTK
# ---------------------------------------------------------------------------


class Erf(nn.Module):
    """Elementwise erf activation (the network of Williams 1997)."""

    def forward(self, x):
        return torch.erf(x)


class NTKLinear(nn.Module):
    """Linear layer in NTK parametrization (Jacot et al. 2018, eq. 1).

    z = sqrt(weight_var / fan_in) a W^T + sqrt(bias_var) b, with W ~ N(0, 1)
    ``[out, in]`` and b ~ N(0, 1) ``[out]`` as the trainable parameters.
    """

    def __init__(self, fan_in, fan_out, weight_var=2.0, bias_var=0.0, generator=None, dtype=torch.float64):
        super().__init__()
        self.weight_var, self.bias_var = float(weight_var), float(bias_var)
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in, generator=generator, dtype=dtype))
        self.bias = nn.Parameter(torch.randn(fan_out, generator=generator, dtype=dtype))

    @property
    def weight_scale(self):
        return math.sqrt(self.weight_var / self.weight.shape[1])

    @property
    def bias_scale(self):
        return math.sqrt(self.bias_var)

    def forward(self, a):
        return self.weight_scale * a @ self.weight.T + self.bias_scale * self.bias


def random_mlp(d, width, depth, activation="relu", weight_var=2.0, bias_var=0.0,
               parametrization="ntk", generator=None, dtype=torch.float64):
    """``nn.Sequential`` of ``depth`` hidden layers of ``width`` and a scalar readout.

    ``parametrization="ntk"``: :class:`NTKLinear` layers (the network whose
    infinite-width kernels are :func:`nngp` and :func:`ntk`).
    ``"standard"``: ``nn.Linear`` with W ~ N(0, weight_var / fan_in),
    b ~ N(0, bias_var) (same NNGP, an NTK larger by the fan-ins).
    """
    act = {"relu": nn.ReLU, "erf": Erf, "tanh": nn.Tanh}[activation]
    sizes = [d] + [width] * depth + [1]
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if parametrization == "ntk":
            layers.append(NTKLinear(fan_in, fan_out, weight_var, bias_var, generator, dtype))
        elif parametrization == "standard":
            lin = nn.Linear(fan_in, fan_out, dtype=dtype)
            with torch.no_grad():
                lin.weight.copy_(torch.randn(fan_out, fan_in, generator=generator, dtype=dtype)
                                 * math.sqrt(weight_var / fan_in))
                lin.bias.copy_(torch.randn(fan_out, generator=generator, dtype=dtype) * math.sqrt(bias_var))
            layers.append(lin)
        else:
            raise ValueError(f"unknown parametrization {parametrization!r}")
        if i < depth:
            layers.append(act())
    return nn.Sequential(*layers)


# Parameter-free modules that act elementwise (sample by sample): the
# per-layer formula below is exact for Sequentials of these and linear layers.
_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.LeakyReLU,
                nn.Softplus, nn.Identity, nn.Mish, nn.Hardtanh, nn.SELU, nn.CELU,
                nn.Softsign, nn.Tanhshrink, nn.ReLU6, Erf)


def _is_per_layer_mlp(model):
    if not isinstance(model, nn.Sequential):
        return False
    for m in model:
        if isinstance(m, (nn.Linear, NTKLinear)):
            continue
        if isinstance(m, _ELEMENTWISE) and not any(True for _ in m.parameters()):
            continue
        return False
    return True


def _param_dtype_device(model, x):
    p = next(model.parameters(), None)
    return (p.dtype, p.device) if p is not None else (torch.float64, torch.as_tensor(x).device)


def _empirical_ntk_per_layer(model, x1, x2):
    """Per-layer formula: Theta = sum_l [G_l G_l'^T] * [s_w^2 A_l A_l'^T + s_b^2].

    For z = s_w a W^T + s_b b, df/dW = s_w g a^T and df/db = s_b g with
    g = df/dz, so the layer's contribution to the NTK is the product of the
    Gram matrix of back-propagated gradients and that of the layer inputs.
    """
    same = x1 is x2 or (x1.shape == x2.shape and torch.equal(x1, x2))
    n1 = x1.shape[0]
    x = x1 if same else torch.cat([x1, x2])  # [n, d]: one pass when the NTK is x1 against itself
    with torch.enable_grad():
        a = x
        inputs, outputs, layers = [], [], []
        for m in model:
            if isinstance(m, (nn.Linear, NTKLinear)):
                inputs.append(a.detach())
                a = m(a)
                outputs.append(a)
                layers.append(m)
            else:
                a = m(a)
        f = a.reshape(x.shape[0])  # [n]: one output per input
        # Samples do not interact, so d(sum f)/dz_l row i is df(x_i)/dz_l(x_i).
        grads = torch.autograd.grad(f.sum(), outputs, allow_unused=True)
    right = slice(0, n1) if same else slice(n1, None)
    theta = torch.zeros(n1, x.shape[0] if same else x.shape[0] - n1, dtype=torch.float64, device=x.device)
    for m, a_in, g in zip(layers, inputs, grads):
        if g is None:
            continue
        if isinstance(m, NTKLinear):
            sw2, sb2 = m.weight_scale**2, m.bias_scale**2
        else:
            sw2, sb2 = 1.0, 1.0
        gram_g = (g[:n1] @ g[right].T).to(torch.float64)  # [n1, n2]
        if m.weight.requires_grad:
            theta += gram_g * sw2 * (a_in[:n1] @ a_in[right].T).to(torch.float64)
        if m.bias is not None and m.bias.requires_grad:
            theta += gram_g * sb2
    return theta


def empirical_ntk_autodiff(model, x1, x2):
    """Empirical NTK through per-example Jacobians (``torch.func.vmap(jacrev)``).

    Theta_ij = sum_p df(x1_i)/dp df(x2_j)/dp over the parameters with
    ``requires_grad`` (Jacot et al. 2018, eq. 2; the "Jacobian contraction"
    of Novak et al. 2022). Works for any per-sample module; memory
    O(n * #params). ``x1: [n1, d]``, ``x2: [n2, d]`` -> ``[n1, n2]`` float64.
    """
    from torch.func import functional_call, jacrev, vmap

    dtype, device = _param_dtype_device(model, x1)
    x1 = torch.as_tensor(x1, dtype=dtype, device=device)
    x2 = torch.as_tensor(x2, dtype=dtype, device=device)
    trainable = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    frozen = {k: v.detach() for k, v in model.named_parameters() if not v.requires_grad}
    frozen.update(dict(model.named_buffers()))

    def f(params, x):  # x: [d] -> scalar
        return functional_call(model, {**params, **frozen}, (x[None],)).reshape(())

    jac = vmap(jacrev(f), in_dims=(None, 0))
    j1, j2 = jac(trainable, x1), jac(trainable, x2)  # dicts of [n, *param.shape]
    theta = torch.zeros(x1.shape[0], x2.shape[0], dtype=torch.float64, device=device)
    for k in trainable:
        theta += (j1[k].reshape(x1.shape[0], -1) @ j2[k].reshape(x2.shape[0], -1).T).to(torch.float64)
    return theta


def empirical_ntk(model, x1, x2):
    """Empirical NTK Theta(x1_i, x2_j) = sum_p df(x1_i)/dp * df(x2_j)/dp.

    Jacot et al. (2018), eq. (2), summed over every parameter with
    ``requires_grad``; ``model`` maps ``[n, d]`` to ``[n]`` or ``[n, 1]``.
    For an ``nn.Sequential`` of ``nn.Linear`` / :class:`NTKLinear` and
    parameter-free elementwise activations it uses the per-layer formula
    (one forward and one backward pass, no per-parameter Jacobians); for
    any other module it falls back to :func:`empirical_ntk_autodiff`.
    Computed in the model's dtype, returned as ``[n1, n2]`` float64.
    """
    if not _is_per_layer_mlp(model):
        return empirical_ntk_autodiff(model, x1, x2)
    dtype, device = _param_dtype_device(model, x1)
    x1 = torch.as_tensor(x1, dtype=dtype, device=device)
    x2 = torch.as_tensor(x2, dtype=dtype, device=device)
    return _empirical_ntk_per_layer(model, x1, x2)


# ---------------------------------------------------------------------------
# Learning rate from the first step of gradient descent
# ---------------------------------------------------------------------------


def ntk_gd_step(theta_train, f_train, y_train, lr):
    """Outputs after one linearized GD step on L = (1/2n) sum_i (f_i - y_i)^2.

    Lee et al. (2019), eq. (8) discretized: f <- f - (lr/n) Theta (f - y).
    ``theta_train: [n, n]``, ``f_train, y_train: [n]`` -> ``[n]``.
    """
    theta = as_float64(theta_train)
    f = as_float64(f_train, device=theta.device)
    y = as_float64(y_train, device=theta.device)
    return f - lr / f.shape[0] * theta @ (f - y)


def ntk_critical_learning_rate(theta_train):
    """Largest stable learning rate 2n / lambda_max(Theta) of linearized GD.

    For L = (1/2n) sum (f - y)^2 the residual evolves as
    r <- (I - (lr/n) Theta) r, which diverges along the top eigenvector
    iff lr > 2n / lambda_max (cf. Lee et al. 2019, sec. 2.4, and
    Lewkowycz et al. 2020, who write 2 / lambda for a loss normalized by
    the NTK's 1/n). ``theta_train: [n, n]`` -> Python float.
    """
    theta = as_float64(theta_train)
    lam_max = float(torch.linalg.eigvalsh(0.5 * (theta + theta.T))[-1])
    return 2.0 * theta.shape[0] / lam_max
