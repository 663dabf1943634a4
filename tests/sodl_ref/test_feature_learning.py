"""Tests of sodl_ref.feature_learning against torch (float64), autograd,
the scaling exponents of Yang & Hu 2021 and Chizat et al. 2019, and exact
invariance identities."""

import math

import pytest
import torch
import torch.nn.functional as F

from sodl_ref import feature_learning as fl


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _unit_rows(n, d, g):
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    return X / X.norm(dim=1, keepdim=True)


# --------------------------------------------------------------- batch norm


@pytest.mark.parametrize("eps", [1e-5, 0.3])
def test_batch_norm_matches_torch_functional_batch_norm_training_float64(eps):
    g = _gen(0)
    x = 3.0 * torch.randn(17, 5, generator=g, dtype=torch.float64) + 2.0
    gamma = torch.randn(5, generator=g, dtype=torch.float64)
    beta = torch.randn(5, generator=g, dtype=torch.float64)
    ours = fl.batch_norm(x, gamma, beta, eps=eps)
    ref = F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


def test_batch_norm_accepts_numpy_and_matches_torch_module():
    g = _gen(1)
    x = torch.randn(9, 4, generator=g, dtype=torch.float64)
    bn = torch.nn.BatchNorm1d(4, dtype=torch.float64).train()
    with torch.no_grad():
        bn.weight.copy_(torch.randn(4, generator=g, dtype=torch.float64))
        bn.bias.copy_(torch.randn(4, generator=g, dtype=torch.float64))
        ref = bn(x)
    ours = fl.batch_norm(x.numpy(), bn.weight.detach().numpy(), bn.bias.detach().numpy())
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


def test_batch_norm_backward_matches_autograd():
    g = _gen(2)
    x = torch.randn(13, 6, generator=g, dtype=torch.float64, requires_grad=True)
    gamma = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(13, 6, generator=g, dtype=torch.float64)
    y = F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-3)
    gx, gg, gb = torch.autograd.grad(y, (x, gamma, beta), dy)
    dx, dgamma, dbeta = fl.batch_norm_backward(x.detach(), gamma.detach(), dy, eps=1e-3)
    torch.testing.assert_close(dx, gx, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dgamma, gg, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dbeta, gb, rtol=1e-10, atol=1e-12)


def test_batch_norm_is_invariant_to_positive_scale_and_shift_of_inputs():
    """BN(a x + b) = BN(x) exactly when eps = 0 (Ioffe & Szegedy 2015)."""
    g = _gen(3)
    x = torch.randn(11, 3, generator=g, dtype=torch.float64)
    gamma, beta = torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    y = fl.batch_norm(x, gamma, beta, eps=0.0)
    a = torch.tensor([0.01, 7.0, 300.0], dtype=torch.float64)
    torch.testing.assert_close(fl.batch_norm(a * x - 4.0, gamma, beta, eps=0.0), y, rtol=1e-11, atol=1e-11)
    # the normalized output has zero mean and unit (biased) variance per feature
    torch.testing.assert_close(y.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-13, rtol=0)
    torch.testing.assert_close(y.var(0, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-12, rtol=0)


def test_bn_linear_grad_matches_autograd_and_is_orthogonal_to_weights_arora_2019():
    """Arora, Li & Lyu 2019, Lemma 2.4: <w, grad L(w)> = 0 and grad L(c w) = grad L(w) / c."""
    g = _gen(4)
    W = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    X = torch.randn(20, 5, generator=g, dtype=torch.float64)
    T = torch.randn(20, 3, generator=g, dtype=torch.float64)
    Z = X @ W.T  # torch refuses eps = 0 in training mode: standardize by hand
    Y = (Z - Z.mean(0)) / Z.std(0, unbiased=False)
    loss = 0.5 * ((Y - T) ** 2).sum() / 20
    (gref,) = torch.autograd.grad(loss, W)
    ours_loss, grad = fl.bn_linear_loss_grad(W.detach(), X, T)
    assert isinstance(ours_loss, float)
    assert abs(ours_loss - loss.item()) < 1e-12
    torch.testing.assert_close(grad, gref, rtol=1e-10, atol=1e-12)
    # orthogonality row by row, and the 1/c scaling
    assert (W.detach() * grad).sum(1).abs().max() < 1e-12
    c = torch.tensor([[0.1], [4.0], [25.0]], dtype=torch.float64)
    loss_c, grad_c = fl.bn_linear_loss_grad(c * W.detach(), X, T)
    assert abs(loss_c - ours_loss) < 1e-12
    torch.testing.assert_close(grad_c, grad / c, rtol=1e-9, atol=1e-13)


# ---------------------------------------------------------- parametrizations


def test_abc_table_reproduces_yang_hu_2021_table_3_and_readout_scales():
    """Yang & Hu 2021, Table 3: readout a+b = 1/2 for SP and NTK, 1 for muP;
    input a+b = 0 for all three (O(1) preactivations for O(1) inputs)."""
    for name, readout in [("sp", 0.5), ("ntk", 0.5), ("mup", 1.0)]:
        e = fl.abc_exponents(name, 3)
        assert len(e["a"]) == len(e["b"]) == 4 and e["c"] == 0.0
        assert e["a"][0] + e["b"][0] == 0.0
        assert e["a"][1] + e["b"][1] == 0.5 and e["a"][2] + e["b"][2] == 0.5
        assert e["a"][-1] + e["b"][-1] == readout
    assert fl.abc_exponents("mup", 1) == {"a": [-0.5, 0.5], "b": [0.5, 0.5], "c": 0.0}


def test_effective_mup_scales_match_tensor_programs_v_table_3_sgd():
    """Tensor Programs V, Table 3 (SGD): input lr eta n, hidden eta, readout
    eta / n; init std 1 (input, O(1) fan-in), n^-1/2 (hidden), 1/n (readout)."""
    n, eta = 256, 0.3
    e = fl.abc_exponents("mup", 2)
    std, lr = fl.effective_init_std_and_lr(e["a"], e["b"], e["c"], n, eta)
    torch.testing.assert_close(std, torch.tensor([1.0, n ** -0.5, 1.0 / n], dtype=torch.float64))
    torch.testing.assert_close(lr, torch.tensor([eta * n, eta, eta / n], dtype=torch.float64))


def test_abc_symmetry_leaves_sgd_training_unchanged_yang_hu_2021():
    """(a, b, c) -> (a + t, b - t, c - 2t) gives the same function after SGD
    (Yang & Hu 2021, Section 3): checked by training both in float64."""
    g = _gen(5)
    n, d, t = 64, 4, 0.25
    X = _unit_rows(8, d, g)
    y = torch.randn(8, generator=g, dtype=torch.float64)
    e = fl.abc_exponents("mup", 2)
    ws = fl.abc_init(d, n, e["b"], generator=g)
    r1 = fl.coordinate_check(ws, X, y, e["a"], e["c"], 0.2, 3)
    a2 = [v + t for v in e["a"]]
    ws2 = [w * n ** t for w in ws]  # b - t
    r2 = fl.coordinate_check(ws2, X, y, a2, e["c"] - 2 * t, 0.2, 3)
    for k in r1:
        torch.testing.assert_close(r1[k], r2[k], rtol=1e-9, atol=1e-14)
    s1, l1 = fl.effective_init_std_and_lr(e["a"], e["b"], 0.0, n, 0.2)
    s2, l2 = fl.effective_init_std_and_lr(a2, [v - t for v in e["b"]], -2 * t, n, 0.2)
    torch.testing.assert_close(s1, s2)
    torch.testing.assert_close(l1, l2)


def test_coordinate_check_first_step_matches_manual_sgd_with_autograd():
    g = _gen(6)
    n, d = 32, 3
    X = _unit_rows(5, d, g)
    y = torch.randn(5, generator=g, dtype=torch.float64)
    e = fl.abc_exponents("ntk", 2)
    ws = fl.abc_init(d, n, e["b"], generator=g)
    before = [w.clone() for w in ws]
    out = fl.coordinate_check(ws, X, y, e["a"], e["c"], 0.7, 1)
    for w, b in zip(ws, before):  # inputs not modified
        assert torch.equal(w, b)
    # an independent implementation with torch.nn.Linear modules and torch.optim.SGD
    lins = [torch.nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=torch.float64) for w in ws]
    for lin, w in zip(lins, ws):
        lin.weight.data.copy_(w)
    mult = [n ** -a for a in e["a"]]

    def net(x):
        for lin, m in zip(lins[:-1], mult[:-1]):
            x = torch.relu(m * lin(x))
        return x, (mult[-1] * lins[-1](x))[:, 0]

    opt = torch.optim.SGD([lin.weight for lin in lins], lr=0.7)
    with torch.no_grad():
        h0, f0 = net(X)
    h, f = net(X)
    (0.5 * ((f - y) ** 2).mean()).backward()
    opt.step()
    with torch.no_grad():
        h1, f1 = net(X)
    assert abs(out["feature_change"][0].item() - (h1 - h0).pow(2).mean().sqrt().item()) < 1e-12
    assert abs(out["output_change"][0].item() - (f1 - f0).pow(2).mean().sqrt().item()) < 1e-12


def _slope(parametrization, widths, n_seeds=3, steps=3, lr=0.1, seed=0, key="feature_change"):
    g = _gen(seed)
    X = _unit_rows(64, 8, g)
    y = torch.randn(64, generator=g, dtype=torch.float64)
    e = fl.abc_exponents(parametrization, 2)
    vals = []
    for n in widths:
        acc = 0.0
        for _ in range(n_seeds):
            ws = fl.abc_init(8, n, e["b"], generator=g)
            acc += fl.coordinate_check(ws, X, y, e["a"], e["c"], lr, steps)[key][-1].item()
        vals.append(acc / n_seeds)
    return fl.loglog_slope(widths, vals)


def test_coordinate_check_width_slopes_sp_grows_ntk_decays_mup_flat():
    """Yang & Hu 2021 / Tensor Programs V, Section 9. The change of the last
    hidden layer after one SGD step scales as n^{+1/2} (SP, O(1) lr),
    n^{-1/2} (NTK), n^0 (muP). Log-log slope over widths 64..1024, 3 seeds:
    across 15 repetitions the slope had sd 0.09 (SP, 1 step), 0.09 (NTK),
    0.03 (muP); tolerance 0.25 is about 3 sd."""
    widths = [64, 128, 256, 512, 1024]
    assert abs(_slope("mup", widths, steps=3)) < 0.15
    assert abs(_slope("ntk", widths, steps=1) + 0.5) < 0.25
    assert abs(_slope("sp", widths, steps=1) - 0.5) < 0.25
    # after three steps SP is unstable: feature change grows faster than sqrt(n)
    assert _slope("sp", widths, steps=3) > 0.75


def test_loglog_slope_recovers_a_planted_power_law():
    xs = [1.0, 2.0, 5.0, 10.0]
    assert abs(fl.loglog_slope(xs, [3.0 * x ** -1.7 for x in xs]) + 1.7) < 1e-12


# --------------------------------------------------------------- lazy training


def _lazy_problem(g, m, n=20, d=5):
    X = torch.randn(n, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    W = torch.randn(m, d, generator=g, dtype=torch.float64)
    v = torch.randn(m, generator=g, dtype=torch.float64)
    return W, v, X, y


def test_lazy_training_relative_change_scales_as_one_over_alpha_chizat_2019():
    """Chizat, Oyallon & Bach 2019, Theorem 2.3: with the model alpha (h - h0)
    and loss / alpha^2, ||w_T - w_0|| = O(1/alpha). Log-log slope over alpha
    in 1..100 measured -0.99 +- 0.005 on 5 seeds; tolerance 0.05."""
    W, v, X, y = _lazy_problem(_gen(7), 200)
    alphas = [1.0, 3.0, 10.0, 30.0, 100.0]
    rc = [fl.lazy_training_relative_change(W, v, X, y, a, 1.0, 100) for a in alphas]
    assert abs(fl.loglog_slope(alphas, rc) + 1.0) < 0.05


def test_lazy_training_relative_change_decays_as_inverse_sqrt_width_ntk_scaling():
    """NTK scaling (h = v.relu(Wx)/sqrt(m)): relative change O(m^{-1/2}).
    Slope over m = 100..1600 measured -0.48 +- 0.02 on 5 seeds; tolerance 0.1."""
    widths = [100, 400, 1600]
    rc = []
    for m in widths:
        W, v, X, y = _lazy_problem(_gen(8), m)  # same data (drawn first), fresh weights per width
        rc.append(fl.lazy_training_relative_change(W, v, X, y, 1.0, 1.0, 100))
    assert abs(fl.loglog_slope(widths, rc) + 0.5) < 0.1


def test_lazy_training_gradient_matches_autograd_one_step():
    W, v, X, y = _lazy_problem(_gen(9), 30)
    alpha, lr = 2.5, 0.3
    Wr = W.clone().requires_grad_(True)
    h = lambda w: torch.relu(X @ w.T) @ v / math.sqrt(30)
    loss = 0.5 * ((alpha * (h(Wr) - h(W)) - y) ** 2).mean() / alpha ** 2
    (gW,) = torch.autograd.grad(loss, Wr)
    expected = (lr * gW).norm() / W.norm()
    assert abs(fl.lazy_training_relative_change(W, v, X, y, alpha, lr, 1) - expected.item()) < 1e-13


# ------------------------------------------------------------------ mean field


def test_mean_field_step_is_n_times_gradient_of_risk_autograd():
    """Mei, Montanari & Nguyen 2018, eq. (6): each particle moves by lr * N * grad R."""
    g = _gen(10)
    N, d = 40, 3
    X = torch.randn(15, d, generator=g, dtype=torch.float64)
    y = torch.randn(15, generator=g, dtype=torch.float64)
    th = torch.randn(N, 1 + d, generator=g, dtype=torch.float64).requires_grad_(True)
    f = torch.tanh(X @ th[:, 1:].T) @ th[:, 0] / N
    risk = 0.5 * ((f - y) ** 2).mean()
    (gr,) = torch.autograd.grad(risk, th)
    th1, risks = fl.mean_field_two_layer(th.detach(), X, y, 0.2, 1)
    torch.testing.assert_close(th1, th.detach() - 0.2 * N * gr, rtol=1e-12, atol=1e-13)
    assert abs(risks[0].item() - risk.item()) < 1e-14


def test_mean_field_risk_curve_concentrates_as_particles_grow():
    """Propagation of chaos (Mei et al. 2018, Theorem 3): the risk after a
    fixed time fluctuates across initializations by O(N^{-1/2}). Slope of
    the across-seed sd vs N over 50..3200 (8 seeds): expect -0.5, measured
    -0.65 at t = 200 steps; tolerance 0.3 (the sd of an 8-sample sd is ~25%)."""
    g = _gen(11)
    X = torch.randn(50, 3, generator=g, dtype=torch.float64)
    y = torch.tanh(X[:, 0]) - 0.5 * torch.tanh(X[:, 1])
    Ns = [50, 200, 800, 3200]
    sds = []
    for N in Ns:
        fin = [fl.mean_field_two_layer(torch.randn(N, 4, generator=g, dtype=torch.float64), X, y, 0.5, 20)[1][-1]
               for _ in range(8)]
        sds.append(torch.stack(fin).std().item())
    assert abs(fl.loglog_slope(Ns, sds) + 0.5) < 0.3
