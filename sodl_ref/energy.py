"""Energy-based models: the binary restricted Boltzmann machine.

Smolensky 1986; Hinton 2002 ("Training products of experts by minimizing
contrastive divergence"); Hinton 2010 ("A practical guide to training
RBMs", Sec. 2-3). Visible units v in {0,1}^{n_v}, hidden units h in
{0,1}^{n_h}, weights W: [n_v, n_h], biases b: [n_v] (visible), c: [n_h]
(hidden), and

    E(v, h) = -b.v - c.h - v^T W h,        p(v, h) = exp(-E(v, h)) / Z.

Summing out h gives the free energy F(v) = -b.v - sum_j softplus(c_j + (v W)_j)
with p(v) = exp(-F(v)) / Z. Small RBMs can be enumerated exactly, which is
what makes them a testbed for the contrastive-divergence estimate.
Everything is float64; states are float tensors of 0s and 1s.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as Fnn

from sodl_ref.tensors import as_float64


def all_binary_states(n: int, device=None) -> torch.Tensor:
    """All 2^n binary vectors, in lexicographic order (first unit most significant). -> [2^n, n]."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64, device=device).reshape(
        2**n, n
    )


def rbm_energy(v, h, W, b, c) -> torch.Tensor:
    """E(v, h) = -b.v - c.h - v^T W h (Hinton 2010, eq. 1).

    v: [n, n_v]; h: [n, n_h]; W: [n_v, n_h]; b: [n_v]; c: [n_h]. Returns [n].
    """
    W = as_float64(W)
    v, h, b, c = (as_float64(a, like=W) for a in (v, h, b, c))
    return -v @ b - h @ c - ((v @ W) * h).sum(-1)


def rbm_free_energy(v, W, b, c) -> torch.Tensor:
    """F(v) = -log sum_h exp(-E(v, h)) = -b.v - sum_j softplus(c_j + (v W)_j).

    (Hinton 2010, Sec. 16.1; the hidden units are independent given v.)
    v: [n, n_v]; returns [n].
    """
    W = as_float64(W)
    v, b, c = (as_float64(a, like=W) for a in (v, b, c))
    return -v @ b - Fnn.softplus(c + v @ W).sum(-1)  # [n]


def rbm_log_partition(W, b, c) -> float:
    """log Z = log sum_{v,h} exp(-E(v, h)), exactly, by enumerating the smaller layer.

    Enumerating v uses F(v); enumerating h uses the symmetric free energy
    F(h) = -c.h - sum_i softplus(b_i + (W h)_i). Cost 2^min(n_v, n_h).
    """
    W = as_float64(W)
    b, c = as_float64(b, like=W), as_float64(c, like=W)
    n_v, n_h = W.shape
    if n_v <= n_h:
        states = all_binary_states(n_v, device=W.device)  # [2^n_v, n_v]
        neg_F = -rbm_free_energy(states, W, b, c)
    else:
        states = all_binary_states(n_h, device=W.device)  # [2^n_h, n_h]
        neg_F = -rbm_free_energy(states, W.T, c, b)
    return float(torch.logsumexp(neg_F, dim=0))


def rbm_log_prob(v, W, b, c) -> torch.Tensor:
    """Exact log p(v) = -F(v) - log Z. v: [n, n_v] -> [n]."""
    return -rbm_free_energy(v, W, b, c) - rbm_log_partition(W, b, c)


def rbm_log_likelihood(v, W, b, c) -> float:
    """Mean exact log-likelihood (1/n) sum_n log p(v_n). v: [n, n_v]."""
    return float(rbm_log_prob(v, W, b, c).mean())


def rbm_exact_gradient(v, W, b, c) -> dict:
    """Exact gradient of the mean log-likelihood (Hinton 2002, Sec. 2; Hinton 2010, eq. 5).

    d/dW = <v p(h|v)^T>_data - <v h^T>_model, d/db = <v>_data - <v>_model,
    d/dc = <p(h|v)>_data - <h>_model, model averages by enumerating v.
    Returns {"W": [n_v, n_h], "b": [n_v], "c": [n_h]}.
    """
    W = as_float64(W)
    v, b, c = (as_float64(a, like=W) for a in (v, b, c))
    ph = torch.sigmoid(c + v @ W)  # [n, n_h]
    states = all_binary_states(W.shape[0], device=W.device)  # [S, n_v]
    pv = torch.softmax(-rbm_free_energy(states, W, b, c), dim=0)  # [S]
    ph_model = torch.sigmoid(c + states @ W)  # [S, n_h]
    return {
        "W": v.T @ ph / len(v) - states.T @ (pv[:, None] * ph_model),
        "b": v.mean(0) - pv @ states,
        "c": ph.mean(0) - pv @ ph_model,
    }


def gibbs_chain(v0, W, b, c, u_h, u_v) -> torch.Tensor:
    """k steps of block Gibbs sampling driven by given uniform numbers (Hinton 2002, Sec. 3).

    For s = 0..k-1:  h_s = 1[u_h[s] < sigmoid(c + v_s W)],
                     v_{s+1} = 1[u_v[s] < sigmoid(b + h_s W^T)].
    v0: [n, n_v]; u_h: [k, n, n_h]; u_v: [k, n, n_v]. Returns v_k: [n, n_v].
    """
    W = as_float64(W)
    v, b, c, u_h, u_v = (as_float64(a, like=W) for a in (v0, b, c, u_h, u_v))
    for s in range(u_h.shape[0]):
        h = (u_h[s] < torch.sigmoid(c + v @ W)).to(torch.float64)  # [n, n_h]
        v = (u_v[s] < torch.sigmoid(b + h @ W.T)).to(torch.float64)  # [n, n_v]
    return v


def cd_k_gradient_from_uniforms(v0, W, b, c, u_h, u_v) -> dict:
    """CD-k estimate of the log-likelihood gradient with explicit randomness (Hinton 2002, Sec. 3).

    Positive phase: the data v0 and p(h|v0); negative phase: v_k from
    ``gibbs_chain`` and p(h|v_k) (probabilities, not samples, for the last
    hidden layer: Hinton 2010, Sec. 3.3). Averages over the batch:
        dW = (v0^T p(h|v0) - v_k^T p(h|v_k)) / n,  db = <v0 - v_k>,  dc = <p(h|v0) - p(h|v_k)>.
    Shapes as in ``gibbs_chain``. Returns {"W", "b", "c"} (an ascent direction).
    """
    W = as_float64(W)
    v0, b, c = (as_float64(a, like=W) for a in (v0, b, c))
    vk = gibbs_chain(v0, W, b, c, u_h, u_v)  # [n, n_v]
    ph0 = torch.sigmoid(c + v0 @ W)  # [n, n_h]
    phk = torch.sigmoid(c + vk @ W)  # [n, n_h]
    n = len(v0)
    return {"W": (v0.T @ ph0 - vk.T @ phk) / n, "b": (v0 - vk).mean(0), "c": (ph0 - phk).mean(0)}


def cd_k_gradient(v0, W, b, c, k: int, generator: torch.Generator) -> dict:
    """CD-k gradient estimate (Hinton 2002), uniforms drawn from ``generator``.

    v0: [n, n_v]; W: [n_v, n_h]. Returns {"W", "b", "c"}.
    """
    W = as_float64(W)
    n, (n_v, n_h) = len(v0), W.shape
    u_h = torch.rand(k, n, n_h, generator=generator, dtype=torch.float64, device=generator.device)
    u_v = torch.rand(k, n, n_v, generator=generator, dtype=torch.float64, device=generator.device)
    return cd_k_gradient_from_uniforms(v0, W, b, c, u_h.to(W.device), u_v.to(W.device))


def cd1_expected_gradient(v0, W, b, c) -> dict:
    """Exact expectation of the CD-1 estimate over its sampling noise, by enumeration.

    E[dW] = (1/n) sum_n [v0 p(h|v0)^T - sum_{h0, v1} p(h0|v0) p(v1|h0) v1 p(h|v1)^T].
    The contrastive-divergence gradient is biased (Carreira-Perpinan & Hinton
    2005): this is what CD-1 estimates, not ``rbm_exact_gradient``.
    """
    W = as_float64(W)
    v0, b, c = (as_float64(a, like=W) for a in (v0, b, c))
    n_v, n_h = W.shape
    H = all_binary_states(n_h, device=W.device)  # [Sh, n_h]
    V = all_binary_states(n_v, device=W.device)  # [Sv, n_v]
    ph0 = torch.sigmoid(c + v0 @ W)  # [n, n_h]
    p_h = torch.prod(torch.where(H.bool(), ph0[:, None, :], 1 - ph0[:, None, :]), -1)  # [n, Sh]
    pv_h = torch.sigmoid(b + H @ W.T)  # [Sh, n_v]
    p_v_given_h = torch.prod(torch.where(V.bool(), pv_h[:, None, :], 1 - pv_h[:, None, :]), -1)  # [Sh, Sv]
    p_v1 = p_h @ p_v_given_h  # [n, Sv]
    ph_V = torch.sigmoid(c + V @ W)  # [Sv, n_h]
    w1 = p_v1.mean(0)  # [Sv] average over the batch
    return {
        "W": v0.T @ ph0 / len(v0) - V.T @ (w1[:, None] * ph_V),
        "b": v0.mean(0) - w1 @ V,
        "c": ph0.mean(0) - w1 @ ph_V,
    }
