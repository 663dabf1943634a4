"""Markov decision processes: exact policy evaluation and value iteration.

Week 16 of the course. Tabular dynamic programming as in Sutton & Barto,
"Reinforcement Learning: An Introduction" (2nd ed., 2018), chapter 4.

Conventions (pinned in docs/REFERENCE_API.md): states and actions are integers;
``P: [S, A, S]`` with P[s, a, s'] = Pr(s' | s, a); ``R: [S, A]`` the
expected immediate reward of taking a in s; ``policy: [S, A]`` action
probabilities. Float64 torch tensors in and out (numpy accepted), the
input's device is kept.

Episodic tasks are written as absorbing states: a terminal state s has
P[s, a, s] = 1 and R[s, a] = 0 for all a. With gamma = 1 the Bellman system
is then singular; the value of such states is 0 by definition and the
system is solved on the others (Sutton & Barto, section 3.4).
"""

from __future__ import annotations

import torch

from sodl_ref.tensors import as_float64

Tensor = torch.Tensor

__all__ = [
    "policy_transition",
    "terminal_states",
    "policy_evaluation",
    "iterative_policy_evaluation",
    "q_values",
    "greedy_policy",
    "value_iteration",
    "policy_iteration",
    "gridworld_4x4",
    "GRIDWORLD_ACTIONS",
]


def policy_transition(P, R, policy) -> tuple[Tensor, Tensor]:
    """The Markov chain of a policy: P_pi [S, S] and r_pi [S].

        P_pi[s, s'] = sum_a pi(a|s) P[s, a, s'],   r_pi[s] = sum_a pi(a|s) R[s, a]
    """
    P = as_float64(P)
    R = as_float64(R, P.device)
    pi = as_float64(policy, P.device)
    P_pi = torch.einsum("sa,sat->st", pi, P)  # [S, S]
    r_pi = (pi * R).sum(-1)  # [S]
    return P_pi, r_pi


def terminal_states(P, R, atol: float = 1e-12) -> Tensor:
    """[S] bool: terminal states, absorbing under every action with zero reward.

        P[s, a, s] = 1 and R[s, a] = 0 for all a   (up to atol)
    """
    P = as_float64(P)
    R = as_float64(R, P.device)
    stay = P.diagonal(dim1=0, dim2=2)  # [A, S]: P[s, a, s]
    return ((stay >= 1.0 - atol).all(0)) & ((R.abs() <= atol).all(1))


def policy_evaluation(P, R, policy, gamma) -> Tensor:
    """Exact state values of a policy by solving the Bellman expectation equation.

        v_pi = r_pi + gamma P_pi v_pi   <=>   (I - gamma P_pi) v_pi = r_pi
        (Sutton & Barto 2018, eq. 4.4, as a linear system)

    For gamma = 1 (episodic tasks) terminal states -- absorbing with zero
    reward under every action, see :func:`terminal_states` -- get value 0
    and the system is solved on the other states; it must then be
    non-singular (every state reaches a terminal state with probability
    one), otherwise a ValueError is raised.

    Args:
        P: [S, A, S] transitions; R: [S, A] rewards; policy: [S, A].
        gamma: discount in [0, 1].

    Returns:
        v_pi: [S] float64.
    """
    P_pi, r_pi = policy_transition(P, R, policy)
    S = P_pi.shape[0]
    gamma = float(gamma)
    v = torch.zeros(S, dtype=torch.float64, device=P_pi.device)
    keep = ~terminal_states(P, R) if gamma == 1.0 else torch.ones(S, dtype=torch.bool, device=P_pi.device)
    idx = keep.nonzero().flatten()
    if idx.numel() == 0:
        return v
    # v on the absorbing zero-reward states is 0, so their columns drop out
    A = torch.eye(idx.numel(), dtype=torch.float64, device=P_pi.device) - gamma * P_pi[idx][:, idx]  # [S', S']
    if torch.linalg.matrix_rank(A) < idx.numel():
        raise ValueError("the Bellman system is singular: some states never terminate under this policy with gamma = 1")
    v[idx] = torch.linalg.solve(A, r_pi[idx])
    return v


def iterative_policy_evaluation(P, R, policy, gamma, tol: float = 1e-12, max_iter: int = 100_000) -> Tensor:
    """Iterative policy evaluation (Sutton & Barto 2018, section 4.1), synchronous sweeps.

        v_{k+1} = r_pi + gamma P_pi v_k, from v_0 = 0, until max |v_{k+1} - v_k| < tol.

    Returns:
        v: [S] float64.
    """
    P_pi, r_pi = policy_transition(P, R, policy)
    v = torch.zeros_like(r_pi)
    for _ in range(max_iter):
        v_new = r_pi + float(gamma) * P_pi @ v
        if (v_new - v).abs().max() < tol:
            return v_new
        v = v_new
    return v


def q_values(P, R, V, gamma) -> Tensor:
    """Action values from state values: q[s, a] = R[s, a] + gamma sum_s' P[s, a, s'] V[s'].  [S, A]"""
    P = as_float64(P)
    R = as_float64(R, P.device)
    V = as_float64(V, P.device)
    return R + float(gamma) * torch.einsum("sat,t->sa", P, V)


def greedy_policy(q, rtol: float = 1e-9) -> Tensor:
    """Greedy actions [S] (int64) of q [S, A]; ties (within rtol) go to the lowest action index."""
    q = as_float64(q)
    qmax = q.max(-1, keepdim=True).values
    near = q >= qmax - rtol * (1.0 + qmax.abs())  # [S, A]
    return near.to(torch.int64).argmax(-1)  # first True


_VI_MAX_SWEEPS = 1_000_000


def value_iteration(P, R, gamma, tol: float = 1e-10) -> tuple[Tensor, Tensor]:
    """Value iteration (Sutton & Barto 2018, section 4.4; Bellman 1957).

        V_{k+1}(s) = max_a [ R(s, a) + gamma sum_s' P(s'|s, a) V_k(s') ],   V_0 = 0,

    until max_s |V_{k+1}(s) - V_k(s)| < tol; returns V_{k+1} and the greedy
    policy with respect to it (ties broken toward the lowest action index).
    For gamma < 1 the error is at most tol * gamma / (1 - gamma).

    Args:
        P: [S, A, S]; R: [S, A]; gamma in [0, 1] (gamma = 1 needs terminal
        states reached by every optimal policy).

    Returns:
        (V [S] float64, greedy_policy [S] int64).
    """
    P = as_float64(P)
    R = as_float64(R, P.device)
    V = torch.zeros(P.shape[0], dtype=torch.float64, device=P.device)
    for _ in range(_VI_MAX_SWEEPS):
        V_new = q_values(P, R, V, gamma).max(-1).values  # [S]
        done = bool((V_new - V).abs().max() < tol)
        V = V_new
        if done:
            return V, greedy_policy(q_values(P, R, V, gamma))
    raise RuntimeError(f"value iteration did not converge to tol={tol} in {_VI_MAX_SWEEPS} sweeps")


def policy_iteration(P, R, gamma, max_iter: int = 1000) -> tuple[Tensor, Tensor]:
    """Howard's policy iteration (Sutton & Barto 2018, section 4.3): evaluate exactly, act greedily, repeat.

    Starts from the uniform policy; stops when the greedy policy no longer
    changes. Returns (V [S], policy [S] int64).
    """
    P = as_float64(P)
    R = as_float64(R, P.device)
    S, A = R.shape
    pi = torch.full((S, A), 1.0 / A, dtype=torch.float64, device=P.device)
    actions = None
    for _ in range(max_iter):
        V = policy_evaluation(P, R, pi, gamma)
        new_actions = greedy_policy(q_values(P, R, V, gamma))
        if actions is not None and torch.equal(new_actions, actions):
            break
        actions = new_actions
        pi = torch.nn.functional.one_hot(actions, A).to(torch.float64)
    return V, actions


GRIDWORLD_ACTIONS = ("up", "down", "right", "left")


def gridworld_4x4(reward: float = -1.0) -> tuple[Tensor, Tensor]:
    """The 4x4 gridworld of Sutton & Barto (2018), Example 4.1.

    States 0..15 row by row; 0 and 15 are the terminal corners (absorbing,
    reward 0). Actions up, down, right, left move deterministically; a move
    off the grid leaves the state unchanged. Every transition from a
    non-terminal state earns ``reward`` (-1). Undiscounted (gamma = 1).

    Returns:
        (P [16, 4, 16], R [16, 4]).
    """
    S, A = 16, 4
    P = torch.zeros(S, A, S, dtype=torch.float64)
    R = torch.full((S, A), float(reward), dtype=torch.float64)
    moves = [(-1, 0), (1, 0), (0, 1), (0, -1)]
    for s in range(S):
        if s in (0, 15):
            P[s, :, s] = 1.0
            R[s] = 0.0
            continue
        r, c = divmod(s, 4)
        for a, (dr, dc) in enumerate(moves):
            rr, cc = r + dr, c + dc
            t = rr * 4 + cc if 0 <= rr < 4 and 0 <= cc < 4 else s
            P[s, a, t] = 1.0
    return P, R
