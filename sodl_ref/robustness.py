"""Adversarial examples and lottery tickets: what the weights of a network do and do not need.

- The fast gradient sign method (Goodfellow, Shlens & Szegedy 2015, sec. 3-4),
  in closed form for linear classifiers and by autograd for any module.
- Iterative magnitude pruning with rewinding (Frankle & Carbin 2019,
  sec. 1 "Identifying winning tickets"; rewinding to an early iterate:
  Frankle et al. 2020, "Linear mode connectivity and the lottery ticket
  hypothesis").

Float64 torch tensors in and out (numpy accepted); masks are bool tensors.
"""

from __future__ import annotations

import torch

from sodl_ref.tensors import as_float64


# ---------------------------------------------------------------------------
# FGSM
# ---------------------------------------------------------------------------


def fgsm_linear(x, y, W, b, eps):
    """FGSM on a softmax linear classifier (Goodfellow et al. 2015, eq. 3: x + eps sign(grad_x J)).

    logits = x W^T + b, J = cross-entropy(logits, y). Its input gradient is
    grad_x J = (softmax(logits) - onehot(y)) W, so
        x_adv = x + eps * sign((softmax(x W^T + b) - onehot(y)) W).
    x: [n, d], y: [n] ints in 0..k-1, W: [k, d], b: [k] -> x_adv [n, d].
    """
    x = as_float64(x)
    W, b = as_float64(W, x.device), as_float64(b, x.device)
    y = torch.as_tensor(y, device=x.device).long()
    probs = torch.softmax(x @ W.T + b, -1)  # (n, k)
    grad = (probs - torch.nn.functional.one_hot(y, W.shape[0]).to(x.dtype)) @ W  # (n, d)
    return x + eps * torch.sign(grad)


def fgsm_logistic(x, y, w, b, eps):
    """FGSM on logistic regression, labels y in {0, 1} (Goodfellow et al. 2015, sec. 4).

    J = BCE(sigmoid(x.w + b), y), grad_x J = (sigmoid(x.w + b) - y) w, so
    x_adv = x + eps sign(sigmoid(z) - y) sign(w). The logit moves by exactly
    eps ||w||_1 in the direction that increases the loss:
        z_adv - z = eps ||w||_1 sign(sigmoid(z) - y),
    and to first order the loss rises by eps |sigmoid(z) - y| ||w||_1 =
    eps ||grad_x J||_1, which grows with the dimension for a fixed
    per-coordinate eps (the "linear explanation" of adversarial examples).
    x: [n, d], y: [n], w: [d], b: float -> x_adv [n, d].
    """
    x = as_float64(x)
    w = as_float64(w, x.device)
    y = as_float64(y, x.device)
    s = torch.sigmoid(x @ w + b)  # (n,)
    return x + eps * torch.sign((s - y)[:, None] * w)


def fgsm(model, x, y, eps, loss=torch.nn.functional.cross_entropy):
    """FGSM by autograd for any differentiable classifier: x + eps sign(grad_x loss(model(x), y)) (Goodfellow et al. 2015, eq. 3).

    x: [n, ...] -> x_adv of the same shape (detached). The loss is summed
    over the batch so each example gets its own gradient sign.
    """
    x = x.detach().clone().requires_grad_(True)
    J = loss(model(x), y, reduction="sum")
    (g,) = torch.autograd.grad(J, x)
    return (x + eps * g.sign()).detach()


# ---------------------------------------------------------------------------
# Iterative magnitude pruning with rewinding
# ---------------------------------------------------------------------------


def magnitude_prune_mask(weights, mask, fraction):
    """One round of magnitude pruning (Frankle & Carbin 2019, sec. 1, step 3).

    Among the weights still alive (mask True), remove the
    round(fraction * n_alive) of smallest magnitude |weights|; values at
    pruned positions are ignored. weights: any shape, mask: bool of the same
    shape. Returns the new bool mask (a subset of the old one): after k
    rounds the density is (1 - fraction)^k up to rounding.
    """
    w = as_float64(weights)
    mask = torch.as_tensor(mask, device=w.device).bool()
    n_alive = int(mask.sum())
    n_prune = round(fraction * n_alive)
    score = torch.where(mask, w.abs(), torch.full_like(w, float("inf"))).reshape(-1)  # (numel,)
    idx = torch.topk(score, n_prune, largest=False).indices
    new = mask.clone().reshape(-1)
    new[idx] = False
    return new.reshape(mask.shape)


def prune_and_rewind(trained, rewind_to, mask, fraction):
    """One IMP round: prune by trained magnitude, then rewind the survivors (Frankle & Carbin 2019, sec. 1, step 4).

    trained, rewind_to: [...] weights after training and at the rewinding
    point (initialization, or an early iterate as in Frankle et al. 2020);
    mask: bool [...] of the weights alive before this round. Returns
    (new_mask, rewind_to * new_mask).
    """
    new = magnitude_prune_mask(trained, mask, fraction)
    return new, as_float64(rewind_to) * new


def iterative_magnitude_pruning(train, init, fraction, rounds):
    """Iterative magnitude pruning with rewinding (Frankle & Carbin 2019, sec. 1, "identifying winning tickets").

    train(weights, mask) -> trained weights (any trainer that keeps pruned
    weights at zero); init: [...] the weights to rewind to. Each round
    trains the current ticket, prunes `fraction` of the surviving weights
    by magnitude and rewinds the survivors to init. Returns the list of
    masks [mask_0 = all True, mask_1, ..., mask_rounds] (nested).
    """
    init = as_float64(init)
    mask = torch.ones_like(init, dtype=torch.bool)
    masks, weights = [mask], init.clone()
    for _ in range(rounds):
        trained = train(weights, mask)
        mask, weights = prune_and_rewind(trained, init, mask, fraction)
        masks.append(mask)
    return masks
