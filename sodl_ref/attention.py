"""Attention as a dynamical system on tokens, and in-context learning.

Scaled dot-product attention with causal and padding masks (Vaswani et al.
2017), and the linear self-attention layer whose forward pass on the query
token is one step of gradient descent on the in-context least-squares loss
(von Oswald et al. 2023, "Transformers learn in-context by gradient
descent", Proposition 1).

Conventions: float64 torch tensors in and out (numpy accepted), on the
device of the input. Boolean masks follow ``torch.nn.functional.
scaled_dot_product_attention``: True means "may attend".
"""
from __future__ import annotations

import math

import torch

from sodl_ref.tensors import as_float64

Tensor = torch.Tensor


def causal_mask(T_q: int, T_k: int | None = None, device=None) -> Tensor:
    """Boolean causal mask [T_q, T_k]: query i may attend to keys j <= i
    (top-left aligned, as ``is_causal=True`` in torch)."""
    T_k = T_q if T_k is None else T_k
    return torch.ones(T_q, T_k, dtype=torch.bool, device=device).tril()


def padding_mask(lengths, T: int) -> Tensor:
    """Key padding mask [B, 1, T]: True for the first ``lengths[b]`` keys of
    sequence b (real tokens), False for padding. Broadcasts against
    attention scores [B, T_q, T]; add a head axis (``.unsqueeze(1)``) for
    [B, heads, T_q, T]."""
    lengths = torch.as_tensor(lengths)
    return (torch.arange(T, device=lengths.device)[None, :] < lengths[:, None])[:, None, :]


def attention_weights(q, k, attn_mask=None, is_causal: bool = False, scale=None) -> Tensor:
    """softmax(q k^T / sqrt(d) + mask) (Vaswani et al. 2017, eq. 1).

    Shapes: q [..., T_q, d], k [..., T_k, d]; ``attn_mask`` boolean (True =
    attend) or float (added to the scores), broadcastable to [..., T_q, T_k].
    Returns [..., T_q, T_k]; each row sums to 1 over the allowed keys.
    """
    q = as_float64(q)
    k = as_float64(k, like=q)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale  # (..., T_q, T_k)
    if is_causal:
        scores = scores.masked_fill(~causal_mask(q.shape[-2], k.shape[-2], q.device), -math.inf)
    if attn_mask is not None:
        attn_mask = torch.as_tensor(attn_mask, device=q.device)
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, -math.inf)
        else:
            scores = scores + attn_mask.to(torch.float64)
    return torch.softmax(scores, dim=-1)


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal: bool = False, scale=None) -> Tensor:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d) + mask) V
    (Vaswani et al. 2017, eq. 1), with the mask conventions of
    ``torch.nn.functional.scaled_dot_product_attention``.

    Shapes: q [..., T_q, d], k [..., T_k, d], v [..., T_k, d_v].
    Returns [..., T_q, d_v]. A query with every key masked gives NaN.
    """
    w = attention_weights(q, k, attn_mask, is_causal, scale)  # (..., T_q, T_k)
    return w @ as_float64(v, like=w)


# ---------------------------------------------------------------------------
# In-context learning = one step of gradient descent (von Oswald et al. 2023)
# ---------------------------------------------------------------------------

def linear_self_attention(E, W_K, W_Q, W_V, P, n_context: int) -> Tensor:
    """One residual linear self-attention layer, keys and values from the
    first ``n_context`` tokens (von Oswald et al. 2023, eq. 4):

        e_j <- e_j + P W_V sum_{i <= n_context} e_i (e_i^T W_K^T W_Q e_j)

    No softmax, no 1/N: a normalization belongs in P.
    Shapes: E [T, D] (tokens as rows), W_K, W_Q [D_k, D], W_V [D_v, D],
    P [D, D_v]. Returns E' [T, D].
    """
    E = as_float64(E)
    W_K, W_Q, W_V, P = (as_float64(W, like=E) for W in (W_K, W_Q, W_V, P))
    ctx = E[:n_context]  # (N, D)
    keys = ctx @ W_K.T  # (N, D_k)
    queries = E @ W_Q.T  # (T, D_k)
    values = ctx @ W_V.T  # (N, D_v)
    return E + (queries @ keys.T) @ values @ P.T  # (T, D)


def gd_icl_weights(d_x: int, d_y: int, lr: float, n_context: int, W0=None):
    """The weights of von Oswald et al. (2023), Proposition 1, that make
    ``linear_self_attention`` perform one GD step on
        L(W) = 1/(2N) sum_i ||W x_i - y_i||^2,  starting from W0 (default 0):

        W_K = W_Q = [[I_x, 0], [0, 0]],  W_V = [[0, 0], [W0, -I_y]],  P = lr/N I.

    Tokens are e_i = (x_i, y_i) and the query token is (x_q, 0); the layer
    writes y_q - Delta W x_q into the query's y slot, with
    Delta W = -lr grad L(W0). So for W0 = 0 the prediction after one GD step,
    Delta W x_q, is minus the query's y output.
    Returns (W_K [D, D], W_Q [D, D], W_V [D, D], P [D, D]) with D = d_x + d_y.
    """
    D = d_x + d_y
    W_K = torch.zeros(D, D, dtype=torch.float64)
    W_K[:d_x, :d_x] = torch.eye(d_x, dtype=torch.float64)
    W_V = torch.zeros(D, D, dtype=torch.float64)
    if W0 is not None:
        W_V[d_x:, :d_x] = as_float64(W0)
    W_V[d_x:, d_x:] = -torch.eye(d_y, dtype=torch.float64)
    P = lr / n_context * torch.eye(D, dtype=torch.float64)
    return W_K, W_K.clone(), W_V, P


def gd_one_step_prediction(X, Y, x_query, lr: float, W0=None) -> Tensor:
    """Prediction on x_query after one gradient step on
    L(W) = 1/(2N) sum_i ||W x_i - y_i||^2 from W0 (default 0):
        W1 = W0 - lr/N sum_i (W0 x_i - y_i) x_i^T,   y_hat = W1 x_query.

    Shapes: X [N, d_x], Y [N, d_y], x_query [d_x] or [M, d_x].
    Returns y_hat [d_y] or [M, d_y].
    """
    X = as_float64(X)
    Y, xq = as_float64(Y, like=X), as_float64(x_query, like=X)
    N, d_x = X.shape
    W0 = torch.zeros(Y.shape[1], d_x, dtype=torch.float64, device=X.device) if W0 is None else as_float64(W0, like=X)
    W1 = W0 - lr / N * (X @ W0.T - Y).T @ X  # (d_y, d_x)
    return xq @ W1.T


def icl_tokens(X, Y, x_query) -> Tensor:
    """Stack the context tokens (x_i, y_i) and the query token (x_q, 0):
    X [N, d_x], Y [N, d_y], x_query [d_x] -> E [N + 1, d_x + d_y]."""
    X = as_float64(X)
    Y, xq = as_float64(Y, like=X), as_float64(x_query, like=X)
    query = torch.cat([xq, torch.zeros(Y.shape[1], dtype=torch.float64, device=X.device)])
    return torch.cat([torch.cat([X, Y], dim=1), query[None]], dim=0)
