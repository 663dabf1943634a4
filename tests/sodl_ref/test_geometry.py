"""Tests of sodl_ref.geometry against torch, scipy, closed-form spectra and known isometries."""

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse.csgraph
import torch
import torch.nn.functional as F

from sodl_ref import geometry as g


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _cdist(A, B):
    """Euclidean distances without the matmul shortcut (exact zeros, full float64 accuracy)."""
    return torch.cdist(A, B, compute_mode="donot_use_mm_for_euclid_dist")


def _randn(*shape, gen):
    return torch.randn(*shape, generator=gen, dtype=torch.float64)


# --------------------------------------------------------------------------- conv2d


@pytest.mark.parametrize(
    "stride,padding,dilation",
    [(1, 0, 1), (2, 1, 1), (1, 2, 2), (3, 0, 2), ((2, 1), (1, 0), (1, 2))],
)
def test_conv2d_matches_torch_conv2d_float64(stride, padding, dilation):
    gen = _gen(1)
    x = _randn(2, 3, 11, 9, gen=gen)
    w = _randn(4, 3, 3, 2, gen=gen)
    b = _randn(4, gen=gen)
    ours = g.conv2d(x, w, b, stride, padding, dilation)
    ref = F.conv2d(x, w, b, stride, padding, dilation)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, rtol=1e-12, atol=1e-12)


def test_conv_output_size_matches_torch_shapes():
    """Dumoulin & Visin 2016, relationship 15: floor((n + 2p - d(k-1) - 1)/s) + 1, checked against torch."""
    for n in (5, 8, 13):
        for k in (1, 2, 3, 5):
            for s in (1, 2, 3):
                for p in (0, 1, 2):
                    for d in (1, 2):
                        if d * (k - 1) + 1 > n + 2 * p:
                            continue
                        out = F.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=s, padding=p, dilation=d)
                        assert g.conv_output_size(n, k, s, p, d) == out.shape[-1]
    assert g.conv_output_size(32, 3, 1, 1, 1) == 32  # "same" convolution
    assert g.conv_output_size(7, 3, 2, 0, 2) == 2


# --------------------------------------------------------------------------- p4


def test_p4_lifting_conv_is_rotation_equivariant_to_1e_12():
    """Cohen & Welling 2016, eq. 10: lifting(rot90 x) = rotate_p4(lifting(x)) (rotate planes, shift r)."""
    gen = _gen(2)
    x = _randn(2, 3, 9, 9, gen=gen)
    w = _randn(5, 3, 3, 3, gen=gen)
    for padding in (0, 1):
        y = g.p4_lifting_conv(x, w, padding=padding)
        assert y.shape == (2, 5, 4, 9 - 2 + 2 * padding, 9 - 2 + 2 * padding)
        for r in (1, 2, 3):
            err = (g.p4_lifting_conv(torch.rot90(x, r, dims=(-2, -1)), w, padding=padding) - g.rotate_p4(y, r)).abs().max()
            assert err < 1e-12
    # plane r = 0 is the ordinary convolution with the unrotated filter
    assert torch.allclose(y[:, :, 0], F.conv2d(x, w, padding=1), atol=1e-12)


def test_plain_conv2d_is_not_rotation_equivariant():
    """Control: an ordinary convolution with a generic filter commutes with translations, not rotations."""
    gen = _gen(3)
    x = _randn(1, 1, 9, 9, gen=gen)
    w = _randn(1, 1, 3, 3, gen=gen)
    err = (g.conv2d(torch.rot90(x, 1, dims=(-2, -1)), w) - torch.rot90(g.conv2d(x, w), 1, dims=(-2, -1))).abs().max()
    assert err > 1e-2


def test_p4_group_conv_is_rotation_equivariant_and_matches_explicit_sum():
    """Cohen & Welling 2016, eq. 11, against a loop over (r, s) with the filter psi(R^-r ., s - r)."""
    gen = _gen(4)
    f = _randn(2, 3, 4, 8, 8, gen=gen)
    w = _randn(2, 3, 4, 3, 3, gen=gen)
    out = g.p4_group_conv(f, w, padding=1)
    explicit = torch.zeros_like(out)
    for r in range(4):
        for s in range(4):
            filt = torch.rot90(w[:, :, (s - r) % 4], r, dims=(-2, -1))
            explicit[:, :, r] += F.conv2d(f[:, :, s], filt, padding=1)
    assert torch.allclose(out, explicit, atol=1e-12)
    for r in (1, 2, 3):
        err = (g.p4_group_conv(g.rotate_p4(f, r), w, padding=1) - g.rotate_p4(out, r)).abs().max()
        assert err < 1e-12


def test_group_pool_then_global_pool_is_rotation_invariant():
    """Cohen & Welling 2016, sec. 6.3: pooling over r gives a map that rotates with the input; a global mean is invariant."""
    gen = _gen(5)
    x = _randn(3, 2, 10, 10, gen=gen)
    w1 = _randn(4, 2, 3, 3, gen=gen)
    w2 = _randn(3, 4, 4, 3, 3, gen=gen)

    def net(img):
        return g.group_pool(torch.relu(g.p4_group_conv(torch.relu(g.p4_lifting_conv(img, w1)), w2)))

    y = net(x)
    assert y.shape == (3, 3, 6, 6)
    y_rot = net(torch.rot90(x, 1, dims=(-2, -1)))
    assert (y_rot - torch.rot90(y, 1, dims=(-2, -1))).abs().max() < 1e-12
    assert (y_rot.mean((-2, -1)) - y.mean((-2, -1))).abs().max() < 1e-12
    assert torch.allclose(g.group_pool(torch.arange(8.0).reshape(1, 1, 4, 1, 2), "mean").flatten(), torch.tensor([3.0, 4.0], dtype=torch.float64))


# --------------------------------------------------------------------------- MDS


def _procrustes_residual(A, B):
    """Relative Frobenius residual of the best rotation/reflection taking centred A to centred B."""
    A = np.asarray(A) - np.asarray(A).mean(0)
    B = np.asarray(B) - np.asarray(B).mean(0)
    R, _ = scipy.linalg.orthogonal_procrustes(A, B)
    return np.linalg.norm(A @ R - B) / np.linalg.norm(B)


def test_classical_mds_recovers_points_up_to_rigid_motion_procrustes():
    """Torgerson 1952: distances of points in R^3 determine them up to a rigid motion (scipy orthogonal_procrustes)."""
    gen = _gen(6)
    X = _randn(40, 3, gen=gen) * torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
    Q, _ = torch.linalg.qr(_randn(3, 3, gen=gen))
    X_moved = X @ Q.T + torch.tensor([5.0, -1.0, 2.0], dtype=torch.float64)
    D = _cdist(X_moved, X_moved)
    Y = g.classical_mds(D, 3)
    assert Y.shape == (40, 3) and Y.dtype == torch.float64
    assert _procrustes_residual(Y, X) < 1e-10
    assert torch.allclose(_cdist(Y, Y), D, atol=1e-10)
    assert Y.mean(0).abs().max() < 1e-10


def test_classical_mds_columns_are_principal_components_of_centred_points():
    """For Euclidean D the Gram matrix is X_c X_c^T, so MDS equals PCA scores (singular values from numpy SVD)."""
    gen = _gen(7)
    X = _randn(30, 5, gen=gen)
    Xc = (X - X.mean(0)).numpy()
    U, S, _ = np.linalg.svd(Xc, full_matrices=False)
    Y = g.classical_mds(_cdist(X, X), 2).numpy()
    assert np.allclose(np.linalg.norm(Y, axis=0), S[:2], rtol=1e-10)
    assert np.allclose(np.abs(Y), np.abs(U[:, :2] * S[:2]), atol=1e-9)
    # a truncated embedding of a 5-d cloud keeps the leading Gram eigen-directions: Y Y^T = best rank-2 Gram
    assert np.allclose(Y @ Y.T, (U[:, :2] * S[:2] ** 2) @ U[:, :2].T, atol=1e-9)


def test_classical_mds_accepts_numpy_and_clips_negative_eigenvalues():
    """A non-Euclidean metric (path metric of a 4-star) has a negative Gram eigenvalue; the extra coordinate is 0, not NaN."""
    D = np.array([[0, 1, 1, 1], [1, 0, 2, 2], [1, 2, 0, 2], [1, 2, 2, 0]], dtype=float)
    D = np.block([[D, np.ones((4, 1))], [np.ones((1, 4)), np.zeros((1, 1))]])
    D[1:4, 4] = D[4, 1:4] = 2.0
    Y = g.classical_mds(D, 4)
    assert torch.isfinite(Y).all()
    J = np.eye(5) - 1 / 5
    ev = np.linalg.eigvalsh(-0.5 * J @ (D**2) @ J)
    assert ev.min() < -1e-6  # the metric is not Euclidean
    npos = int((ev > 1e-9).sum())
    assert torch.allclose(Y[:, npos:], torch.zeros(5, 4 - npos, dtype=torch.float64), atol=1e-12)


# --------------------------------------------------------------------------- Laplacians


def _cycle(n):
    W = torch.zeros(n, n, dtype=torch.float64)
    i = torch.arange(n)
    W[i, (i + 1) % n] = 1.0
    return W + W.T


def _path(n):
    W = torch.zeros(n, n, dtype=torch.float64)
    i = torch.arange(n - 1)
    W[i, i + 1] = 1.0
    return W + W.T


def test_cycle_graph_laplacian_spectrum_is_2_minus_2cos():
    """Cycle C_n: eigenvalues of L = D - W are 2 - 2 cos(2 pi k / n), k = 0..n-1 (Chung 1997)."""
    n = 12
    ev = torch.linalg.eigvalsh(g.graph_laplacian(_cycle(n)))
    closed = torch.sort(2 - 2 * torch.cos(2 * math.pi * torch.arange(n, dtype=torch.float64) / n)).values
    assert torch.allclose(ev, closed, atol=1e-12)
    # C_n is 2-regular, so the generalized problem L f = lambda D f has eigenvalues (2 - 2cos)/2
    lam, F_ = g.laplacian_eigenmaps(_cycle(n), 3)
    assert torch.allclose(lam, closed[1:4] / 2, atol=1e-12)
    # the first two eigenvectors span {cos, sin}(2 pi i / n): the eigenmap of a cycle is a circle
    radius = F_[:, :2].norm(dim=1)
    assert torch.allclose(radius, radius.mean().expand(n), atol=1e-10)


def test_path_graph_laplacian_spectrum_is_2_minus_2cos_pi_k_over_n():
    """Path P_n: eigenvalues of D - W are 2 - 2 cos(pi k / n), k = 0..n-1; Fiedler vector monotone along the path."""
    n = 10
    ev = torch.linalg.eigvalsh(g.graph_laplacian(_path(n)))
    closed = 2 - 2 * torch.cos(math.pi * torch.arange(n, dtype=torch.float64) / n)
    assert torch.allclose(ev, closed, atol=1e-12)
    _, F_ = g.laplacian_eigenmaps(_path(n), 1)
    d = torch.diff(F_[:, 0])
    assert (d > 0).all() or (d < 0).all()


def test_laplacian_eigenmaps_solves_generalized_problem_like_scipy_eigh():
    """Belkin & Niyogi 2003, eq. 1: L f = lambda D f with f^T D f = 1, against scipy.linalg.eigh(L, D)."""
    gen = _gen(8)
    X = _randn(50, 3, gen=gen)
    W = g.heat_kernel_weights(X, n_neighbors=8, t=2.0)
    assert torch.equal(W, W.T) and (W.diagonal() == 0).all()
    assert scipy.sparse.csgraph.connected_components(W.numpy() > 0)[0] == 1
    lam, F_ = g.laplacian_eigenmaps(W, 3)
    L = g.graph_laplacian(W).numpy()
    Dg = np.diag(W.sum(1).numpy())
    ev, V = scipy.linalg.eigh(L, Dg)
    assert np.allclose(lam.numpy(), ev[1:4], atol=1e-10)
    assert np.allclose(np.abs(F_.numpy()), np.abs(V[:, 1:4]), atol=1e-8)
    assert np.allclose(F_.numpy().T @ Dg @ F_.numpy(), np.eye(3), atol=1e-10)


def test_normalized_laplacian_matches_definition():
    gen = _gen(9)
    A = torch.rand(6, 6, generator=gen, dtype=torch.float64)
    W = A + A.T
    W.fill_diagonal_(0.0)
    d = W.sum(1).numpy()
    expected = np.eye(6) - W.numpy() / np.sqrt(np.outer(d, d))
    assert np.allclose(g.graph_laplacian(W, normalized=True).numpy(), expected, atol=1e-12)


# --------------------------------------------------------------------------- Isomap


def test_knn_adjacency_matches_brute_force_or_rule():
    gen = _gen(10)
    X = _randn(25, 2, gen=gen)
    A = g.knn_adjacency(X, 3).numpy()
    D = _cdist(X, X).numpy()
    np.fill_diagonal(D, np.inf)
    B = np.zeros((25, 25), bool)
    for i in range(25):
        B[i, np.argsort(D[i])[:3]] = True
    assert np.array_equal(A, B | B.T)


def test_geodesic_distances_on_a_circle_arc_equal_arc_lengths():
    """Points on a 270-degree arc of radius 2: graph distances approach R |theta_i - theta_j| (chords, error O(h^2))."""
    theta = torch.linspace(0, 1.5 * math.pi, 200, dtype=torch.float64)
    X = 2.0 * torch.stack([theta.cos(), theta.sin()], 1)
    G = g.geodesic_distances(X, 2)
    arc = 2.0 * (theta[:, None] - theta[None, :]).abs()
    # spacing h = 2 * 1.5 pi / 199; chord/arc = sinc(h/2R)/... relative error h^2/24R^2 ~ 1.4e-4
    assert ((G - arc).abs() / arc.clamp(min=1e-12)).max() < 2e-4
    # 1-d Isomap recovers the angle up to sign and shift; plain MDS of the 270-degree arc does not
    e = g.isomap(X, 1, 2)[:, 0]
    assert abs(np.corrcoef(e.numpy(), theta.numpy())[0, 1]) > 0.99999
    m = g.classical_mds(_cdist(X, X), 1)[:, 0]
    assert abs(np.corrcoef(m.numpy(), theta.numpy())[0, 1]) < 0.95


def test_geodesic_distances_match_scipy_dijkstra_on_explicit_graph():
    gen = _gen(11)
    X = _randn(30, 3, gen=gen)
    A = g.knn_adjacency(X, 4).numpy()
    D = _cdist(X, X).numpy()
    G_ref = scipy.sparse.csgraph.floyd_warshall(np.where(A, D, 0.0), directed=False)
    assert np.allclose(g.geodesic_distances(X, 4).numpy(), G_ref, atol=1e-12)


def test_isomap_unrolls_swiss_roll_and_mds_does_not():
    """Tenenbaum et al. 2000: on a swiss roll isometric to a rectangle, Isomap recovers the intrinsic
    coordinates (s(t), h) up to a rigid motion (Procrustes residual ~5% at n = 800); classical MDS of
    the ambient distances does not (residual ~ 100%)."""
    X, U = g.swiss_roll(800, _gen(12), height=20.0)
    G = g.geodesic_distances(X, 8)
    true = _cdist(U, U)
    far = true > 5
    rel = ((G - true) / true)[far]
    assert rel.min() > -0.02  # no short circuits through the roll
    assert rel.mean() < 0.1  # zig-zag paths overestimate geodesics by a few percent
    assert _procrustes_residual(g.classical_mds(G, 2), U) < 0.12
    assert _procrustes_residual(g.classical_mds(_cdist(X, X), 2), U) > 0.5


def test_swiss_roll_arc_length_formula_matches_numerical_integration():
    t = torch.tensor([1.5 * math.pi, 3 * math.pi, 4.5 * math.pi], dtype=torch.float64)
    s = 0.5 * (t * torch.sqrt(1 + t * t) + torch.asinh(t))
    grid = np.linspace(1.5 * math.pi, 4.5 * math.pi, 200001)
    speed = np.sqrt(1 + grid**2)
    num = np.trapezoid(speed, grid) if hasattr(np, "trapezoid") else np.trapz(speed, grid)
    assert abs((s[2] - s[0]).item() - num) < 1e-6
