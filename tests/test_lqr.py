"""The exact LQR testbed against independent math: Monte Carlo, finite differences, autograd, Riccati
iteration, brute-force perturbations."""
import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from envs import lqr


@pytest.fixture(scope="module")
def system():
    return lqr.default_system()


def random_stabilising_gain(sys, rng, scale=0.15):
    K_opt = lqr.optimal_gain(sys)
    while True:
        K = K_opt + scale * rng.standard_normal(K_opt.shape)
        if lqr.discounted_spectral_radius(sys, K) < 0.95:
            return K


def test_exact_cost_matches_monte_carlo(system):
    gen = torch.Generator().manual_seed(0)
    for K in (system.K0, lqr.optimal_gain(system)):
        mean, se = lqr.monte_carlo_cost(system, K, 6000, generator=gen)
        exact_H = float(lqr.finite_horizon_cost(system, torch.as_tensor(K)))
        assert abs(mean - exact_H) < 4 * se, (mean, se, exact_H)
        # the infinite-horizon cost exceeds the truncated one by a positive O(gamma^H) tail
        tail = lqr.exact_cost(system, K) - exact_H
        assert 0 < tail < 1e-2 * exact_H
        assert abs(mean - lqr.exact_cost(system, K)) < 4 * se + tail


def test_finite_horizon_cost_converges_to_lyapunov_cost(system):
    K = torch.as_tensor(system.K0)
    long = float(lqr.finite_horizon_cost(system, K, horizon=600))
    assert long == pytest.approx(lqr.exact_cost(system, system.K0), rel=1e-10)


def test_exact_gradient_matches_finite_differences(system):
    rng = np.random.default_rng(1)
    for K in (system.K0, random_stabilising_gain(system, rng), random_stabilising_gain(system, rng)):
        grad = lqr.exact_grad(system, K)
        fd = np.zeros_like(K)
        eps = 1e-6
        for idx in np.ndindex(K.shape):
            E = np.zeros_like(K)
            E[idx] = eps
            fd[idx] = (lqr.exact_cost(system, K + E) - lqr.exact_cost(system, K - E)) / (2 * eps)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())


def test_exact_gradient_matches_autograd_of_covariance_recursion(system):
    rng = np.random.default_rng(2)
    K = random_stabilising_gain(system, rng)
    Kt = torch.as_tensor(K).requires_grad_(True)
    lqr.finite_horizon_cost(system, Kt, horizon=600).backward()
    np.testing.assert_allclose(Kt.grad.numpy(), lqr.exact_grad(system, K), rtol=1e-8)


def test_optimal_gain_is_a_stationary_minimum(system):
    K_opt = lqr.optimal_gain(system)
    assert lqr.is_stabilising(system, K_opt)
    assert np.abs(lqr.exact_grad(system, K_opt)).max() < 1e-9
    c_opt = lqr.optimal_cost(system)
    rng = np.random.default_rng(3)
    for _ in range(50):  # brute force: no nearby gain is cheaper
        K = K_opt + 0.05 * rng.standard_normal(K_opt.shape)
        assert lqr.exact_cost(system, K) > c_opt


def test_optimal_gain_matches_riccati_value_iteration(system):
    # independent route: iterate the discounted Riccati map from P = Q to its fixed point
    g, A, B, Q, R = system.discount, system.A, system.B, system.Q, system.R
    P = Q.copy()
    for _ in range(2000):
        K = np.linalg.solve(R + g * B.T @ P @ B, g * B.T @ P @ A)
        P = Q + K.T @ R @ K + g * (A - B @ K).T @ P @ (A - B @ K)
    np.testing.assert_allclose(lqr.optimal_gain(system), K, atol=1e-9)


def test_noise_free_cost_is_trace_of_value_matrix(system):
    quiet = dataclasses.replace(system, sigma=0.0, W=np.zeros_like(system.W))
    P = lqr.value_matrix(quiet, system.K0)
    assert lqr.exact_cost(quiet, system.K0) == pytest.approx(np.trace(P @ system.Sigma0), rel=1e-12)
    # and P solves its Lyapunov equation
    L = system.A - system.B @ system.K0
    resid = system.Q + system.K0.T @ system.R @ system.K0 + system.discount * L.T @ P @ L - P
    assert np.abs(resid).max() < 1e-10


def test_unstable_gain_has_infinite_cost(system):
    K = -np.ones((system.m, system.n))
    assert not lqr.is_stabilising(system, K)
    assert math.isinf(lqr.exact_cost(system, K))
    with pytest.raises(ValueError):
        lqr.exact_grad(system, K)


def test_batched_simulator_step_is_the_dynamics(system):
    env = lqr.BatchedLQR(system, generator=torch.Generator().manual_seed(4))
    x = env.reset(5)
    u = torch.randn(5, system.m, dtype=torch.float64)
    nxt, r = env.step(u)
    A, B, Q, R = (torch.as_tensor(m) for m in (system.A, system.B, system.Q, system.R))
    expected_cost = torch.einsum("bi,ij,bj->b", x, Q, x) + torch.einsum("bi,ij,bj->b", u, R, u)
    torch.testing.assert_close(-r, expected_cost)
    noise = nxt - (x @ A.T + u @ B.T)  # process noise with std 0.1 per coordinate
    assert 0 < noise.abs().max() < 1.0


def test_simulator_is_deterministic_under_a_seed(system):
    a = lqr.monte_carlo_cost(system, system.K0, 50, generator=torch.Generator().manual_seed(7))
    b = lqr.monte_carlo_cost(system, system.K0, 50, generator=torch.Generator().manual_seed(7))
    assert a == b


def test_gymnasium_id_is_registered_and_consistent():
    env = gym.make("LQR-v0")
    obs, _ = env.reset(seed=0)
    sys = env.unwrapped.sys
    u = np.array([0.3, -0.2])
    _, r, term, trunc, _ = env.step(u)
    assert r == pytest.approx(-(obs @ sys.Q @ obs + u @ sys.R @ u))
    assert not term and not trunc
    steps = 1
    while not trunc:
        _, _, _, trunc, _ = env.step(u * 0)
        steps += 1
    assert steps == sys.horizon
