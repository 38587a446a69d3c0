"""GAE and returns against a hand-written recursion and against Stable-Baselines3's RolloutBuffer."""
import numpy as np
import pytest
import torch

from classic_rl.buffers import RolloutBuffer, gae


def reference_gae(rewards, values, next_values, terminated, episode_end, gamma, lam):
    """Scalar loops straight from the definition, per env."""
    T, N = rewards.shape
    adv = np.zeros((T, N))
    for n in range(N):
        last = 0.0
        for t in reversed(range(T)):
            delta = rewards[t, n] + gamma * next_values[t, n] * (1 - terminated[t, n]) - values[t, n]
            last = delta + gamma * lam * (1 - episode_end[t, n]) * last
            adv[t, n] = last
    return adv


def random_rollout(T=37, N=3, seed=0):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(T, N))
    values = rng.normal(size=(T, N))
    next_values = rng.normal(size=(T, N))
    terminated = rng.random((T, N)) < 0.08
    truncated = (rng.random((T, N)) < 0.08) & ~terminated
    return rewards, values, next_values, terminated, terminated | truncated


def test_gae_matches_hand_recursion():
    r, v, nv, term, end = random_rollout()
    ours = gae(*(torch.tensor(a, dtype=torch.float64) for a in (r, v, nv)), torch.tensor(term),
               torch.tensor(end), 0.97, 0.9)
    np.testing.assert_allclose(ours.numpy(), reference_gae(r, v, nv, term, end, 0.97, 0.9), rtol=1e-12)


def test_gae_lambda_one_is_discounted_return_minus_value_within_episode():
    # single env, no episode end: A_0 = sum_k gamma^k r_k + gamma^T V(s_T) - V(s_0)
    T, gamma = 6, 0.9
    r = torch.arange(1.0, T + 1, dtype=torch.float64).unsqueeze(1)
    v = torch.full((T, 1), 0.5, dtype=torch.float64)
    nv = torch.cat([v[1:], torch.tensor([[2.0]], dtype=torch.float64)])
    zeros = torch.zeros((T, 1), dtype=torch.bool)
    adv = gae(r, v, nv, zeros, zeros, gamma, 1.0)
    expected = sum(gamma ** k * (k + 1) for k in range(T)) + gamma ** T * 2.0 - 0.5
    assert adv[0, 0].item() == pytest.approx(expected, rel=1e-12)


def test_buffer_matches_stable_baselines3_with_truncation_bootstrap():
    """SB3 handles time-limit truncation by adding gamma * V(final_obs) to the reward; our buffer keeps the
    reward and bootstraps from V(final_obs) instead. Both must give the same advantages and returns."""
    from gymnasium import spaces
    from stable_baselines3.common.buffers import RolloutBuffer as SB3Buffer

    T, N, gamma, lam = 29, 2, 0.95, 0.8
    rng = np.random.default_rng(3)
    rewards = rng.normal(size=(T, N)).astype(np.float32)
    values = rng.normal(size=(T, N)).astype(np.float32)
    final_values = rng.normal(size=(T, N)).astype(np.float32)
    last_values = rng.normal(size=N).astype(np.float32)
    terminated = rng.random((T, N)) < 0.1
    truncated = (rng.random((T, N)) < 0.1) & ~terminated
    end = terminated | truncated

    sb3 = SB3Buffer(T, spaces.Box(-1, 1, (1,)), spaces.Box(-1, 1, (1,)), "cpu", gae_lambda=lam, gamma=gamma, n_envs=N)
    episode_start = np.ones(N, dtype=bool)
    for t in range(T):
        r = rewards[t] + gamma * final_values[t] * truncated[t]
        sb3.add(np.zeros((N, 1)), np.zeros((N, 1)), r, episode_start, torch.tensor(values[t]),
                torch.zeros(N))
        episode_start = end[t]
    sb3.compute_returns_and_advantage(torch.tensor(last_values), end[-1])

    ours = RolloutBuffer(T, N, (1,), torch.float32, (1,), torch.float32, torch.device("cpu"))
    ours.rewards[:] = torch.tensor(rewards)
    ours.values[:] = torch.tensor(values)
    ours.terminated[:] = torch.tensor(terminated)
    ours.episode_end[:] = torch.tensor(end)
    ours.truncation_values[:] = torch.tensor(final_values)
    ours.compute_returns(torch.tensor(last_values), gamma, lam)
    np.testing.assert_allclose(ours.advantages.numpy(), sb3.advantages, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.returns.numpy(), sb3.returns, rtol=1e-5, atol=1e-5)
