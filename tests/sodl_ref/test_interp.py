"""Tests of sodl_ref.interp: the clock algorithm, induction heads, feature dimensionality."""

import math

import numpy as np
import pytest
import torch

from sodl_ref import interp


def test_clock_logits_equal_sum_of_cosines_nanda_2023():
    """Nanda et al. 2023 sec. 4.1: the trig-identity circuit computes logit(c) = sum_k cos(2 pi k (a + b - c) / p)."""
    p, ks = 23, [1, 5, 9]
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    logits = interp.clock_logits(a, b, p, ks)
    assert logits.shape == (p * p, p) and logits.dtype == torch.float64
    expected = np.zeros((p * p, p))
    for i, (ai, bi) in enumerate(zip(a.tolist(), b.tolist())):
        for c in range(p):
            expected[i, c] = sum(math.cos(2 * math.pi * k * (ai + bi - c) / p) for k in ks)
    np.testing.assert_allclose(logits.numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("p, ks", [(23, [4]), (59, [3, 17, 28]), (113, [14, 35, 41, 42, 52])])
def test_clock_is_exact_over_all_pairs(p, ks):
    """100% accuracy over all p^2 pairs; the winning logit is exactly K (all cosines = 1), the runner-up strictly lower."""
    assert interp.clock_accuracy(p, ks) == 1.0
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    logits = interp.clock_logits(a.reshape(-1), b.reshape(-1), p, ks)
    top2 = logits.topk(2, dim=1).values
    torch.testing.assert_close(top2[:, 0], torch.full((p * p,), float(len(ks)), dtype=torch.float64), rtol=0, atol=1e-12)
    assert float((top2[:, 0] - top2[:, 1]).min()) > 1e-3


def test_clock_fails_exactly_when_frequency_shares_a_factor_with_p():
    """p = 12, k = 3: cos(pi (a+b-c)/2) = 1 at three answers; argmax takes the smallest, right in exactly 1/3 of the pairs."""
    assert interp.clock_accuracy(12, [3]) == pytest.approx(1 / 3, abs=1e-15)


def test_fourier_basis_is_orthonormal_and_clock_embedding_is_sparse():
    """The real Fourier basis of Z_p is orthonormal; the clock embedding lives only at its key frequencies, norm sqrt(p) each."""
    p, ks = 31, [2, 7, 11]
    B, freq = interp.fourier_basis(p)
    torch.testing.assert_close(B @ B.T, torch.eye(p, dtype=torch.float64), rtol=0, atol=1e-12)
    norms = interp.fourier_norms(interp.clock_embedding(p, ks))
    expected = torch.zeros((p + 1) // 2, dtype=torch.float64)
    expected[ks] = math.sqrt(p)
    torch.testing.assert_close(norms, expected, rtol=0, atol=1e-10)


def _ideal_patterns(L):
    T = 2 * L
    prev = torch.zeros(T, T, dtype=torch.float64)
    prev[0, 0] = 1
    prev[torch.arange(1, T), torch.arange(0, T - 1)] = 1
    ind = torch.eye(T, dtype=torch.float64)
    i = torch.arange(L, T)
    ind[i, i] = 0
    ind[i, i - L + 1] = 1
    return prev, ind


def test_induction_scores_of_ideal_heads():
    """A perfect previous-token head scores 1 on previous_token; a perfect induction head 1 on prefix_matching (Olsson et al. 2022)."""
    L = 7
    prev, ind = _ideal_patterns(L)
    s = interp.induction_scores(torch.stack([prev, ind]), L)
    torch.testing.assert_close(s["previous_token"], torch.tensor([1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(s["prefix_matching"], torch.tensor([0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(s["duplicate_token"], torch.tensor([0.0, 0.0], dtype=torch.float64))


def test_induction_scores_match_loops_with_bos_prefix():
    """Random causal patterns with a BOS prefix: vectorized scores equal explicit Python loops."""
    g = torch.Generator().manual_seed(0)
    L, H, T = 6, 3, 13
    scores = torch.randn(H, T, T, generator=g, dtype=torch.float64)
    attn = torch.softmax(scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), -math.inf), -1)
    s = interp.induction_scores(attn, L, prefix=1)
    for h in range(H):
        A = attn[h].tolist()
        pm = sum(A[i][i - L + 1] for i in range(1 + L, 1 + 2 * L)) / L
        dup = sum(A[i][i - L] for i in range(1 + L, 1 + 2 * L)) / L
        pt = sum(A[i][i - 1] for i in range(1, T)) / (T - 1)
        assert math.isclose(float(s["prefix_matching"][h]), pm, rel_tol=1e-12)
        assert math.isclose(float(s["duplicate_token"][h]), dup, rel_tol=1e-12)
        assert math.isclose(float(s["previous_token"][h]), pt, rel_tol=1e-12)


def _circuit_by_loops(tokens, V, beta):
    """The same two heads written as explicit per-position softmaxes (no matrices)."""
    T = len(tokens)
    A1 = np.zeros((T, T))
    for i in range(T):
        e = [math.exp(beta * (j == i - 1)) for j in range(i + 1)]
        A1[i, : i + 1] = np.array(e) / sum(e)
    prev = np.zeros((T, V))
    for i in range(T):
        for j in range(i + 1):
            prev[i, tokens[j]] += A1[i, j]
    A2 = np.zeros((T, T))
    for i in range(T):
        e = [math.exp(beta * prev[j, tokens[i]]) for j in range(i + 1)]
        A2[i, : i + 1] = np.array(e) / sum(e)
    logits = np.zeros((T, V))
    for i in range(T):
        for j in range(i + 1):
            logits[i, tokens[j]] += beta * A2[i, j]
    return logits, A1, A2


def test_induction_circuit_matches_explicit_loops():
    """The weight-matrix construction equals a direct per-position computation of the two heads (tokens with repeats)."""
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(6, (15,), generator=g)
    out = interp.induction_circuit(tokens, 6, beta=3.0)
    logits, A1, A2 = _circuit_by_loops(tokens.tolist(), 6, 3.0)
    np.testing.assert_allclose(out["attn1"].numpy(), A1, atol=1e-12)
    np.testing.assert_allclose(out["attn2"].numpy(), A2, atol=1e-12)
    np.testing.assert_allclose(out["logits"].numpy(), logits, atol=1e-12)


def test_induction_circuit_predicts_second_copy_of_repeated_sequences():
    """[BOS, x, x] with distinct x: every next token of the second copy is predicted, cross-entropy near 0;
    the heads score ~1 as previous-token and induction heads."""
    g = torch.Generator().manual_seed(2)
    V, L = 30, 12
    seqs = interp.repeated_random_tokens(20, L, V, g, distinct=True, bos=V)
    for tokens in seqs:
        out = interp.induction_circuit(tokens, V + 1, beta=20.0)
        pos = torch.arange(1 + L, 2 * L)  # positions whose next token is in the second copy
        assert torch.equal(out["logits"][pos].argmax(1), tokens[pos + 1])
        ce = torch.nn.functional.cross_entropy(out["logits"][pos], tokens[pos + 1])
        assert float(ce) < 1e-5
        s = interp.induction_scores(torch.stack([out["attn1"], out["attn2"]]), L, prefix=1)
        assert float(s["previous_token"][0]) > 0.999 and float(s["prefix_matching"][1]) > 0.999


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 8, 12])
def test_feature_dimensionality_regular_polygon_is_2_over_n(n):
    """Elhage et al. 2022 sec. 7: n features on a regular n-gon in 2-D each have dimensionality 2/n (n >= 3)."""
    theta = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    W = torch.stack([torch.cos(theta), torch.sin(theta)], 1) * 1.7
    torch.testing.assert_close(interp.feature_dimensionality(W), torch.full((n,), 2 / n, dtype=torch.float64))


def test_feature_dimensionality_antipodal_orthogonal_and_zero():
    """Antipodal pairs give 1/2 (the digon), orthogonal features 1, an unrepresented feature 0."""
    W = torch.tensor([[2.0, 0, 0], [-2.0, 0, 0], [0, 0.5, 0], [0, 0, 0]], dtype=torch.float64)
    torch.testing.assert_close(interp.feature_dimensionality(W), torch.tensor([0.5, 0.5, 1.0, 0.0], dtype=torch.float64))


def test_feature_dimensionality_matches_loop_and_sums_to_at_most_rank():
    """Against the definition by loops on random W; and sum_i D_i <= rank(W) by Cauchy-Schwarz
    (D_i <= w_i^T (W^T W)^+ w_i, whose sum is the rank), with equality for a tight frame."""
    g = torch.Generator().manual_seed(3)
    W = torch.randn(9, 4, generator=g, dtype=torch.float64) * torch.rand(9, 1, generator=g, dtype=torch.float64)
    D = interp.feature_dimensionality(W)
    for i in range(9):
        wi = W[i] / W[i].norm()
        assert math.isclose(float(D[i]), float(W[i].norm() ** 2 / sum(float(wi @ W[j]) ** 2 for j in range(9))), rel_tol=1e-12)
    assert float(D.sum()) <= 4 + 1e-12
    Q, _ = torch.linalg.qr(torch.randn(9, 4, generator=g, dtype=torch.float64))  # tight frame: W^T W = I
    assert math.isclose(float(interp.feature_dimensionality(Q).sum()), 4.0, rel_tol=1e-12)
