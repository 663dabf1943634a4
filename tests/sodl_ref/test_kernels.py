"""Tests of sodl_ref.kernels against independent truths.

Gaussian Monte Carlo and scipy quadrature for the closed forms, random
networks (exact expectations at depth 1, wide networks deeper), a naive
per-parameter autograd loop for the empirical NTK, and known asymptotics.
"""
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch import nn

from sodl_ref import kernels as K


def _inputs(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64)


# --- closed forms of the Gaussian expectations --------------------------------


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_dual_closed_forms_match_gaussian_monte_carlo(activation):
    """Cho & Saul (2009) arc-cosine kernels and Williams (1997) erf kernel vs
    4e6 correlated Gaussian pairs; sigma = sample std / sqrt(n) (about 1e-3),
    tolerance 5 sigma."""
    rng = np.random.default_rng(3)
    cov = np.array([[1.3, -0.6], [-0.6, 0.8]])
    uv = torch.as_tensor(rng.multivariate_normal([0, 0], cov, size=4_000_000))
    phi, dphi = K._activation_fns(activation)
    e_phi, e_dphi = K._dual(activation, cov[0, 0], cov[1, 1], cov[0, 1])
    for exact, samples in [(e_phi, phi(uv[:, 0]) * phi(uv[:, 1])), (e_dphi, dphi(uv[:, 0]) * dphi(uv[:, 1]))]:
        sigma = float(samples.std()) / math.sqrt(len(samples))
        assert abs(float(samples.mean()) - float(exact)) < 5 * sigma


def test_relu_arccos_kernel_matches_scipy_dblquad_cho_saul_2009():
    """E[relu(u) relu(v)] by adaptive 2-D quadrature of the Gaussian density."""
    cov = np.array([[2.0, 0.9], [0.9, 0.7]])
    pdf = stats.multivariate_normal([0, 0], cov).pdf
    val, _ = integrate.dblquad(lambda v, u: u * v * pdf([u, v]), 0, 12, 0, 12, epsabs=1e-11)
    e_phi, e_dphi = K.relu_dual(cov[0, 0], cov[1, 1], cov[0, 1])
    assert float(e_phi) == pytest.approx(val, rel=1e-7)
    # the degree-0 arc-cosine kernel is the orthant probability P(u > 0, v > 0)
    orth = 0.25 + math.asin(cov[0, 1] / math.sqrt(cov[0, 0] * cov[1, 1])) / (2 * math.pi)
    assert float(e_dphi) == pytest.approx(orth, rel=1e-13)


@pytest.mark.parametrize("k12", [-0.9, 0.0, 0.5, 1.1])
def test_erf_kernel_matches_gauss_hermite_williams_1997(k12):
    e_phi, e_dphi = K.erf_dual(1.2, 1.4, k12)
    g_phi, g_dphi = K.gauss_hermite_dual("erf", 1.2, 1.4, k12, n_nodes=120)
    assert float(e_phi) == pytest.approx(float(g_phi), abs=1e-12)
    assert float(e_dphi) == pytest.approx(float(g_dphi), abs=1e-10)


# --- NNGP -----------------------------------------------------------------------


def test_nngp_shapes_dtype_symmetry_and_k0_convention():
    x1, x2 = _inputs(4, 3, 0), _inputs(6, 3, 1)
    k = K.nngp(x1.numpy(), x2, 3, "erf", 1.7, 0.2)
    assert k.shape == (4, 6) and k.dtype == torch.float64
    assert torch.allclose(K.nngp(x1, x1, 2), K.nngp(x1, x1, 2).T, atol=1e-14)
    assert torch.allclose(K.nngp(x1, x2, 0, weight_var=1.7, bias_var=0.2), 0.2 + 1.7 * x1 @ x2.T / 3, rtol=1e-14)
    assert torch.allclose(K.ntk(x1, x2, 0, weight_var=1.7, bias_var=0.2), 0.2 + 1.7 * x1 @ x2.T / 3, rtol=1e-14)


def test_relu_in_place_recursion_equals_the_layer_formula_with_relu_dual():
    """The in-place ReLU recursion against the recursion written out with
    :func:`relu_dual` (Jacot et al. 2018; Arora et al. 2019, eq. 7), with a
    bias and x1 != x2; the inputs are left untouched."""
    x1, x2 = _inputs(5, 3, 2), _inputs(7, 3, 3)
    x1_copy, x2_copy = x1.clone(), x2.clone()
    wv, bv, depth = 1.5, 0.3, 3
    k12, k11, k22 = bv + wv * x1 @ x2.T / 3, bv + wv * (x1**2).sum(1) / 3, bv + wv * (x2**2).sum(1) / 3
    theta = k12
    for _ in range(depth):
        e_phi, e_dphi = K.relu_dual(k11[:, None], k22[None, :], k12)
        k12 = bv + wv * e_phi
        theta = k12 + wv * e_dphi * theta
        k11 = bv + wv * K.relu_dual(k11, k11, k11)[0]
        k22 = bv + wv * K.relu_dual(k22, k22, k22)[0]
    assert torch.allclose(K.nngp(x1, x2, depth, "relu", wv, bv), k12, rtol=1e-12, atol=0)
    assert torch.allclose(K.ntk(x1, x2, depth, "relu", wv, bv), theta, rtol=1e-12, atol=0)
    assert torch.equal(x1, x1_copy) and torch.equal(x2, x2_copy)


def test_nngp_relu_he_init_preserves_the_diagonal_lee_2018():
    """weight_var = 2, bias_var = 0 (He init): K^l(x, x) = K^0(x, x) at every
    depth (Lee et al. 2018, eq. 11 at theta = 0: E[relu(u)^2] = K/2)."""
    x = _inputs(5, 4, 2)
    for depth in [1, 4, 20]:
        assert torch.allclose(torch.diag(K.nngp(x, x, depth)), 2 * (x * x).sum(1) / 4, rtol=1e-13)


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_nngp_depth1_equals_output_covariance_of_random_networks(activation):
    """At depth 1 the hidden pre-activations are exactly Gaussian, so the
    covariance of f over random networks equals K^1 at any width. 4000
    networks of width 256 (1e6 hidden units); sigma = std of the per-network
    estimate / sqrt(4000); tolerance 5 sigma."""
    x = _inputs(3, 5, 4)
    g = torch.Generator().manual_seed(5)
    wv, bv, n_nets, width = 1.6, 0.3, 4000, 256
    W0 = torch.randn(n_nets, width, 5, generator=g, dtype=torch.float64)
    b0 = torch.randn(n_nets, width, 1, generator=g, dtype=torch.float64)
    z = math.sqrt(wv / 5) * W0 @ x.T + math.sqrt(bv) * b0  # [nets, width, 3]
    a = K._activation_fns(activation)[0](z)
    # E_readout[f f'] given the hidden layer, exactly: bv + wv/width * a^T a
    est = bv + wv / width * a.transpose(1, 2) @ a  # [nets, 3, 3]
    sigma = est.std(0) / math.sqrt(n_nets)
    assert torch.all((est.mean(0) - K.nngp(x, x, 1, activation, wv, bv)).abs() < 5 * sigma)


def test_nngp_deep_matches_wide_random_network_covariance():
    """depth 3 ReLU nets of width 256, 300 networks: the empirical covariance
    matches K^3 within 5 Monte Carlo sigma plus a 3% allowance for the
    O(depth / width) finite-width bias."""
    x = _inputs(3, 4, 6)
    g = torch.Generator().manual_seed(7)
    wv, bv, width, n_nets = 2.0, 0.1, 256, 300
    outs = []
    for _ in range(n_nets // 100):
        h = x.expand(100, 3, 4)
        fan_in = 4
        for _layer in range(3):
            W = torch.randn(100, fan_in, width, generator=g, dtype=torch.float64)
            b = torch.randn(100, 1, width, generator=g, dtype=torch.float64)
            h = torch.relu(math.sqrt(wv / fan_in) * h @ W + math.sqrt(bv) * b)
            fan_in = width
        # exact readout average, as in the depth-1 test
        outs.append(bv + wv / width * h @ h.transpose(1, 2))
    est = torch.cat(outs)  # [300, 3, 3]
    exact = K.nngp(x, x, 3, "relu", wv, bv)
    sigma = est.std(0) / math.sqrt(len(est))
    assert torch.all((est.mean(0) - exact).abs() < 5 * sigma + 0.03 * exact.abs())


def test_relu_correlation_approaches_one_as_9pi2_over_2l2():
    """Critical ReLU (weight_var = 2): 1 - c^l ~ 9 pi^2 / (2 l^2) at large
    depth (Roberts, Yaida & Hanin 2022, sec. 5.3), within 1% at l = 5000."""
    c = K.correlation_trajectory(torch.tensor([0.0, 0.6]), 1.0, 5000, "relu", 2.0, 0.0)
    assert torch.allclose(5000**2 * (1 - c[-1]), torch.full((2,), 9 * math.pi**2 / 2, dtype=torch.float64), rtol=0.01)


# --- signal propagation -------------------------------------------------------


@pytest.mark.parametrize("activation,wv,bv", [("erf", 1.5, 0.1), ("erf", 0.5, 0.05), ("relu", 2.0, 0.0), ("tanh", 1.8, 0.05)])
def test_chi1_is_slope_of_correlation_map_at_one_poole_2016(activation, wv, bv):
    """Poole et al. (2016), eq. (7): chi_1 = dc'/dc at c = 1 and q = q* (one-sided
    finite difference, step 1e-6, tolerance 1e-4 relative; ReLU's map has a
    (1 - c)^{3/2} correction, so its slope converges as sqrt(h))."""
    q = K.length_fixed_point(activation, wv, bv) if activation != "relu" else 1.0  # relu: every q is fixed
    h = 1e-6
    slope = (1 - float(K.correlation_map(1 - h, q, activation, wv, bv))) / h
    assert slope == pytest.approx(K.chi1(q, activation, wv, bv), rel=1e-4 if activation != "relu" else 2e-3)


def test_erf_edge_of_chaos_at_zero_bias():
    """bias_var = 0: q* = 0 is stable iff chi_1(0) = 4 weight_var / pi < 1;
    the edge of chaos is weight_var = pi / 4 (Schoenholz et al. 2017's phase
    diagram at sigma_b = 0, for erf)."""
    assert K.chi1(0.0, "erf", math.pi / 4, 0.0) == pytest.approx(1.0, rel=1e-14)
    assert K.length_fixed_point("erf", 0.7, 0.0, max_iter=2000) < 1e-3
    q = K.length_fixed_point("erf", 1.2, 0.0)
    assert q > 0.1 and float(K.length_map(q, "erf", 1.2, 0.0)) == pytest.approx(q, rel=1e-10)


def test_correlation_trajectory_equals_nngp_of_two_equal_norm_inputs():
    """Two inputs with |x|^2 = d and cosine 0.6: K^0 = 0.2 + 1.4 = 1.6 on the
    diagonal, 0.2 + 1.4 * 0.6 off it; the trajectory's c^l = K^l_12 / K^l_11."""
    x = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]], dtype=torch.float64) * math.sqrt(3)
    traj = K.correlation_trajectory((0.2 + 1.4 * 0.6) / 1.6, 1.6, 5, "erf", 1.4, 0.2)
    for depth in [0, 1, 5]:
        k = K.nngp(x, x, depth, "erf", 1.4, 0.2)
        assert float(traj[depth]) == pytest.approx(float(k[0, 1] / k[0, 0]), rel=1e-12)


# --- finite width ---------------------------------------------------------------


def test_relu_output_fourth_moment_matches_monte_carlo_at_width_4():
    """Finite-width non-Gaussianity (Hanin 2018): E[f^4] = 3 E[f^2]^2
    prod(1 + 5/n_l). widths (4, 6, 3): ratio 2.25 * 1.833 * 2.667 = 11.
    400000 random networks; sigma = std / sqrt(n), tolerance 5 sigma."""
    g = torch.Generator().manual_seed(11)
    x = torch.tensor([[0.3, -1.2, 0.8]], dtype=torch.float64)
    widths, wv, n = [4, 6, 3], 1.7, 400_000
    h, fan_in = x.expand(n, 1, 3), 3
    for w in widths + [1]:
        W = torch.randn(n, fan_in, w, generator=g, dtype=torch.float64)
        h = math.sqrt(wv / fan_in) * h @ W
        if w != 1:
            h = torch.relu(h)
        fan_in = w
    f = h.reshape(n)
    second, fourth = K.relu_output_moments(x, widths, wv)
    for exact, samples in [(second, f**2), (fourth, f**4)]:
        sigma = float(samples.std()) / math.sqrt(n)
        assert abs(float(samples.mean()) - float(exact[0])) < 5 * sigma
    assert float(fourth[0] / (3 * second[0] ** 2)) == pytest.approx(11.0, rel=1e-14)


# --- empirical NTK ----------------------------------------------------------------


def _naive_ntk(model, x1, x2):
    """One autograd.grad call per input, flatten, contract: J1 J2^T."""
    params = [p for p in model.parameters() if p.requires_grad]

    def jac(x):
        rows = []
        for xi in x:
            out = model(xi[None]).reshape(())
            rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(out, params)]))
        return torch.stack(rows)

    return jac(x1) @ jac(x2).T


class _ResidualNet(nn.Module):
    """Not a Sequential: forces the torch.func fallback."""

    def __init__(self, d, width):
        super().__init__()
        self.inp, self.hidden, self.out = nn.Linear(d, width), nn.Linear(width, width), nn.Linear(width, 1)

    def forward(self, x):
        h = torch.tanh(self.inp(x))
        h = h + torch.relu(self.hidden(h))
        return self.out(h)[:, 0]


@pytest.mark.parametrize("kind", ["ntk_relu", "ntk_erf", "standard_tanh", "frozen", "gelu_nobias", "residual"])
def test_empirical_ntk_per_layer_and_torch_func_match_naive_autograd_loop(kind):
    torch.manual_seed(0)  # nn.Linear's own init; the values do not matter
    g = torch.Generator().manual_seed(1)
    d = 4
    if kind == "ntk_relu":
        model = K.random_mlp(d, 16, 3, "relu", 1.8, 0.2, generator=g)
    elif kind == "ntk_erf":
        model = K.random_mlp(d, 16, 2, "erf", 1.3, 0.5, generator=g)
    elif kind == "standard_tanh":
        model = K.random_mlp(d, 16, 2, "tanh", 1.0, 0.1, parametrization="standard", generator=g)
    elif kind == "frozen":
        model = K.random_mlp(d, 16, 2, "relu", 2.0, 0.1, parametrization="standard", generator=g)
        model[0].weight.requires_grad_(False)
        model[2].bias.requires_grad_(False)
    elif kind == "gelu_nobias":
        model = nn.Sequential(nn.Linear(d, 12, bias=False), nn.GELU(), nn.Linear(12, 1)).double()
    else:
        model = _ResidualNet(d, 10).double()
    x1, x2 = _inputs(5, d, 2), _inputs(3, d, 3)
    naive = _naive_ntk(model, x1, x2)
    fast = K.empirical_ntk(model, x1, x2)
    assert fast.shape == (5, 3) and fast.dtype == torch.float64
    assert torch.allclose(fast, naive, rtol=1e-11, atol=1e-12)
    assert torch.allclose(K.empirical_ntk_autodiff(model, x1, x2), naive, rtol=1e-11, atol=1e-12)
    if kind != "residual":
        assert K._is_per_layer_mlp(model)  # the fast path really ran


def test_empirical_ntk_of_float32_model_returns_float64():
    g = torch.Generator().manual_seed(0)
    model = K.random_mlp(3, 8, 1, generator=g, dtype=torch.float32)
    x = _inputs(4, 3, 0)
    theta = K.empirical_ntk(model, x, x)
    assert theta.dtype == torch.float64
    assert torch.allclose(theta, _naive_ntk(model.double(), x, x), rtol=1e-5)


def test_empirical_ntk_expectation_equals_analytic_ntk_at_depth_one():
    """Depth 1: E_init[empirical NTK] = Theta^1 exactly at any width (the
    readout term averages to K^1, the hidden term to weight_var E[phi'phi'] K^0).
    400 networks of width 64; sigma = std / sqrt(400), tolerance 5 sigma."""
    x = _inputs(3, 4, 8)
    g = torch.Generator().manual_seed(9)
    thetas = torch.stack([K.empirical_ntk(K.random_mlp(4, 64, 1, "erf", 1.5, 0.3, generator=g), x, x)
                          for _ in range(400)])
    sigma = thetas.std(0) / math.sqrt(400)
    assert torch.all((thetas.mean(0) - K.ntk(x, x, 1, "erf", 1.5, 0.3)).abs() < 5 * sigma)


def test_empirical_ntk_converges_to_analytic_ntk_jacot_2018():
    """Jacot et al. (2018), Thm. 1: at width 4096 (depth 2, ReLU, NTK
    parametrization) the empirical NTK is within 10% (Frobenius, relative)
    of the analytic one, and the error shrinks with width like
    width^{-1/2}: averaged over 3 seeds, error(4096) < error(256) / 2."""
    x = _inputs(4, 3, 10)
    exact = K.ntk(x, x, 2, "relu", 2.0, 0.1)
    g = torch.Generator().manual_seed(12)
    err = {}
    for width in [256, 4096]:
        errs = [float((K.empirical_ntk(K.random_mlp(3, width, 2, "relu", 2.0, 0.1, generator=g), x, x) - exact).norm()
                      / exact.norm()) for _ in range(3)]
        err[width] = sum(errs) / 3
    assert err[4096] < 0.1
    assert err[4096] < err[256] / 2


# --- learning rate from the first step -----------------------------------------


def test_ntk_gd_step_predicts_a_real_gradient_step_of_a_wide_network():
    """One SGD step (lr = 0.5, loss (1/2n) sum (f - y)^2) of a width-2048 NTK-
    parametrized net moves the outputs by -(lr/n) Theta (f - y) up to
    second-order terms O(lr^2 / sqrt(width)): relative error < 2%."""
    g = torch.Generator().manual_seed(13)
    x, y = _inputs(6, 3, 14), torch.randn(6, generator=g, dtype=torch.float64)
    model = K.random_mlp(3, 2048, 2, "relu", 2.0, 0.1, generator=g)
    f0 = model(x).reshape(-1).detach()
    theta = K.empirical_ntk(model, x, x)
    loss = 0.5 * ((model(x).reshape(-1) - y) ** 2).mean()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss.backward()
    opt.step()
    f1 = model(x).reshape(-1).detach()
    pred = K.ntk_gd_step(theta, f0, y, 0.5)
    assert float((f1 - pred).norm() / (f1 - f0).norm()) < 0.02


def test_ntk_critical_learning_rate_separates_convergence_from_divergence():
    theta = K.ntk(_inputs(8, 3, 15), _inputs(8, 3, 15), 2, "erf", 1.5, 0.1)
    lr_c = K.ntk_critical_learning_rate(theta)
    y = torch.zeros(8, dtype=torch.float64)
    for factor, converges in [(0.98, True), (1.02, False)]:
        f = torch.ones(8, dtype=torch.float64)
        for _ in range(3000):
            f = K.ntk_gd_step(theta, f, y, factor * lr_c)
        assert (float(f.norm()) < 1e-3) == converges


def test_empirical_ntk_of_a_set_against_itself_matches_torch_func_float64():
    """x1 = x2 takes a single forward/backward pass; it must equal the
    Jacobian contraction by torch.func (and be symmetric)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)).double()
    x = torch.randn(7, 5, dtype=torch.float64)
    fast = K.empirical_ntk(model, x, x)
    ref = K.empirical_ntk_autodiff(model, x, x)
    assert fast.shape == (7, 7)
    assert torch.allclose(fast, ref, rtol=1e-10, atol=1e-12)
    assert torch.allclose(fast, fast.T, rtol=1e-12, atol=1e-12)
