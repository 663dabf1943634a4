"""Tests of sodl_ref.memory: exact identities of the Hopfield network
(enumeration on small systems), Monte Carlo retrieval below and above
capacity, and the modern Hopfield update against torch attention."""

import itertools


import torch
import torch.nn.functional as F
from scipy.linalg import hadamard

from sodl_ref import memory as mem


def _patterns(P, N, g):
    return torch.randint(0, 2, (P, N), generator=g).to(torch.float64) * 2 - 1


def test_hebbian_weights_are_the_normalized_outer_product_sum_with_zero_diagonal():
    g = torch.Generator().manual_seed(0)
    xi = _patterns(3, 8, g)
    W = mem.hebbian_weights(xi)
    expected = sum(torch.outer(x, x) for x in xi) / 8
    expected.fill_diagonal_(0)
    torch.testing.assert_close(W, expected)
    assert torch.equal(W, W.T)


def test_orthogonal_patterns_are_fixed_points_hadamard():
    """With mutually orthogonal patterns (Hadamard rows) the field at a
    stored pattern is (1 - P/N) xi exactly, so P < N patterns are fixed."""
    H = torch.tensor(hadamard(32), dtype=torch.float64)
    xi = H[1:9]
    W = mem.hebbian_weights(xi)
    for mode in ["synchronous", "asynchronous"]:
        out = mem.hopfield_recall(W, xi, 3, mode=mode)
        assert torch.equal(out, xi)
    torch.testing.assert_close(xi @ W.T, (1 - 8 / 32) * xi)


def test_asynchronous_recall_never_increases_energy_and_ends_in_local_minimum_enumeration():
    """Hopfield 1982: each asynchronous flip lowers E = -1/2 s^T W s. After
    convergence no single flip lowers the energy (checked by enumeration)."""
    g = torch.Generator().manual_seed(1)
    N = 12
    xi = _patterns(4, N, g)
    W = mem.hebbian_weights(xi)
    s = _patterns(1, N, g)[0]
    e = mem.hopfield_energy(W, s)
    for _ in range(6):
        s = mem.hopfield_recall(W, s, 1, mode="asynchronous")
        e_new = mem.hopfield_energy(W, s)
        assert e_new <= e + 1e-12
        e = e_new
    for i in range(N):
        t = s.clone()
        t[i] = -t[i]
        assert mem.hopfield_energy(W, t) >= e - 1e-12


def test_synchronous_recall_matches_explicit_loop_and_async_matches_single_unit_updates():
    g = torch.Generator().manual_seed(2)
    N = 10
    xi = _patterns(3, N, g)
    W = mem.hebbian_weights(xi)
    s0 = _patterns(5, N, g)
    s = s0.clone()
    for _ in range(2):
        h = s @ W
        s = torch.where(h > 0, 1.0, torch.where(h < 0, -1.0, s)).double()
    torch.testing.assert_close(mem.hopfield_recall(W, s0, 2, mode="synchronous"), s)
    a = s0[0].clone().numpy()
    Wn = W.numpy()
    for i in range(N):
        h = Wn[i] @ a
        a[i] = 1.0 if h > 0 else (-1.0 if h < 0 else a[i])
    torch.testing.assert_close(mem.hopfield_recall(W, s0[0], 1), torch.tensor(a))


def test_retrieval_overlap_below_and_above_capacity_monte_carlo():
    """Amit, Gutfreund & Sompolinsky: alpha_c ~ 0.138. N = 300, 8 networks,
    10% flipped cue. Measured: alpha = 0.05 -> 1.000; alpha = 0.3 -> ~0.49
    (sd of the 8-network mean ~0.04 at N = 300). Thresholds 0.98 and
    0.7 are >= 5 sigma from the means."""
    g = torch.Generator().manual_seed(3)
    assert mem.retrieval_overlap(300, 0.05, g, trials=8) > 0.98
    assert mem.retrieval_overlap(300, 0.3, g, trials=8) < 0.7


def test_overlap_is_one_for_the_pattern_and_minus_one_for_its_negation():
    xi = torch.tensor([1.0, -1.0, 1.0, 1.0])
    assert mem.overlap(xi, xi).item() == 1.0
    assert mem.overlap(-xi, xi).item() == -1.0
    assert mem.overlap(torch.tensor([1.0, 1.0, 1.0, 1.0]), xi).item() == 0.5


def test_modern_hopfield_update_equals_scaled_dot_product_attention_float64():
    """Ramsauer et al. 2021, Section 3: xi_new = X^T softmax(beta X xi) is
    attention with keys = values = stored patterns and scale = beta."""
    g = torch.Generator().manual_seed(4)
    X = torch.randn(9, 5, generator=g, dtype=torch.float64)
    Q = torch.randn(4, 5, generator=g, dtype=torch.float64)
    for beta in [0.1, 1.0, 7.3]:
        ref = F.scaled_dot_product_attention(Q[None], X[None], X[None], scale=beta)[0]
        torch.testing.assert_close(mem.modern_hopfield_update(X, Q, beta), ref, rtol=1e-12, atol=1e-13)
    # a single query [d] works too, and matches the paper's column form X softmax(beta X^T xi)
    q = Q[0]
    col = X.T @ torch.softmax(2.0 * X @ q, 0)
    torch.testing.assert_close(mem.modern_hopfield_update(X, q, 2.0), col)


def test_modern_hopfield_update_decreases_energy_and_retrieves_separated_patterns():
    """Ramsauer et al. 2021, Theorem 1 (energy decreases under the update)
    and Theorem 4 (a well-separated pattern is retrieved in one step with an
    exponentially small error)."""
    g = torch.Generator().manual_seed(5)
    X = torch.randn(20, 64, generator=g, dtype=torch.float64)
    q = X[3] + 0.3 * torch.randn(64, generator=g, dtype=torch.float64)
    for beta in [0.01, 0.1, 1.0]:
        new = mem.modern_hopfield_update(X, q, beta)
        assert mem.modern_hopfield_energy(X, new, beta) <= mem.modern_hopfield_energy(X, q, beta) + 1e-12
    # separation: x3.x3 - max_j x3.xj is ~ 64 - 3*8; beta = 1 gives error ~ e^{-40}
    new = mem.modern_hopfield_update(X, q, 1.0)
    assert (new - X[3]).abs().max() < 1e-10
    # beta -> 0 averages all patterns (the metastable global fixed point)
    torch.testing.assert_close(mem.modern_hopfield_update(X, q, 1e-12), X.mean(0), rtol=1e-9, atol=1e-9)


def test_brute_force_ground_states_of_one_stored_pattern_are_the_pattern_and_its_negation():
    """Enumerate all 2^10 states: with one stored pattern the energy minima
    are exactly +-xi (Hopfield 1982)."""
    xi = torch.tensor([1, -1, -1, 1, 1, 1, -1, 1, -1, -1], dtype=torch.float64)
    W = mem.hebbian_weights(xi[None])
    states = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=10)), dtype=torch.float64)
    E = mem.hopfield_energy(W, states)
    minima = states[E == E.min()]
    assert minima.shape[0] == 2
    assert {tuple(m.tolist()) for m in minima} == {tuple(xi.tolist()), tuple((-xi).tolist())}

