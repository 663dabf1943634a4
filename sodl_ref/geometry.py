"""Geometry: convolutions and their symmetries, and the geometry of data.

Week 8 of the course. Two views of geometry in deep learning:

- the symmetry of the architecture: a convolution written out by hand
  (stride, padding, dilation and the output-size formula of Dumoulin &
  Visin 2016), and its extension from translations to the group p4 of
  translations and rotations by multiples of 90 degrees: the lifting
  convolution, the p4 group convolution and group pooling (Cohen & Welling
  2016, "Group Equivariant Convolutional Networks", eqs. 10-11);
- the geometry of data: classical multidimensional scaling (Torgerson 1952),
  Laplacian eigenmaps (Belkin & Niyogi 2003) and Isomap (Tenenbaum, de
  Silva & Langford 2000), with a swiss roll whose intrinsic coordinates are
  known in closed form.

Conventions: float64 torch tensors in and out (numpy arrays and Python
numbers are accepted), the input's device is kept, random numbers come from
an explicit ``torch.Generator``. Images are ``[N, C, H, W]`` as in
``torch.nn.functional.conv2d``; a feature map on p4 is ``[N, C, 4, H, W]``,
axis 2 indexing the rotation r (a rotation by r * 90 degrees,
``torch.rot90(., r, dims=(-2, -1))``).
"""

from __future__ import annotations

import math

import scipy.sparse
import scipy.sparse.csgraph
import torch

from sodl_ref.tensors import as_float64

Tensor = torch.Tensor


def _pair(v) -> tuple[int, int]:
    """An int or a pair of ints, as a pair (height, width)."""
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _fix_signs(V: Tensor) -> Tensor:
    """Flips each column of V so that its entry of largest magnitude is positive.

    Eigenvectors are defined up to sign; fixing the sign makes results
    reproducible across LAPACK builds and devices.
    """
    idx = V.abs().argmax(dim=0)  # [k]
    signs = torch.sign(V[idx, torch.arange(V.shape[1], device=V.device)])
    signs[signs == 0] = 1.0
    return V * signs


# ---------------------------------------------------------------------------
# Convolution by hand
# ---------------------------------------------------------------------------


def conv_output_size(n: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis (Dumoulin & Visin 2016, relationship 15).

        n_out = floor((n + 2 p - d (k - 1) - 1) / s) + 1

    The dilated kernel spans d (k - 1) + 1 input positions; it fits
    floor(...) + 1 times when moved in steps of s over the padded input.
    """
    return (int(n) + 2 * int(padding) - int(dilation) * (int(kernel_size) - 1) - 1) // int(stride) + 1


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1) -> Tensor:
    """Naive 2-D convolution (cross-correlation), as ``torch.nn.functional.conv2d``.

        y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v]
                        * x_pad[n, c, s_h i + d_h u, s_w j + d_w v]

    written as a sum over the k_h * k_w kernel offsets (u, v): each offset
    contributes one strided slice of the zero-padded input, mixed over the
    channels by the [C_out, C_in] matrix w[:, :, u, v].

    Args:
        x: [N, C_in, H, W] images.
        weight: [C_out, C_in, k_h, k_w] filters.
        bias: [C_out] or None.
        stride, padding, dilation: ints or (height, width) pairs.

    Returns:
        [N, C_out, H_out, W_out] with H_out = conv_output_size(H, k_h, ...).
    """
    x = as_float64(x)
    weight = as_float64(weight, x.device)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    N, C_in, H, W = x.shape
    C_out, C_in_w, kh, kw = weight.shape
    assert C_in == C_in_w, "channels of x and weight differ"
    H_out = conv_output_size(H, kh, sh, ph, dh)
    W_out = conv_output_size(W, kw, sw, pw, dw)
    x_pad = torch.nn.functional.pad(x, (pw, pw, ph, ph))  # [N, C_in, H + 2ph, W + 2pw]
    y = x.new_zeros(N, C_out, H_out, W_out)
    for u in range(kh):
        for v in range(kw):
            r0, c0 = u * dh, v * dw
            patch = x_pad[:, :, r0 : r0 + sh * (H_out - 1) + 1 : sh, c0 : c0 + sw * (W_out - 1) + 1 : sw]  # [N, C_in, H_out, W_out]
            y = y + torch.einsum("nchw,oc->nohw", patch, weight[:, :, u, v])
    if bias is not None:
        y = y + as_float64(bias, x.device)[None, :, None, None]
    return y


# ---------------------------------------------------------------------------
# Group equivariant convolutions on p4 (Cohen & Welling 2016)
# ---------------------------------------------------------------------------


def rotate_p4(y, r: int = 1) -> Tensor:
    """The action of a rotation by r * 90 degrees on a p4 feature map.

    (L_r f)(x, s) = f(R^{-r} x, s - r): the plane is rotated and the
    rotation axis is shifted cyclically (Cohen & Welling 2016, eq. 9).

    Args:
        y: [N, C, 4, H, W] with H == W.
    Returns:
        [N, C, 4, H, W].
    """
    y = as_float64(y)
    return torch.rot90(y, r, dims=(-2, -1)).roll(r, dims=2)


def p4_lifting_conv(x, weight, padding: int = 0) -> Tensor:
    """Lifting convolution Z^2 -> p4 (Cohen & Welling 2016, eq. 10).

        [f * psi](t, r) = sum_{y, c} f_c(y) psi_c(R^{-r} (y - t))

    i.e. the image is correlated with the four rotated copies
    rot90(psi, r), r = 0..3, of each filter. Rotating the input by 90
    degrees rotates every output plane and shifts r by one:
    ``p4_lifting_conv(rot90(x)) == rotate_p4(p4_lifting_conv(x))``.

    Args:
        x: [N, C_in, H, W] images (H == W for the equivariance to be exact).
        weight: [C_out, C_in, k, k] filters.
        padding: zero padding (stride 1, no dilation).

    Returns:
        [N, C_out, 4, H_out, W_out].
    """
    x = as_float64(x)
    weight = as_float64(weight, x.device)
    planes = [conv2d(x, torch.rot90(weight, r, dims=(-2, -1)), padding=padding) for r in range(4)]
    return torch.stack(planes, dim=2)  # [N, C_out, 4, H_out, W_out]


def p4_group_conv(y, weight, padding: int = 0) -> Tensor:
    """Group convolution p4 -> p4 (Cohen & Welling 2016, eq. 11).

        [f * psi](t, r) = sum_{s, c} sum_x f_c(x, s) psi_c(R^{-r}(x - t), s - r)

    For output rotation r and input rotation s the filter is
    rot90(psi[:, :, (s - r) mod 4], r): rotate the spatial filter *and*
    shift its rotation axis. The layer commutes with ``rotate_p4``.

    Args:
        y: [N, C_in, 4, H, W] feature maps on p4.
        weight: [C_out, C_in, 4, k, k] filters on p4.
        padding: zero padding (stride 1, no dilation).

    Returns:
        [N, C_out, 4, H_out, W_out].
    """
    y = as_float64(y)
    weight = as_float64(weight, y.device)
    N, C_in, G, H, W = y.shape
    C_out, _, _, k, _ = weight.shape
    x_flat = y.reshape(N, C_in * 4, H, W)  # channels (c, s) flattened
    planes = []
    for r in range(4):
        shifted = weight.roll(r, dims=2)  # shifted[:, :, s] = weight[:, :, (s - r) mod 4]
        w_r = torch.rot90(shifted, r, dims=(-2, -1)).reshape(C_out, C_in * 4, k, k)
        planes.append(conv2d(x_flat, w_r, padding=padding))
    return torch.stack(planes, dim=2)  # [N, C_out, 4, H_out, W_out]


def group_pool(y, reduction: str = "max") -> Tensor:
    """Pooling over the rotation axis (Cohen & Welling 2016, sec. 6.3).

    [N, C, 4, H, W] -> [N, C, H, W]. The result is a plain feature map that
    rotates with the input (the cyclic shift of r is forgotten); a further
    global spatial pooling makes it rotation invariant.
    """
    y = as_float64(y)
    if reduction == "max":
        return y.amax(dim=2)
    if reduction == "mean":
        return y.mean(dim=2)
    raise ValueError("reduction must be 'max' or 'mean'")


# ---------------------------------------------------------------------------
# Classical MDS, Laplacian eigenmaps, Isomap
# ---------------------------------------------------------------------------


def pairwise_distances(X) -> Tensor:
    """Euclidean distances ||x_i - x_j||. X: [n, d] -> [n, n] (exact zeros on the diagonal)."""
    X = as_float64(X)
    diff = X[:, None, :] - X[None, :, :]  # [n, n, d]
    return diff.pow(2).sum(-1).sqrt()


def classical_mds(D, k: int) -> Tensor:
    """Classical (Torgerson) multidimensional scaling.

    D holds Euclidean distances (not squared). With J = I - 11^T / n,

        B = -1/2 J D^(2) J            (D^(2): elementwise squares)

    is the Gram matrix of the centred points (Torgerson 1952; Tenenbaum et
    al. 2000, step 3). With B's top-k eigenpairs (lambda_i, v_i), the
    coordinates are X = V diag(sqrt(lambda)); negative eigenvalues (the
    distances are not exactly Euclidean) are clipped to 0. Columns are
    ordered by decreasing eigenvalue; each column's largest-magnitude entry
    is positive.

    Args:
        D: [n, n] symmetric distances.
        k: embedding dimension.

    Returns:
        [n, k] coordinates, centred at the origin.
    """
    D = as_float64(D)
    n = D.shape[0]
    J = torch.eye(n, dtype=D.dtype, device=D.device) - 1.0 / n  # [n, n]
    B = -0.5 * J @ (D * D) @ J
    B = 0.5 * (B + B.T)
    evals, evecs = torch.linalg.eigh(B)  # ascending
    evals = evals.flip(0)[:k]  # [k], descending
    evecs = _fix_signs(evecs.flip(1)[:, :k])  # [n, k]
    return evecs * evals.clamp(min=0.0).sqrt()


def graph_laplacian(W, normalized: bool = False) -> Tensor:
    """Graph Laplacian of a symmetric weight matrix W: [n, n] (Belkin & Niyogi 2003, sec. 2).

    L = D - W with D = diag(W 1); if ``normalized``, the symmetric
    normalization I - D^{-1/2} W D^{-1/2} (Chung 1997).
    """
    W = as_float64(W)
    deg = W.sum(1)  # [n]
    L = torch.diag(deg) - W
    if normalized:
        s = deg.rsqrt()
        L = s[:, None] * L * s[None, :]
    return L


def knn_adjacency(X, n_neighbors: int) -> Tensor:
    """Symmetric k-nearest-neighbour graph (Tenenbaum et al. 2000, step 1).

    i ~ j when j is among the n_neighbors nearest points of i (the point
    itself excluded) OR i among those of j.

    Args:
        X: [n, d] points.
    Returns:
        [n, n] bool adjacency, symmetric, False on the diagonal.
    """
    Dm = pairwise_distances(X)  # [n, n]
    n = Dm.shape[0]
    Dm = Dm + torch.diag(torch.full((n,), float("inf"), dtype=Dm.dtype, device=Dm.device))
    idx = Dm.topk(n_neighbors, dim=1, largest=False).indices  # [n, n_neighbors]
    A = torch.zeros(n, n, dtype=torch.bool, device=Dm.device)
    A[torch.arange(n, device=Dm.device)[:, None], idx] = True
    return A | A.T


def heat_kernel_weights(X, n_neighbors: int, t: float | None = None) -> Tensor:
    """Weights of Laplacian eigenmaps on the kNN graph (Belkin & Niyogi 2003, step 2).

    W_ij = exp(-||x_i - x_j||^2 / t) for connected i ~ j, else 0; with
    t = None the "simple-minded" choice W_ij = 1.

    Args:
        X: [n, d].
    Returns:
        [n, n] symmetric weights.
    """
    X = as_float64(X)
    A = knn_adjacency(X, n_neighbors)
    if t is None:
        return A.to(X.dtype)
    return torch.where(A, torch.exp(-pairwise_distances(X).pow(2) / t), torch.zeros((), dtype=X.dtype, device=X.device))


def laplacian_eigenmaps(W, k: int) -> tuple[Tensor, Tensor]:
    """Laplacian eigenmap of a connected weighted graph (Belkin & Niyogi 2003, step 3, eq. 1).

    Solves the generalized eigenproblem L f = lambda D f, with
    L = D - W and D = diag(W 1), and drops the constant solution
    (lambda_0 = 0). Through g = D^{1/2} f this is the symmetric problem
    D^{-1/2} L D^{-1/2} g = lambda g. The eigenvectors are D-orthonormal,
    f_i^T D f_j = delta_ij, and each column's largest-magnitude entry is
    positive.

    Args:
        W: [n, n] symmetric non-negative weights of a connected graph.
        k: embedding dimension.

    Returns:
        (eigenvalues [k], ascending: lambda_1..lambda_k;
         embedding [n, k]: the eigenvectors f_1..f_k).
    """
    W = as_float64(W)
    deg = W.sum(1)  # [n]
    s = deg.rsqrt()
    L_sym = graph_laplacian(W, normalized=True)
    L_sym = 0.5 * (L_sym + L_sym.T)
    evals, G = torch.linalg.eigh(L_sym)  # ascending, G: [n, n]
    F = s[:, None] * G[:, 1 : k + 1]  # [n, k], back to f = D^{-1/2} g
    return evals[1 : k + 1], _fix_signs(F)


def geodesic_distances(X, n_neighbors: int) -> Tensor:
    """Graph approximation of the geodesic distances on a manifold (Tenenbaum et al. 2000, steps 1-2).

    Edges of the symmetric kNN graph (``knn_adjacency``) carry the Euclidean
    length ||x_i - x_j||; the geodesic distance is approximated by the
    shortest path (Dijkstra, scipy.sparse.csgraph). Disconnected pairs are
    ``inf``.

    Args:
        X: [n, d].
    Returns:
        [n, n] symmetric distances.
    """
    X = as_float64(X)
    A = knn_adjacency(X, n_neighbors)
    E = torch.where(A, pairwise_distances(X), torch.zeros((), dtype=X.dtype, device=X.device))
    graph = scipy.sparse.csr_matrix(E.cpu().numpy())
    G = scipy.sparse.csgraph.shortest_path(graph, method="D", directed=False)
    return torch.as_tensor(G, dtype=torch.float64, device=X.device)


def isomap(X, k: int, n_neighbors: int) -> Tensor:
    """Isomap (Tenenbaum, de Silva & Langford 2000): classical MDS of the graph geodesic distances.

    Args:
        X: [n, d] points sampled from a manifold.
        k: embedding dimension.
        n_neighbors: neighbours of the kNN graph.
    Returns:
        [n, k] coordinates.
    """
    return classical_mds(geodesic_distances(X, n_neighbors), k)


def swiss_roll(n: int, generator: torch.Generator | None = None, noise: float = 0.0,
               t_range: tuple[float, float] = (1.5 * math.pi, 4.5 * math.pi), height: float = 10.0):
    """Points on a swiss roll with their intrinsic (unrolled) coordinates.

    The spiral (t cos t, t sin t) has arc length
        s(t) = (t sqrt(1 + t^2) + asinh(t)) / 2,
    so the roll x = (t cos t, h, t sin t), t ~ U(t_range), h ~ U(0, height),
    is isometric to the rectangle of points (s(t), h).

    Returns:
        (X [n, 3], intrinsic [n, 2] = (s(t), h)).
    """
    g = generator
    t = t_range[0] + (t_range[1] - t_range[0]) * torch.rand(n, generator=g, dtype=torch.float64)
    h = height * torch.rand(n, generator=g, dtype=torch.float64)
    X = torch.stack([t * torch.cos(t), h, t * torch.sin(t)], dim=1)  # [n, 3]
    if noise > 0:
        X = X + noise * torch.randn(n, 3, generator=g, dtype=torch.float64)
    s = 0.5 * (t * torch.sqrt(1 + t * t) + torch.asinh(t))
    return X, torch.stack([s, h], dim=1)
