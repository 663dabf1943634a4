"""Kolmogorov-Arnold Networks: B-splines, the KAN layer, grids and symbols.

Liu et al. 2024, "KAN: Kolmogorov-Arnold Networks" (arXiv:2404.19756).
A KAN puts a learnable univariate function on every edge; each one is a
B-spline on a grid plus a SiLU "residual" (Sec. 2.2, eqs. 2.10-2.12).
The spline part is linear in its coefficients, so fitting, refining the
grid (Sec. 2.4) and measuring the approximation rate G^{-(k+1)}
(Theorem 2.1) are least-squares problems on the B-spline design matrix.

Conventions: ``knots`` is the full (extended) knot vector t_0 <= ... <=
t_{m+k}; there are m = len(knots) - k - 1 basis functions of degree k and
the spline is defined on [t_k, t_m). A uniform KAN grid with G intervals
on [a, b] is extended by k knots on each side (``uniform_knots``), giving
G + k basis functions. Everything is float64.
"""

from __future__ import annotations

import math

import torch

from sodl_ref.tensors import as_float64

# Candidate functions for symbolic regression (Liu et al. 2024, Sec. 2.5.1,
# the "symbolic library"). Names are data, so tests can pass them around.
SYMBOLIC_LIBRARY = {
    "x": lambda z: z,
    "x^2": lambda z: z**2,
    "x^3": lambda z: z**3,
    "exp": torch.exp,
    "sin": torch.sin,
    "tanh": torch.tanh,
    "gaussian": lambda z: torch.exp(-(z**2)),
    "abs": torch.abs,
}


def uniform_knots(a: float, b: float, grid_size: int, degree: int) -> torch.Tensor:
    """Extended uniform knot vector of a KAN grid (Liu et al. 2024, Sec. 2.2).

    G = ``grid_size`` intervals of width h = (b - a) / G on [a, b], plus
    ``degree`` extra knots on each side so that every point of [a, b] is
    covered by k + 1 basis functions: t_j = a + (j - k) h, j = 0..G+2k.
    Returns [G + 2k + 1]; the spline space has G + k basis functions.
    """
    h = (b - a) / grid_size
    j = torch.arange(grid_size + 2 * degree + 1, dtype=torch.float64)
    return a + (j - degree) * h


def bspline_basis(x, knots, degree: int) -> torch.Tensor:
    """All B-spline basis functions B_{i,k}(x) by the Cox-de Boor recursion.

    de Boor 1972; the KAN spline basis of Liu et al. 2024, eq. 2.12.
        B_{i,0}(x) = 1[t_i <= x < t_{i+1}]
        B_{i,p}(x) = (x - t_i) / (t_{i+p} - t_i) B_{i,p-1}(x)
                   + (t_{i+p+1} - x) / (t_{i+p+1} - t_{i+1}) B_{i+1,p-1}(x),
    with 0/0 := 0 where knots repeat.

    x: [n], inside [knots[degree], knots[-degree-1]); knots: [L] nondecreasing.
    Returns [n, L - degree - 1], float64, on x's device.
    """
    x = as_float64(x).reshape(-1)  # [n]
    t = as_float64(knots, like=x).reshape(-1)  # [L]
    xc = x[:, None]  # [n, 1]
    B = ((t[:-1] <= xc) & (xc < t[1:])).to(torch.float64)  # [n, L-1], degree 0
    for p in range(1, degree + 1):
        # B currently holds degree p-1: [n, L-p]; the new one is [n, L-p-1]
        left_den = t[p:-1] - t[: -p - 1]  # t_{i+p} - t_i, [L-p-1]
        right_den = t[p + 1 :] - t[1:-p]  # t_{i+p+1} - t_{i+1}, [L-p-1]
        left = torch.where(left_den > 0, (xc - t[: -p - 1]) / torch.where(left_den > 0, left_den, 1.0), 0.0)
        right = torch.where(right_den > 0, (t[p + 1 :] - xc) / torch.where(right_den > 0, right_den, 1.0), 0.0)
        B = left * B[:, :-1] + right * B[:, 1:]  # [n, L-p-1]
    return B


def spline_eval(x, knots, coef, degree: int) -> torch.Tensor:
    """Spline sum_i c_i B_i(x) (Liu et al. 2024, eq. 2.12).

    x: [n]; knots: [L]; coef: [..., m] with m = L - degree - 1.
    Returns [n, ...] (the leading dims of coef moved after n).
    """
    B = bspline_basis(x, knots, degree)  # [n, m]
    coef = as_float64(coef, like=B)
    return torch.einsum("nm,...m->n...", B, coef)


def silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU x * sigmoid(x), the KAN base function b(x) (Liu et al. 2024, eq. 2.11)."""
    return x * torch.sigmoid(x)


def kan_layer(x, knots, coef, w_base, w_spline, degree: int = 3) -> torch.Tensor:
    """Forward pass of one KAN layer (Liu et al. 2024, eqs. 2.5 and 2.10-2.12).

    x_out[n, j] = sum_i phi_{i,j}(x[n, i]) with the residual activation
        phi_{i,j}(z) = w_base[i, j] * silu(z) + w_spline[i, j] * sum_m coef[i, j, m] B_m(z).

    x: [n, d_in] inside the grid [knots[degree], knots[-degree-1]);
    knots: [L] shared by all edges; coef: [d_in, d_out, L - degree - 1];
    w_base, w_spline: [d_in, d_out]. Returns [n, d_out].
    """
    x = as_float64(x)
    n, d_in = x.shape
    coef, w_base, w_spline = (as_float64(a, like=x) for a in (coef, w_base, w_spline))
    B = bspline_basis(x.reshape(-1), knots, degree).reshape(n, d_in, -1)  # [n, d_in, m]
    spline = torch.einsum("nim,iom->nio", B, coef)  # [n, d_in, d_out]
    phi = w_base * silu(x)[:, :, None] + w_spline * spline  # [n, d_in, d_out]
    return phi.sum(dim=1)  # [n, d_out]


def fit_spline(x, y, knots, degree: int) -> torch.Tensor:
    """Least-squares spline coefficients: argmin_c ||B(x) c - y||^2.

    The spline part of a KAN edge is linear in c (Liu et al. 2024, eq. 2.12),
    so fitting it to samples is ordinary least squares on the design matrix.
    x: [n]; y: [n] or [n, d]; returns [m] or [d, m] (coefficients last).
    """
    B = bspline_basis(x, knots, degree)  # [n, m]
    y = as_float64(y, like=B)
    Y = y.reshape(len(B), -1)  # [n, d]
    C = torch.linalg.lstsq(B, Y, driver="gelsd").solution if B.device.type == "cpu" else torch.linalg.pinv(B) @ Y
    return C[:, 0] if y.ndim == 1 else C.T.contiguous()  # [m] or [d, m]


def extend_grid(coef, knots_coarse, knots_fine, degree: int, n_samples: int | None = None) -> torch.Tensor:
    """Grid extension: refit a spline on a finer grid (Liu et al. 2024, Sec. 2.4).

    The coarse spline is evaluated at ``n_samples`` uniform points of the
    common domain [t_k, t_{m}) and the fine coefficients are the least-squares
    fit to those values. When the coarse breakpoints are a subset of the fine
    ones (e.g. G' a multiple of G on the same [a, b]) the coarse spline lies in
    the fine spline space (knot insertion / refinement identity) and the fit
    is exact up to rounding.

    coef: [..., m_coarse]; returns [..., m_fine].
    """
    t_c = as_float64(knots_coarse).reshape(-1)
    t_f = as_float64(knots_fine, like=t_c).reshape(-1)
    coef = as_float64(coef, like=t_c)
    m_f = len(t_f) - degree - 1
    a = max(t_c[degree].item(), t_f[degree].item())
    b = min(t_c[-degree - 1].item(), t_f[-degree - 1].item())
    n = n_samples if n_samples is not None else 4 * m_f + 1
    # stay strictly inside the half-open domain [a, b)
    x = torch.linspace(a, b, n + 1, dtype=torch.float64, device=t_c.device)[:-1] + (b - a) / (2 * n)  # [n]
    lead = coef.shape[:-1]
    y = spline_eval(x, t_c, coef.reshape(-1, coef.shape[-1]), degree)  # [n, d]
    c_f = fit_spline(x, y, t_f, degree)  # [d, m_f]
    return c_f.reshape(*lead, m_f)


def spline_error_scaling(x_train, y_train, x_test, y_test, grid_sizes, degree: int, a: float, b: float):
    """Spline approximation error vs grid size (Liu et al. 2024, Theorem 2.1).

    For each G in ``grid_sizes``: least-squares spline on ``uniform_knots(a, b,
    G, degree)`` fitted to (x_train, y_train); RMSE on (x_test, y_test). For a
    smooth target the error decays like G^{-(k+1)}, so the least-squares slope
    of log(RMSE) vs log(G) is close to -(k+1).

    x_*, y_*: [n] inside [a, b). Returns (rmse [len(grid_sizes)], slope float).
    """
    x_train, y_train = as_float64(x_train), as_float64(y_train)
    x_test, y_test = as_float64(x_test, like=x_train), as_float64(y_test, like=x_train)
    errors = []
    for G in grid_sizes:
        knots = uniform_knots(a, b, int(G), degree).to(x_train.device)
        c = fit_spline(x_train, y_train, knots, degree)  # [G + k]
        pred = spline_eval(x_test, knots, c, degree)  # [n_test]
        errors.append(torch.sqrt(torch.mean((pred - y_test) ** 2)))
    errors = torch.stack(errors)  # [len(grid_sizes)]
    slope = loglog_slope(grid_sizes, errors)
    return errors, slope


def loglog_slope(x, y) -> float:
    """Least-squares slope of log(y) against log(x). x, y: [n] positive."""
    lx = torch.log(as_float64(x).reshape(-1))
    ly = torch.log(as_float64(y, like=lx).reshape(-1))
    lx_c, ly_c = lx - lx.mean(), ly - ly.mean()
    return float((lx_c * ly_c).sum() / (lx_c**2).sum())


def fit_symbolic(x, y, name: str, b_grid, c_grid) -> dict:
    """Fit y ~ a * f(b * x + c) + d for one candidate f (Liu et al. 2024, Sec. 2.5.1).

    As in pykan's ``fit_params``: for every (b, c) on the grid the best (a, d)
    is a linear least-squares problem; keep the (b, c) with the largest
    coefficient of determination R^2 = 1 - SS_res / SS_tot (ties: the first
    in row-major order over b_grid x c_grid). ``name`` is a key of
    ``SYMBOLIC_LIBRARY``.

    x, y: [n]; b_grid: [nb]; c_grid: [nc].
    Returns {"a", "b", "c", "d", "r2"} as Python floats.
    """
    x, y = as_float64(x).reshape(-1), as_float64(y).reshape(-1)
    y = y.to(x.device)
    bg, cg = as_float64(b_grid, like=x).reshape(-1), as_float64(c_grid, like=x).reshape(-1)
    f = SYMBOLIC_LIBRARY[name]
    z = f(bg[:, None, None] * x + cg[None, :, None])  # [nb, nc, n]
    # closed-form simple linear regression of y on z for every (b, c)
    zc = z - z.mean(-1, keepdim=True)  # [nb, nc, n]
    yc = y - y.mean()  # [n]
    szz = (zc**2).sum(-1)  # [nb, nc]
    szy = (zc * yc).sum(-1)  # [nb, nc]
    a = torch.where(szz > 0, szy / torch.where(szz > 0, szz, 1.0), 0.0)  # [nb, nc]
    d = y.mean() - a * z.mean(-1)  # [nb, nc]
    ss_res = ((a[..., None] * z + d[..., None] - y) ** 2).sum(-1)  # [nb, nc]
    ss_tot = (yc**2).sum()
    r2 = 1.0 - ss_res / ss_tot  # [nb, nc]
    r2 = torch.nan_to_num(r2, nan=-math.inf)
    idx = int(torch.argmax(r2.reshape(-1)))
    i, j = divmod(idx, len(cg))
    return {"a": float(a[i, j]), "b": float(bg[i]), "c": float(cg[j]), "d": float(d[i, j]), "r2": float(r2[i, j])}


def best_symbolic(x, y, names, b_grid, c_grid) -> tuple[str, dict]:
    """Pick the candidate with the largest R^2 (Liu et al. 2024, Sec. 2.5.1, auto_symbolic).

    Returns (name, fit dict of ``fit_symbolic``); ties go to the first name.
    """
    best_name, best_fit = None, None
    for name in names:
        fit = fit_symbolic(x, y, name, b_grid, c_grid)
        if best_fit is None or fit["r2"] > best_fit["r2"]:
            best_name, best_fit = name, fit
    return best_name, best_fit
