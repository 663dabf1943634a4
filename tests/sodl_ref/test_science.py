"""Tests of sodl_ref.science: exact solutions, energy-error order, symplecticity by
autograd Jacobians, the exact shadow Hamiltonian, PINN residuals on exact solutions."""

import math

import numpy as np
import pytest
import torch

from sodl_ref import science as sc


def test_leapfrog_harmonic_oscillator_converges_to_cos_at_second_order():
    """x'' = -x from (1, 0): exact q(t) = cos t, p(t) = -sin t. The global error at
    t = 10 falls by ~4 when dt halves (order 2)."""
    errs = []
    for n in (100, 200, 400, 800):
        qs, ps = sc.leapfrog_quadratic([1.0], [0.0], [[1.0]], 10.0 / n, n)
        assert qs.shape == (n + 1, 1)
        errs.append(math.hypot(qs[-1, 0] - math.cos(10), ps[-1, 0] + math.sin(10)))
    slope = sc.energy_error_order([10 / 100, 10 / 200, 10 / 400, 10 / 800], errs)
    assert abs(slope - 2) < 0.05


def test_pendulum_energy_error_is_order_dt_squared():
    """Hairer, Lubich & Wanner (2006), Theorem IX.8.1: the energy error of a
    symplectic method of order 2 is O(dt^2) uniformly over long times. Pendulum
    from (theta, p) = (2, 0) (large, nonlinear swing) over t = 50: log-log slope of
    max |H - H0| against dt is 2 within 0.1."""
    dts = [0.2, 0.1, 0.05, 0.025]
    errs = []
    for dt in dts:
        n = int(round(50 / dt))
        th, p = sc.leapfrog_pendulum(torch.tensor([2.0]), torch.tensor([0.0]), dt, n)
        H = sc.pendulum_energy(th, p)
        errs.append(float((H - H[0]).abs().max()))
    assert abs(sc.energy_error_order(dts, errs) - 2) < 0.1


def test_euler_energy_drifts_leapfrog_does_not():
    """Harmonic oscillator, dt = 0.01, t = 100: Euler multiplies the energy by
    (1 + dt^2) each step (exactly: |M|^2 = 1 + dt^2 for its one-step matrix), so
    H(t)/H0 = (1 + dt^2)^n = e^1.0 here; leapfrog's error stays below dt^2."""
    dt, n = 0.01, 10000
    K = [[1.0]]
    qe, pe = sc.euler([1.0], [0.0], lambda q: q, dt, n)
    He = sc.quadratic_energy(qe, pe, K)
    assert float(He[-1] / He[0]) == pytest.approx((1 + dt ** 2) ** n, rel=1e-9)
    ql, pl = sc.leapfrog_quadratic([1.0], [0.0], K, dt, n)
    Hl = sc.quadratic_energy(ql, pl, K)
    assert float((Hl - Hl[0]).abs().max()) < dt ** 2


def test_leapfrog_conserves_shadow_hamiltonian_exactly():
    """Leapfrog on x'' = -omega^2 x conserves H_dt = p^2/2 + omega^2 (1 - omega^2 dt^2/4) q^2/2
    to rounding (1e-12 relative over 5000 steps), while H itself oscillates at O(dt^2)."""
    omega, dt = 1.7, 0.3
    qs, ps = sc.leapfrog_quadratic([0.4], [1.1], [[omega ** 2]], dt, 5000)
    Hd = sc.leapfrog_modified_energy_harmonic(qs[:, 0], ps[:, 0], omega, dt)
    assert float((Hd / Hd[0] - 1).abs().max()) < 1e-12
    H = sc.quadratic_energy(qs, ps, [[omega ** 2]])
    assert float((H / H[0] - 1).abs().max()) > 1e-3


def test_leapfrog_map_is_symplectic_autograd_jacobian():
    """The one-step map of leapfrog has Jacobian M with M^T J M = J (Hairer et al.
    2006, Theorem VI.3.3), here for a 2-D anharmonic potential V = |q|^4/4 + q1 q2,
    by torch.autograd.functional.jacobian; explicit Euler violates it."""
    grad_V = lambda q: (q ** 2).sum(-1, keepdim=True) * q + q.flip(-1)

    def step(z, method):
        qs, ps = method(z[:2], z[2:], grad_V, 0.1, 1)
        return torch.cat([qs[-1], ps[-1]])

    z0 = torch.tensor([0.3, -0.7, 0.5, 0.2], dtype=torch.float64)
    J = torch.zeros(4, 4, dtype=torch.float64)
    J[:2, 2:] = torch.eye(2)
    J[2:, :2] = -torch.eye(2)
    M = torch.autograd.functional.jacobian(lambda z: step(z, sc.leapfrog), z0)
    torch.testing.assert_close(M.T @ J @ M, J, rtol=0, atol=1e-13)
    Me = torch.autograd.functional.jacobian(lambda z: step(z, sc.euler), z0)
    assert (Me.T @ J @ Me - J).abs().max() > 1e-3


def test_leapfrog_is_time_reversible():
    """Integrating forward, flipping the momentum and integrating again returns to the start."""
    th, p = sc.leapfrog_pendulum(torch.tensor([1.0, -2.5], dtype=torch.float64),
                                 torch.tensor([0.3, 1.0], dtype=torch.float64), 0.05, 400)
    th2, p2 = sc.leapfrog_pendulum(th[-1], -p[-1], 0.05, 400)
    torch.testing.assert_close(th2[-1], torch.tensor([1.0, -2.5], dtype=torch.float64), rtol=0, atol=1e-10)
    torch.testing.assert_close(-p2[-1], torch.tensor([0.3, 1.0], dtype=torch.float64), rtol=0, atol=1e-10)


def test_pinn_residuals_vanish_on_exact_solutions_and_match_closed_forms():
    """Raissi et al. (2019): u = 3 exp(-k t) solves u' + k u = 0 and
    u = exp(-D k^2 t) sin(k x) solves u_t = D u_xx (residual 0 to 1e-12);
    u = x^2 + t gives u_t - D u_xx = 1 - 2 D exactly."""
    t = torch.linspace(0, 2, 11, dtype=torch.float64)
    r = sc.pinn_residual_ode(lambda s: 3 * torch.exp(-0.7 * s), t, 0.7)
    assert r.abs().max() < 1e-12
    tx = torch.rand(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    D, k = 0.3, 2.5
    r = sc.pinn_residual_heat(lambda z: torch.exp(-D * k ** 2 * z[:, 0]) * torch.sin(k * z[:, 1]), tx, D)
    assert r.abs().max() < 1e-12
    r = sc.pinn_residual_heat(lambda z: z[:, 1] ** 2 + z[:, 0], tx, D)
    torch.testing.assert_close(r, torch.full((50,), 1 - 2 * D, dtype=torch.float64))


def test_heat_residual_of_tanh_mlp_matches_hand_derivatives():
    """One hidden layer u = a . tanh(W [t, x] + b) + c: u_t = sum_j a_j W_j0 s_j,
    u_xx = sum_j a_j W_j1^2 (-2 tanh_j s_j), s_j = 1 - tanh_j^2; the autograd residual
    (with the network given as data) must equal u_t - D u_xx."""
    g = torch.Generator().manual_seed(1)
    W = torch.randn(8, 2, generator=g, dtype=torch.float64)
    b = torch.randn(8, generator=g, dtype=torch.float64)
    a = torch.randn(1, 8, generator=g, dtype=torch.float64)
    c = torch.randn(1, generator=g, dtype=torch.float64)
    tx = torch.randn(20, 2, generator=g, dtype=torch.float64)
    h = torch.tanh(tx @ W.T + b)  # [20, 8]
    s = 1 - h ** 2
    u_t = (s * W[:, 0] * a[0]).sum(1)
    u_xx = (-2 * h * s * W[:, 1] ** 2 * a[0]).sum(1)
    D = 0.4
    r = sc.heat_residual_mlp([W, a], [b, c], tx, D)
    torch.testing.assert_close(r, u_t - D * u_xx, rtol=1e-12, atol=1e-13)
    # a deeper network, vs finite differences (error O(h^2) ~ 1e-8)
    Ws = [W, torch.randn(5, 8, generator=g, dtype=torch.float64), torch.randn(1, 5, generator=g, dtype=torch.float64)]
    bs = [b, torch.randn(5, generator=g, dtype=torch.float64), c]
    u = lambda z: sc.mlp_tanh(z, Ws, bs)
    e = 1e-4
    et, ex = torch.tensor([e, 0.0], dtype=torch.float64), torch.tensor([0.0, e], dtype=torch.float64)
    fd = (u(tx + et) - u(tx - et)) / (2 * e) - D * (u(tx + ex) - 2 * u(tx) + u(tx - ex)) / e ** 2
    torch.testing.assert_close(sc.heat_residual_mlp(Ws, bs, tx, D), fd, rtol=1e-5, atol=1e-6)
