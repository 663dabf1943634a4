"""Benchmark 3: ``sodl_ref.kernels.empirical_ntk`` against a ``torch.func``
``vmap(jacrev)`` Jacobian contraction and a naive per-sample autograd loop,
and against the FLOP floor of the per-layer formula on this machine."""
from __future__ import annotations

import time

import torch
from torch import nn

from sodl_ref import kernels


def make_mlp(d: int, width: int, depth: int, seed: int = 0, dtype=torch.float32) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` (nn.Linear + ReLU), one output."""
    torch.manual_seed(seed)
    sizes = [d] + [width] * depth
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out, dtype=dtype), nn.ReLU()]
    layers.append(nn.Linear(width, 1, dtype=dtype))
    return nn.Sequential(*layers)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def ntk_sodl(model, x1, x2):
    return kernels.empirical_ntk(model, x1, x2)


def ntk_vmap_jacrev(model, x1, x2):
    """Per-example Jacobians with ``vmap(jacrev)``, contracted parameter by parameter."""
    from torch.func import functional_call, jacrev, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}

    def f(p, x):
        return functional_call(model, p, (x[None],)).reshape(())

    jac = vmap(jacrev(f), in_dims=(None, 0))
    j1 = jac(params, x1)
    j2 = j1 if x2 is x1 else jac(params, x2)
    theta = torch.zeros(x1.shape[0], x2.shape[0], dtype=torch.float64)
    for k in params:
        theta += (j1[k].reshape(x1.shape[0], -1) @ j2[k].reshape(x2.shape[0], -1).T).double()
    return theta


def ntk_loop(model, x1, x2):
    """One backward pass per input: rows of the Jacobian, then J1 J2^T."""
    params = list(model.parameters())

    def jacobian(x):
        rows = []
        for i in range(x.shape[0]):
            out = model(x[i:i + 1]).reshape(())
            grads = torch.autograd.grad(out, params)
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
        return torch.stack(rows)

    j1 = jacobian(x1)
    j2 = j1 if x2 is x1 else jacobian(x2)
    return (j1 @ j2.T).double()


def per_layer_flops(sizes: list[int], n1: int, n2: int, n_forward: int) -> dict:
    """FLOPs (multiply-add = 2) of the per-layer formula
    Theta = sum_l (G_l G_l'^T) * (A_l A_l'^T + 1) for an MLP with layer
    sizes ``sizes`` (input, hidden..., output), ``n_forward`` rows pushed
    through the network, Gram matrices of ``n1 x n2``.

    forward: 2 n sum(in*out); backward to every layer's pre-activation
    (no gradient for the input layer's input): 2 n sum(in*out) over layers
    2..L; Gram matrices: 2 n1 n2 (in + out) per layer. Elementwise work
    (ReLU, its mask, the Hadamard products) is O(n * width + n1 n2 L) and
    left out."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    fwd = 2 * n_forward * sum(i * o for i, o in pairs)
    bwd = 2 * n_forward * sum(i * o for i, o in pairs[1:])
    gram = 2 * n1 * n2 * sum(i + o for i, o in pairs)
    return {"forward": fwd, "backward": bwd, "gram": gram, "total": fwd + bwd + gram}


def best_time(fn, repeats: int) -> tuple[float, object]:
    out, best = None, float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run(d: int = 100, width: int = 512, depth: int = 3, n: int = 256, repeats: int = 15,
        slow_repeats: int = 2, mm_size: int = 2048, check_loop: bool = True) -> dict:
    """Time the three ways on the same model and inputs; check they agree.

    The machine may be shared: sodl_ref's runs alternate with the large
    ``torch.mm`` that measures the peak, and each takes its best of
    ``repeats``, so that floor and time see the same conditions."""
    torch.manual_seed(1)
    model = make_mlp(d, width, depth)
    x = torch.randn(n, d)
    # warm-up (first call pays lazy imports and allocations)
    ntk_sodl(model, x[:8], x[:8])
    ntk_vmap_jacrev(model, x[:8], x[:8])
    a, b = torch.randn(mm_size, mm_size), torch.randn(mm_size, mm_size)
    torch.mm(a, b)
    ts_sodl, t_mm = [], float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        th_sodl = ntk_sodl(model, x, x)
        ts_sodl.append(time.perf_counter() - t)
        t = time.perf_counter()
        torch.mm(a, b)
        t_mm = min(t_mm, time.perf_counter() - t)
    t_sodl = min(ts_sodl)
    del a, b
    t_vmap, th_vmap = best_time(lambda: ntk_vmap_jacrev(model, x, x), slow_repeats)
    res = {"d": d, "width": width, "depth": depth, "n": n, "params": n_params(model),
           "t_sodl": t_sodl, "t_sodl_median": sorted(ts_sodl)[len(ts_sodl) // 2], "t_vmap": t_vmap, "repeats": repeats, "slow_repeats": slow_repeats}
    scale = float(th_vmap.abs().max())
    res["err_vmap"] = float((th_sodl - th_vmap).abs().max()) / scale
    res["agree_vmap"] = bool(torch.allclose(th_sodl, th_vmap, rtol=1e-4, atol=1e-5 * scale))
    del th_vmap
    if check_loop:
        t_loop, th_loop = best_time(lambda: ntk_loop(model, x, x), 1)
        res["t_loop"] = t_loop
        res["err_loop"] = float((th_sodl - th_loop).abs().max()) / scale
        res["agree_loop"] = bool(torch.allclose(th_sodl, th_loop, rtol=1e-4, atol=1e-5 * scale))
    sizes = [d] + [width] * depth + [1]
    # sodl_ref concatenates x1 and x2 and pushes n1 + n2 rows; the floor
    # counts each distinct input once (x1 is x2 here).
    res["flops_min"] = per_layer_flops(sizes, n, n, n)["total"]
    res["flops_as_run"] = per_layer_flops(sizes, n, n, 2 * n)["total"]
    res["mm_size"] = mm_size
    res["gflops_peak"] = 2 * mm_size**3 / t_mm / 1e9
    res["floor"] = res["flops_min"] / (res["gflops_peak"] * 1e9)
    res["floor_as_run"] = res["flops_as_run"] / (res["gflops_peak"] * 1e9)
    res["threads"] = torch.get_num_threads()
    return res
