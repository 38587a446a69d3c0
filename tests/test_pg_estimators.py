"""Policy-gradient estimators against exact math: the LQR exact gradient/Hessian (autograd of the covariance
recursion), finite differences, brute-force loops, and hand-evaluated schedules."""
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.func import jacfwd

from classic_rl.pg import estimators as pg
from envs import lqr


@pytest.fixture(scope="module")
def system():
    return lqr.default_system()


def lqr_policy(system):
    return pg.FlatPolicy(pg.LinearGaussianPolicy(system.n, system.m, system.sigma, system.K0))


def exact_ascent_grad_H(system, theta):
    """grad of J_H = -C_H at theta (the truncated objective the H-step estimator is unbiased for)."""
    K = theta.detach().clone().view(system.m, system.n).requires_grad_(True)
    (-lqr.finite_horizon_cost(system, K)).backward()
    return K.grad.reshape(-1)


def exact_ascent_hessian_H(system, theta):
    f = lambda th: -lqr.finite_horizon_cost(system, th.view(system.m, system.n))  # noqa: E731
    return torch.autograd.functional.hessian(f, theta.detach())


def test_reward_to_go_matches_brute_force():
    rng = np.random.default_rng(0)
    rew = torch.as_tensor(rng.standard_normal((4, 7)))
    mask = torch.ones(4, 7, dtype=torch.float64)
    mask[1, 4:] = 0
    G = pg.discounted_reward_to_go(rew, mask, 0.9)
    for i in range(4):
        for h in range(7):
            expect = sum(0.9 ** (t - h) * rew[i, t].item() * mask[i, t].item() for t in range(h, 7))
            assert G[i, h].item() == pytest.approx(expect, abs=1e-12)


def test_linear_baseline_recovers_a_target_in_its_span():
    rng = np.random.default_rng(1)
    obs = torch.as_tensor(rng.standard_normal((6, 10, 3)))
    mask = torch.ones(6, 10, dtype=torch.float64)
    batch = pg.TrajBatch(obs, torch.zeros(6, 10, 2, dtype=torch.float64), torch.zeros(6, 10, dtype=torch.float64), mask)
    coef = torch.as_tensor(rng.standard_normal(3 * 2 + 4))
    target = pg.baseline_features(obs, mask) @ coef
    bl = pg.LinearFeatureBaseline(reg=1e-10)
    bl.fit(batch, target)
    torch.testing.assert_close(bl.predict(batch), target, atol=1e-6, rtol=1e-6)


def per_traj_grads(policy, theta, batch, weights):
    """[N, d] per-trajectory GPOMDP estimates (one forward-mode pass per parameter)."""
    return jacfwd(lambda th: pg.per_traj_surrogate(policy, th, batch, weights))(theta)


@pytest.mark.parametrize("use_baseline", [False, True])
def test_gpomdp_is_unbiased_on_lqr(system, use_baseline):
    torch.manual_seed(0)
    policy = lqr_policy(system)
    env = lqr.BatchedLQR(system)
    theta = torch.as_tensor(system.K0).reshape(-1)
    counter = pg.SampleCounter()
    base = None
    if use_baseline:  # fitted on an independent batch, as in training (previous batch)
        other = pg.sample_batched(env, policy, theta, 500, counter)
        bl = pg.LinearFeatureBaseline()
        bl.fit(other, pg.discounted_reward_to_go(other.rew, other.mask, system.discount))
    batch = pg.sample_batched(env, policy, theta, 4000, counter)
    if use_baseline:
        base = bl.predict(batch)
    grads = per_traj_grads(policy, theta, batch, pg.gpomdp_weights(batch, system.discount, base))
    # the batch-mean routine is the mean of the per-trajectory estimates
    torch.testing.assert_close(pg.gpomdp_gradient(policy, theta, batch,
                                                  pg.gpomdp_weights(batch, system.discount, base)), grads.mean(0))
    exact = exact_ascent_grad_H(system, theta)
    # Hotelling's T^2 (the coordinates are correlated): ~ chi2(6) under unbiasedness, P(chi2_6 > 30) ~ 4e-5
    assert hotelling_t2(grads, exact) < 30.0
    # and the check has power: a gradient twice as long is rejected (per-trajectory noise is ~6x the signal)
    assert hotelling_t2(grads, 2.0 * exact) > 30.0


def hotelling_t2(samples, mean):
    n = samples.shape[0]
    diff = samples.mean(0) - mean
    cov = torch.cov(samples.T)
    return float(n * diff @ torch.linalg.solve(cov, diff))


def random_categorical_batch(seed=0, n=5, T=9):
    torch.manual_seed(seed)
    module = pg.CategoricalMLPPolicy(4, 3, [8, 8]).double()
    policy = pg.FlatPolicy(module)
    obs = torch.randn(n, T, 4, dtype=torch.float64)
    act = torch.randint(0, 3, (n, T))
    rew = torch.randn(n, T, dtype=torch.float64)
    mask = torch.ones(n, T, dtype=torch.float64)
    mask[0, 6:] = 0
    batch = pg.TrajBatch(obs, act, rew, mask)
    theta = policy.initial_theta() + 0.3 * torch.randn(policy.dim, dtype=torch.float64)
    return policy, batch, theta


def finite_diff_hvp_estimate(policy, batch, weights, q, delta, eps, code_faithful):
    def grad_mean_phi(th):
        th = th.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(pg.per_traj_surrogate(policy, th, batch, weights).mean(), th)
        return g
    hess_delta = (grad_mean_phi(q + eps * delta) - grad_mean_phi(q - eps * delta)) / (2 * eps)
    if code_faithful:
        def step_mean(th):
            return (policy.log_prob(th, batch.obs, batch.act) * batch.mask).sum() / batch.mask.sum()
        s = (step_mean(q + eps * delta) - step_mean(q - eps * delta)) / (2 * eps)
        return hess_delta + grad_mean_phi(q) * s
    s = (pg.per_traj_logp(policy, q + eps * delta, batch) - pg.per_traj_logp(policy, q - eps * delta, batch)) / (2 * eps)
    per_traj = torch.stack([grad_mean_phi_i for grad_mean_phi_i in _per_traj_grads(policy, q, batch, weights)])
    return hess_delta + (per_traj * s[:, None]).mean(0)


def _per_traj_grads(policy, q, batch, weights):
    return jacfwd(lambda th: pg.per_traj_surrogate(policy, th, batch, weights))(q)


@pytest.mark.parametrize("code_faithful", [False, True])
def test_hvp_correction_matches_finite_differences(code_faithful):
    policy, batch, q = random_categorical_batch()
    weights = pg.gpomdp_weights(batch, 0.95, None)
    delta = torch.randn(policy.dim, dtype=torch.float64)
    got = pg.hvp_correction(policy, q, batch, weights, delta, code_faithful=code_faithful)
    expect = finite_diff_hvp_estimate(policy, batch, weights, q, delta, 1e-5, code_faithful)
    torch.testing.assert_close(got, expect, rtol=1e-6, atol=1e-8)


def test_code_faithful_flag_changes_only_the_score_term():
    policy, batch, q = random_categorical_batch(seed=3)
    weights = pg.gpomdp_weights(batch, 0.95, None)
    delta = torch.randn(policy.dim, dtype=torch.float64)
    unbiased = pg.hvp_correction(policy, q, batch, weights, delta)
    faithful = pg.hvp_correction(policy, q, batch, weights, delta, code_faithful=True)
    assert (unbiased - faithful).norm() > 1e-3 * unbiased.norm()
    # both share the Hessian term: removing each score term by finite differences leaves the same vector
    zero_score = finite_diff_hvp_estimate(policy, batch, weights, q, delta, 1e-5, False) - \
        (_per_traj_grads(policy, q, batch, weights) *
         ((pg.per_traj_logp(policy, q + 1e-5 * delta, batch) - pg.per_traj_logp(policy, q - 1e-5 * delta, batch))
          / 2e-5)[:, None]).mean(0)
    th = q.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(pg.per_traj_surrogate(policy, th, batch, weights).mean(), th, create_graph=True)
    (hess_delta,) = torch.autograd.grad(g @ delta, th)
    torch.testing.assert_close(zero_score, hess_delta, rtol=1e-5, atol=1e-7)


def test_hessian_estimator_is_unbiased_on_lqr(system):
    """E_tau[B(tau, q) delta] = Hess J_H(q) delta, averaged over chunks to get a standard error."""
    torch.manual_seed(1)
    policy = lqr_policy(system)
    env = lqr.BatchedLQR(system)
    q = torch.as_tensor(0.3 * system.K0 + 0.7 * lqr.optimal_gain(system)).reshape(-1)
    delta = torch.as_tensor(np.random.default_rng(0).standard_normal(6))
    counter = pg.SampleCounter()
    chunks = []
    for _ in range(60):
        batch = pg.sample_batched(env, policy, q, 100, counter)
        chunks.append(pg.hvp_correction(policy, q, batch, pg.gpomdp_weights(batch, system.discount, None), delta))
    chunks = torch.stack(chunks)
    exact = exact_ascent_hessian_H(system, q) @ delta
    z = (chunks.mean(0) - exact) / (chunks.std(0) / math.sqrt(len(chunks)))
    assert z.abs().max() < 4.0, z


def test_uniform_point_makes_the_correction_the_gradient_difference(system):
    """The HARPG identity E_b[Hess J(q_b)](theta - theta_prev) = grad J(theta) - grad J(theta_prev), checked with
    the exact LQR Hessian and Gauss-Legendre quadrature over b (a property of the method, not the sampler)."""
    theta_prev = torch.as_tensor(system.K0).reshape(-1)
    theta = torch.as_tensor(lqr.optimal_gain(system)).reshape(-1)
    nodes, w = np.polynomial.legendre.leggauss(12)
    b_values, w = (nodes + 1) / 2, w / 2
    delta = theta - theta_prev
    integral = sum(wi * (exact_ascent_hessian_H(system, b * theta + (1 - b) * theta_prev) @ delta)
                   for b, wi in zip(b_values, w))
    torch.testing.assert_close(integral, exact_ascent_grad_H(system, theta) - exact_ascent_grad_H(system, theta_prev),
                               rtol=1e-6, atol=1e-6)


def test_schedules_match_the_spec():
    for t in (0, 1, 5, 99):
        r = 2.0 / (t + 2)
        assert pg.igt_schedule(t, 0.7, 0.1) == pytest.approx((0.7 * r ** 0.8, 0.1 * r))
        assert pg.harpg_schedule(t, 0.7, 0.1, True) == pytest.approx((0.7 * r, 0.1 * r))
        assert pg.harpg_schedule(t, 0.7, 0.1, False) == pytest.approx((0.7 * r, 0.1 * math.sqrt(r)))
        assert pg.sgd_schedule(t, 0.1) == pytest.approx(0.1 * r ** (2 / 3))
        assert pg.nsgdm_schedule(t, 0.7, 0.1) == pytest.approx((0.7 * r ** (2 / 3), 0.1 * r))
    assert pg.igt_schedule(0, 1.0, 0.3) == (1.0, 0.3)  # eta_0 = 1: d_0 is the first gradient


def test_normalized_step_moves_exactly_gamma():
    rng = np.random.default_rng(4)
    for scale in (1e-6, 1.0, 1e6):
        theta = torch.as_tensor(rng.standard_normal(11))
        d = torch.as_tensor(scale * rng.standard_normal(11))
        new = pg.normalized_step(theta, d, 0.37)
        assert (new - theta).norm().item() == pytest.approx(0.37, rel=1e-9)
        assert torch.dot(new - theta, d) > 0


class CountingEnv(gym.Wrapper):
    calls = 0

    def step(self, action):
        CountingEnv.calls += 1
        return self.env.step(action)


def test_gym_sampler_counts_every_step_and_returns_whole_episodes():
    envs = [CountingEnv(gym.make("CartPole-v1", max_episode_steps=50)) for _ in range(3)]
    for i, e in enumerate(envs):
        e.reset(seed=i)
    torch.manual_seed(0)
    policy = pg.FlatPolicy(pg.CategoricalMLPPolicy(4, 2, [8]))
    counter = pg.SampleCounter()
    CountingEnv.calls = 0
    batch = pg.sample_gym(envs, policy, policy.initial_theta(), 300, counter, torch.device("cpu"))
    assert counter.env_steps == CountingEnv.calls == batch.n_steps >= 300
    assert counter.trajectories == batch.n_traj
    lengths = batch.mask.sum(1)
    assert (lengths <= 50).all()
    # valid steps are a prefix of each row (whole episodes, padded at the end)
    for i in range(batch.n_traj):
        n = int(lengths[i])
        assert batch.mask[i, :n].all() and not batch.mask[i, n:].any()
    # evaluation episodes are not counted
    pg.sample_gym(envs, policy, policy.initial_theta(), 0, None, torch.device("cpu"), deterministic=True,
                  n_episodes=4)
    assert counter.env_steps == batch.n_steps


def test_batched_sampler_counts_trajectories(system):
    policy = lqr_policy(system)
    env = lqr.BatchedLQR(system)
    counter = pg.SampleCounter()
    batch = pg.sample_batched(env, policy, policy.initial_theta(), 3, counter)
    assert batch.obs.shape == (3, system.horizon, system.n)
    assert counter.env_steps == 3 * system.horizon and counter.trajectories == 3


def test_harpg_correction_with_random_point_estimates_the_gradient_change(system):
    """Monte Carlo over (b, tau^): mean of v = B(tau^, q_b) delta equals grad J_H(theta) - grad J_H(theta_prev)."""
    torch.manual_seed(2)
    policy = lqr_policy(system)
    env = lqr.BatchedLQR(system)
    theta_prev = torch.as_tensor(system.K0).reshape(-1)
    toward = torch.as_tensor(lqr.optimal_gain(system)).reshape(-1) - theta_prev
    theta = theta_prev + 0.2 * toward / toward.norm()
    delta = theta - theta_prev
    counter = pg.SampleCounter()
    chunks = []
    for _ in range(80):  # one uniform point per chunk of 50 trajectories, as HARPG draws one q_t per iteration
        b = float(torch.rand(()))
        q = b * theta + (1 - b) * theta_prev
        batch = pg.sample_batched(env, policy, q, 50, counter)
        chunks.append(pg.hvp_correction(policy, q, batch, pg.gpomdp_weights(batch, system.discount, None), delta))
    chunks = torch.stack(chunks)
    target = exact_ascent_grad_H(system, theta) - exact_ascent_grad_H(system, theta_prev)
    assert hotelling_t2(chunks, target) < 30.0
    # No power check against 0 here: with 4000 single-trajectory HVPs the change is only just detectable
    # (T^2 vs 0 is ~16), which is the variance that makes HARPG slow on this testbed.
