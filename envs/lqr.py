"""Discounted linear-quadratic regulator: a batched torch simulator with exact cost, gradient and optimum.

System (states x in R^n, inputs u in R^m):
    x_0 ~ N(0, Sigma0),   x_{t+1} = A x_t + B u_t + w_t,   w_t ~ N(0, W),
    cost c_t = x_t' Q x_t + u_t' R u_t,   reward r_t = -c_t.
Policy class: linear Gaussian u = -K x + sigma * eps, eps ~ N(0, I_m), with sigma FIXED. The score
(u + K x) x' / sigma^2 has a non-degenerate Fisher matrix for any K, so this is the Fisher-non-degenerate
setting of Fatkhullin et al. (2023) with exact ground truth.

Objective (to MINIMISE): C(K) = E[sum_{t>=0} gamma^t c_t] (infinite horizon). With L = A - B K and
N = sigma^2 B B' + W (the per-step injected state covariance):
    P_K     = Q + K'RK + gamma L' P_K L                         (value matrix, a Lyapunov equation)
    C(K)    = tr(P_K M) + sigma^2 tr(R) / (1 - gamma),          M = Sigma0 + gamma N / (1 - gamma)
    Sig_K   = M + gamma L Sig_K L'                              (discounted state covariance)
    dC/dK   = 2 [(R + gamma B'P_K B) K - gamma B'P_K A] Sig_K
    K*      from the discounted DARE (A, B scaled by sqrt(gamma)); C* = C(K*).
The fixed-sigma exploration term does not move the optimum: sigma only adds gamma sigma^2 tr(B'P_K B) to the
constant, and P_K is minimised (in the PSD order) by K*, so K* from the DARE minimises C as well.

The simulator truncates episodes at `horizon` steps. `finite_horizon_cost` gives the exact truncated cost
C_H(K) (a torch recursion, so autograd yields its exact gradient and Hessian): that is what a policy-gradient
estimator on H-step trajectories is unbiased for. C(K) - C_H(K) = O(gamma^H) (tested).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import scipy.linalg
import torch


@dataclass(frozen=True)
class LQRSystem:
    A: np.ndarray
    B: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    Sigma0: np.ndarray
    """covariance of the initial state"""
    W: np.ndarray
    """covariance of the additive process noise"""
    sigma: float = 0.5
    """fixed exploration std of the Gaussian policy"""
    discount: float = 0.9
    horizon: int = 80
    """episode length of the simulator (gamma^H is the truncation bias scale)"""
    K0: np.ndarray = field(default=None)  # type: ignore[assignment]
    """initial gain for learning"""

    @property
    def n(self) -> int:
        return self.A.shape[0]

    @property
    def m(self) -> int:
        return self.B.shape[1]


def default_system(discount: float = 0.9, horizon: int = 80, sigma: float = 0.5) -> LQRSystem:
    """A fixed 3-state, 2-input system whose open loop is marginally stable (rho(A) = 1; K = 0 is still
    stabilising in the discounted sense). With the defaults C(K0) = 24.2 and C* = 18.0."""
    A = np.array([[0.85, 0.2, 0.0],
                  [0.0, 0.8, 0.3],
                  [0.1, 0.0, 0.8]])
    B = np.array([[1.0, 0.0],
                  [0.0, 1.0],
                  [0.5, 0.5]])
    n, m = A.shape[0], B.shape[1]
    sys = LQRSystem(A=A, B=B, Q=np.eye(n), R=np.eye(m), Sigma0=np.eye(n), W=0.01 * np.eye(n),
                    sigma=sigma, discount=discount, horizon=horizon, K0=np.zeros((m, n)))
    # Start from a "cautious" controller (the DARE gain for 20x the input cost) rather than K = 0: near the
    # stability boundary the Hessian of C is ~1e4 and no fixed step size suits both ends of the run.
    cautious = dataclasses.replace(sys, R=20.0 * sys.R)
    return dataclasses.replace(sys, K0=optimal_gain(cautious))


# ----------------------------------------------------------------------------- exact quantities (scipy)

def discounted_spectral_radius(sys: LQRSystem, K: np.ndarray) -> float:
    L = sys.A - sys.B @ np.asarray(K, float)
    return math.sqrt(sys.discount) * float(np.max(np.abs(np.linalg.eigvals(L))))


def is_stabilising(sys: LQRSystem, K: np.ndarray) -> bool:
    """C(K) is finite iff sqrt(gamma) * rho(A - B K) < 1."""
    return discounted_spectral_radius(sys, K) < 1.0


def _noise_cov(sys: LQRSystem) -> np.ndarray:
    return sys.sigma ** 2 * sys.B @ sys.B.T + sys.W


def value_matrix(sys: LQRSystem, K: np.ndarray) -> np.ndarray:
    """P_K solving P = Q + K'RK + gamma L'PL."""
    K = np.asarray(K, float)
    L = sys.A - sys.B @ K
    # scipy solves X = a X a^H + q
    return scipy.linalg.solve_discrete_lyapunov(math.sqrt(sys.discount) * L.T, sys.Q + K.T @ sys.R @ K)


def state_covariance(sys: LQRSystem, K: np.ndarray) -> np.ndarray:
    """Sig_K = sum_t gamma^t E[x_t x_t'] solving Sig = M + gamma L Sig L'."""
    g = sys.discount
    L = sys.A - sys.B @ np.asarray(K, float)
    M = sys.Sigma0 + g * _noise_cov(sys) / (1 - g)
    return scipy.linalg.solve_discrete_lyapunov(math.sqrt(g) * L, M)


def exact_cost(sys: LQRSystem, K: np.ndarray) -> float:
    """C(K), the infinite-horizon discounted expected cost of the stochastic policy (inf if not stabilising)."""
    if not is_stabilising(sys, K):
        return float("inf")
    g = sys.discount
    P = value_matrix(sys, K)
    M = sys.Sigma0 + g * _noise_cov(sys) / (1 - g)
    return float(np.trace(P @ M) + sys.sigma ** 2 * np.trace(sys.R) / (1 - g))


def exact_grad(sys: LQRSystem, K: np.ndarray) -> np.ndarray:
    """dC/dK (shape [m, n]) for a stabilising K."""
    if not is_stabilising(sys, K):
        raise ValueError("exact_grad: K is not stabilising (cost is infinite)")
    K = np.asarray(K, float)
    g = sys.discount
    P = value_matrix(sys, K)
    E = (sys.R + g * sys.B.T @ P @ sys.B) @ K - g * sys.B.T @ P @ sys.A
    return 2.0 * E @ state_covariance(sys, K)


def optimal_gain(sys: LQRSystem) -> np.ndarray:
    """K* from the discounted DARE: the standard DARE for (sqrt(gamma) A, sqrt(gamma) B)."""
    s = math.sqrt(sys.discount)
    P = scipy.linalg.solve_discrete_are(s * sys.A, s * sys.B, sys.Q, sys.R)
    g = sys.discount
    return np.linalg.solve(sys.R + g * sys.B.T @ P @ sys.B, g * sys.B.T @ P @ sys.A)


def optimal_cost(sys: LQRSystem) -> float:
    return exact_cost(sys, optimal_gain(sys))


def finite_horizon_cost(sys: LQRSystem, K: torch.Tensor, horizon: int | None = None) -> torch.Tensor:
    """Exact C_H(K) = E[sum_{t<H} gamma^t c_t] by the covariance recursion, differentiable in K (float64)."""
    H = sys.horizon if horizon is None else horizon
    dt = torch.float64
    A, B, Q, R = (torch.as_tensor(x, dtype=dt, device=K.device) for x in (sys.A, sys.B, sys.Q, sys.R))
    S = torch.as_tensor(sys.Sigma0, dtype=dt, device=K.device)
    N = torch.as_tensor(_noise_cov(sys), dtype=dt, device=K.device)
    K = K.to(dt)
    L = A - B @ K
    QK = Q + K.T @ R @ K
    noise_cost = sys.sigma ** 2 * torch.trace(R)
    total = torch.zeros((), dtype=dt, device=K.device)
    for t in range(H):
        total = total + sys.discount ** t * (torch.trace(QK @ S) + noise_cost)
        S = L @ S @ L.T + N
    return total


# ----------------------------------------------------------------------------- batched simulator (torch)

class BatchedLQR:
    """`n` independent LQR episodes stepped together on `device` (float64). Fixed length `horizon`.

    reset(n) -> x [n, n_x];  step(u [n, m]) -> (x', reward [n]).  All randomness from torch's global RNG
    (or `generator`), so seeding torch makes rollouts reproducible.
    """

    def __init__(self, sys: LQRSystem, device: torch.device | str = "cpu",
                 generator: torch.Generator | None = None):
        self.sys = sys
        self.device = torch.device(device)
        self.generator = generator
        dt = torch.float64
        t = lambda x: torch.as_tensor(x, dtype=dt, device=self.device)  # noqa: E731
        self.A, self.B, self.Q, self.R = t(sys.A), t(sys.B), t(sys.Q), t(sys.R)
        self.chol0 = t(np.linalg.cholesky(sys.Sigma0))
        self.cholW = t(np.linalg.cholesky(sys.W)) if np.any(sys.W) else None
        self.horizon = sys.horizon
        self.obs_dim, self.act_dim = sys.n, sys.m
        self.x: torch.Tensor | None = None

    def _randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, dtype=torch.float64, device=self.device, generator=self.generator)

    def reset(self, n: int) -> torch.Tensor:
        self.x = self._randn(n, self.obs_dim) @ self.chol0.T
        return self.x

    def step(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.x is not None, "call reset first"
        x = self.x
        cost = ((x @ self.Q) * x).sum(-1) + ((u @ self.R) * u).sum(-1)
        nxt = x @ self.A.T + u @ self.B.T
        if self.cholW is not None:
            nxt = nxt + self._randn(*x.shape) @ self.cholW.T
        self.x = nxt
        return nxt, -cost


def monte_carlo_cost(sys: LQRSystem, K: np.ndarray, n_episodes: int, device: str = "cpu",
                     generator: torch.Generator | None = None) -> tuple[float, float]:
    """Mean and standard error of the truncated discounted cost of u = -Kx + sigma*eps over n episodes."""
    env = BatchedLQR(sys, device, generator)
    Kt = torch.as_tensor(K, dtype=torch.float64, device=env.device)
    x = env.reset(n_episodes)
    total = torch.zeros(n_episodes, dtype=torch.float64, device=env.device)
    for t in range(sys.horizon):
        u = -x @ Kt.T + sys.sigma * env._randn(n_episodes, sys.m)
        x, r = env.step(u)
        total += sys.discount ** t * (-r)
    return float(total.mean()), float(total.std() / math.sqrt(n_episodes))


# ----------------------------------------------------------------------------- gymnasium wrapper

class LQREnv(gym.Env):
    """Single-episode gymnasium view of the default system (for tools that want a gymnasium id).

    Training code in this project uses BatchedLQR directly (`--env LQR`), which is faster and exact.
    """

    metadata = {"render_modes": []}

    def __init__(self, discount: float = 0.9, horizon: int = 80, sigma: float = 0.5):
        self.sys = default_system(discount, horizon, sigma)
        n, m = self.sys.n, self.sys.m
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n,), np.float64)
        self.action_space = gym.spaces.Box(-np.inf, np.inf, (m,), np.float64)
        self._x = np.zeros(n)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._x = self.np_random.multivariate_normal(np.zeros(self.sys.n), self.sys.Sigma0)
        self._t = 0
        return self._x.copy(), {}

    def step(self, action):
        u = np.asarray(action, float)
        x = self._x
        cost = float(x @ self.sys.Q @ x + u @ self.sys.R @ u)
        w = self.np_random.multivariate_normal(np.zeros(self.sys.n), self.sys.W)
        self._x = self.sys.A @ x + self.sys.B @ u + w
        self._t += 1
        return self._x.copy(), -cost, False, self._t >= self.sys.horizon, {}


if "LQR-v0" not in gym.registry:
    gym.register(id="LQR-v0", entry_point="envs.lqr:LQREnv")
