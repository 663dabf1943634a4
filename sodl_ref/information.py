"""Information: Gaussian KL and mutual information, the Gaussian information
bottleneck, a binned mutual-information estimator, and arithmetic coding
(prediction = compression).

All information quantities are in nats unless the name says bits. Arrays
are float64 torch tensors and stay on the input's device; code bits and
symbols are lists of Python ints.

References
- Cover & Thomas 2006, "Elements of Information Theory", eq. (8.56)
  (Gaussian entropy), Ex. 8.9 / eq. (9.*) (Gaussian mutual information),
  Section 13.3 (arithmetic coding: code length < -log2 p(x) + 2).
- Chechik, Globerson, Tishby & Weiss 2005, "Information Bottleneck for
  Gaussian Variables", JMLR 6, Theorem 3.1: critical tradeoffs
  beta_c,i = 1 / (1 - lambda_i), lambda_i the eigenvalues of
  Sigma_{x|y} Sigma_x^{-1}.
- Shwartz-Ziv & Tishby 2017, "Opening the Black Box of Deep Neural Networks
  via Information", Section 2.4 (binned plug-in estimator of I(T; X)).
- Witten, Neal & Cleary 1987, "Arithmetic coding for data compression".
"""

from __future__ import annotations

import bisect
import math
from itertools import accumulate

import numpy as np
import torch

from sodl_ref.tensors import as_float64

__all__ = [
    "kl_gaussian",
    "gaussian_entropy",
    "gaussian_mutual_information",
    "gib_critical_betas",
    "gib_projection",
    "binned_mutual_information",
    "arithmetic_encode",
    "arithmetic_decode",
    "ideal_code_length",
    "kt_byte_probs",
    "bits_per_byte",
]


def _logdet_spd(L: torch.Tensor) -> torch.Tensor:
    """log det of an SPD matrix from its Cholesky factor L."""
    return 2.0 * torch.log(torch.diagonal(L)).sum()


# ---------------------------------------------------------------------------
# Gaussian closed forms
# ---------------------------------------------------------------------------


def kl_gaussian(mu1, cov1, mu2, cov2) -> float:
    """KL(N(mu1, cov1) || N(mu2, cov2)) in nats (Cover & Thomas 2006, Ex. 8.x):

        1/2 [ tr(S2^{-1} S1) + (mu2 - mu1)^T S2^{-1} (mu2 - mu1) - d
              + log det S2 - log det S1 ].

    mu: [d]; cov: [d, d] symmetric positive definite. Returns a float.
    """
    mu1 = as_float64(mu1)
    cov1, mu2, cov2 = as_float64(cov1, like=mu1), as_float64(mu2, like=mu1), as_float64(cov2, like=mu1)
    d = mu1.shape[0]
    L1 = torch.linalg.cholesky(cov1)  # [d, d]
    L2 = torch.linalg.cholesky(cov2)  # [d, d]
    M = torch.linalg.solve_triangular(L2, L1, upper=False)  # L2^{-1} L1
    z = torch.linalg.solve_triangular(L2, (mu2 - mu1)[:, None], upper=False)  # [d, 1]
    trace = (M ** 2).sum()  # tr(S2^{-1} S1)
    maha = (z ** 2).sum()
    return float(0.5 * (trace + maha - d + _logdet_spd(L2) - _logdet_spd(L1)))


def gaussian_entropy(cov) -> float:
    """Differential entropy of N(mu, cov) in nats: 1/2 log det(2 pi e cov)
    (Cover & Thomas 2006, Theorem 8.4.1). cov: [d, d]."""
    cov = as_float64(cov)
    d = cov.shape[0]
    return float(0.5 * (d * math.log(2 * math.pi * math.e) + _logdet_spd(torch.linalg.cholesky(cov))))


def gaussian_mutual_information(cov, dx: int) -> float:
    """I(X; Y) in nats for a jointly Gaussian (X, Y) with X the first dx
    coordinates: 1/2 [log det S_xx + log det S_yy - log det S]
    (Cover & Thomas 2006, Section 8.5). cov: [dx + dy, dx + dy]."""
    cov = as_float64(cov)
    lx = _logdet_spd(torch.linalg.cholesky(cov[:dx, :dx]))
    ly = _logdet_spd(torch.linalg.cholesky(cov[dx:, dx:]))
    lxy = _logdet_spd(torch.linalg.cholesky(cov))
    return float(0.5 * (lx + ly - lxy))


def _gib_eig(cov, dx: int):
    """Eigen-decomposition behind the Gaussian IB. Returns (lambda [dx]
    ascending, V [dx, dx] left eigenvectors as columns, Sigma_x)."""
    cov = as_float64(cov)
    Sx, Sxy, Sy = cov[:dx, :dx], cov[:dx, dx:], cov[dx:, dx:]
    Sx_y = Sx - Sxy @ torch.linalg.solve(Sy, Sxy.T)  # Sigma_{x|y}: [dx, dx]
    Lx = torch.linalg.cholesky(Sx)
    # Sigma_{x|y} Sigma_x^{-1} is similar to the symmetric Lx^{-1} Sigma_{x|y} Lx^{-T}
    A = torch.linalg.solve_triangular(Lx, Sx_y, upper=False)
    A = torch.linalg.solve_triangular(Lx, A.T, upper=False)  # [dx, dx]
    lam, U = torch.linalg.eigh(0.5 * (A + A.T))  # ascending
    # left eigenvectors v^T (Sigma_{x|y} Sigma_x^{-1}) = lambda v^T: v = Lx^{-T} u
    V = torch.linalg.solve_triangular(Lx.T, U, upper=True)
    return lam, V, Sx


LAMBDA_ONE_TOL = 1e-10  # eigenvalues this close to 1 carry no information about Y


def gib_critical_betas(cov, dx: int) -> torch.Tensor:
    """Critical tradeoff parameters of the Gaussian information bottleneck
    (Chechik et al. 2005, Theorem 3.1): beta_c,i = 1 / (1 - lambda_i), with
    lambda_i the eigenvalues of Sigma_{x|y} Sigma_x^{-1} in ascending order
    (so the betas ascend: the most informative direction appears first).
    A direction with lambda_i = 1 (no information about Y) gives inf; "= 1"
    within LAMBDA_ONE_TOL, since round-off puts such an eigenvalue at
    1 +- 1e-16, and 1 - 1e-16 would otherwise give 1e16 instead of inf.

    cov: [dx + dy, dx + dy] joint covariance with X first. Returns [dx].
    """
    lam, _, _ = _gib_eig(cov, dx)
    lam = lam.clamp(0.0, 1.0)
    return torch.where(lam > 1.0 - LAMBDA_ONE_TOL, torch.inf, 1.0 / (1.0 - lam))


def gib_projection(cov, dx: int, beta: float) -> torch.Tensor:
    """Optimal Gaussian IB projection A (T = A X + noise, noise ~ N(0, I)),
    Chechik et al. 2005, Theorem 3.1: rows alpha_i v_i^T with v_i the left
    eigenvectors of Sigma_{x|y} Sigma_x^{-1} and

        alpha_i = sqrt((beta (1 - lambda_i) - 1) / (lambda_i v_i^T Sigma_x v_i))

    for beta > beta_c,i, and 0 otherwise. Returns A: [dx, dx] (rows ordered
    by ascending lambda; zero rows for directions not yet switched on).
    """
    lam, V, Sx = _gib_eig(cov, dx)
    r = torch.einsum("ij,ik,kj->j", V, Sx, V)  # v_i^T Sx v_i, [dx]
    num = (beta * (1 - lam) - 1).clamp(min=0.0)
    alpha = torch.sqrt(num / (lam.clamp(min=1e-300) * r))
    return alpha[:, None] * V.T  # [dx, dx]


# ---------------------------------------------------------------------------
# Binned mutual information
# ---------------------------------------------------------------------------


def _bin_index(v: torch.Tensor, bins: int) -> torch.Tensor:
    """Equal-width bins over [min, max]; the maximum goes in the last bin."""
    lo, hi = v.min(), v.max()
    if hi == lo:
        return torch.zeros_like(v, dtype=torch.long)
    idx = torch.floor((v - lo) / (hi - lo) * bins).long()
    return idx.clamp(0, bins - 1)


def binned_mutual_information(x, y, bins: int = 10) -> float:
    """Plug-in estimate of I(X; Y) in nats from samples of two scalars
    (Shwartz-Ziv & Tishby 2017, Section 2.4): discretize each variable into
    ``bins`` equal-width bins over its sample range [min, max] (like
    ``numpy.histogram``), then

        I = sum_{a,b} p(a,b) log( p(a,b) / (p(a) p(b)) )

    with the empirical frequencies. Biased upward by about
    (bins - 1)^2 / (2 n) for independent variables (Miller-Madow).

    x, y: [n]. Returns a float.
    """
    x = as_float64(x).reshape(-1)
    y = as_float64(y, like=x).reshape(-1)
    n = x.shape[0]
    ix, iy = _bin_index(x, bins), _bin_index(y, bins)
    joint = torch.bincount(ix * bins + iy, minlength=bins * bins).reshape(bins, bins)
    pxy = joint.to(torch.float64) / n  # [bins, bins]
    px, py = pxy.sum(1, keepdim=True), pxy.sum(0, keepdim=True)
    nz = pxy > 0
    return float((pxy[nz] * torch.log(pxy[nz] / (px @ py)[nz])).sum())


# ---------------------------------------------------------------------------
# Arithmetic coding
# ---------------------------------------------------------------------------


def _integer_freqs(probs, n: int) -> list:
    """Rows of exact integer frequencies proportional to the given
    probabilities (integer input is used as is; floats are dyadic rationals,
    scaled exactly to a common power of two). Returns n lists of K ints."""
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().cpu().numpy()
    p = np.asarray(probs)
    if p.ndim == 1:
        p = np.broadcast_to(p, (n, p.shape[0]))
    if p.shape[0] != n:
        raise ValueError("probs must have one row per symbol")
    if np.issubdtype(p.dtype, np.integer):
        return [[int(v) for v in row] for row in p]
    p = p.astype(np.float64)
    if (p < 0).any() or not np.isfinite(p).all():
        raise ValueError("probabilities must be finite and nonnegative")
    mant, ex = np.frexp(p)  # p = mant * 2^ex, mant in [0.5, 1)
    M = (mant * 2.0 ** 53).astype(np.int64)  # exact
    rows = []
    for Mr, er in zip(M, ex):
        e0 = int(er[Mr > 0].min()) if (Mr > 0).any() else 0
        rows.append([int(m) << (int(e) - e0) if m > 0 else 0 for m, e in zip(Mr, er)])
    return rows


def arithmetic_encode(symbols, probs) -> list:
    """Arithmetic coding of a sequence under per-position distributions
    (Witten, Neal & Cleary 1987; Cover & Thomas 2006, Section 13.3), in exact
    rational arithmetic.

    The interval starts at [0, 1); symbol s_t under p_t (symbols ordered
    0..K-1) maps [low, low + w) to [low + w C_t(s_t), low + w C_t(s_t + 1))
    with C_t(s) = sum_{j < s} p_t(j). The codeword is the shortest bit
    string b_1..b_k whose whole dyadic interval [0.b, 0.b + 2^-k) lies
    inside the final interval, the leftmost one if several do. This code is
    prefix-free and its length k satisfies
    -log2 p(x) <= k < -log2 p(x) + 2.

    symbols: [n] ints in 0..K-1; probs: [n, K] (row t is the model's
    prediction for position t; any nonnegative weights, normalized per row,
    floats taken exactly) or [K] for an i.i.d. model. Returns a list of bits.
    """
    symbols = [int(s) for s in (symbols.tolist() if hasattr(symbols, "tolist") else symbols)]
    freqs = _integer_freqs(probs, len(symbols))
    # interval [low/D, (low + width)/D) kept over a common integer denominator
    low, width, D = 0, 1, 1
    for s, row in zip(symbols, freqs):
        if row[s] <= 0:
            raise ValueError("a symbol of probability zero cannot be coded")
        cum = sum(row[:s])
        T = sum(row)
        low, width, D = low * T + width * cum, width * row[s], D * T
    k = max(0, D.bit_length() - width.bit_length() - 1)  # <= -log2(width / D)
    while True:
        c = -((-low << k) // D)  # ceil(low * 2^k / D)
        if (c + 1) * D <= (low + width) << k:
            break
        k += 1
    return [(c >> (k - 1 - i)) & 1 for i in range(k)]


def arithmetic_decode(bits, probs, n: int) -> list:
    """Inverse of ``arithmetic_encode``: the n symbols whose nested intervals
    contain the number 0.b_1 b_2 ... b_k (exact). bits: list of 0/1;
    probs: as for the encoder. Returns a list of n ints."""
    bits = [int(b) for b in bits]
    k = len(bits)
    c = 0
    for b in bits:
        c = (c << 1) | b
    freqs = _integer_freqs(probs, n)
    low, width, D = 0, 1, 1
    out = []
    for row in freqs:
        T = sum(row)
        cums = list(accumulate(row, initial=0))  # [K + 1]
        # symbol s with low*T + width*cums[s] <= c D T / 2^k < low*T + width*cums[s+1]
        # low*T + width*cums[s] <= c D T / 2^k  <=>  cums[s] <= q below
        q = (c * D * T - (low * T << k)) // (width << k)
        s = bisect.bisect_right(cums, q) - 1
        while row[s] == 0:  # empty symbols share their left edge with the next
            s -= 1
        out.append(s)
        low, width, D = low * T + width * cums[s], width * row[s], D * T
    return out


def ideal_code_length(symbols, probs) -> float:
    """-sum_t log2 p_t(s_t) in bits (the Shannon code length of the
    sequence under the model). symbols: [n]; probs: [n, K] or [K]."""
    p = as_float64(probs)
    s = torch.as_tensor(symbols, dtype=torch.long, device=p.device).reshape(-1)
    if p.dim() == 1:
        p = p.expand(s.shape[0], -1)
    p = p / p.sum(-1, keepdim=True)
    return float(-torch.log2(p[torch.arange(s.shape[0], device=p.device), s]).sum())


def kt_byte_probs(data: bytes, alphabet: int = 256) -> torch.Tensor:
    """Predictions of the adaptive order-0 Krichevsky-Trofimov model
    p_t(a) = (count_{<t}(a) + 1/2) / (t + alphabet / 2). data: n bytes.
    Returns [n, alphabet] (row t uses only data[:t], so a decoder can
    rebuild it symbol by symbol)."""
    x = torch.as_tensor(list(data), dtype=torch.long)
    onehot = torch.nn.functional.one_hot(x, alphabet).to(torch.float64)  # [n, A]
    counts = torch.cumsum(onehot, 0) - onehot  # counts before position t
    return (counts + 0.5) / (counts.sum(1, keepdim=True) + alphabet / 2)


def bits_per_byte(code_bits: int, n_bytes: int) -> float:
    """Compression rate: total code length in bits over the number of bytes."""
    return float(code_bits) / float(n_bytes)
