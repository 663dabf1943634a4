"""Tests of sodl_ref.statphys against independent truths.

Closed forms (Gaussian integrals, Kaufman's torus partition function),
scipy quadrature, brute-force loops and seeded Monte Carlo with stated
sigmas.
"""
import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from sodl_ref import statphys as sp


# --- Gardner capacity -------------------------------------------------------


def test_gardner_capacity_at_zero_margin_is_two_cover_1965():
    """Gardner (1988) at kappa = 0: 1/alpha_c = int_0^inf Dt t^2 = 1/2, so
    alpha_c = 2, Cover's (1965) counting result."""
    assert isinstance(sp.gardner_capacity(), float)
    assert sp.gardner_capacity(0.0) == pytest.approx(2.0, abs=1e-12)


@pytest.mark.parametrize("kappa", [-1.5, -0.3, 0.25, 0.7, 1.0, 2.5])
def test_gardner_capacity_matches_scipy_quad_and_closed_form(kappa):
    """Independent scipy.integrate.quad of Gardner's formula, and the closed
    form int_{-k}^inf Dt (t+k)^2 = (1 + k^2) Phi(k) + k phi(k)."""
    quad, _ = integrate.quad(lambda t: stats.norm.pdf(t) * (t + kappa) ** 2, -kappa, np.inf,
                             epsabs=1e-14, epsrel=1e-13)
    closed = (1 + kappa**2) * stats.norm.cdf(kappa) + kappa * stats.norm.pdf(kappa)
    got = sp.gardner_capacity(kappa)
    assert got == pytest.approx(1 / quad, rel=1e-10)
    assert got == pytest.approx(1 / closed, rel=1e-12)


def test_gardner_capacity_decreases_with_margin_and_known_value_kappa_one():
    """alpha_c(kappa) is decreasing; alpha_c(1) = 0.5196 (Gardner 1988,
    Fig. 1 / Engel & van den Broeck 2001, Fig. 6.1)."""
    ks = np.linspace(-1, 3, 17)
    vals = [sp.gardner_capacity(k) for k in ks]
    assert all(a > b for a, b in zip(vals, vals[1:]))
    assert sp.gardner_capacity(1.0) == pytest.approx(0.5196, abs=1e-4)


# --- Hopfield capacity (AGS) --------------------------------------------------


def test_hopfield_capacity_is_0138_amit_gutfreund_sompolinsky_1985():
    """AGS (1985, 1987): the retrieval states disappear at alpha_c ~ 0.138,
    with overlap m ~ 0.967 just below it (value reproduced: 0.13791)."""
    ac = sp.hopfield_capacity()
    assert isinstance(ac, float)
    assert ac == pytest.approx(0.138, abs=5e-4)
    sol = sp.hopfield_retrieval(ac * (1 - 1e-9))
    assert sol["m"] == pytest.approx(0.967, abs=1e-3)
    assert sp.hopfield_retrieval(ac * 1.001) is None


def _ags_fixed_point_iteration(alpha, iters=3000):
    """Direct iteration of m = erf(m / sqrt(2 alpha r)), C = sqrt(2/(pi alpha r))
    exp(-m^2/(2 alpha r)), r = (1 - C)^-2 from the pattern (m = 1, C = 0)."""
    m, C = 1.0, 0.0
    for _ in range(iters):
        r = 1.0 / (1.0 - C) ** 2
        y = m / math.sqrt(2 * alpha * r)
        m = special.erf(y)
        C = math.sqrt(2 / (math.pi * alpha * r)) * math.exp(-(y**2))
        if C >= 1.0 or m < 1e-6:
            return 0.0
    return m


@pytest.mark.parametrize("alpha", [0.02, 0.07, 0.12, 0.135])
def test_hopfield_retrieval_matches_direct_iteration_of_rs_equations(alpha):
    """The root-finding solution equals the fixed point reached by iterating
    the three AGS T=0 equations from the stored pattern."""
    sol = sp.hopfield_retrieval(alpha)
    assert sol["m"] == pytest.approx(_ags_fixed_point_iteration(alpha), abs=1e-7)
    # and the returned (m, C, r) satisfy all three equations
    y = sol["m"] / math.sqrt(2 * alpha * sol["r"])
    assert sol["m"] == pytest.approx(special.erf(y), abs=1e-12)
    assert sol["C"] == pytest.approx(math.sqrt(2 / (math.pi * alpha * sol["r"])) * math.exp(-y * y), abs=1e-12)
    assert sol["r"] == pytest.approx((1 - sol["C"]) ** -2, rel=1e-12)


def test_hopfield_capacity_brackets_iteration_collapse():
    """Bisection on alpha using the direct iteration (an independent method)
    finds the collapse of retrieval at the same alpha_c within 1e-3."""
    lo, hi = 0.10, 0.16
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _ags_fixed_point_iteration(mid, iters=20000) > 0.5 else (lo, mid)
    assert 0.5 * (lo + hi) == pytest.approx(sp.hopfield_capacity(), abs=1e-3)


# --- teacher-student perceptron ---------------------------------------------


def test_generalization_error_matches_monte_carlo_disagreement():
    """eps = arccos(R)/pi vs the disagreement rate on 200000 Gaussian inputs;
    sigma = sqrt(eps (1 - eps) / n) <= 1.2e-3, tolerance 5 sigma."""
    rng = np.random.default_rng(0)
    N, n = 20, 200_000
    teacher = rng.normal(size=N)
    students = rng.normal(size=(3, N)) * 0.3 + teacher * np.array([[0.2], [1.0], [-0.5]])
    x = rng.normal(size=(n, N))
    mc = (np.sign(x @ students.T) != np.sign(x @ teacher)[:, None]).mean(0)
    eps = sp.perceptron_generalization_error(students * np.array([[3.0], [0.1], [7.0]]), teacher)
    assert eps.dtype == torch.float64 and eps.shape == (3,)
    sigma = np.sqrt(mc * (1 - mc) / n)
    assert np.all(np.abs(eps.numpy() - mc) < 5 * sigma + 1e-12)


def test_hebb_student_overlap_matches_large_n_theory_vallet_1989():
    """Hebbian student at N = 2000: R = sqrt(2 alpha/(2 alpha + pi)); the
    finite-size fluctuation of R is O(1/sqrt(P N)) ~ 1e-3; tolerance 0.01."""
    rng = np.random.default_rng(1)
    N = 2000
    teacher = rng.normal(size=N)
    for alpha in [0.5, 2.0, 5.0]:
        x = rng.normal(size=(int(alpha * N), N))
        w = sp.hebb_student(x, np.sign(x @ teacher))
        R = float(w @ torch.as_tensor(teacher) / (w.norm() * np.linalg.norm(teacher)))
        assert R == pytest.approx(sp.hebb_overlap(alpha), abs=0.01)


# --- Ising ------------------------------------------------------------------


def _brute_force_ising(L, beta, J):
    """Plain Python loops over all configurations and bonds."""
    Z = Esum = Msum = 0.0
    for conf in itertools.product([-1, 1], repeat=L * L):
        s = np.array(conf).reshape(L, L)
        E = 0.0
        for i in range(L):
            for j in range(L):
                E -= J * s[i, j] * (s[i, (j + 1) % L] + s[(i + 1) % L, j])
        w = math.exp(-beta * E)
        Z += w
        Esum += w * E
        Msum += w * abs(s.sum())
    return math.log(Z), Esum / Z / (L * L), Msum / Z / (L * L)


@pytest.mark.parametrize("L,beta,J", [(2, 0.3, 1.0), (2, 1.1, -0.7), (3, 0.45, 1.0), (3, 0.2, 2.0)])
def test_ising_exact_matches_brute_force_loop(L, beta, J):
    got = sp.ising_exact(L, beta, J)
    logZ, e, m = _brute_force_ising(L, beta, J)
    assert got["logZ"] == pytest.approx(logZ, rel=1e-12)
    assert got["energy"] == pytest.approx(e, rel=1e-11, abs=1e-13)
    assert got["abs_magnetization"] == pytest.approx(m, rel=1e-11)


def _kaufman_logZ(L, K):
    """Kaufman (1949) partition function of the L x L torus, in the form of
    Beale (1996, PRL 76, 78): Z = 1/2 (2 sinh 2K)^{L^2/2} sum_{i=1}^4 Z_i."""
    def gamma(k):
        if k == 0:
            return 2 * K + math.log(math.tanh(K))
        return math.acosh(math.cosh(2 * K) / math.tanh(2 * K) - math.cos(math.pi * k / L))

    odd = [gamma(2 * k + 1) * L / 2 for k in range(L)]
    even = [gamma(2 * k) * L / 2 for k in range(L)]
    Zs = (np.prod([2 * math.cosh(g) for g in odd]) + np.prod([2 * math.sinh(g) for g in odd])
          + np.prod([2 * math.cosh(g) for g in even]) + np.prod([2 * math.sinh(g) for g in even]))
    return math.log(0.5 * (2 * math.sinh(2 * K)) ** (L * L / 2) * Zs)


@pytest.mark.parametrize("L", [2, 3, 4])
@pytest.mark.parametrize("K", [0.1, 0.4406868, 0.9])
def test_ising_logZ_matches_kaufman_1949_torus_formula(L, K):
    """Enumeration agrees with Kaufman's exact finite-lattice solution (the
    basis of Onsager's 1944 result), including at K_c = ln(1+sqrt 2)/2."""
    assert sp.ising_exact(L, K)["logZ"] == pytest.approx(_kaufman_logZ(L, K), rel=1e-12)


def test_ising_exact_energy_is_minus_dlogZ_dbeta():
    """<E>/N = -(1/N) d log Z / d beta, checked by a central difference."""
    L, b, h = 4, 0.37, 1e-5
    dlogZ = (sp.ising_exact(L, b + h)["logZ"] - sp.ising_exact(L, b - h)["logZ"]) / (2 * h)
    assert sp.ising_exact(L, b)["energy"] == pytest.approx(-dlogZ / L**2, rel=1e-8)


def test_ising_exact_high_and_low_temperature_limits():
    """beta -> 0: log Z = N log 2, E = 0, <|M|>/N = E|Binomial sum|/N.
    beta -> inf: two ground states at E/N = -2J, log Z = log 2 + 2 N beta J,
    |m| = 1 (the limits of Onsager's solution)."""
    from math import comb
    L, N = 4, 16
    hot = sp.ising_exact(L, 0.0)
    assert hot["logZ"] == pytest.approx(N * math.log(2), rel=1e-14)
    assert hot["energy"] == pytest.approx(0.0, abs=1e-14)
    binom_abs = sum(comb(N, k) * abs(2 * k - N) for k in range(N + 1)) / 2**N / N
    assert hot["abs_magnetization"] == pytest.approx(binom_abs, rel=1e-12)
    cold = sp.ising_exact(L, 20.0, J=1.5)
    assert cold["energy"] == pytest.approx(-3.0, rel=1e-12)
    assert cold["abs_magnetization"] == pytest.approx(1.0, rel=1e-12)
    assert cold["logZ"] == pytest.approx(math.log(2) + 2 * N * 20.0 * 1.5, rel=1e-14)


# --- Metropolis ---------------------------------------------------------------


def _sequential_metropolis_sweep(s, beta, J, u):
    """Site-by-site Metropolis in plain loops: even sites in raster order,
    then odd sites, site (i, j) of colour c using u[c, b, i, j]."""
    s = s.clone()
    B, L, _ = s.shape
    for colour in (0, 1):
        for b in range(B):
            for i in range(L):
                for j in range(L):
                    if (i + j) % 2 != colour:
                        continue
                    h = s[b, (i + 1) % L, j] + s[b, i - 1, j] + s[b, i, (j + 1) % L] + s[b, i, j - 1]
                    dE = 2 * J * s[b, i, j] * h
                    if u[colour, b, i, j] < math.exp(-beta * dE):
                        s[b, i, j] = -s[b, i, j]
    return s


@pytest.mark.parametrize("L,beta,J", [(2, 0.4, 1.0), (4, 0.3, 1.0), (6, 0.8, -0.5)])
def test_checkerboard_sweep_equals_sequential_single_site_metropolis(L, beta, J):
    g = torch.Generator().manual_seed(L)
    s = 2.0 * torch.randint(0, 2, (3, L, L), generator=g, dtype=torch.float64) - 1
    u = torch.rand((2, 3, L, L), generator=g, dtype=torch.float64)
    assert torch.equal(sp.metropolis_sweep(s, beta, J, u), _sequential_metropolis_sweep(s, beta, J, u))


def test_metropolis_sweep_by_hand_single_defect():
    """A single + spin (site (0,0)) in a sea of - on a 4x4 torus: its flip has
    dE = -8 and is always taken; then every spin is -, and odd site (0,1)
    (dE = +8) flips iff u < exp(-8 beta)."""
    s = -torch.ones(1, 4, 4, dtype=torch.float64)
    s[0, 0, 0] = 1.0
    u = torch.full((2, 1, 4, 4), 0.999, dtype=torch.float64)
    assert torch.equal(sp.metropolis_sweep(s, 0.1, 1.0, u), -torch.ones(1, 4, 4, dtype=torch.float64))
    u[1, 0, 0, 1] = 0.99 * math.exp(-0.8)
    expect = -torch.ones(1, 4, 4, dtype=torch.float64)
    expect[0, 0, 1] = 1.0
    assert torch.equal(sp.metropolis_sweep(s, 0.1, 1.0, u), expect)


@pytest.mark.parametrize("beta", [0.25, 0.44, 0.7])
def test_metropolis_energy_matches_exact_enumeration_4x4(beta):
    """Energy and |m| per site of 64 independent chains x 1500 sweeps vs exact
    enumeration. sigma = std of the 64 chain means / sqrt(64) (chains are
    independent; about 0.003-0.01 here); tolerance 5 sigma."""
    g = torch.Generator().manual_seed(int(beta * 100))
    run = sp.metropolis_ising(4, beta, n_sweeps=1500, n_chains=64, n_burn=200, generator=g)
    exact = sp.ising_exact(4, beta)
    for key in ("energy", "abs_magnetization"):
        chain_means = run[key].mean(0)  # [64]
        sigma = float(chain_means.std() / math.sqrt(len(chain_means)))
        assert 0 < sigma < 0.02
        assert abs(float(chain_means.mean()) - exact[key]) < 5 * sigma, key
