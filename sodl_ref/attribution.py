"""Data attribution: leave-one-out, influence functions, datamodels.

Week 16 of the course. Which training examples is a prediction due to?

- Exact leave-one-out (LOO) for ridge regression by the Sherman-Morrison
  formula, and the PRESS residuals r_i / (1 - h_ii) (Allen 1974).
- Influence functions (Cook & Weisberg 1982; Koh & Liang 2017, eqs. 1-2):
  the first-order change of the fitted parameters when one training example
  is removed, H^{-1} grad L_i(theta_hat), for ridge and L2-regularized
  logistic regression.
- Datamodels (Ilyas, Park, Engstrom, Leclerc & Madry 2022): regress a
  model output f(S), obtained by training on a random subset S, on the
  subset's indicator vector 1_S; the weights attribute f to examples.

Objectives are sums over examples (not means), so that removing example i
is simply dropping its term:

    ridge:     J(theta) = 1/2 sum_i (x_i . theta - y_i)^2 + lam/2 ||theta||^2
    logistic:  J(theta) = sum_i [softplus(x_i . theta) - y_i x_i . theta] + lam/2 ||theta||^2,  y_i in {0, 1}

With Koh & Liang's mean objective (1/n) sum_i L_i and upweighting epsilon,
removing an example is epsilon = -1/n; the 1/n cancels against their mean
Hessian, giving the same H^{-1} grad L_i as here with the summed Hessian.
No intercept: append a column of ones to X to have one (it is then
regularized too). Float64 torch tensors in and out, numpy accepted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as Fn

from sodl_ref.tensors import as_float64

Tensor = torch.Tensor

__all__ = [
    "ridge_fit",
    "ridge_hat_diagonal",
    "ridge_loo_params",
    "ridge_loo_residuals",
    "ridge_influence",
    "logistic_fit",
    "logistic_hessian",
    "logistic_influence",
    "logistic_loo_params",
    "logistic_test_loss_influence",
    "sample_subset_masks",
    "fit_datamodel",
    "ridge_subset_predictions",
]


# ---------------------------------------------------------------------------
# Ridge regression: exact leave-one-out and influence
# ---------------------------------------------------------------------------


def _ridge_hessian(X: Tensor, lam: float) -> Tensor:
    return X.T @ X + float(lam) * torch.eye(X.shape[1], dtype=X.dtype, device=X.device)  # [d, d]


def ridge_fit(X, y, lam: float) -> Tensor:
    """Ridge estimate theta = (X^T X + lam I)^{-1} X^T y.  X: [n, d], y: [n] -> [d]."""
    X = as_float64(X)
    y = as_float64(y, X.device)
    return torch.linalg.solve(_ridge_hessian(X, lam), X.T @ y)


def ridge_hat_diagonal(X, lam: float) -> Tensor:
    """Leverages h_ii = x_i^T (X^T X + lam I)^{-1} x_i, the diagonal of the hat matrix.  [n]"""
    X = as_float64(X)
    Hinv_XT = torch.linalg.solve(_ridge_hessian(X, lam), X.T)  # [d, n]
    return (X * Hinv_XT.T).sum(-1)


def ridge_loo_params(X, y, lam: float) -> Tensor:
    """Exact leave-one-out ridge parameters without refitting, by Sherman-Morrison.

    Removing example i replaces H = X^T X + lam I by H - x_i x_i^T and X^T y by
    X^T y - y_i x_i; with the residual r_i = y_i - x_i . theta and the leverage
    h_ii = x_i^T H^{-1} x_i, the Sherman-Morrison formula gives

        theta_{-i} = theta - H^{-1} x_i r_i / (1 - h_ii).

    Args:
        X: [n, d]; y: [n]; lam >= 0 (X^T X + lam I must stay invertible without any one row).

    Returns:
        [n, d], row i the parameters fitted without example i.
    """
    X = as_float64(X)
    y = as_float64(y, X.device)
    H = _ridge_hessian(X, lam)
    theta = torch.linalg.solve(H, X.T @ y)  # [d]
    r = y - X @ theta  # [n] residuals
    Hinv_x = torch.linalg.solve(H, X.T).T  # [n, d], row i = H^{-1} x_i
    h = (X * Hinv_x).sum(-1)  # [n] leverages
    return theta[None, :] - Hinv_x * (r / (1.0 - h))[:, None]


def ridge_loo_residuals(X, y, lam: float) -> Tensor:
    """Leave-one-out residuals y_i - x_i . theta_{-i} = r_i / (1 - h_ii) (PRESS, Allen 1974).  [n]"""
    X = as_float64(X)
    y = as_float64(y, X.device)
    r = y - X @ ridge_fit(X, y, lam)
    return r / (1.0 - ridge_hat_diagonal(X, lam))


def ridge_influence(X, y, lam: float) -> Tensor:
    """Influence-function estimate of theta_{-i} - theta for ridge, Koh & Liang (2017), eq. 1.

        theta_{-i} - theta ~ H^{-1} grad L_i(theta) = -H^{-1} x_i r_i,   H = X^T X + lam I.

    For a quadratic objective it misses only the leverage factor: the exact
    change is this divided by (1 - h_ii) (compare :func:`ridge_loo_params`).

    Returns:
        [n, d].
    """
    X = as_float64(X)
    y = as_float64(y, X.device)
    H = _ridge_hessian(X, lam)
    theta = torch.linalg.solve(H, X.T @ y)
    r = y - X @ theta  # [n]
    return -torch.linalg.solve(H, X.T).T * r[:, None]


# ---------------------------------------------------------------------------
# Logistic regression: influence functions
# ---------------------------------------------------------------------------


def logistic_fit(X, y, lam: float, sample_weight=None, tol: float = 1e-12, max_iter: int = 100,
                 theta0=None) -> Tensor:
    """L2-regularized logistic regression by Newton's method.

    Minimizes sum_i w_i [softplus(x_i . theta) - y_i x_i . theta] + lam/2 ||theta||^2
    (w_i = 1 unless ``sample_weight`` is given; y_i in {0, 1}).

    Args:
        X: [n, d]; y: [n]; lam > 0 (or separable data diverges);
        sample_weight: optional [n]; theta0: optional [d] starting point.

    Returns:
        theta: [d], converged to max |Newton step| < tol.
    """
    X = as_float64(X)
    y = as_float64(y, X.device)
    w = torch.ones_like(y) if sample_weight is None else as_float64(sample_weight, X.device)
    d = X.shape[1]
    theta = torch.zeros(d, dtype=torch.float64, device=X.device) if theta0 is None else as_float64(theta0, X.device).clone()
    eye = torch.eye(d, dtype=torch.float64, device=X.device)
    for _ in range(max_iter):
        p = torch.sigmoid(X @ theta)  # [n]
        grad = X.T @ (w * (p - y)) + lam * theta  # [d]
        H = (X * (w * p * (1 - p))[:, None]).T @ X + lam * eye  # [d, d]
        step = torch.linalg.solve(H, grad)
        theta = theta - step
        if step.abs().max() < tol:
            break
    return theta


def logistic_hessian(X, theta, lam: float) -> Tensor:
    """Hessian of the regularized logistic objective, sum_i p_i (1 - p_i) x_i x_i^T + lam I.  [d, d]"""
    X = as_float64(X)
    theta = as_float64(theta, X.device)
    p = torch.sigmoid(X @ theta)
    return (X * (p * (1 - p))[:, None]).T @ X + float(lam) * torch.eye(X.shape[1], dtype=torch.float64, device=X.device)


def logistic_influence(X, y, theta, lam: float) -> Tensor:
    """Influence-function estimate of theta_{-i} - theta for logistic regression (Koh & Liang 2017, eq. 1).

        theta_{-i} - theta ~ H^{-1} grad L_i(theta),   grad L_i = (sigma(x_i . theta) - y_i) x_i,
        H = sum_j sigma_j (1 - sigma_j) x_j x_j^T + lam I,

    at the fitted theta (removing i is upweighting by epsilon = -1, and
    d theta / d epsilon = -H^{-1} grad L_i). The error is second order in
    the (small) change.

    Args:
        X: [n, d]; y: [n] in {0, 1}; theta: [d] the fitted parameters; lam.

    Returns:
        [n, d], row i the predicted parameter change when example i is removed.
    """
    X = as_float64(X)
    y = as_float64(y, X.device)
    theta = as_float64(theta, X.device)
    p = torch.sigmoid(X @ theta)  # [n]
    grads = X * (p - y)[:, None]  # [n, d] per-example gradients
    return torch.linalg.solve(logistic_hessian(X, theta, lam), grads.T).T


def logistic_loo_params(X, y, lam: float, tol: float = 1e-12) -> Tensor:
    """Exact leave-one-out logistic parameters by n refits (Newton, warm-started at the full fit).  [n, d]"""
    X = as_float64(X)
    y = as_float64(y, X.device)
    theta = logistic_fit(X, y, lam, tol=tol)
    out = []
    for i in range(X.shape[0]):
        keep = torch.ones(X.shape[0], dtype=torch.bool, device=X.device)
        keep[i] = False
        out.append(logistic_fit(X[keep], y[keep], lam, tol=tol, theta0=theta))
    return torch.stack(out)


def logistic_test_loss_influence(X, y, theta, lam: float, x_test, y_test) -> Tensor:
    """Predicted change of the test loss when each training example is removed (Koh & Liang 2017, eq. 2).

        L(z_test, theta_{-i}) - L(z_test, theta) ~ grad L(z_test)^T H^{-1} grad L_i
                                                 = -(1/n) I_up,loss(z_i, z_test) in their notation.

    Positive: removing i would hurt the test point (i is a helpful example).

    Args:
        X, y, theta, lam: as in :func:`logistic_influence`; x_test: [d]; y_test in {0, 1}.

    Returns:
        [n].
    """
    X = as_float64(X)
    x_test = as_float64(x_test, X.device)
    theta = as_float64(theta, X.device)
    g_test = (torch.sigmoid(x_test @ theta) - float(y_test)) * x_test  # [d]
    return logistic_influence(X, y, theta, lam) @ g_test


# ---------------------------------------------------------------------------
# Datamodels
# ---------------------------------------------------------------------------


def sample_subset_masks(n: int, m: int, alpha: float, generator: torch.Generator | None = None) -> Tensor:
    """m random training subsets as a [m, n] bool mask, each example included independently with probability alpha.

    (Ilyas et al. 2022 draw subsets of size exactly alpha n; independent
    inclusion keeps the intercept of the datamodel identifiable, since with
    a fixed size the indicators sum to a constant.)
    """
    device = generator.device if generator is not None else None
    return torch.rand(m, n, generator=generator, dtype=torch.float64, device=device) < alpha


def fit_datamodel(masks, outputs, lam: float = 0.0) -> tuple[Tensor, float]:
    """Linear datamodel f(S) ~ b + sum_i theta_i 1[i in S], by (ridge-)regularized least squares.

    Ilyas et al. (2022), eq. 2, with an L2 penalty in place of their L1:

        min_{theta, b} sum_j (f(S_j) - b - 1_{S_j} . theta)^2 + lam ||theta||^2   (b not penalized).

    Args:
        masks: [m, n] bool or 0/1, row j the indicator of subset S_j.
        outputs: [m] the model output f(S_j) after training on S_j.
        lam: >= 0 (0: ordinary least squares, minimum norm if rank deficient).

    Returns:
        (theta [n], b float).
    """
    M = as_float64(masks)
    f = as_float64(outputs, M.device)
    A = torch.cat([torch.ones(M.shape[0], 1, dtype=torch.float64, device=M.device), M], 1)  # [m, n+1]
    if lam == 0:
        sol = torch.linalg.lstsq(A, f[:, None], driver="gelsd" if A.device.type == "cpu" else None).solution[:, 0]
    else:
        pen = torch.full((A.shape[1],), float(lam), dtype=torch.float64, device=M.device)
        pen[0] = 0.0
        sol = torch.linalg.solve(A.T @ A + torch.diag(pen), A.T @ f)
    return sol[1:], float(sol[0])


def ridge_subset_predictions(X, y, masks, lam: float, x_test) -> Tensor:
    """Prediction at x_test of ridge regressions trained on each subset: the f(S_j) of a ridge datamodel.

        f(S) = x_test . (X_S^T X_S + lam I)^{-1} X_S^T y_S

    Args:
        X: [n, d]; y: [n]; masks: [m, n]; lam > 0; x_test: [d].

    Returns:
        [m].
    """
    X = as_float64(X)
    y = as_float64(y, X.device)
    M = as_float64(masks, X.device)  # [m, n]
    x_test = as_float64(x_test, X.device)
    # X_S^T X_S = sum_i m_i x_i x_i^T, batched over subsets
    G = torch.einsum("mi,id,ie->mde", M, X, X) + float(lam) * torch.eye(X.shape[1], dtype=torch.float64, device=X.device)
    b = (M * y) @ X  # [m, d]
    theta = torch.linalg.solve(G, b[:, :, None])[:, :, 0]  # [m, d]
    return theta @ x_test
