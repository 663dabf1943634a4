"""Brain-inspired learning: spiking neurons, Hebbian and spike-timing rules.

- the leaky integrate-and-fire (LIF) neuron and its firing rate
  (Gerstner, Kistler, Naud & Paninski, "Neuronal Dynamics", 2014, Sec. 1.3);
- Oja's rule, Hebbian learning that finds the first principal component
  (Oja 1982, J. Math. Biology 15: normalized Hebbian learning to first order);
- the exponential STDP window (Bi & Poo 1998; Song, Miller & Abbott 2000);
- the surrogate gradient of the spike nonlinearity (Zenke & Ganguli 2018,
  SuperSpike; Neftci, Mostafa & Zenke 2019).

Units: seconds, volts (arbitrary), amperes x ohms = volts. float64.
"""

from __future__ import annotations

import math

import torch

from sodl_ref.tensors import as_float64


def lif_rate(current, resistance=1.0, tau=0.01, v_threshold=1.0, t_ref=0.002) -> float:
    """Firing rate (Hz) of a LIF neuron with constant input (Gerstner et al. 2014, Sec. 1.3, constant input).

    tau dv/dt = -v + R I, reset and rest at 0, absolute refractory period t_ref.
    Starting from 0 the voltage is v(t) = R I (1 - exp(-t / tau)); it reaches
    v_th after T = tau ln(R I / (R I - v_th)), so the rate is
    1 / (t_ref + T) when R I > v_th, and 0.0 otherwise.
    """
    drive = float(resistance) * float(current)
    if drive <= v_threshold:
        return 0.0
    return 1.0 / (t_ref + tau * math.log(drive / (drive - v_threshold)))


def lif_simulate(current, dt, duration, resistance=1.0, tau=0.01, v_threshold=1.0, t_ref=0.002):
    """Forward-Euler simulation of the LIF neuron (Gerstner et al. 2014, Sec. 1.3: tau du/dt = -u + R I, fire and reset).

    n_steps = round(duration / dt); step s = 0..n_steps-1 ends at t = (s + 1) dt:
      - if the neuron is refractory, v = 0 and one refractory step is used up;
      - else v <- v + dt / tau * (-v + R I_s); if v >= v_th a spike is emitted at
        t, v is reset to 0 and the next round(t_ref / dt) steps are refractory.
    ``current``: a number or [n_steps]. Returns (v [n_steps] after each step,
    spike_times [n_spikes]).
    """
    n_steps = int(round(duration / dt))
    I = as_float64(current).reshape(-1).expand(n_steps) if as_float64(current).numel() == 1 else as_float64(current).reshape(-1)
    I = I.detach().cpu().tolist()  # a scalar loop: each step depends on the last
    n_ref = int(round(t_ref / dt))
    v, refractory, trace, spikes = 0.0, 0, [], []
    for s in range(n_steps):
        if refractory > 0:
            refractory -= 1
            v = 0.0
        else:
            v = v + dt / tau * (-v + resistance * I[s])
            if v >= v_threshold:
                spikes.append((s + 1) * dt)
                v = 0.0
                refractory = n_ref
        trace.append(v)
    device = current.device if isinstance(current, torch.Tensor) else None
    return (
        torch.tensor(trace, dtype=torch.float64, device=device),
        torch.tensor(spikes, dtype=torch.float64, device=device),
    )


def oja_step(w, x, lr):
    """One step of Oja's rule (Oja 1982; Hebb's rule with normalization, to first order in lr):

        y = w.x,   w <- w + lr * y * (x - y * w).

    The Hebbian term y x grows w along directions of high variance; the
    decay -y^2 w keeps |w| -> 1. w, x: [d]. Returns [d].
    """
    w = as_float64(w)
    x = as_float64(x, like=w)
    y = w @ x
    return w + lr * y * (x - y * w)


def oja_train(X, w0, lr, n_epochs: int = 1) -> torch.Tensor:
    """Oja's rule over the rows of X in order, ``n_epochs`` passes (Oja 1982).

    For small lr, w converges to +-the unit top eigenvector of E[x x^T]
    (the covariance for centred data). X: [n, d]; w0: [d].
    Returns the trajectory [n_epochs * n + 1, d] (row 0 is w0).
    """
    X = as_float64(X)
    w = as_float64(w0, like=X).clone()
    traj = [w]
    for _ in range(n_epochs):
        for x in X:
            w = oja_step(w, x, lr)
            traj.append(w)
    return torch.stack(traj)  # [n_epochs * n + 1, d]


def stdp_window(dt, a_plus=0.01, a_minus=0.012, tau_plus=0.02, tau_minus=0.02) -> torch.Tensor:
    """Exponential STDP window (Song, Miller & Abbott 2000, who write it in t_pre - t_post; Bi & Poo 1998).

    dt = t_post - t_pre (s): W(dt) = a_plus exp(-dt / tau_plus) for dt > 0
    (pre before post: potentiation), -a_minus exp(dt / tau_minus) for dt < 0
    (depression), 0 at dt = 0. dt: any shape; returns the same shape.
    """
    dt = as_float64(dt)
    pos = a_plus * torch.exp(-dt.clamp(min=0) / tau_plus)
    neg = -a_minus * torch.exp(dt.clamp(max=0) / tau_minus)
    return torch.where(dt > 0, pos, torch.where(dt < 0, neg, torch.zeros_like(dt)))


def stdp_weight_change(pre_times, post_times, a_plus=0.01, a_minus=0.012, tau_plus=0.02, tau_minus=0.02) -> float:
    """Total weight change from all pre/post spike pairs (all-to-all pairing,
    Song et al. 2000; Gerstner et al. 2014, Sec. 19.2):
        dw = sum_{pre f} sum_{post g} W(t_post_g - t_pre_f).
    pre_times: [n_pre]; post_times: [n_post]. Returns a float.
    """
    pre, post = as_float64(pre_times).reshape(-1), as_float64(post_times).reshape(-1)
    post = post.to(pre.device)
    return float(stdp_window(post[None, :] - pre[:, None], a_plus, a_minus, tau_plus, tau_minus).sum())


class SurrogateSpike(torch.autograd.Function):
    """Heaviside spike with the SuperSpike surrogate gradient (Zenke & Ganguli 2018, SuperSpike).

    forward: S = 1[u > 0]  (u = v - v_threshold);
    backward: dS/du := 1 / (beta |u| + 1)^2, the derivative of the fast
    sigmoid u / (1 + |u|) at beta u, up to the factor beta (SpyTorch convention).
    """

    @staticmethod
    def forward(ctx, u, beta):
        ctx.save_for_backward(u)
        ctx.beta = beta
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (u,) = ctx.saved_tensors
        return grad_output / (ctx.beta * u.abs() + 1.0) ** 2, None


def spike_fn(u, beta: float = 10.0) -> torch.Tensor:
    """Spike nonlinearity with surrogate gradient: ``SurrogateSpike.apply(u, beta)``. u: any shape."""
    return SurrogateSpike.apply(u, beta)
