"""Phenomena of scale: double descent, grokking data, metric-induced emergence.

- Random-features double descent: ridgeless (minimum-norm) regression on
  ReLU random features peaks at the interpolation threshold p = n
  (Belkin et al. 2019; Mei & Montanari 2022).
- Modular-arithmetic tables on which transformers grok (Power et al. 2022).
- Emergence as an artifact of the metric (Schaeffer, Miranda & Koyejo 2023):
  a per-token accuracy that improves smoothly with scale gives an
  exact-match accuracy p^L that looks like a sudden jump.

Float64 torch tensors in and out (numpy accepted); explicit generators.
"""

from __future__ import annotations

import math

import torch

from sodl_ref.tensors import as_float64


# ---------------------------------------------------------------------------
# Random-features double descent
# ---------------------------------------------------------------------------


def linear_teacher_data(n, d, noise=0.5, generator=None, device=None):
    """Gaussian inputs and a noisy linear teacher, the setting of Mei & Montanari 2022 (sec. 2).

    x ~ N(0, I_d), y = <x, beta> + noise * eps, with ||beta|| = 1 and
    eps ~ N(0, 1). Returns X: [n, d], y: [n], beta: [d].
    """
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    beta = torch.randn(d, generator=g, dtype=torch.float64)
    beta = beta / beta.norm()
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = X @ beta + noise * torch.randn(n, generator=g, dtype=torch.float64)
    return X.to(device), y.to(device), beta.to(device)


def relu_random_features(X, W):
    """ReLU random features phi(x) = max(0, W x / sqrt(d)) (Rahimi & Recht 2007; Mei & Montanari 2022, eq. 1).

    X: [n, d], W: [p, d] (fixed random first layer) -> [n, p].
    """
    X = as_float64(X)
    W = as_float64(W, X.device)
    return torch.relu(X @ W.T / math.sqrt(X.shape[1]))  # (n, p)


def min_norm_least_squares(Phi, y):
    """Minimum-norm least-squares coefficients a = Phi^+ y (the ridge solution as lambda -> 0+).

    Phi: [n, p], y: [n] -> [p]. For p < n this is ordinary least squares;
    for p >= n it interpolates the training data with the smallest ||a||.
    """
    Phi = as_float64(Phi)
    y = as_float64(y, Phi.device)
    return torch.linalg.pinv(Phi) @ y  # (p,)


def random_features_regression(X_train, y_train, X_test, y_test, W, ps):
    """Train and test error of ridgeless random-features regression for each width p in `ps`.

    The model with p features uses the first p rows of W: [p_max, d]. Errors
    are mean squared errors. X_train: [n, d], y_train: [n], X_test: [m, d],
    y_test: [m]. Returns {"train_mse": [k], "test_mse": [k]} for the k
    widths in `ps`. The test error diverges at the interpolation threshold
    p = n, the peak of double descent (Mei & Montanari 2022, Fig. 1).
    """
    X_train = as_float64(X_train)
    dev = X_train.device
    y_train, X_test, y_test, W = (as_float64(v, dev) for v in (y_train, X_test, y_test, W))
    F_train = relu_random_features(X_train, W)  # (n, p_max)
    F_test = relu_random_features(X_test, W)  # (m, p_max)
    train, test = [], []
    for p in ps:
        p = int(p)
        a = min_norm_least_squares(F_train[:, :p], y_train)  # (p,)
        train.append(((F_train[:, :p] @ a - y_train) ** 2).mean())
        test.append(((F_test[:, :p] @ a - y_test) ** 2).mean())
    return {"train_mse": torch.stack(train), "test_mse": torch.stack(test)}


# ---------------------------------------------------------------------------
# Grokking datasets
# ---------------------------------------------------------------------------

_OPS = ("+", "-", "*", "/")


def modular_dataset(p, op="+"):
    """The full table of a binary operation modulo a prime p (Power et al. 2022, sec. 2 and appendix A.1).

    All pairs (a, b) with 0 <= a, b < p in lexicographic order (a major),
    except for "/" where b = 0 is excluded: p^2 equations for "+", "-", "*",
    and p (p - 1) for "/". Division is multiplication by the inverse
    b^(p-2) mod p (Fermat). Returns (pairs: [N, 2] int64, labels: [N] int64).
    """
    if op not in _OPS:
        raise ValueError(f"op must be one of {_OPS}")
    p = int(p)
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)  # (p*p,)
    if op == "/":
        keep = b != 0
        a, b = a[keep], b[keep]  # (p*(p-1),)
    if op == "+":
        c = (a + b) % p
    elif op == "-":
        c = (a - b) % p
    elif op == "*":
        c = (a * b) % p
    else:
        inv = torch.tensor([pow(int(v), p - 2, p) for v in range(p)])
        c = (a * inv[b]) % p
    return torch.stack([a, b], 1).to(torch.int64), c.to(torch.int64)


def train_test_split(n, train_fraction, generator):
    """Random split of n examples (Power et al. 2022: train on a fraction of the table).

    perm = torch.randperm(n, generator=generator); the first
    n_train = round(train_fraction * n) indices are the training set, the
    rest the test set. Returns (train_idx: [n_train], test_idx: [n - n_train]) int64.
    """
    perm = torch.randperm(int(n), generator=generator)
    n_train = round(train_fraction * n)
    return perm[:n_train], perm[n_train:]


# ---------------------------------------------------------------------------
# Metric-induced emergence
# ---------------------------------------------------------------------------


def emergence_metrics(N, L, N_c=1e9, alpha=0.5):
    """Smooth per-token improvement seen through nonlinear and linear metrics (Schaeffer et al. 2023, sec. 2).

    Per-token cross-entropy follows a power law CE(N) = (N_c / N)^alpha, so
    the probability of the correct token is p(N) = exp(-CE(N)). For a target
    of L tokens (independent errors):
        exact match    = p^L                      (nonlinear: looks emergent)
        edit distance  = L (1 - p)                (linear: smooth)
        threshold      = N at which p^L = 1/2  = N_c (L / ln 2)^(1 / alpha)
    N: [k] model sizes. Returns a dict of [k] tensors "per_token",
    "exact_match", "edit_distance" and a float "threshold".
    """
    N = as_float64(N)
    p = torch.exp(-((N_c / N) ** alpha))  # (k,)
    return {
        "per_token": p,
        "exact_match": p**L,
        "edit_distance": L * (1.0 - p),
        "threshold": float(N_c * (L / math.log(2.0)) ** (1.0 / alpha)),
    }


def sample_exact_match(per_token, L, n_sequences, generator):
    """Monte Carlo exact match: fraction of n_sequences length-L sequences with every token correct.

    Each token is correct independently with probability per_token (a
    float). Used to check p^L by simulation.
    """
    correct = torch.rand(n_sequences, L, generator=generator, dtype=torch.float64) < per_token  # (n, L)
    return float(correct.all(1).double().mean())
