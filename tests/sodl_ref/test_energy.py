"""Tests of sodl_ref.energy (RBMs) against brute-force enumeration and autograd."""

import itertools

import numpy as np
import torch

from sodl_ref import energy


def _rbm(seed, n_v=5, n_h=4, scale=1.0):
    rng = np.random.default_rng(seed)
    W = torch.tensor(rng.normal(scale=scale, size=(n_v, n_h)))
    b = torch.tensor(rng.normal(scale=scale, size=n_v))
    c = torch.tensor(rng.normal(scale=scale, size=n_h))
    return W, b, c


def test_free_energy_matches_brute_force_sum_over_hidden_states():
    """F(v) = -log sum_h exp(-E(v,h)), the sum over all 2^n_h hidden states done by hand."""
    W, b, c = _rbm(0)
    V = energy.all_binary_states(5)
    F = energy.rbm_free_energy(V, W, b, c)
    for i, v in enumerate(V.numpy()):
        terms = [
            -float(energy.rbm_energy(torch.tensor(v)[None], torch.tensor(h, dtype=torch.float64)[None], W, b, c)[0])
            for h in itertools.product([0.0, 1.0], repeat=4)
        ]
        assert abs(float(F[i]) + np.logaddexp.reduce(terms)) < 1e-12


def test_energy_matches_explicit_double_sum():
    W, b, c = _rbm(1, 3, 2)
    v, h = torch.tensor([[1.0, 0.0, 1.0]]), torch.tensor([[1.0, 1.0]])
    expected = -(b[0] + b[2]) - (c[0] + c[1]) - (W[0, 0] + W[0, 1] + W[2, 0] + W[2, 1])
    assert abs(float(energy.rbm_energy(v, h, W, b, c)[0]) - float(expected)) < 1e-14


def test_log_partition_matches_brute_force_over_all_joint_states():
    """log Z = logsumexp over all 2^(n_v + n_h) joint states of -E(v, h), both enumeration orders."""
    for n_v, n_h in [(5, 4), (3, 6)]:
        W, b, c = _rbm(n_v * 10 + n_h, n_v, n_h, scale=2.0)
        S = energy.all_binary_states(n_v + n_h)
        logZ = torch.logsumexp(-energy.rbm_energy(S[:, :n_v], S[:, n_v:], W, b, c), 0)
        assert abs(energy.rbm_log_partition(W, b, c) - float(logZ)) < 1e-10


def test_log_partition_is_stable_for_large_weights():
    """With weights of size 50 Z overflows float64; log Z must stay finite and match logsumexp."""
    W, b, c = _rbm(3, 4, 3, scale=50.0)
    S = energy.all_binary_states(7)
    logZ = torch.logsumexp(-energy.rbm_energy(S[:, :4], S[:, 4:], W, b, c), 0)
    val = energy.rbm_log_partition(W, b, c)
    assert np.isfinite(val) and abs(val - float(logZ)) < 1e-9 * abs(float(logZ))


def test_log_prob_normalizes_and_zero_weights_give_independent_bernoullis():
    W, b, c = _rbm(4)
    lp = energy.rbm_log_prob(energy.all_binary_states(5), W, b, c)
    assert abs(float(torch.logsumexp(lp, 0))) < 1e-12
    # W = 0: p(v) = prod_i sigmoid(b_i)^v_i (1 - sigmoid(b_i))^(1 - v_i)
    v = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0]])
    expected = torch.where(v.bool(), torch.nn.functional.logsigmoid(b), torch.nn.functional.logsigmoid(-b)).sum()
    assert abs(energy.rbm_log_likelihood(v, torch.zeros(5, 4), b, c) - float(expected)) < 1e-12


def test_exact_gradient_matches_autograd_of_exact_log_likelihood():
    """<v h>_data - <v h>_model equals the autograd gradient of the exact mean log p(v)."""
    W, b, c = _rbm(5)
    rng = np.random.default_rng(5)
    data = torch.tensor(rng.integers(0, 2, size=(12, 5)), dtype=torch.float64)
    params = [p.clone().requires_grad_(True) for p in (W, b, c)]
    Wp, bp, cp = params
    S = energy.all_binary_states(5)
    ll = (-energy.rbm_free_energy(data, Wp, bp, cp)).mean() - torch.logsumexp(-energy.rbm_free_energy(S, Wp, bp, cp), 0)
    ll.backward()
    g = energy.rbm_exact_gradient(data, W, b, c)
    for key, p in zip("Wbc", params):
        torch.testing.assert_close(g[key], p.grad, rtol=1e-10, atol=1e-12)


def test_gibbs_chain_with_extreme_uniforms_is_deterministic():
    """u = 0 turns every unit on (p > 0); u = 1 turns every unit off (p < 1)."""
    W, b, c = _rbm(6)
    v0 = torch.zeros(3, 5, dtype=torch.float64)
    on = energy.gibbs_chain(v0, W, b, c, torch.zeros(2, 3, 4), torch.zeros(2, 3, 5))
    off = energy.gibbs_chain(v0 + 1, W, b, c, torch.ones(2, 3, 4), torch.ones(2, 3, 5))
    assert (on == 1).all() and (off == 0).all()


def test_cd1_average_matches_enumerated_expectation_monte_carlo():
    """Mean of 40000 CD-1 estimates vs its exact expectation (enumerating h0 and v1).
    Each entry of a single estimate lies in [-1, 1], so the standard error is <= 1/sqrt(40000) = 0.005;
    tolerance 0.025 is 5 sigma."""
    W, b, c = _rbm(7, 4, 3, scale=0.8)
    v0 = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]]).repeat(20000, 1)
    g = energy.cd_k_gradient(v0, W, b, c, 1, torch.Generator().manual_seed(0))
    e = energy.cd1_expected_gradient(v0[:2], W, b, c)
    for key in "Wbc":
        assert (g[key] - e[key]).abs().max() < 0.025, key


def test_cd_k_with_long_chains_approaches_exact_gradient_monte_carlo():
    """CD-k with k = 30 on a weakly coupled RBM is close to the exact likelihood gradient (the chain
    mixes). 20000 chains: standard error <= 1/sqrt(20000) = 0.007 per entry; tolerance 0.035 = 5 sigma."""
    W, b, c = _rbm(8, 4, 3, scale=0.5)
    data = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]).repeat(10000, 1)
    g = energy.cd_k_gradient(data, W, b, c, 30, torch.Generator().manual_seed(1))
    e = energy.rbm_exact_gradient(data[:2], W, b, c)
    for key in "Wbc":
        assert (g[key] - e[key]).abs().max() < 0.035, key


def test_cd1_is_biased_for_strong_couplings():
    """Carreira-Perpinan & Hinton 2005: the expected CD-1 update differs from the exact gradient."""
    W, b, c = _rbm(9, 4, 3, scale=3.0)
    v0 = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    e1, ex = energy.cd1_expected_gradient(v0, W, b, c), energy.rbm_exact_gradient(v0, W, b, c)
    assert (e1["W"] - ex["W"]).abs().max() > 0.05
