"""Tests of sodl_ref.robustness: FGSM against autograd and linear identities; IMP densities and nesting."""

import math

import torch

from sodl_ref import robustness


def _linear_problem(seed, n=16, d=10, k=4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(k, (n,), generator=g)
    W = torch.randn(k, d, generator=g, dtype=torch.float64)
    b = torch.randn(k, generator=g, dtype=torch.float64)
    return x, y, W, b


def test_fgsm_linear_matches_autograd_through_nn_linear():
    """Goodfellow et al. 2015 eq. 3: the closed-form input gradient equals autograd of F.cross_entropy on nn.Linear (float64)."""
    x, y, W, b = _linear_problem(0)
    lin = torch.nn.Linear(10, 4).double()
    with torch.no_grad():
        lin.weight.copy_(W)
        lin.bias.copy_(b)
    torch.testing.assert_close(robustness.fgsm_linear(x, y, W, b, 0.1), robustness.fgsm(lin, x, y, 0.1), rtol=0, atol=1e-15)


def test_fgsm_logistic_logit_moves_by_eps_l1_norm_of_w():
    """Linear identity: z_adv - z = eps ||w||_1 sign(sigmoid(z) - y) exactly; the loss rises by eps |s - y| ||w||_1 to first order."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 30, generator=g, dtype=torch.float64)
    w = torch.randn(30, generator=g, dtype=torch.float64)
    y = torch.randint(2, (50,), generator=g).double()
    b, eps = 0.3, 1e-6
    z = x @ w + b
    x_adv = robustness.fgsm_logistic(x, y, w, b, eps)
    s = torch.sigmoid(z)
    torch.testing.assert_close(x_adv @ w + b - z, eps * w.abs().sum() * torch.sign(s - y), rtol=1e-8, atol=1e-15)
    bce = lambda zz: torch.nn.functional.binary_cross_entropy_with_logits(zz, y, reduction="none")  # noqa: E731
    dJ = (bce(x_adv @ w + b) - bce(z)) / eps
    torch.testing.assert_close(dJ, (s - y).abs() * w.abs().sum(), rtol=1e-4, atol=1e-8)


def test_fgsm_logistic_equals_two_class_softmax():
    """Logistic regression is the two-class softmax with W = [0; w], b = [0; b]: both attacks agree."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20, 5, generator=g, dtype=torch.float64)
    w = torch.randn(5, generator=g, dtype=torch.float64)
    y = torch.randint(2, (20,), generator=g)
    W = torch.stack([torch.zeros(5, dtype=torch.float64), w])
    b = torch.tensor([0.0, -0.2], dtype=torch.float64)
    torch.testing.assert_close(robustness.fgsm_logistic(x, y, w, -0.2, 0.05), robustness.fgsm_linear(x, y, W, b, 0.05))


def test_imp_densities_are_exactly_geometric_and_masks_nested():
    """Frankle & Carbin 2019: pruning 20% of the survivors per round leaves (0.8)^k of 3125 weights:
    2500, 2000, 1600, 1280, 1024; each mask is inside the previous one; the pruned weights are the smallest alive."""
    g = torch.Generator().manual_seed(3)
    mask = torch.ones(25, 125, dtype=torch.bool)
    for k, expected in enumerate([2500, 2000, 1600, 1280, 1024], 1):
        trained = torch.randn(25, 125, generator=g, dtype=torch.float64)  # fresh "retrained" weights each round
        new = robustness.magnitude_prune_mask(trained, mask, 0.2)
        assert int(new.sum()) == expected == round(3125 * 0.8**k)
        assert not bool((new & ~mask).any())
        removed = mask & ~new
        assert float(trained[removed].abs().max()) <= float(trained[new].abs().min())
        mask = new


def test_prune_and_rewind_resets_survivors_to_init():
    """Rewinding: survivors take their rewind value, pruned weights are exactly 0; stale values at pruned positions are ignored."""
    g = torch.Generator().manual_seed(4)
    init = torch.randn(40, generator=g, dtype=torch.float64)
    trained = torch.randn(40, generator=g, dtype=torch.float64)
    mask = torch.ones(40, dtype=torch.bool)
    mask[:10] = False
    trained[:10] = 100.0  # stale, must not count
    new, w = robustness.prune_and_rewind(trained, init, mask, 0.5)
    assert int(new.sum()) == 15 and not bool(new[:10].any())
    torch.testing.assert_close(w, torch.where(new, init, torch.zeros_like(init)), rtol=0, atol=0)


def test_imp_finds_the_support_of_a_planted_sparse_regression():
    """A winning ticket exists: noise-free y = X beta with 10 of 100 weights nonzero; training = least squares on the
    surviving coordinates; three rounds at 50% (100 -> 50 -> 25 -> 13 alive) keep the whole support."""
    g = torch.Generator().manual_seed(5)
    X = torch.randn(200, 100, generator=g, dtype=torch.float64)
    beta = torch.zeros(100, dtype=torch.float64)
    support = torch.randperm(100, generator=g)[:10]
    beta[support] = torch.randn(10, generator=g, dtype=torch.float64).sign() * (1 + torch.rand(10, generator=g, dtype=torch.float64))
    y = X @ beta

    def train(weights, mask):
        out = torch.zeros(100, dtype=torch.float64)
        out[mask] = torch.linalg.lstsq(X[:, mask], y[:, None]).solution[:, 0]
        return out

    init = torch.randn(100, generator=g, dtype=torch.float64)
    masks = robustness.iterative_magnitude_pruning(train, init, 0.5, 3)
    assert [int(m.sum()) for m in masks] == [100, 50, 25, 13]
    assert bool(masks[-1][support].all())
    for a, b in zip(masks, masks[1:]):
        assert not bool((b & ~a).any())
