"""Mechanistic interpretability: circuits we can write down and check exactly.

- The "clock" algorithm for modular addition found by reverse engineering
  grokked transformers (Nanda et al. 2023, sec. 4).
- Induction heads (Olsson et al. 2022; Elhage et al. 2021): attention-pattern
  scores on repeated random sequences, and a hand-built two-layer
  attention-only circuit (previous-token head + induction head).
- Feature dimensionality in superposition (Elhage et al. 2022, "Toy Models
  of Superposition", sec. 7).

Float64 torch tensors in and out (numpy accepted); integer tensors for tokens.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sodl_ref.tensors import as_float64, as_long


# ---------------------------------------------------------------------------
# The clock algorithm for modular addition
# ---------------------------------------------------------------------------


def clock_embedding(p, ks, device=None):
    """Token embedding of the clock algorithm (Nanda et al. 2023, sec. 4.1).

    Token a is mapped to (cos w_k a, sin w_k a) for each key frequency
    w_k = 2 pi k / p. Returns [p, 2K]: columns [cos w_1 a .. cos w_K a,
    sin w_1 a .. sin w_K a].
    """
    w = 2 * math.pi * as_float64(ks, device).reshape(-1) / p  # (K,)
    a = torch.arange(p, dtype=torch.float64, device=w.device)
    return torch.cat([torch.cos(a[:, None] * w), torch.sin(a[:, None] * w)], 1)  # (p, 2K)


def clock_logits(a, b, p, ks):
    """Logits of the clock algorithm for a + b mod p (Nanda et al. 2023, sec. 4.1, eqs. for cos(w(a+b-c))).

    From the embeddings of a and b, trig identities give
        cos w(a+b) = cos wa cos wb - sin wa sin wb
        sin w(a+b) = sin wa cos wb + cos wa sin wb
    and the unembedding of each answer c reads
        logit(c) = sum_k cos w_k(a+b) cos w_k c + sin w_k(a+b) sin w_k c
                 = sum_k cos(w_k (a + b - c)),
    which is maximal (= K) exactly at c = (a + b) mod p when every k is
    nonzero mod p and p is prime. a, b: [n] ints; ks: K frequencies.
    Returns [n, p] float64.
    """
    a = as_long(a)
    b = as_long(b, a.device)
    K = len(list(np.asarray(ks).reshape(-1)))
    emb = clock_embedding(p, ks, a.device)  # (p, 2K)
    ca, sa = emb[a, :K], emb[a, K:]  # (n, K) each
    cb, sb = emb[b, :K], emb[b, K:]
    cos_sum = ca * cb - sa * sb  # cos w(a+b), (n, K)
    sin_sum = sa * cb + ca * sb  # sin w(a+b), (n, K)
    return cos_sum @ emb[:, :K].T + sin_sum @ emb[:, K:].T  # (n, p)


def clock_accuracy(p, ks):
    """Fraction of all p^2 pairs (a, b) for which argmax_c clock_logits = (a + b) mod p."""
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    pred = clock_logits(a, b, p, ks).argmax(1)
    return float((pred == (a + b) % p).double().mean())


def fourier_basis(p, device=None):
    """Orthonormal real Fourier basis of functions on Z_p (Nanda et al. 2023, sec. 4.2).

    Rows: the constant 1/sqrt(p), then for k = 1..(p-1)//2 the pair
    sqrt(2/p) cos(2 pi k a / p), sqrt(2/p) sin(2 pi k a / p) (p odd).
    Returns (basis [p, p], frequency [p] ints: 0, 1, 1, 2, 2, ...).
    """
    a = torch.arange(p, dtype=torch.float64, device=device)
    rows, freq = [torch.full((p,), 1 / math.sqrt(p), dtype=torch.float64, device=device)], [0]
    for k in range(1, (p - 1) // 2 + 1):
        rows += [math.sqrt(2 / p) * torch.cos(2 * math.pi * k * a / p), math.sqrt(2 / p) * torch.sin(2 * math.pi * k * a / p)]
        freq += [k, k]
    return torch.stack(rows), torch.tensor(freq, device=device)


def fourier_norms(embedding):
    """Norm of an embedding matrix in each Fourier frequency (Nanda et al. 2023, Fig. 3).

    embedding: [p, d] (row a embeds token a), p odd. Returns [(p+1)//2]:
    entry k is the Frobenius norm of the component of the embedding at
    frequency k (k = 0 the constant).
    """
    E = as_float64(embedding)
    basis, freq = fourier_basis(E.shape[0], E.device)
    coef = basis @ E  # (p, d)
    sq = torch.zeros(int(freq.max()) + 1, dtype=torch.float64, device=E.device).index_add_(0, freq, (coef**2).sum(1))
    return sq.sqrt()


# ---------------------------------------------------------------------------
# Induction heads
# ---------------------------------------------------------------------------


def repeated_random_tokens(n_seq, L, vocab_size, generator, distinct=False, bos=None):
    """Random token sequences repeated twice: [bos?, x_1..x_L, x_1..x_L] (Olsson et al. 2022, "repeated random tokens").

    Tokens are drawn from 0..vocab_size-1. With distinct=True each copy has
    no repeated token (a random permutation prefix, needs L <= vocab_size),
    so every next token of the second copy is determined by the first. With
    bos an int, that token is prepended (use one outside the drawn range:
    it gives position 0, which has no previous token, somewhere harmless
    to attend). Returns [n_seq, 2L] or [n_seq, 2L + 1] int64.
    """
    if distinct:
        first = torch.stack([torch.randperm(vocab_size, generator=generator)[:L] for _ in range(n_seq)])
    else:
        first = torch.randint(vocab_size, (n_seq, L), generator=generator)
    parts = [first, first]  # (n_seq, L) each
    if bos is not None:
        parts.insert(0, torch.full((n_seq, 1), int(bos), dtype=torch.int64))
    return torch.cat(parts, 1)


def induction_scores(attn, L, prefix=0):
    """Attention-pattern scores of heads on a length-L block repeated twice.

    attn: [..., T, T] with T = prefix + 2L (prefix tokens such as a BOS come
    first), rows are queries, columns keys (rows sum to one). For the query
    positions i of the second copy (prefix + L .. prefix + 2L - 1):
      - "prefix_matching": mean attention to i - L + 1, the token *after*
        the previous occurrence of the current token (Olsson et al. 2022,
        the induction-head signature);
      - "duplicate_token": mean attention to i - L, the previous occurrence itself.
    And over every query i = 1..T-1:
      - "previous_token": mean attention to i - 1.
    Returns a dict of [...] tensors (one score per head).
    """
    A = as_float64(attn)
    T = A.shape[-1]
    i = torch.arange(prefix + L, prefix + 2 * L, device=A.device)  # (L,)
    j = torch.arange(1, T, device=A.device)  # (T-1,)
    return {
        "prefix_matching": A[..., i, i - L + 1].mean(-1),
        "duplicate_token": A[..., i, i - L].mean(-1),
        "previous_token": A[..., j, j - 1].mean(-1),
    }


def causal_attention(q, k, v):
    """Causal softmax attention without scaling: softmax(q k^T + mask) v (Vaswani et al. 2017, eq. 1, mask as in GPT).

    q, k: [T, d_k], v: [T, d_v] -> (out [T, d_v], pattern [T, T]).
    """
    T = q.shape[0]
    scores = q @ k.T  # (T, T)
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    pattern = torch.softmax(scores.masked_fill(~mask, -math.inf), -1)  # (T, T)
    return pattern @ v, pattern


def induction_circuit(tokens, vocab_size, beta=10.0):
    """A hand-built two-layer attention-only transformer that implements induction (Elhage et al. 2021; Olsson et al. 2022).

    Residual stream of width 2V + T + V at each position i:
        [ onehot(token_i) | (empty: previous token) | onehot(i) | (empty: output) ]
    Layer 1, previous-token head: W_Q W_K^T maps position j to position
    j + 1 with weight beta, so query i scores key i - 1 with beta and every
    other (causal) key with 0; its OV circuit copies the key's token into
    the "previous token" slot: prev_i = sum_j A1[i, j] onehot(token_j).
    Layer 2, induction head: the query reads the current token, the key
    reads the previous-token slot, score beta <onehot(token_i), prev_j>: it
    attends to positions whose predecessor equals the current token. Its OV
    circuit copies the key's token into the output slot, and the unembedding
    reads it with gain beta:
        logits_i = beta * sum_j A2[i, j] onehot(token_j).
    Both heads are causal (j <= i) softmax attention. tokens: [T] ints.
    Returns {"logits": [T, V], "attn1": [T, T], "attn2": [T, T]}.
    """
    tok = as_long(tokens)
    dev, T, V = tok.device, tok.shape[0], vocab_size
    onehot = torch.nn.functional.one_hot(tok, V).to(torch.float64)  # (T, V)
    eye_T = torch.eye(T, dtype=torch.float64, device=dev)
    # residual stream: [token V | prev V | position T | out V]
    x = torch.cat([onehot, torch.zeros(T, V, dtype=torch.float64, device=dev), eye_T,
                   torch.zeros(T, V, dtype=torch.float64, device=dev)], 1)  # (T, 3V + T)
    D = x.shape[1]
    tok_sl, prev_sl, pos_sl, out_sl = slice(0, V), slice(V, 2 * V), slice(2 * V, 2 * V + T), slice(2 * V + T, D)

    def zeros(*s):
        return torch.zeros(*s, dtype=torch.float64, device=dev)

    # layer 1: previous-token head
    W_Q1, W_K1, W_OV1 = zeros(D, T), zeros(D, T), zeros(D, D)
    W_Q1[pos_sl] = beta * eye_T  # query i -> e_i
    W_K1[pos_sl] = torch.diag(torch.ones(T - 1, dtype=torch.float64, device=dev), 1)  # key j -> e_{j+1}
    W_OV1[tok_sl, prev_sl] = torch.eye(V, dtype=torch.float64, device=dev)  # copy token into the prev slot
    out1, attn1 = causal_attention(x @ W_Q1, x @ W_K1, x @ W_OV1)
    x = x + out1  # (T, D)
    # layer 2: induction head
    W_Q2, W_K2, W_OV2 = zeros(D, V), zeros(D, V), zeros(D, D)
    W_Q2[tok_sl] = beta * torch.eye(V, dtype=torch.float64, device=dev)
    W_K2[prev_sl] = torch.eye(V, dtype=torch.float64, device=dev)
    W_OV2[tok_sl, out_sl] = torch.eye(V, dtype=torch.float64, device=dev)  # copy token into the out slot
    out2, attn2 = causal_attention(x @ W_Q2, x @ W_K2, x @ W_OV2)
    x = x + out2
    W_U = zeros(D, V)
    W_U[out_sl] = beta * torch.eye(V, dtype=torch.float64, device=dev)
    return {"logits": x @ W_U, "attn1": attn1, "attn2": attn2}


# ---------------------------------------------------------------------------
# Superposition
# ---------------------------------------------------------------------------


def feature_dimensionality(W):
    """Fractional dimensionality of each feature (Elhage et al. 2022, "Toy Models of Superposition", sec. 7).

        D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2,   W_i_hat = W_i / ||W_i||

    W: [n_features, m], row i is feature i's embedding. The numerator counts
    how much the feature is represented, the denominator how many features
    share its direction (j = i included). Orthogonal features give 1,
    antipodal pairs 1/2, n features on a regular n-gon in 2-D give 2/n
    (n >= 3). A zero row (a feature not represented) gets D_i = 0.
    Returns [n_features].
    """
    W = as_float64(W)
    sq = (W**2).sum(1)  # ||W_i||^2, (n,)
    G = W @ W.T  # W_i . W_j, (n, n)
    denom = (G**2).sum(1)  # sum_j (W_i . W_j)^2 = ||W_i||^2 sum_j (W_i_hat . W_j)^2
    safe = torch.where(sq > 0, denom, torch.ones_like(denom))
    return torch.where(sq > 0, sq**2 / safe, torch.zeros_like(sq))
