"""Tests of sodl_ref.bio: LIF rate vs simulation, Oja vs eigh, STDP values, surrogate gradient."""

import math

import numpy as np
import pytest
import torch

from sodl_ref import bio


def test_lif_rate_closed_form_values_gerstner():
    """R I = 2 v_th: T = tau ln 2, rate = 1 / (0.002 + 0.01 ln 2) = 111.96 Hz; below threshold 0."""
    assert abs(bio.lif_rate(2.0) - 1.0 / (0.002 + 0.01 * math.log(2.0))) < 1e-12
    assert abs(bio.lif_rate(2.0) - 111.9636) < 1e-3
    assert bio.lif_rate(1.0) == 0.0 and bio.lif_rate(0.5) == 0.0 and bio.lif_rate(-3.0) == 0.0
    assert isinstance(bio.lif_rate(3.0), float)
    # rate saturates at 1 / t_ref for large drive
    assert abs(bio.lif_rate(1e7) - 500.0) < 1e-2
    # only R I matters
    assert abs(bio.lif_rate(1.5, resistance=2.0) - bio.lif_rate(3.0)) < 1e-12


@pytest.mark.parametrize("current", [1.2, 2.0, 5.0])
def test_lif_rate_matches_euler_simulation_within_dt_error(current):
    """Spike count / duration of an Euler simulation with dt = 1e-5 vs the closed form.
    Errors: the threshold crossing is late by < dt per interspike interval (>= 2.2 ms here)
    and Euler's O(dt / tau) error, so the relative error is below 1%."""
    _, spikes = bio.lif_simulate(current, dt=1e-5, duration=1.0)
    isi = torch.diff(spikes).mean().item()
    assert abs(1.0 / isi - bio.lif_rate(current)) / bio.lif_rate(current) < 0.01


def test_lif_simulation_matches_closed_form_euler_crossing_step():
    """Euler from 0: v_n = R I (1 - (1 - dt/tau)^n); the first spike is at the first n with v_n >= v_th."""
    dt, I = 1e-4, 1.7
    n_cross = math.ceil(math.log(1 - 1.0 / I) / math.log(1 - dt / 0.01))
    v, spikes = bio.lif_simulate(I, dt=dt, duration=0.05)
    assert abs(spikes[0].item() - n_cross * dt) < 1e-12
    # then reset, refractory for 20 steps (v = 0), then the same crossing time again
    n_ref = 20
    assert abs((spikes[1] - spikes[0]).item() - (n_ref + n_cross) * dt) < 1e-12
    assert (v[n_cross - 1 : n_cross + n_ref] == 0).all() and v[n_cross + n_ref] > 0
    # below threshold: no spikes, v relaxes to R I
    v, spikes = bio.lif_simulate(0.8, dt=dt, duration=0.2)
    assert len(spikes) == 0 and abs(v[-1].item() - 0.8) < 1e-6


def test_lif_simulation_accepts_time_varying_current():
    dt = 1e-4
    I = torch.cat([torch.zeros(500), torch.full((500,), 3.0)]).double()
    v, spikes = bio.lif_simulate(I, dt=dt, duration=0.1)
    assert v.shape == (1000,) and (spikes > 0.05).all() and len(spikes) > 0


def test_oja_converges_to_unit_top_eigenvector_of_covariance():
    """Oja 1982: w -> +-e_1 of C = E[x x^T], |w| = 1. Compared with np.linalg.eigh. With constant lr the
    stationary angle fluctuation has variance ~ lr lam1 lam2 / (2 (lam1 - lam2)) = 3e-4 (std 0.017) for
    lr = 2e-4, lam = 9, 2.25: cos >= 0.998 is a 3.5 sigma bound."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 4))
    X = rng.normal(size=(3000, 4)) @ np.diag([3.0, 1.5, 1.0, 0.5]) @ np.linalg.qr(A)[0]
    C = X.T @ X / len(X)
    evals, evecs = np.linalg.eigh(C)
    traj = bio.oja_train(torch.tensor(X), torch.tensor(rng.normal(size=4) * 0.1), lr=2e-4, n_epochs=3)
    w = traj[-1].numpy()
    assert traj.shape == (9001, 4)
    assert abs(np.linalg.norm(w) - 1.0) < 0.02
    assert abs(w @ evecs[:, -1]) > 0.998


def test_oja_step_matches_first_order_expansion_of_normalized_hebb():
    """Oja's derivation: w' = (w + lr y x) / |w + lr y x| = w + lr y (x - y w) + O(lr^2) for |w| = 1."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=5)
    w /= np.linalg.norm(w)
    x = rng.normal(size=5)
    lr = 1e-5
    y = w @ x
    hebb = (w + lr * y * x) / np.linalg.norm(w + lr * y * x)
    oja = bio.oja_step(torch.tensor(w), torch.tensor(x), lr).numpy()
    assert np.abs(oja - hebb).max() < 10 * lr**2 * (1 + abs(y)) ** 3
    assert np.abs(oja - w).max() > 1e3 * lr**2


def test_stdp_window_values_and_signs():
    """W(10 ms) = 0.01 e^{-1/2} = 0.0060653, W(-10 ms) = -0.012 e^{-1/2} = -0.0072784, W(0) = 0."""
    w = bio.stdp_window(torch.tensor([0.01, -0.01, 0.0, 0.5]))
    np.testing.assert_allclose(w.numpy()[:3], [0.01 * math.exp(-0.5), -0.012 * math.exp(-0.5), 0.0], atol=1e-15)
    assert abs(w[3].item() - 0.01 * math.exp(-25)) < 1e-18
    assert bio.stdp_window(torch.tensor([[0.001, -0.001]])).shape == (1, 2)


def test_stdp_weight_change_sums_all_pairs():
    pre, post = [0.0, 0.03], [0.01, 0.02]
    expected = sum(float(bio.stdp_window(torch.tensor(q - p, dtype=torch.float64))) for p in pre for q in post)
    assert abs(bio.stdp_weight_change(pre, post) - expected) < 1e-15
    # causal pairing potentiates, anti-causal depresses
    assert bio.stdp_weight_change([0.0], [0.005]) > 0 > bio.stdp_weight_change([0.005], [0.0])


def test_surrogate_gradient_matches_fast_sigmoid_formula_and_forward_is_heaviside():
    """Forward: 1[u > 0]. Backward: g / (beta |u| + 1)^2 (Zenke & Ganguli 2018), checked against
    autograd of the fast sigmoid u / (1 + beta |u|), whose derivative is exactly that."""
    u = torch.linspace(-1, 1, 41, dtype=torch.float64).requires_grad_(True)
    g = torch.linspace(0.5, 2.0, 41, dtype=torch.float64)
    s = bio.spike_fn(u, beta=5.0)
    assert torch.equal(s, (u > 0).double())
    (s * g).sum().backward()
    u2 = u.detach().clone().requires_grad_(True)
    ((u2 / (1 + 5.0 * u2.abs())) * g).sum().backward()
    torch.testing.assert_close(u.grad, u2.grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(u.grad, g / (5.0 * u.detach().abs() + 1) ** 2, rtol=1e-14, atol=0)
