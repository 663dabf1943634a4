"""Statistical physics of learning: capacities, teacher-student, Ising.

The perceptron's storage capacity (Gardner 1988), the Hopfield network's
critical load from the replica-symmetric theory of Amit, Gutfreund and
Sompolinsky (1985, 1987), the generalization error of a perceptron student
learning a perceptron teacher (Engel & van den Broeck 2001, ch. 2), and the
two-dimensional Ising model on a small torus, exactly by enumeration and
approximately by Metropolis sampling.

Conventions. Gaussian measure Dt = exp(-t^2/2) dt / sqrt(2 pi). Ising
energy E(s) = -J sum_i s_i (s_{i+x} + s_{i+y}) on an L x L torus: every
site has a right and a down bond, 2 L^2 bonds in all (for L = 2 each
neighbouring pair is joined by two bonds, the usual torus convention).
Scalars come back as Python floats, arrays as float64 torch tensors.
"""
import math

import numpy as np
import torch
from scipy import optimize, special

# ---------------------------------------------------------------------------
# Gardner capacity of the spherical perceptron
# ---------------------------------------------------------------------------

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(200)


def _gaussian_tail_integral(f, lower, span=14.0):
    """int_{lower}^{inf} Dt f(t) by 200-point Gauss-Legendre on [lower, upper].

    The Gaussian weight is below 1e-40 beyond max(lower, 0) + span, so the
    truncation error is far below float64 resolution for polynomial f.
    """
    upper = max(lower, 0.0) + span
    t = 0.5 * (upper - lower) * _GL_NODES + 0.5 * (upper + lower)  # [200]
    w = 0.5 * (upper - lower) * _GL_WEIGHTS
    gauss = np.exp(-0.5 * t**2) / math.sqrt(2 * math.pi)
    return float(np.sum(w * gauss * f(t)))


def gardner_capacity(kappa=0.0):
    """Critical load alpha_c = P/N of the spherical perceptron at margin kappa.

    Gardner (1988), J. Phys. A 21, 257, the replica result for the volume
    of couplings at margin kappa (also Engel & van den Broeck 2001, ch. 6):

        1 / alpha_c(kappa) = int_{-kappa}^{inf} Dt (t + kappa)^2,

    computed by Gauss-Legendre quadrature. alpha_c(0) = 2 (Cover 1965);
    alpha_c decreases with kappa. Returns a Python float.
    """
    kappa = float(kappa)
    inverse = _gaussian_tail_integral(lambda t: (t + kappa) ** 2, -kappa)
    return 1.0 / inverse


# ---------------------------------------------------------------------------
# Hopfield network: zero-temperature replica-symmetric theory (AGS)
# ---------------------------------------------------------------------------
# At T = 0 the RS saddle point of Amit, Gutfreund & Sompolinsky (1987),
# Ann. Phys. 173, 30 (the beta -> infinity limit of their RS equations), reads, for the retrieval overlap m,
# C = beta (1 - q) and the noise amplification r,
#     m = erf(y),   y = m / sqrt(2 alpha r),
#     C = sqrt(2 / (pi alpha r)) exp(-y^2),
#     r = 1 / (1 - C)^2.
# Eliminating m, C and r leaves one equation in y:
#     g(y) := erf(y) - (2 y / sqrt(pi)) exp(-y^2) = sqrt(2 alpha) y.
# A retrieval state (m > 0) exists iff the line sqrt(2 alpha) y meets g(y)
# away from 0, i.e. iff sqrt(2 alpha) <= max_y g(y) / y.


def _ags_g(y):
    """g(y) = erf(y) - (2y/sqrt(pi)) exp(-y^2) (numpy or float)."""
    return special.erf(y) - 2.0 * y / math.sqrt(math.pi) * np.exp(-(y**2))


def hopfield_retrieval(alpha):
    """Retrieval solution of the T = 0 RS equations of the Hopfield model.

    Amit, Gutfreund & Sompolinsky (1987), Ann. Phys. 173, 30, RS equations
    at T = 0 (see the comment above for the equations). For a
    load alpha = P/N returns a dict of Python floats ``{"m", "C", "r", "y"}``
    for the retrieval state with the largest overlap m, or ``None`` when no
    retrieval state exists (alpha > alpha_c ~ 0.138).
    """
    alpha = float(alpha)
    if alpha <= 0:
        return {"m": 1.0, "C": 0.0, "r": 1.0, "y": math.inf}
    s = math.sqrt(2 * alpha)
    y_star = _ags_argmax()
    if _ags_g(y_star) / y_star < s:
        return None
    # g(y) - s y > 0 at y_star and -> 1 - s y < 0 for large y: the largest
    # root lies to the right of y_star, and it is the stable retrieval state.
    hi = y_star
    while _ags_g(hi) - s * hi > 0:
        hi *= 2.0
    y = optimize.brentq(lambda u: _ags_g(u) - s * u, y_star, hi, xtol=1e-15, rtol=1e-15)
    m = float(special.erf(y))
    C = 2.0 * y / math.sqrt(math.pi) * math.exp(-(y**2)) / m
    r = 1.0 / (1.0 - C) ** 2
    return {"m": m, "C": C, "r": r, "y": y}


def _ags_argmax():
    """argmax_y g(y)/y, found as the root of d/dy [g(y)/y] in (0.5, 4)."""
    # d/dy (g/y) = (y g'(y) - g(y)) / y^2 and g'(y) = (4 y^2/sqrt(pi)) e^{-y^2}.
    def dratio(y):
        return y * 4.0 * y**2 / math.sqrt(math.pi) * math.exp(-(y**2)) - _ags_g(y)

    return optimize.brentq(dratio, 0.5, 4.0, xtol=1e-15, rtol=1e-15)


def hopfield_capacity():
    """Critical load alpha_c of the Hopfield network at zero temperature.

    Largest alpha for which the replica-symmetric equations of Amit,
    Gutfreund & Sompolinsky (1985 PRL 55, 1530; 1987 Ann. Phys. 173, 30)
    have a retrieval solution: alpha_c = max_y g(y)^2 / (2 y^2), solved
    numerically (root of the derivative). AGS report alpha_c ~ 0.138, with
    m ~ 0.967 at the transition. Returns a Python float.
    """
    y = _ags_argmax()
    return float(_ags_g(y) ** 2 / (2 * y**2))


# ---------------------------------------------------------------------------
# Teacher-student perceptron
# ---------------------------------------------------------------------------


def perceptron_generalization_error(w_student, w_teacher):
    """Generalization error of a perceptron student sign(w.x) vs a teacher.

    For isotropic Gaussian inputs x, the probability that student and
    teacher disagree is eps = arccos(R) / pi with R the normalized overlap
    R = w.w_t / (|w| |w_t|) (Engel & van den Broeck 2001, ch. 2; Seung,
    Sompolinsky & Tishby 1992). ``w_student: [..., N]`` (a batch of
    students), ``w_teacher: [N]`` -> ``[...]`` float64 tensor.
    """
    w = torch.as_tensor(w_student, dtype=torch.float64)
    t = torch.as_tensor(w_teacher, dtype=torch.float64, device=w.device)
    R = (w @ t) / (w.norm(dim=-1) * t.norm())  # [...]
    return torch.arccos(R.clamp(-1.0, 1.0)) / math.pi


def hebb_overlap(alpha):
    """Overlap R(alpha) of the Hebbian student w = sum_mu sigma_mu xi_mu.

    Teacher-student perceptron with P = alpha N Gaussian examples labelled
    by the teacher; for N -> infinity (Vallet 1989; Engel & van den Broeck
    2001, ch. 3)  R = sqrt(2 alpha / (2 alpha + pi)), so
    eps = arccos(R)/pi decays as 1 / sqrt(2 pi alpha) for large alpha.
    Returns a Python float (or a float64 tensor for tensor input).
    """
    if isinstance(alpha, (int, float)):
        return math.sqrt(2 * alpha / (2 * alpha + math.pi))
    a = torch.as_tensor(alpha, dtype=torch.float64)
    return torch.sqrt(2 * a / (2 * a + math.pi))


def hebb_student(x, labels):
    """Hebbian student w = sum_mu labels_mu x_mu / sqrt(N).

    ``x: [P, N]``, ``labels: [P]`` (+-1) -> ``[N]`` float64 tensor.
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    labels = torch.as_tensor(labels, dtype=torch.float64, device=x.device)
    return labels @ x / math.sqrt(x.shape[1])


# ---------------------------------------------------------------------------
# Two-dimensional Ising model on an L x L torus
# ---------------------------------------------------------------------------


def ising_energy(spins, J=1.0):
    """Energy E(s) = -J sum_i s_i (s_{i+x} + s_{i+y}) with periodic boundaries.

    ``spins: [..., L, L]`` of +-1 -> ``[...]`` float64 tensor (total energy,
    not per site).
    """
    s = torch.as_tensor(spins, dtype=torch.float64)
    bonds = s * torch.roll(s, -1, dims=-1) + s * torch.roll(s, -1, dims=-2)  # [..., L, L]
    return -float(J) * bonds.sum(dim=(-1, -2))


def all_configurations(n):
    """All 2^n spin configurations as a ``[2^n, n]`` float64 tensor of +-1."""
    idx = torch.arange(2**n, dtype=torch.int64)[:, None]  # [2^n, 1]
    bits = (idx >> torch.arange(n, dtype=torch.int64)) & 1  # [2^n, n]
    return (2 * bits - 1).to(torch.float64)


def ising_exact(L, beta, J=1.0):
    """Exact thermodynamics of the L x L periodic Ising model by enumeration.

    Sums over all 2^(L^2) configurations (L <= 4): Z = sum_s exp(-beta E(s)),
    E as in :func:`ising_energy`. Returns a dict of Python floats:
    ``"logZ"``, ``"energy"`` = <E> / L^2 (mean energy per site),
    ``"abs_magnetization"`` = <|sum_i s_i|> / L^2, plus
    ``"specific_heat"`` = beta^2 Var(E) / L^2 and ``"susceptibility"`` =
    beta <M^2> / L^2 (M = sum_i s_i). Checked against Kaufman's (1949)
    finite-torus partition function in the tests.
    """
    if not 1 <= L <= 4:
        raise ValueError("exact enumeration is limited to L <= 4 (2^16 states)")
    n = L * L
    s = all_configurations(n).reshape(-1, L, L)  # [2^n, L, L]
    E = ising_energy(s, J)  # [2^n]
    M = s.sum(dim=(-1, -2))  # [2^n]
    logw = -float(beta) * E
    logZ = torch.logsumexp(logw, dim=0)
    p = torch.exp(logw - logZ)  # [2^n] Boltzmann probabilities
    mean_E = (p * E).sum()
    var_E = (p * (E - mean_E) ** 2).sum()
    return {
        "logZ": float(logZ),
        "energy": float(mean_E) / n,
        "abs_magnetization": float((p * M.abs()).sum()) / n,
        "specific_heat": float(beta) ** 2 * float(var_E) / n,
        "susceptibility": float(beta) * float((p * M**2).sum()) / n,
    }


def _checkerboard(L, device=None):
    """Boolean masks ``[2, L, L]`` of the even and odd sublattices."""
    i = torch.arange(L, device=device)
    parity = (i[:, None] + i[None, :]) % 2
    return torch.stack([parity == 0, parity == 1])


def metropolis_sweep(spins, beta, J, uniforms):
    """One checkerboard Metropolis sweep of a batch of Ising configurations.

    Metropolis et al. (1953) single-spin-flip dynamics, sublattice by
    sublattice (even sites (i + j) % 2 == 0 first, then odd): flipping s_i
    costs dE_i = 2 J s_i h_i with h_i the sum of the four neighbours, and
    the flip is accepted iff u_i < exp(-beta dE_i). Sites of one colour do
    not interact (L even), so updating a colour at once is exact
    sequential Metropolis. The randomness is passed in, so the sweep is a
    deterministic function of its inputs.

    ``spins: [B, L, L]`` (+-1), ``uniforms: [2, B, L, L]`` in [0, 1)
    (``uniforms[c]`` is used for colour c) -> new ``[B, L, L]`` float64.
    """
    s = torch.as_tensor(spins, dtype=torch.float64).clone()
    u = torch.as_tensor(uniforms, dtype=torch.float64, device=s.device)
    L = s.shape[-1]
    if L % 2:
        raise ValueError("checkerboard updates need an even L")
    for colour, mask in enumerate(_checkerboard(L, s.device)):
        h = (torch.roll(s, 1, -1) + torch.roll(s, -1, -1)
             + torch.roll(s, 1, -2) + torch.roll(s, -1, -2))  # [B, L, L]
        dE = 2.0 * float(J) * s * h
        flip = mask & (u[colour] < torch.exp(-float(beta) * dE))
        s = torch.where(flip, -s, s)
    return s


def metropolis_ising(L, beta, n_sweeps, n_chains=64, J=1.0, n_burn=100, generator=None):
    """Metropolis sampling of the L x L periodic Ising model.

    Runs ``n_chains`` independent chains from random starts for ``n_burn +
    n_sweeps`` checkerboard sweeps (:func:`metropolis_sweep`), recording
    after each of the last ``n_sweeps``. ``generator`` is a
    ``torch.Generator`` (CPU) that drives all randomness. Returns a dict of
    float64 tensors ``"energy": [n_sweeps, n_chains]`` (energy per site)
    and ``"abs_magnetization": [n_sweeps, n_chains]`` (|M| per site).
    Chains are independent, so the spread of per-chain means gives an
    honest Monte Carlo error bar.
    """
    if generator is None:
        raise ValueError("pass an explicit torch.Generator")
    n = L * L
    s = 2.0 * torch.randint(0, 2, (n_chains, L, L), generator=generator, dtype=torch.float64) - 1.0
    energies, mags = [], []
    for t in range(n_burn + n_sweeps):
        u = torch.rand((2, n_chains, L, L), generator=generator, dtype=torch.float64)
        s = metropolis_sweep(s, beta, J, u)
        if t >= n_burn:
            energies.append(ising_energy(s, J) / n)
            mags.append(s.sum(dim=(-1, -2)).abs() / n)
    return {"energy": torch.stack(energies), "abs_magnetization": torch.stack(mags)}
