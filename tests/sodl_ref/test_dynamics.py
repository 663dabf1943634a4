"""Tests of sodl_ref.dynamics against torch.nn, scipy and closed forms."""
import math

import numpy as np
import scipy.linalg
import scipy.signal
import torch

from sodl_ref import dynamics as dyn


def _randn(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_rnn_forward_matches_torch_nn_rnn_float64():
    """Elman RNN unroll equals torch.nn.RNN with the same weights."""
    T, B, d, H = 7, 3, 4, 5
    for nl in ("tanh", "relu"):
        torch.manual_seed(0)
        rnn = torch.nn.RNN(d, H, nonlinearity=nl).double()
        x = _randn(T, B, d)
        h0 = _randn(1, B, H)
        out_t, hT_t = rnn(x, h0)
        out, hT = dyn.rnn_forward(x, h0[0], rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0, nl)
        torch.testing.assert_close(out, out_t.detach(), rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(hT, hT_t[0].detach(), rtol=1e-12, atol=1e-13)


def test_lstm_forward_matches_torch_nn_lstm_float64_gate_order_ifgo():
    """LSTM unroll equals torch.nn.LSTM (gates i, f, g, o) with copied weights."""
    T, B, d, H = 6, 3, 4, 5
    torch.manual_seed(1)
    lstm = torch.nn.LSTM(d, H).double()
    x, h0, c0 = _randn(T, B, d), _randn(1, B, H), _randn(1, B, H)
    out_t, (hT_t, cT_t) = lstm(x, (h0, c0))
    p = [getattr(lstm, n).detach() for n in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")]
    out, (hT, cT) = dyn.lstm_forward(x, h0[0], c0[0], *p)
    torch.testing.assert_close(out, out_t.detach(), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(hT, hT_t[0].detach(), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(cT, cT_t[0].detach(), rtol=1e-12, atol=1e-13)
    # a cell with the gate blocks swapped (i, f, o, g) is different: the check can fail
    perm = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])
    out_bad, _ = dyn.lstm_forward(x, h0[0], c0[0], p[0][perm], p[1][perm], p[2][perm], p[3][perm])
    assert (out_bad - out_t.detach()).abs().max() > 1e-3


def test_rk4_linear_global_error_is_fourth_order_vs_matrix_exponential():
    """RK4 on x' = A x: error at t=1 vs expm(A) x0 shrinks by 2^4 = 16 when h halves."""
    rng = _rng(2)
    A = rng.normal(size=(4, 4))
    x0 = rng.normal(size=4)
    exact = scipy.linalg.expm(A) @ x0
    errs = [np.linalg.norm(dyn.rk4_linear(A, x0, 1.0, n)[-1].numpy() - exact) for n in (10, 20, 40, 80)]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(orders - 4.0) < 0.15), orders
    # one RK4 step on a linear ODE is the degree-4 Taylor polynomial of expm(hA)
    h = 0.1
    taylor = sum(np.linalg.matrix_power(h * A, k) / math.factorial(k) for k in range(5))
    np.testing.assert_allclose(dyn.rk4_linear(A, x0, h, 1)[-1].numpy(), taylor @ x0, rtol=1e-13, atol=1e-14)


def _linear_ode_problem(seed=3, N=4):
    rng = _rng(seed)
    A = rng.normal(size=(N, N)) / np.sqrt(N)
    return A, rng.normal(size=N), rng.normal(size=N), 1.3


def test_linear_ode_closed_form_gradients_match_autograd_and_scipy_expm_frechet():
    """dL/dx0 = expm(T A^T) g and dL/dA = Van Loan block, vs torch autograd through
    matrix_exp and vs scipy.linalg.expm_frechet(T A^T, T g x0^T) (the adjoint of the
    Frechet derivative of expm)."""
    A, x0, g, T = _linear_ode_problem()
    gx0, gA = dyn.linear_ode_gradients_closed_form(A, x0, T, g)
    At = torch.tensor(A, requires_grad=True)
    x0t = torch.tensor(x0, requires_grad=True)
    xT = torch.linalg.matrix_exp(T * At) @ x0t
    (xT @ torch.tensor(g)).backward()  # L = g . x(T), so dL/dx(T) = g
    torch.testing.assert_close(gx0, x0t.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gA, At.grad, rtol=1e-10, atol=1e-12)
    frechet = scipy.linalg.expm_frechet(T * A.T, T * np.outer(g, x0), compute_expm=False)
    np.testing.assert_allclose(gA.numpy(), frechet, rtol=1e-10, atol=1e-12)


def test_adjoint_rk4_matches_closed_form_chen_2018_algorithm_1():
    """Backward RK4 of the augmented adjoint system (Chen et al. 2018, Alg. 1)
    reproduces the exact gradients to O(h^4): 1e-9 at h = 1.3/200."""
    A, x0, g, T = _linear_ode_problem(seed=4, N=5)
    gx0, gA = dyn.linear_ode_gradients_closed_form(A, x0, T, g)
    ax0, aA = dyn.linear_ode_adjoint_rk4(A, x0, T, g, n_steps=200)
    torch.testing.assert_close(ax0, gx0, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(aA, gA, rtol=1e-9, atol=1e-10)
    assert (gA - gA.T).abs().max() > 1e-2  # dL/dA is not symmetric: a transpose would be caught


def test_zoh_discretize_matches_scipy_cont2discrete_and_inverse_formula():
    """A_bar = expm(dt A), B_bar = A^{-1}(A_bar - I) B, vs scipy.signal.cont2discrete(method='zoh')."""
    rng = _rng(5)
    N, m, dt = 4, 2, 0.3
    A = rng.normal(size=(N, N)) - 2 * np.eye(N)
    B = rng.normal(size=(N, m))
    Ab, Bb = dyn.zoh_discretize(A, B, dt)
    assert Ab.dtype == torch.float64 and Ab.shape == (N, N) and Bb.shape == (N, m)
    Ad, Bd, *_ = scipy.signal.cont2discrete((A, B, np.eye(N), np.zeros((N, m))), dt, method="zoh")
    np.testing.assert_allclose(Ab.numpy(), Ad, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(Bb.numpy(), Bd, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(Ab.numpy(), scipy.linalg.expm(dt * A), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(Bb.numpy(), np.linalg.solve(A, (scipy.linalg.expm(dt * A) - np.eye(N)) @ B),
                               rtol=1e-10, atol=1e-12)


def test_zoh_discretize_singular_A_is_dt_B_for_zero_matrix():
    """For A = 0 the hold integrates u exactly: A_bar = I, B_bar = dt B."""
    B = np.arange(6.0).reshape(3, 2)
    Ab, Bb = dyn.zoh_discretize(np.zeros((3, 3)), B, 0.25)
    np.testing.assert_allclose(Ab.numpy(), np.eye(3), atol=1e-15)
    np.testing.assert_allclose(Bb.numpy(), 0.25 * B, rtol=1e-14)


def test_ssm_recurrence_equals_convolution_with_kernel_gu_2022():
    """S4 eq. 4-5: the scan and the causal convolution with K_k = C A_bar^k B_bar agree
    (to rounding), and both agree with scipy.signal.dlsim."""
    rng = _rng(6)
    N, m, p, L = 5, 2, 3, 40
    A = rng.normal(size=(N, N)) / np.sqrt(N) - np.eye(N)
    B, C, D = rng.normal(size=(N, m)), rng.normal(size=(p, N)), rng.normal(size=(p, m))
    Ab, Bb = dyn.zoh_discretize(A, B, 0.1)
    u = rng.normal(size=(L, m))
    y_scan = dyn.ssm_scan(Ab, Bb, C, u)
    K = dyn.ssm_kernel(Ab, Bb, C, L)
    assert K.shape == (L, p, m)
    y_conv = dyn.causal_convolution(K, u)
    torch.testing.assert_close(y_scan, y_conv, rtol=1e-12, atol=1e-12)
    # dlsim uses x_{k+1} = A x_k + B u_k, y_k = C x_k + D u_k: our y_k = C x_k with input
    # applied first, i.e. dlsim's (C A_bar, C B_bar) output map.
    _, y_ref, _ = scipy.signal.dlsim((Ab.numpy(), Bb.numpy(), C @ Ab.numpy(), C @ Bb.numpy() + D, 1.0), u)
    np.testing.assert_allclose(dyn.ssm_scan(Ab, Bb, C, u, D).numpy(), y_ref, rtol=1e-10, atol=1e-11)
    # a kernel shifted by one power of A_bar is wrong: the check can fail
    assert (dyn.causal_convolution(K[1:], u[:-1]) - y_scan[:-1]).abs().max() > 1e-3


def test_bilinear_discretize_matches_scipy_cont2discrete_bilinear():
    """S4's bilinear transform equals scipy's Tustin method."""
    rng = _rng(7)
    A, B = rng.normal(size=(3, 3)), rng.normal(size=(3, 1))
    Ab, Bb = dyn.bilinear_discretize(A, B, 0.2)
    Ad, Bd, *_ = scipy.signal.cont2discrete((A, B, np.eye(3), np.zeros((3, 1))), 0.2, method="bilinear")
    np.testing.assert_allclose(Ab.numpy(), Ad, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(Bb.numpy(), Bd, rtol=1e-12, atol=1e-13)


def test_functions_keep_float64_and_accept_numpy():
    Ab, Bb = dyn.zoh_discretize(np.eye(2) * -1.0, np.ones((2, 1)), 0.1)
    assert Ab.dtype == Bb.dtype == torch.float64
    y = dyn.ssm_scan(Ab, Bb, np.ones((1, 2)), np.ones((3, 1)))
    assert y.dtype == torch.float64 and y.shape == (3, 1)
