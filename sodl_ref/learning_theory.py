"""Learning theory: capacity measures, memorization and generalization bounds.

Week 3 of the course ("the generalization mystery"). Exact, small-system
versions of the classical tools: empirical Rademacher complexity by
enumerating all sign vectors, shattering by halfspaces decided by linear
programming, the explicit ReLU network of Zhang et al. (2017) that fits
any labels, and the concentration bounds (Hoeffding, union, PAC-Bayes-kl).

Conventions: float64 torch tensors in and out (numpy arrays and numbers
accepted); scalars are Python floats, counts Python ints; labels in {-1, +1}.

Sources: Bartlett & Mendelson (2002) "Rademacher and Gaussian complexities";
Massart (2000) "Some applications of concentration inequalities";
Kakade, Sridharan & Tewari (2009) "On the complexity of linear prediction";
Cover (1965); Vapnik & Chervonenkis (1971); Zhang, Bengio, Hardt, Recht &
Vinyals (2017) "Understanding deep learning requires rethinking
generalization"; Hoeffding (1963); Seeger (2002), Maurer (2004)
"A note on the PAC Bayesian theorem"; Langford (2005) "Tutorial on
practical prediction theory".
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sodl_ref.tensors import as_float64

__all__ = [
    "all_sign_vectors",
    "rademacher_finite_class",
    "massart_bound",
    "rademacher_linear_class",
    "rademacher_linear_bound",
    "halfspace_separable",
    "count_halfspace_dichotomies",
    "shattered_by_halfspaces",
    "memorizing_relu_net",
    "relu_net_forward",
    "hoeffding_epsilon",
    "binomial_deviation_probability",
    "kl_bernoulli",
    "kl_inverse_upper",
    "pac_bayes_kl_bound",
]


# ---------------------------------------------------------------------------
# Rademacher complexity
# ---------------------------------------------------------------------------

def all_sign_vectors(n: int, device=None) -> torch.Tensor:
    """All 2^n vectors in {-1, +1}^n as rows, float64. n <= 24. Returns [2^n, n]."""
    if n > 24:
        raise ValueError("exact enumeration of 2^n sign vectors is limited to n <= 24")
    codes = torch.arange(2 ** n, device=device)[:, None]  # [2^n, 1]
    bits = (codes >> torch.arange(n, device=device)) & 1  # [2^n, n]
    return (2 * bits - 1).to(torch.float64)


def rademacher_finite_class(predictions) -> float:
    """Empirical Rademacher complexity of a finite class, by exact enumeration.

    R_S(H) = E_sigma [ max_h 1/n sum_i sigma_i h(x_i) ]  (Bartlett & Mendelson
    2002, Def. 2; the version without absolute value), sigma uniform on
    {-1, +1}^n. predictions: [m, n], row j = (h_j(x_1), ..., h_j(x_n)).
    """
    H = as_float64(predictions)
    n = H.shape[1]
    sigma = all_sign_vectors(n, H.device)  # [2^n, n]
    return float((sigma @ H.T).max(dim=1).values.mean() / n)


def massart_bound(predictions) -> float:
    """Massart's finite class lemma: R_S(H) <= max_h ||h||_2 sqrt(2 log m) / n.

    (Massart 2000, Lemma 5.2.) predictions: [m, n].
    """
    H = as_float64(predictions)
    m, n = H.shape
    return float(H.norm(dim=1).max() * math.sqrt(2 * math.log(m)) / n)


def rademacher_linear_class(X, B: float = 1.0) -> float:
    """Empirical Rademacher complexity of {x -> <w, x> : ||w||_2 <= B}, exactly.

    By Cauchy-Schwarz the supremum over the ball is attained at
    w = B s / ||s||, s = sum_i sigma_i x_i, so
    R_S = B / n * E_sigma || sum_i sigma_i x_i ||_2, and the expectation is
    computed by enumerating all 2^n sign vectors. X: [n, d].
    """
    X = as_float64(X)
    n = X.shape[0]
    sigma = all_sign_vectors(n, X.device)  # [2^n, n]
    return float(B * (sigma @ X).norm(dim=1).mean() / n)


def rademacher_linear_bound(X, B: float = 1.0) -> float:
    """Jensen's upper bound B / n * sqrt(sum_i ||x_i||^2) on the linear class's complexity.

    (Kakade, Sridharan & Tewari 2009, Thm 3 for the l2 ball; Bartlett &
    Mendelson 2002, Lemma 22.) X: [n, d].
    """
    X = as_float64(X)
    return float(B * X.pow(2).sum().sqrt() / X.shape[0])


# ---------------------------------------------------------------------------
# Shattering by halfspaces (linear programming)
# ---------------------------------------------------------------------------

def halfspace_separable(X, y, bias: bool = True) -> bool:
    """Is there (w, b) with y_i (<w, x_i> + b) >= 1 for all i?  (LP feasibility)

    Strict separability by an affine halfspace (homogeneous if bias=False)
    is equivalent to feasibility of these constraints after rescaling.
    Solved with scipy.optimize.linprog (HiGHS), zero objective.
    X: [n, d], y: [n] in {-1, +1}.
    """
    from scipy.optimize import linprog

    Xn = as_float64(X).cpu().numpy()
    yn = as_float64(y).cpu().numpy()
    A = np.c_[Xn, np.ones(len(Xn))] if bias else Xn  # [n, d (+1)]
    res = linprog(np.zeros(A.shape[1]), A_ub=-(yn[:, None] * A), b_ub=-np.ones(len(Xn)),
                  bounds=[(None, None)] * A.shape[1], method="highs")
    return res.status == 0


def count_halfspace_dichotomies(X, bias: bool = True) -> int:
    """Number of labelings in {-1, +1}^n realized by (affine) halfspaces on the rows of X.

    Enumerates the 2^n labelings and decides each by `halfspace_separable`;
    y and -y are realized together, so only half are solved. For points in
    general position this is Cover's (1965) count C(n, d + 1) with bias,
    C(n, d) without. X: [n, d], n <= 16.
    """
    X = as_float64(X)
    n = X.shape[0]
    signs = all_sign_vectors(n)
    half = signs[signs[:, -1] > 0]  # one of each pair {y, -y}
    return 2 * sum(halfspace_separable(X, y, bias) for y in half)


def shattered_by_halfspaces(X, bias: bool = True) -> bool:
    """Do (affine) halfspaces realize all 2^n labelings of the rows of X? X: [n, d]."""
    return count_halfspace_dichotomies(X, bias) == 2 ** as_float64(X).shape[0]


# ---------------------------------------------------------------------------
# Memorization with a two-layer ReLU network
# ---------------------------------------------------------------------------

def memorizing_relu_net(X, y, a=None, generator: torch.Generator | None = None) -> dict:
    """A depth-2 ReLU net with 2n + d weights that fits any labels (Zhang et al. 2017, Thm 1).

    f(x) = sum_j w_j relu(<a, x> - b_j). Choose a with distinct projections
    z_i = <a, x_i> (a random direction works almost surely), sort them, and
    interleave the biases b_1 < z_(1) < b_2 < z_(2) < ... < b_n < z_(n)
    (here b_1 = z_(1) - 1 and b_j the midpoint of z_(j-1), z_(j)). Then
    M_ij = relu(z_(i) - b_j) is lower triangular with a positive diagonal,
    hence invertible, and w = M^{-1} y_sorted (Zhang et al. 2017, Lemma 1
    in Appendix C).
    X: [n, d], y: [n], a: [d] or None (drawn N(0, I) from `generator`).
    Returns {"a": [d], "b": [n], "w": [n]} (b, w in the sorted order of z).
    """
    X = as_float64(X)
    y = as_float64(y, X.device)
    n, d = X.shape
    if a is None:
        a = torch.randn(d, generator=generator, dtype=torch.float64).to(X.device)
    a = as_float64(a, X.device)
    z = X @ a  # [n]
    z_sorted, order = torch.sort(z)
    if n > 1 and bool((z_sorted[1:] - z_sorted[:-1] <= 0).any()):
        raise ValueError("the projections <a, x_i> must be distinct")
    b = torch.empty(n, dtype=torch.float64, device=X.device)
    b[0] = z_sorted[0] - 1.0
    b[1:] = 0.5 * (z_sorted[1:] + z_sorted[:-1])
    M = torch.relu(z_sorted[:, None] - b[None, :])  # [n, n] lower triangular
    w = torch.linalg.solve_triangular(M, y[order][:, None], upper=False)[:, 0]  # [n]
    return {"a": a, "b": b, "w": w}


def relu_net_forward(X, a, b, w) -> torch.Tensor:
    """f(x) = sum_j w_j relu(<a, x> - b_j) for each row. X: [m, d], a: [d], b, w: [k] -> [m]."""
    X = as_float64(X)
    a, b, w = as_float64(a, X.device), as_float64(b, X.device), as_float64(w, X.device)
    return torch.relu((X @ a)[:, None] - b[None, :]) @ w  # [m, k] @ [k]


# ---------------------------------------------------------------------------
# Concentration and PAC-Bayes
# ---------------------------------------------------------------------------

def hoeffding_epsilon(n: int, delta: float, num_hypotheses: int = 1) -> float:
    """Uniform deviation for a finite class: sqrt(log(2 M / delta) / (2 n)).

    Hoeffding (1963, Thm 2) gives P(|R_hat - R| >= eps) <= 2 exp(-2 n eps^2)
    for a loss in [0, 1]; a union bound over M hypotheses multiplies the
    failure probability by M. With probability >= 1 - delta, every h has
    |R_hat(h) - R(h)| <= eps.
    """
    return math.sqrt(math.log(2.0 * num_hypotheses / delta) / (2.0 * n))


def binomial_deviation_probability(n: int, p: float, eps: float) -> float:
    """Exact P(|S/n - p| >= eps) for S ~ Binomial(n, p).

    Counts k with |k - n p| >= n eps - 1e-9 (the tolerance makes boundary
    cases such as n p + n eps integer count as >=, despite round-off).
    """
    n, p = int(n), float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError("p must lie in [0, 1]")
    k = np.arange(n + 1)
    if p in (0.0, 1.0):  # S is deterministic
        pmf = (k == round(n * p)).astype(np.float64)
    else:
        log_comb = np.array([math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) for j in k])
        pmf = np.exp(log_comb + k * math.log(p) + (n - k) * math.log1p(-p))  # [n + 1]
    mask = np.abs(k - n * p) >= n * eps - 1e-9
    return float(pmf[mask].sum())


def kl_bernoulli(q: float, p: float) -> float:
    """Binary relative entropy kl(q || p) = q log(q/p) + (1-q) log((1-q)/(1-p)), nats.

    Conventions 0 log 0 = 0; +inf when p in {0, 1} and q differs.
    """
    q, p = float(q), float(p)

    def term(a, b):
        if a == 0.0:
            return 0.0
        if b == 0.0:
            return math.inf
        return a * math.log(a / b)

    return term(q, p) + term(1.0 - q, 1.0 - p)


def kl_inverse_upper(q: float, c: float, iters: int = 200) -> float:
    """kl^{-1}(q, c) = sup { p in [q, 1] : kl(q || p) <= c }, by bisection.

    kl(q || .) is increasing on [q, 1], so bisection on [q, 1] converges to
    the unique crossing (or returns 1 when kl(q || 1) <= c, i.e. never for
    q < 1 since kl(q || 1) = inf). Used to invert the PAC-Bayes-kl bound
    (Seeger 2002; Langford 2005, Sec. 4).
    """
    q, c = float(q), float(c)
    if c <= 0.0:
        return q
    lo, hi = q, 1.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if kl_bernoulli(q, mid) > c:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-15:
            break
    return lo


def pac_bayes_kl_bound(empirical_risk: float, kl_posterior_prior: float, n: int, delta: float) -> float:
    """PAC-Bayes-kl upper bound on the risk of the Gibbs classifier Q.

    With probability >= 1 - delta over n i.i.d. samples, simultaneously for
    all posteriors Q:  kl( R_hat(Q) || R(Q) ) <= (KL(Q || P) + log(2 sqrt(n) / delta)) / n
    (Seeger 2002; Maurer 2004, Thm 5). Returns kl^{-1}(R_hat, rhs).
    """
    rhs = (float(kl_posterior_prior) + math.log(2.0 * math.sqrt(n) / delta)) / n
    return kl_inverse_upper(empirical_risk, rhs)
