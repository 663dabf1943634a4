"""Tests of sodl_ref.rl: Sutton & Barto's gridworld, linear algebra, brute force over policies."""

import itertools

import numpy as np
import pytest
import torch

from sodl_ref import rl


def _random_mdp(rng, S, A):
    P = rng.random((S, A, S)) ** 3
    P /= P.sum(-1, keepdims=True)
    R = rng.normal(size=(S, A))
    return torch.tensor(P), torch.tensor(R)


def test_policy_evaluation_gridworld_random_policy_sutton_barto_example_4_1():
    """Sutton & Barto (2018), Example 4.1, Figure 4.1 (k = infinity): the
    equiprobable random policy in the 4x4 gridworld, gamma = 1, has values
    0 -14 -20 -22 / -14 -18 -20 -20 / -20 -20 -18 -14 / -22 -20 -14 0."""
    P, R = rl.gridworld_4x4()
    v = rl.policy_evaluation(P, R, torch.full((16, 4), 0.25), 1.0)
    expected = torch.tensor([0, -14, -20, -22, -14, -18, -20, -20, -20, -20, -18, -14, -22, -20, -14, 0],
                            dtype=torch.float64)
    assert v.dtype == torch.float64 and v.shape == (16,)
    torch.testing.assert_close(v, expected, rtol=0, atol=1e-9)


def test_value_iteration_gridworld_optimal_values_are_minus_steps_to_goal():
    """Sutton & Barto (2018), Example 4.1 / Figure 4.1 (right): the optimal value of
    each cell is minus its Manhattan distance to the nearest terminal corner, and
    the greedy policy moves toward it."""
    P, R = rl.gridworld_4x4()
    V, pi = rl.value_iteration(P, R, 1.0)
    rows, cols = np.divmod(np.arange(16), 4)
    dist = np.minimum(rows + cols, (3 - rows) + (3 - cols))
    torch.testing.assert_close(V, -torch.tensor(dist, dtype=torch.float64), rtol=0, atol=1e-9)
    assert pi.dtype == torch.int64 and pi.shape == (16,)
    # every greedy move from a non-terminal state lands one step closer
    for s in range(1, 15):
        t = int(P[s, pi[s]].argmax())
        assert dist[t] == dist[s] - 1
    # state 1 (top row, next to the corner): "left" (index 3) is the only optimal move
    assert rl.GRIDWORLD_ACTIONS[int(pi[1])] == "left"


def test_policy_evaluation_matches_numpy_solve_and_iteration():
    """Discounted random MDP: v_pi equals numpy.linalg.solve of (I - gamma P_pi) v = r_pi
    written independently, and the fixed point of iterative policy evaluation."""
    rng = np.random.default_rng(0)
    P, R = _random_mdp(rng, 7, 3)
    pi = rng.random((7, 3))
    pi /= pi.sum(-1, keepdims=True)
    gamma = 0.9
    P_pi = np.einsum("sa,sat->st", pi, P.numpy())
    r_pi = (pi * R.numpy()).sum(-1)
    v_np = np.linalg.solve(np.eye(7) - gamma * P_pi, r_pi)
    v = rl.policy_evaluation(P, R, torch.tensor(pi), gamma)
    np.testing.assert_allclose(v.numpy(), v_np, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rl.iterative_policy_evaluation(P, R, pi, gamma).numpy(), v_np, rtol=1e-9, atol=1e-9)


def test_value_iteration_matches_brute_force_over_deterministic_policies():
    """The optimal value is the elementwise maximum of v_pi over all |A|^|S| = 81
    deterministic policies (Puterman 1994, Theorem 6.2.10), each evaluated by a
    numpy linear solve; the greedy policy attains it."""
    rng = np.random.default_rng(1)
    S, A, gamma = 4, 3, 0.8
    P, R = _random_mdp(rng, S, A)
    Pn, Rn = P.numpy(), R.numpy()
    best = np.full(S, -np.inf)
    for acts in itertools.product(range(A), repeat=S):
        P_pi = Pn[np.arange(S), acts]
        r_pi = Rn[np.arange(S), acts]
        best = np.maximum(best, np.linalg.solve(np.eye(S) - gamma * P_pi, r_pi))
    V, pi = rl.value_iteration(P, R, gamma)
    # error bound of value iteration: tol * gamma / (1 - gamma) = 4e-10
    np.testing.assert_allclose(V.numpy(), best, rtol=0, atol=1e-9)
    v_greedy = rl.policy_evaluation(P, R, torch.nn.functional.one_hot(pi, A).double(), gamma)
    np.testing.assert_allclose(v_greedy.numpy(), best, rtol=0, atol=1e-9)


def test_value_iteration_agrees_with_policy_iteration():
    rng = np.random.default_rng(2)
    P, R = _random_mdp(rng, 10, 4)
    V, pi = rl.value_iteration(P, R, 0.95, tol=1e-12)
    V2, pi2 = rl.policy_iteration(P, R, 0.95)
    torch.testing.assert_close(V, V2, rtol=0, atol=1e-9)
    assert torch.equal(pi, pi2)


def test_gamma_zero_gives_immediate_rewards():
    """gamma = 0: v_pi = r_pi and V* = max_a R."""
    rng = np.random.default_rng(3)
    P, R = _random_mdp(rng, 5, 2)
    pi = torch.full((5, 2), 0.5, dtype=torch.float64)
    torch.testing.assert_close(rl.policy_evaluation(P, R, pi, 0.0), R.mean(-1))
    V, a = rl.value_iteration(P, R, 0.0)
    torch.testing.assert_close(V, R.max(-1).values)
    assert torch.equal(a, R.argmax(-1))


def test_policy_evaluation_raises_when_episode_never_ends():
    """gamma = 1 with a policy that cycles forever with reward: the values are infinite."""
    P = torch.zeros(2, 1, 2, dtype=torch.float64)
    P[0, 0, 1] = P[1, 0, 0] = 1.0
    R = torch.ones(2, 1, dtype=torch.float64)
    with pytest.raises(ValueError):
        rl.policy_evaluation(P, R, torch.ones(2, 1), 1.0)


def test_gridworld_any_stochastic_policy_satisfies_bellman_with_zero_terminal_values():
    """Under any policy with full support the gridworld episode ends, and v_pi
    satisfies the Bellman equation on non-terminal states with v = 0 at the corners
    (checked as a residual); P_pi's rows sum to one only up to rounding here, which
    must not confuse the detection of terminal states."""
    P, R = rl.gridworld_4x4()
    rng = np.random.default_rng(4)
    pi = torch.tensor(rng.dirichlet(np.ones(4), size=16))
    v = rl.policy_evaluation(P, R, pi, 1.0)
    assert torch.equal(rl.terminal_states(P, R), torch.tensor([True] + [False] * 14 + [True]))
    assert v[0] == 0 and v[15] == 0
    P_pi, r_pi = rl.policy_transition(P, R, pi)
    torch.testing.assert_close((r_pi + P_pi @ v)[1:15], v[1:15], rtol=1e-10, atol=1e-10)
    assert (v[1:15] < -1).all()
