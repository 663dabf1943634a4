"""Tests of sodl_ref.attention against torch and von Oswald et al. (2023)."""
import numpy as np
import torch
import torch.nn.functional as F

from sodl_ref import attention as att


def _randn(g, *shape):
    return torch.randn(*shape, dtype=torch.float64, generator=g)


def test_sdpa_matches_torch_scaled_dot_product_attention_float64_causal_and_padding():
    """Same outputs as torch.nn.functional.scaled_dot_product_attention in float64,
    unmasked, causal, boolean padding mask, and float additive mask."""
    g = torch.Generator().manual_seed(0)
    B, h, T, d, dv = 3, 2, 6, 4, 5
    q, k, v = _randn(g, B, h, T, d), _randn(g, B, h, T, d), _randn(g, B, h, T, dv)
    tol = dict(rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(att.scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v), **tol)
    torch.testing.assert_close(att.scaled_dot_product_attention(q, k, v, is_causal=True),
                               F.scaled_dot_product_attention(q, k, v, is_causal=True), **tol)
    pad = att.padding_mask(torch.tensor([6, 3, 1]), T).unsqueeze(1)  # (B, 1, 1, T)
    torch.testing.assert_close(att.scaled_dot_product_attention(q, k, v, attn_mask=pad),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=pad), **tol)
    both = pad & att.causal_mask(T)
    torch.testing.assert_close(att.scaled_dot_product_attention(q, k, v, attn_mask=both),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=both), **tol)
    bias = _randn(g, T, T)
    torch.testing.assert_close(att.scaled_dot_product_attention(q, k, v, attn_mask=bias),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=bias), **tol)


def test_padding_keys_do_not_influence_the_output():
    """Changing the padded keys and values leaves the output unchanged (exactly)."""
    g = torch.Generator().manual_seed(1)
    q, k, v = _randn(g, 2, 5, 3), _randn(g, 2, 5, 3), _randn(g, 2, 5, 3)
    mask = att.padding_mask([5, 2], 5)
    out = att.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    k2, v2 = k.clone(), v.clone()
    k2[1, 2:] += 10.0
    v2[1, 2:] -= 7.0
    assert torch.equal(out, att.scaled_dot_product_attention(q, k2, v2, attn_mask=mask))
    assert not torch.allclose(out, att.scaled_dot_product_attention(q, k2, v2))


def _icl_problem(seed, N=20, d_x=3, d_y=2):
    g = torch.Generator().manual_seed(seed)
    X = _randn(g, N, d_x)
    W_true = _randn(g, d_y, d_x)
    Y = X @ W_true.T + 0.1 * _randn(g, N, d_y)
    return X, Y, _randn(g, d_x)


def test_linear_attention_with_von_oswald_weights_equals_one_gd_step_exactly():
    """von Oswald et al. (2023), Prop. 1: with W_K = W_Q = [[I,0],[0,0]],
    W_V = [[0,0],[0,-I]], P = lr/N I, the query's y output is -(prediction after
    one GD step from W = 0), equal to float64 rounding (1e-13)."""
    for seed, lr in ((0, 0.1), (1, 0.7), (2, 2.0)):
        X, Y, xq = _icl_problem(seed)
        N, d_x = X.shape
        E = att.icl_tokens(X, Y, xq)
        out = att.linear_self_attention(E, *att.gd_icl_weights(d_x, Y.shape[1], lr, N), n_context=N)
        y_hat = att.gd_one_step_prediction(X, Y, xq, lr)
        torch.testing.assert_close(-out[-1, d_x:], y_hat, rtol=1e-13, atol=1e-14)
        # the x part of every token is untouched; the context y's become y_i - Delta W x_i
        torch.testing.assert_close(out[:, :d_x], E[:, :d_x], rtol=0, atol=0)
        torch.testing.assert_close(out[:N, d_x:], Y - att.gd_one_step_prediction(X, Y, X, lr), rtol=1e-13, atol=1e-13)


def test_gd_one_step_prediction_matches_torch_autograd_step_and_nonzero_W0():
    """W1 = W0 - lr grad L(W0), L = 1/(2N) sum ||W x_i - y_i||^2, by autograd; the
    construction with W_V = [[0,0],[W0,-I]] gives y_q out = -(W1 - W0) x_q."""
    X, Y, xq = _icl_problem(3)
    N, d_x = X.shape
    g = torch.Generator().manual_seed(9)
    W0 = _randn(g, Y.shape[1], d_x)
    W = W0.clone().requires_grad_(True)
    (0.5 / N * ((X @ W.T - Y) ** 2).sum()).backward()
    W1 = W0 - 0.3 * W.grad
    torch.testing.assert_close(att.gd_one_step_prediction(X, Y, xq, 0.3, W0), W1 @ xq, rtol=1e-13, atol=1e-14)
    out = att.linear_self_attention(att.icl_tokens(X, Y, xq), *att.gd_icl_weights(d_x, Y.shape[1], 0.3, N, W0), N)
    torch.testing.assert_close(-out[-1, d_x:], (W1 - W0) @ xq, rtol=1e-12, atol=1e-13)


def test_linear_self_attention_matches_explicit_double_sum():
    """e_j + P W_V sum_i e_i (e_i^T W_K^T W_Q e_j), written as loops over tokens."""
    g = torch.Generator().manual_seed(4)
    T, D, n_ctx = 6, 4, 4
    E, WK, WQ, WV, P = (_randn(g, T, D), _randn(g, 3, D), _randn(g, 3, D), _randn(g, 5, D), _randn(g, D, 5))
    out = att.linear_self_attention(E, WK, WQ, WV, P, n_ctx)
    for j in range(T):
        acc = sum((E[i] @ WK.T @ WQ @ E[j]) * (P @ WV @ E[i]) for i in range(n_ctx))
        torch.testing.assert_close(out[j], E[j] + acc, rtol=1e-12, atol=1e-12)
