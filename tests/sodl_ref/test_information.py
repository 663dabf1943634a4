"""Tests of sodl_ref.information against torch.distributions (float64),
Monte Carlo with a stated sigma, closed forms, scikit-learn, and exact
rational arithmetic."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from scipy import linalg as sla
from scipy.optimize import minimize_scalar
from sklearn.metrics import mutual_info_score
from torch.distributions import MultivariateNormal, kl_divergence

from sodl_ref import information as inf


def _spd(d, g, jitter=0.3):
    A = torch.randn(d, d, generator=g, dtype=torch.float64)
    return A @ A.T / d + jitter * torch.eye(d, dtype=torch.float64)


# ------------------------------------------------------------------ Gaussians


def test_kl_gaussian_matches_torch_distributions_float64():
    g = torch.Generator().manual_seed(0)
    for d in [1, 3, 6]:
        mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
        S1, S2 = _spd(d, g), _spd(d, g)
        ref = kl_divergence(MultivariateNormal(mu1, S1), MultivariateNormal(mu2, S2)).item()
        ours = inf.kl_gaussian(mu1, S1, mu2, S2)
        assert isinstance(ours, float)
        assert abs(ours - ref) < 1e-10 * max(1.0, ref)
    # numpy input, identical distributions give 0
    assert abs(inf.kl_gaussian(mu1.numpy(), S1.numpy(), mu1.numpy(), S1.numpy())) < 1e-12


def test_kl_gaussian_matches_monte_carlo_log_ratio():
    """KL = E_p[log p(x) - log q(x)], 200k samples; the estimate has standard
    error sd(log ratio)/sqrt(n) (about 0.003 here); tolerance 5 sigma."""
    g = torch.Generator().manual_seed(1)
    d = 3
    mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    S1, S2 = _spd(d, g), _spd(d, g)
    p, q = MultivariateNormal(mu1, S1), MultivariateNormal(mu2, S2)
    L = torch.linalg.cholesky(S1)
    x = mu1 + torch.randn(200_000, d, generator=g, dtype=torch.float64) @ L.T
    lr = p.log_prob(x) - q.log_prob(x)
    sigma = lr.std().item() / math.sqrt(x.shape[0])
    assert abs(inf.kl_gaussian(mu1, S1, mu2, S2) - lr.mean().item()) < 5 * sigma


def test_kl_gaussian_univariate_closed_form():
    """KL(N(m1,s1^2)||N(m2,s2^2)) = log(s2/s1) + (s1^2 + (m1-m2)^2) / (2 s2^2) - 1/2."""
    m1, s1, m2, s2 = 0.3, 0.7, -1.1, 1.9
    expected = math.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - 0.5
    assert abs(inf.kl_gaussian([m1], [[s1 ** 2]], [m2], [[s2 ** 2]]) - expected) < 1e-14


def test_gaussian_entropy_matches_torch_distributions():
    g = torch.Generator().manual_seed(2)
    S = _spd(4, g)
    ref = MultivariateNormal(torch.zeros(4, dtype=torch.float64), S).entropy().item()
    assert abs(inf.gaussian_entropy(S) - ref) < 1e-12


def test_gaussian_mutual_information_bivariate_closed_form_and_kl_identity():
    """I = -1/2 log(1 - rho^2) for a bivariate Gaussian (Cover & Thomas,
    Example 8.5.1); in general I(X;Y) = KL(p(x,y) || p(x) p(y))."""
    rho = 0.83
    cov = torch.tensor([[2.0, rho * math.sqrt(2 * 3)], [rho * math.sqrt(2 * 3), 3.0]], dtype=torch.float64)
    assert abs(inf.gaussian_mutual_information(cov, 1) + 0.5 * math.log(1 - rho ** 2)) < 1e-13
    g = torch.Generator().manual_seed(3)
    S = _spd(5, g)
    prod = S.clone()
    prod[:2, 2:] = 0
    prod[2:, :2] = 0
    z = torch.zeros(5, dtype=torch.float64)
    assert abs(inf.gaussian_mutual_information(S, 2) - inf.kl_gaussian(z, S, z, prod)) < 1e-12
    assert abs(inf.gaussian_mutual_information(prod, 2)) < 1e-13


# ----------------------------------------------------------- Gaussian IB


def _joint_xy(g, dx, dy, noise=0.5):
    """Y = B X + noise, X ~ N(0, Sx): joint covariance with X first."""
    Sx = _spd(dx, g)
    B = torch.randn(dy, dx, generator=g, dtype=torch.float64)
    Sxy = Sx @ B.T
    Sy = B @ Sx @ B.T + noise * torch.eye(dy, dtype=torch.float64)
    return torch.cat([torch.cat([Sx, Sxy], 1), torch.cat([Sxy.T, Sy], 1)], 0)


def test_gib_critical_betas_bivariate_is_one_over_rho_squared():
    """Chechik et al. 2005: for scalars lambda = 1 - rho^2, so beta_c = 1 / rho^2."""
    rho = 0.6
    cov = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64)
    b = inf.gib_critical_betas(cov, 1)
    assert b.shape == (1,) and abs(b[0].item() - 1 / rho ** 2) < 1e-12


def test_gib_critical_betas_match_scipy_eigvals_of_nonsymmetric_product():
    g = torch.Generator().manual_seed(4)
    cov = _joint_xy(g, 4, 2).numpy()
    Sx, Sxy, Sy = cov[:4, :4], cov[:4, 4:], cov[4:, 4:]
    Sx_y = Sx - Sxy @ np.linalg.solve(Sy, Sxy.T)
    lam = np.sort(sla.eigvals(Sx_y @ np.linalg.inv(Sx)).real)
    b = inf.gib_critical_betas(cov, 4)
    # dy = 2 < dx = 4: two directions carry no information about Y (lambda = 1)
    np.testing.assert_allclose(b.numpy()[:2], 1 / (1 - lam[:2]), rtol=1e-9)
    assert torch.all(b[2:] > 1e8)
    assert torch.all(b[1:] >= b[:-1])


def test_gib_critical_beta_is_where_the_scalar_ib_lagrangian_leaves_zero():
    """Independent check of Theorem 3.1: project on the i-th eigendirection,
    T = a v^T X + N(0, 1); L(a) = I(T;X) - beta I(T;Y) is minimized at a = 0
    for beta < beta_c,i and away from 0 for beta > beta_c,i (scipy)."""
    g = torch.Generator().manual_seed(5)
    cov = _joint_xy(g, 3, 3)
    dx = 3
    betas = inf.gib_critical_betas(cov, dx)
    A = inf.gib_projection(cov, dx, 1e9)  # rows proportional to the eigenvectors
    Sx, Sxy, Sy = cov[:dx, :dx], cov[:dx, dx:], cov[dx:, dx:]
    Sx_y = Sx - Sxy @ torch.linalg.solve(Sy, Sxy.T)
    for i in range(dx):
        v = A[i] / A[i].norm()
        vx, vxy = (v @ Sx @ v).item(), (v @ Sx_y @ v).item()

        def lagrangian(a, beta):  # a = log-amplitude for a positive scale
            s = math.exp(a) ** 2
            ixt = 0.5 * math.log1p(s * vx)
            ity = ixt - 0.5 * math.log1p(s * vxy)
            return ixt - beta * ity

        for factor, moves in [(0.9, False), (1.2, True)]:
            beta = factor * betas[i].item()
            res = minimize_scalar(lambda a: lagrangian(a, beta), bounds=(-20, 10), method="bounded")
            assert (res.x > -10) == moves, (i, factor, res.x)


def test_gib_projection_is_zero_below_first_critical_beta_and_grows_above():
    g = torch.Generator().manual_seed(6)
    cov = _joint_xy(g, 3, 1)
    b = inf.gib_critical_betas(cov, 3)
    assert inf.gib_projection(cov, 3, 0.99 * b[0].item()).abs().max() == 0
    A = inf.gib_projection(cov, 3, 2.0 * b[0].item())
    assert A[0].norm() > 0 and A[1:].abs().max() == 0


# ----------------------------------------------------------- binned MI


def test_binned_mi_matches_sklearn_on_numpy_histogram_bins():
    """Bin labels from numpy.histogram's edges (np.digitize), MI of the labels
    by sklearn.metrics.mutual_info_score (nats): an independent pipeline."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=2000)
    y = np.tanh(x) + 0.3 * rng.normal(size=2000)
    for bins in [2, 7, 30]:
        ex, ey = np.histogram_bin_edges(x, bins), np.histogram_bin_edges(y, bins)
        lx = np.clip(np.digitize(x, ex[1:-1]), 0, bins - 1)
        ly = np.clip(np.digitize(y, ey[1:-1]), 0, bins - 1)
        assert abs(inf.binned_mutual_information(x, y, bins) - mutual_info_score(lx, ly)) < 1e-12


def test_binned_mi_approaches_gaussian_closed_form_monte_carlo():
    """rho = 0.8: I = -1/2 log(0.36) = 0.5108 nats. 400k samples, 40 bins:
    discretization loses ~0.01-0.02 and the plug-in bias adds
    (bins-1)^2/(2n) ~ 0.002; sampling sd ~ 0.002. Tolerance 0.04."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=400_000)
    y = 0.8 * x + 0.6 * rng.normal(size=400_000)
    est = inf.binned_mutual_information(x, y, 40)
    assert abs(est - (-0.5 * math.log(1 - 0.64))) < 0.04


def test_binned_mi_of_a_variable_with_itself_is_its_binned_entropy():
    rng = np.random.default_rng(9)
    x = rng.uniform(size=5000)
    counts = np.histogram(x, 8)[0] / 5000
    H = -(counts * np.log(counts)).sum()
    assert abs(inf.binned_mutual_information(x, x, 8) - H) < 1e-12


# ----------------------------------------------------------- arithmetic coding


def _brute_force_codeword(symbols, probs):
    """Shortest leftmost dyadic interval inside the final interval, by
    enumeration of all bit strings (Fractions)."""
    low, w = Fraction(0), Fraction(1)
    for s, row in zip(symbols, probs):
        fr = [Fraction(float(p)) for p in row]
        T = sum(fr)
        low += w * sum(fr[:s]) / T
        w *= fr[s] / T
    k = 0
    while True:
        for c in range(2 ** k):
            if Fraction(c, 2 ** k) >= low and Fraction(c + 1, 2 ** k) <= low + w:
                return [int(b) for b in format(c, f"0{k}b")] if k else []
        k += 1


def test_arithmetic_code_equals_brute_force_enumeration_of_dyadic_intervals():
    rng = np.random.default_rng(10)
    for _ in range(20):
        n, K = rng.integers(1, 6), rng.integers(2, 5)
        probs = rng.dirichlet(np.ones(K), size=n)
        sym = [int(rng.choice(K, p=p)) for p in probs]
        assert inf.arithmetic_encode(sym, probs) == _brute_force_codeword(sym, probs)


def test_arithmetic_coding_round_trip_and_length_within_two_bits_of_ideal():
    """Cover & Thomas 2006, Section 13.3: -log2 p(x) <= len < -log2 p(x) + 2."""
    rng = np.random.default_rng(11)
    for n, K in [(1, 2), (50, 3), (400, 7)]:
        probs = rng.dirichlet(0.5 * np.ones(K), size=n)
        sym = [int(rng.choice(K, p=p)) for p in probs]
        bits = inf.arithmetic_encode(sym, probs)
        assert set(bits) <= {0, 1}
        assert inf.arithmetic_decode(bits, probs, n) == sym
        ideal = inf.ideal_code_length(sym, probs)
        assert ideal - 1e-9 <= len(bits) < ideal + 2
    # an i.i.d. model given as one row, integer frequencies, a zero-probability symbol
    freqs = np.array([3, 0, 1, 4])
    sym = [0, 3, 3, 2, 0, 3]
    bits = inf.arithmetic_encode(sym, freqs)
    assert inf.arithmetic_decode(bits, freqs, 6) == sym
    with pytest.raises(ValueError):
        inf.arithmetic_encode([1], freqs)


def test_code_is_prefix_free_over_all_sequences_of_a_small_source():
    """Kraft: the codewords of all 3^4 sequences form a prefix-free set."""
    p = np.array([0.5, 0.3, 0.2])
    codes = []
    for idx in np.ndindex(3, 3, 3, 3):
        codes.append("".join(map(str, inf.arithmetic_encode(list(idx), p))))
    for a in codes:
        for b in codes:
            assert a == b or not b.startswith(a)
    assert sum(2.0 ** -len(c) for c in codes) <= 1.0


def test_kt_model_bits_per_byte_repetitive_text_vs_random_bytes():
    """Order-0 KT model: the code length is at most the empirical entropy
    n H_emp plus the KT regret (A - 1)/2 log2 n + 1 (Krichevsky & Trofimov
    1981) plus the coder's 2 bits; a 4-letter text costs ~2.34 bits/byte,
    uniform random bytes cannot go below 8 bits/byte."""
    rng = np.random.default_rng(12)
    text = bytes(rng.choice(list(b"acgt"), size=2000).tolist())
    p = inf.kt_byte_probs(text)
    torch.testing.assert_close(p.sum(1), torch.ones(2000, dtype=torch.float64))
    bits = inf.arithmetic_encode(list(text), p)
    assert inf.arithmetic_decode(bits, p, len(text)) == list(text)
    bpb = inf.bits_per_byte(len(bits), len(text))
    freq = np.bincount(list(text), minlength=256) / 2000
    h_emp = -(freq[freq > 0] * np.log2(freq[freq > 0])).sum()
    assert h_emp < bpb <= h_emp + ((255 / 2) * math.log2(2000) + 1 + 2) / 2000
    noise = bytes(rng.integers(0, 256, size=1000).tolist())
    pn = inf.kt_byte_probs(noise)
    assert inf.bits_per_byte(len(inf.arithmetic_encode(list(noise), pn)), 1000) > 8.0
    # the model is causal: row t only depends on data[:t]
    torch.testing.assert_close(inf.kt_byte_probs(text[:50]), p[:50])
