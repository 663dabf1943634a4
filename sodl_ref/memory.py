"""Associative memory: the classical Hopfield network (Hebb rule, recall,
capacity) and the modern continuous Hopfield network whose update is
attention.

Patterns are rows: ``patterns: [P, N]`` with entries +-1 (classical) or
``X: [P, d]`` real (modern). States are ``[N]`` or a batch ``[B, N]``.
Float64 torch tensors, kept on the input's device.

References
- Hopfield 1982, "Neural networks and physical systems with emergent
  collective computational abilities", eq. (1)-(2) (update) and (7)
  (energy); Hebb rule T_ij = sum_s V_i^s V_j^s, T_ii = 0.
- Amit, Gutfreund & Sompolinsky 1985/1987: capacity alpha_c ~ 0.138 with
  weights (1/N) sum_mu xi^mu xi^mu^T.
- Ramsauer et al. 2021, "Hopfield Networks is All You Need", eq. (2)
  (energy) and eq. (3) (update xi_new = X softmax(beta X^T xi)), and the
  equivalence with transformer attention (their Section 3).
"""

from __future__ import annotations

import math

import torch

from sodl_ref.tensors import as_float64

__all__ = [
    "hebbian_weights",
    "hopfield_energy",
    "hopfield_recall",
    "overlap",
    "retrieval_overlap",
    "modern_hopfield_update",
    "modern_hopfield_energy",
]


def hebbian_weights(patterns) -> torch.Tensor:
    """Hebb rule (Hopfield 1982; Amit et al. 1985 normalization):
    W = (1/N) sum_mu xi^mu xi^mu^T with zero diagonal.
    patterns: [P, N] of +-1. Returns W: [N, N] symmetric."""
    xi = as_float64(patterns)
    N = xi.shape[1]
    W = xi.T @ xi / N  # [N, N]
    return W.fill_diagonal_(0.0)


def hopfield_energy(W, state) -> torch.Tensor:
    """E(s) = -1/2 s^T W s (Hopfield 1982, eq. 7). state: [N] or [B, N];
    returns a scalar tensor or [B]."""
    W = as_float64(W)
    s = as_float64(state, like=W)
    return -0.5 * ((s @ W) * s).sum(-1)


def _sign_keep(h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """sign(h), keeping the current state where the field is exactly zero."""
    return torch.where(h > 0, 1.0, torch.where(h < 0, -1.0, s)).to(s.dtype)


def hopfield_recall(W, state, steps: int, mode: str = "asynchronous") -> torch.Tensor:
    """Zero-temperature Hopfield dynamics s_i <- sign(sum_j W_ij s_j)
    (Hopfield 1982, eq. 1), a unit with zero field keeping its state.

    mode "synchronous": all units at once, ``steps`` times (Little dynamics;
    may end in a 2-cycle). mode "asynchronous": ``steps`` sweeps, each
    updating units 0, 1, ..., N-1 in turn with the latest state (the energy
    never increases). W: [N, N]; state: [N] or [B, N] of +-1.
    Returns the final state, same shape.
    """
    W = as_float64(W)
    s = as_float64(state, like=W).clone()
    if mode == "synchronous":
        for _ in range(steps):
            s = _sign_keep(s @ W.T, s)  # [..., N]
    elif mode == "asynchronous":
        N = W.shape[0]
        for _ in range(steps):
            for i in range(N):
                h = s @ W[i]  # [...]
                s[..., i] = _sign_keep(h, s[..., i])
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return s


def overlap(state, pattern) -> torch.Tensor:
    """Retrieval overlap m = (1/N) xi . s in [-1, 1] (Amit et al. 1985).
    state, pattern: [..., N] broadcastable. Returns [...]."""
    s = as_float64(state)
    xi = as_float64(pattern, like=s)
    return (s * xi).sum(-1) / s.shape[-1]


def retrieval_overlap(N: int, alpha: float, generator: torch.Generator, flip: float = 0.1,
                      steps: int = 10, trials: int = 8, mode: str = "asynchronous") -> float:
    """Monte Carlo retrieval quality at load alpha = P / N: store
    P = max(1, round(alpha N)) random +-1 patterns by the Hebb rule, start
    from a stored pattern with a fraction ``flip`` of its bits flipped, run
    the dynamics, and average the final overlap with that pattern over
    ``trials`` independent networks. Near 1 below the capacity
    alpha_c ~ 0.138 (Amit et al. 1985), markedly lower above it."""
    P = max(1, round(alpha * N))
    ms = []
    for _ in range(trials):
        xi = torch.randint(0, 2, (P, N), generator=generator).to(torch.float64) * 2 - 1
        W = hebbian_weights(xi)
        mask = torch.rand(N, generator=generator, dtype=torch.float64) < flip
        s0 = torch.where(mask, -xi[0], xi[0])
        s = hopfield_recall(W, s0, steps, mode=mode)
        ms.append(overlap(s, xi[0]))
    return float(torch.stack(ms).mean())


def modern_hopfield_update(X, queries, beta: float) -> torch.Tensor:
    """One update of the modern continuous Hopfield network (Ramsauer et al.
    2021, eq. 3): xi_new = X^T softmax(beta X xi) with the stored patterns as
    rows of X (their X has them as columns). For a batch of queries this is
    attention with keys = values = X and scale beta:
    softmax(beta Q X^T) X.

    X: [P, d] stored patterns; queries: [q, d] (or [d]); beta > 0.
    Returns [q, d] (or [d]).
    """
    X = as_float64(X)
    Q = as_float64(queries, like=X)
    A = torch.softmax(beta * Q @ X.T, dim=-1)  # [q, P]
    return A @ X  # [q, d]


def modern_hopfield_energy(X, query, beta: float) -> torch.Tensor:
    """E(xi) = -lse(beta, X xi) + 1/2 xi^T xi + log(P) / beta + M^2 / 2,
    M = max_i ||x_i|| (Ramsauer et al. 2021, eq. 2). X: [P, d]; query:
    [d] or [q, d]. Returns a scalar tensor or [q]. The update of
    ``modern_hopfield_update`` never increases it (their Theorem 1)."""
    X = as_float64(X)
    xi = as_float64(query, like=X)
    P = X.shape[0]
    lse = torch.logsumexp(beta * xi @ X.T, dim=-1) / beta
    M = X.norm(dim=-1).max()
    return -lse + 0.5 * (xi * xi).sum(-1) + math.log(P) / beta + 0.5 * M ** 2
