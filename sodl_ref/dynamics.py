"""Dynamical systems I: recurrent networks, neural ODEs and state space models.

Discrete-time recurrences (Elman RNN, LSTM), continuous-time flows
integrated with classical Runge-Kutta (RK4), the adjoint method that gives
the gradients of a neural ODE (Chen et al. 2018), and linear state space
models discretized by a zero-order hold, whose recurrence is a causal
convolution (Gu et al. 2022). Attention and in-context learning live in
``sodl_ref.attention``.

Conventions: float64 torch tensors in and out (numpy arrays and numbers
accepted), on the device of the input; sequences are time-major
``[T, batch, features]`` like ``torch.nn.RNN`` / ``torch.nn.LSTM`` with
``batch_first=False``.
"""
from __future__ import annotations

from typing import Callable

import torch

from sodl_ref.tensors import as_float64

Tensor = torch.Tensor


# ---------------------------------------------------------------------------
# Recurrent networks
# ---------------------------------------------------------------------------

def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh, nonlinearity: str = "tanh"):
    """Unroll an Elman RNN, as ``torch.nn.RNN`` (one layer, time-major).

    h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)   (Elman 1990)

    Shapes: x [T, B, d], h0 [B, H], W_ih [H, d], W_hh [H, H], b_ih, b_hh [H].
    Returns (out [T, B, H], h_T [B, H]); ``out[t]`` is h_{t+1}.
    ``nonlinearity`` is ``"tanh"`` or ``"relu"``.
    """
    x = as_float64(x)
    h = as_float64(h0, like=x)
    W_ih, W_hh, b_ih, b_hh = (as_float64(p, like=x) for p in (W_ih, W_hh, b_ih, b_hh))
    phi = {"tanh": torch.tanh, "relu": torch.relu}[nonlinearity]
    xw = x @ W_ih.T + b_ih + b_hh  # (T, B, H): the input part, all steps at once
    outs = []
    for t in range(x.shape[0]):
        h = phi(xw[t] + h @ W_hh.T)  # (B, H)
        outs.append(h)
    return torch.stack(outs), h


def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    """One LSTM step (Hochreiter & Schmidhuber 1997; with a forget gate,
    Gers et al. 2000), in the parametrization of ``torch.nn.LSTMCell``.

    Gates are stacked in the order i, f, g, o:
        [i, f, g, o] = W_ih x + b_ih + W_hh h + b_hh
        c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
        h' = sigmoid(o) * tanh(c')

    Shapes: x [B, d], h, c [B, H], W_ih [4H, d], W_hh [4H, H], b_ih, b_hh [4H].
    Returns (h' [B, H], c' [B, H]).
    """
    x = as_float64(x)
    h, c = as_float64(h, like=x), as_float64(c, like=x)
    W_ih, W_hh, b_ih, b_hh = (as_float64(p, like=x) for p in (W_ih, W_hh, b_ih, b_hh))
    gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)  # each (B, H)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_next = torch.sigmoid(o) * torch.tanh(c_next)
    return h_next, c_next


def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
    """Unroll ``lstm_cell`` over a sequence, as a one-layer ``torch.nn.LSTM``.

    Shapes: x [T, B, d], h0, c0 [B, H], weights as in ``lstm_cell``.
    Returns (out [T, B, H], (h_T [B, H], c_T [B, H])).
    """
    x = as_float64(x)
    h, c = as_float64(h0, like=x), as_float64(c0, like=x)
    outs = []
    for t in range(x.shape[0]):
        h, c = lstm_cell(x[t], h, c, W_ih, W_hh, b_ih, b_hh)
        outs.append(h)
    return torch.stack(outs), (h, c)


# ---------------------------------------------------------------------------
# Runge-Kutta and neural ODEs
# ---------------------------------------------------------------------------

def rk4_step(f: Callable, t: float, x, h: float):
    """One step of the classical fourth-order Runge-Kutta method.

    k1 = f(t, x), k2 = f(t + h/2, x + h/2 k1), k3 = f(t + h/2, x + h/2 k2),
    k4 = f(t + h, x + h k3);  x' = x + h/6 (k1 + 2 k2 + 2 k3 + k4).
    Local error O(h^5), global error O(h^4) (Hairer, Norsett & Wanner,
    Solving ODEs I, sec. II.1). ``x`` is a tensor or a tuple of tensors
    (the state of an augmented system); ``f`` returns the same structure.
    """
    if isinstance(x, tuple):
        def axpy(a, u, v):
            return tuple(ui + a * vi for ui, vi in zip(u, v))

        k1 = f(t, x)
        k2 = f(t + h / 2, axpy(h / 2, x, k1))
        k3 = f(t + h / 2, axpy(h / 2, x, k2))
        k4 = f(t + h, axpy(h, x, k3))
        return tuple(xi + h / 6 * (a + 2 * b + 2 * c + d)
                     for xi, a, b, c, d in zip(x, k1, k2, k3, k4))
    k1 = f(t, x)
    k2 = f(t + h / 2, x + h / 2 * k1)
    k3 = f(t + h / 2, x + h / 2 * k2)
    k4 = f(t + h, x + h * k3)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def rk4_solve(f: Callable, x0, t0: float, t1: float, n_steps: int) -> Tensor:
    """Integrate x' = f(t, x) from t0 to t1 with ``n_steps`` equal RK4 steps.

    Returns the trajectory [n_steps + 1, *x0.shape], x(t0) first.
    """
    x = as_float64(x0)
    h = (t1 - t0) / n_steps
    traj = [x]
    for n in range(n_steps):
        x = rk4_step(f, t0 + n * h, x, h)
        traj.append(x)
    return torch.stack(traj)


def rk4_linear(A, x0, t1: float, n_steps: int) -> Tensor:
    """RK4 trajectory of the linear ODE x' = A x on [0, t1].

    Shapes: A [N, N], x0 [N] or [B, N]. Returns [n_steps + 1, *x0.shape].
    The exact solution is x(t) = expm(t A) x0.
    """
    A = as_float64(A)
    return rk4_solve(lambda t, x: x @ A.T, as_float64(x0, like=A), 0.0, t1, n_steps)


def linear_ode_gradients_closed_form(A, x0, t1: float, grad_xT):
    """Exact gradients of a loss L(x(t1)) for x' = A x, x(0) = x0.

    With g = dL/dx(t1), the adjoint a(t) = dL/dx(t) solves a' = -A^T a,
    a(t1) = g (Chen et al. 2018, eq. 4), so
        dL/dx0 = a(0) = expm(t1 A^T) g,
        dL/dA  = int_0^t1 a(t) x(t)^T dt          (Chen et al. 2018, eq. 5)
               = int_0^t1 expm((t1-s) A^T) g x0^T expm(s A^T) ds,
    which is the upper-right block of expm(t1 [[A^T, g x0^T], [0, A^T]])
    (Van Loan 1978, Computing integrals involving the matrix exponential).

    Shapes: A [N, N], x0 [N], grad_xT [N]. Returns (dL/dx0 [N], dL/dA [N, N]).
    """
    A = as_float64(A)
    x0, g = as_float64(x0, like=A), as_float64(grad_xT, like=A)
    N = A.shape[0]
    grad_x0 = torch.linalg.matrix_exp(t1 * A.T) @ g  # (N,)
    M = torch.zeros(2 * N, 2 * N, dtype=torch.float64, device=A.device)
    M[:N, :N] = A.T
    M[:N, N:] = torch.outer(g, x0)
    M[N:, N:] = A.T
    grad_A = torch.linalg.matrix_exp(t1 * M)[:N, N:]  # (N, N)
    return grad_x0, grad_A


def linear_ode_adjoint_rk4(A, x0, t1: float, grad_xT, n_steps: int):
    """Gradients of L(x(t1)) for x' = A x by the adjoint method
    (Chen et al. 2018, Algorithm 1), every integration done with RK4.

    1. Solve forward to get x(t1).
    2. Solve the augmented system s = (x, a, g_A) backward from t1 to 0:
           x' = A x,   a' = -A^T a,   g_A' = -a x^T,
       starting from (x(t1), dL/dx(t1), 0). Then a(0) = dL/dx0 and
       g_A(0) = int_0^t1 a x^T dt = dL/dA.
    The memory cost is constant in n_steps: no forward trajectory is stored.

    Shapes: A [N, N], x0 [N], grad_xT [N]. Returns (dL/dx0 [N], dL/dA [N, N]).
    """
    A = as_float64(A)
    x = as_float64(x0, like=A)
    a = as_float64(grad_xT, like=A)
    h = t1 / n_steps
    for n in range(n_steps):  # forward pass: only the final state is kept
        x = rk4_step(lambda t, z: A @ z, n * h, x, h)

    def augmented(t, s):
        z, adj, _ = s
        return (A @ z, -A.T @ adj, -torch.outer(adj, z))

    s = (x, a, torch.zeros_like(A))
    for n in range(n_steps):  # backward pass: step -h from t1 to 0
        s = rk4_step(augmented, t1 - n * h, s, -h)
    return s[1], s[2]


# ---------------------------------------------------------------------------
# State space models
# ---------------------------------------------------------------------------

def zoh_discretize(A, B, dt):
    """Zero-order-hold discretization of x' = A x + B u.

    With u constant on each step of length dt:
        A_bar = expm(dt A),   B_bar = A^{-1} (A_bar - I) B = int_0^dt expm(s A) ds B
    (S4D, Gu, Gupta, Goel & Re 2022, sec. 2; Mamba, Gu & Dao 2023, eq. 4).
    Computed from the exponential of the augmented matrix
    expm(dt [[A, B], [0, 0]]) = [[A_bar, B_bar], [0, I]], which equals the
    formula above when A is invertible and stays defined when it is not.

    Shapes: A [N, N], B [N, m], dt a number. Returns (A_bar [N, N], B_bar [N, m]).
    """
    A = as_float64(A)
    B = as_float64(B, like=A)
    N, m = B.shape
    M = torch.zeros(N + m, N + m, dtype=torch.float64, device=A.device)
    M[:N, :N] = A
    M[:N, N:] = B
    E = torch.linalg.matrix_exp(float(dt) * M)  # (N+m, N+m)
    return E[:N, :N], E[:N, N:]


def bilinear_discretize(A, B, dt):
    """Bilinear (Tustin) discretization, the one used by S4
    (Gu, Goel & Re 2022, eq. 3):
        A_bar = (I - dt/2 A)^{-1} (I + dt/2 A),  B_bar = (I - dt/2 A)^{-1} dt B.
    Shapes: A [N, N], B [N, m]. Returns (A_bar [N, N], B_bar [N, m]).
    """
    A = as_float64(A)
    B = as_float64(B, like=A)
    eye = torch.eye(A.shape[0], dtype=torch.float64, device=A.device)
    left = eye - dt / 2 * A
    return torch.linalg.solve(left, eye + dt / 2 * A), torch.linalg.solve(left, dt * B)


def ssm_scan(A_bar, B_bar, C, u, D=None) -> Tensor:
    """Run the discrete SSM as a recurrence (Gu et al. 2022, S4, eq. 2):
        x_k = A_bar x_{k-1} + B_bar u_k,   y_k = C x_k + D u_k,   x_{-1} = 0.

    Shapes: A_bar [N, N], B_bar [N, m], C [p, N], D [p, m] or None, u [L, m].
    Returns y [L, p].
    """
    A_bar = as_float64(A_bar)
    B_bar, C, u = (as_float64(z, like=A_bar) for z in (B_bar, C, u))
    x = torch.zeros(A_bar.shape[0], dtype=torch.float64, device=A_bar.device)
    ys = []
    for k in range(u.shape[0]):
        x = A_bar @ x + B_bar @ u[k]  # (N,)
        ys.append(C @ x)
    y = torch.stack(ys)  # (L, p)
    if D is not None:
        y = y + u @ as_float64(D, like=A_bar).T
    return y


def ssm_kernel(A_bar, B_bar, C, L: int) -> Tensor:
    """SSM convolution kernel K = (C B_bar, C A_bar B_bar, ..., C A_bar^{L-1} B_bar)
    (Gu et al. 2022, S4, eq. 5).

    Shapes: A_bar [N, N], B_bar [N, m], C [p, N]. Returns K [L, p, m].
    """
    A_bar = as_float64(A_bar)
    B_bar, C = as_float64(B_bar, like=A_bar), as_float64(C, like=A_bar)
    K, AkB = [], B_bar
    for _ in range(L):
        K.append(C @ AkB)  # (p, m)
        AkB = A_bar @ AkB
    return torch.stack(K)


def causal_convolution(K, u) -> Tensor:
    """y_k = sum_{j=0}^{k} K_j u_{k-j}  (Gu et al. 2022, S4, eq. 4).

    Shapes: K [L, p, m], u [L, m]. Returns y [L, p]. Direct O(L^2) sum; an
    FFT gives the same numbers in O(L log L).
    """
    K = as_float64(K)
    u = as_float64(u, like=K)
    L = u.shape[0]
    idx = torch.arange(L, device=K.device)
    lag = idx[:, None] - idx[None, :]  # (L, L): lag[k, i] = k - i
    Kt = K[lag.clamp(min=0)] * (lag >= 0)[..., None, None]  # (L, L, p, m), zero above the diagonal
    return torch.einsum("kipm,im->kp", Kt, u)
