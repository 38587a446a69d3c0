"""Testbeds of the policy-gradient family (algos/vanilla_pg.py, npg_igt.py, harpg.py): the env, the policy
that fits it, sampling, evaluation and exact env snapshots, plus the per-env default settings.

`make_testbed(cfg, device)` is what the algorithms hand to `classic_rl.pg.trainer.PGTrainer`:
  * `--env LQR`: the batched exact LQR of envs/lqr.py with a fixed-std linear Gaussian policy u = -Kx + sigma*eps.
    Training trajectories draw from torch's global RNG (checkpointed by the run session); evaluation rollouts
    from their own generator, so how often a run evaluates does not change its training samples. Each
    evaluation logs the exact cost C(K), C*, the suboptimality C(K) - C* and ||K - K*|| beside the
    deterministic (sigma = 0) discounted return.
  * any gymnasium env with a flat Box observation space and Discrete or flat Box actions: `--n-envs` copies
    built through the env registry (each wrapped in `Snapshot`), stepped in lockstep by the whole-episode
    sampler, with a tanh MLP policy (softmax or Gaussian with a learned state-independent std). Separate
    copies serve evaluation. `EnvListState` checkpoints every copy exactly (state, RNG, time-limit counter).

Default settings per env (`pg_presets`): CartPole, Acrobot and MuJoCo follow the authors' code
(aabkn/Stochastic-Policy-Gradient-Methods, run_experiment/run_PG.py: batches of 5000 env steps (10000 on
MuJoCo), discount 0.99, tanh MLP [32, 32] for discrete and [64, 64] for MuJoCo actions, CartPole capped at
200 steps); the LQR values are ours (the default system, one 80-step trajectory per batch, discount 0.9,
chosen so every method converges within paper_figs.npg_sample_complexity's 'small' budget). Each algorithm
adds its own per-env step sizes.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from classic_rl import UserError
from classic_rl.pg.estimators import (CategoricalMLPPolicy, FlatPolicy, GaussianMLPPolicy, LinearGaussianPolicy,
                                      SampleCounter, TrajBatch, sample_batched, sample_gym)

LQR_NAMES = ("LQR", "LQR-v0")


def is_lqr(env: str) -> bool:
    return env in LQR_NAMES


def pg_presets(env: str, algo_overrides: dict[str, dict]) -> dict:
    """Per-env defaults shared by the PG family, then the algorithm's own overrides for that env (keys:
    'LQR', 'mujoco', or the gymnasium id's name before the version, e.g. 'CartPole')."""
    if is_lqr(env):
        base = dict(gamma=0.9, batch_size=80, total_steps=80 * 2000, eval_every=0, eval_log_points=40,
                    eval_episodes=16, n_envs=1)
        key = "LQR"
    else:
        from envs.registry import env_family, resolve_env_id

        gid = resolve_env_id(env)
        if env_family(gid) == "mujoco":
            base = dict(hidden_sizes=[64, 64], batch_size=10_000, total_steps=2_000_000, eval_every=20_000)
            key = "mujoco"
        else:
            base = dict(hidden_sizes=[32, 32], batch_size=5000, total_steps=500_000, eval_every=10_000)
            if gid == "CartPole-v1":
                base["max_episode_steps"] = 200
            key = gid.split("-")[0]
    base.update(algo_overrides.get(key, {}))
    return base


class LQRTestbed:
    """The exact LQR testbed: batched simulator, linear Gaussian policy, exact cost and optimum."""

    def __init__(self, cfg: Any, device: torch.device):
        from envs import lqr

        if cfg.gamma >= 1:
            raise UserError("--gamma must be < 1 on LQR (the exact cost is the discounted one)")
        if cfg.n_envs != 1:
            raise UserError("--n-envs has no meaning on LQR (a batch's trajectories are simulated as one tensor); "
                            "leave it at 1")
        self.lqr, self.cfg, self.name = lqr, cfg, "LQR"
        self.system = lqr.default_system(discount=cfg.gamma, horizon=cfg.lqr_horizon, sigma=cfg.lqr_sigma)
        self.env = lqr.BatchedLQR(self.system, device)
        self.state = torch.Generator(device=device).manual_seed(cfg.seed + 7919)  # evaluation rollouts only
        self.eval_env = lqr.BatchedLQR(self.system, device, generator=self.state)
        module = LinearGaussianPolicy(self.system.n, self.system.m, cfg.lqr_sigma, self.system.K0).to(device)
        self.policy = FlatPolicy(module)
        self.theta0 = self.policy.initial_theta()
        self.cost_opt = lqr.optimal_cost(self.system)
        self.gain_opt = lqr.optimal_gain(self.system)

    def steps_per_batch(self, min_steps: int) -> int:
        return max(1, math.ceil(min_steps / self.system.horizon)) * self.system.horizon

    def sample(self, theta: torch.Tensor, min_steps: int, counter: SampleCounter) -> TrajBatch:
        n = max(1, math.ceil(min_steps / self.system.horizon))
        return sample_batched(self.env, self.policy, theta, n, counter)

    def cost(self, theta: torch.Tensor) -> tuple[float, np.ndarray]:
        K = theta.detach().view(self.system.m, self.system.n).cpu().numpy()
        return self.lqr.exact_cost(self.system, K), K

    def evaluate(self, theta: torch.Tensor) -> dict[str, Any]:
        cost, K = self.cost(theta)
        n = self.cfg.eval_episodes
        if math.isfinite(cost):
            batch = sample_batched(self.eval_env, self.policy, theta, n, SampleCounter(), deterministic=True)
            disc = self.cfg.gamma ** torch.arange(batch.rew.shape[1], dtype=batch.rew.dtype, device=batch.rew.device)
            returns = (batch.rew * disc).sum(1).cpu().tolist()  # deterministic (sigma = 0) discounted return
        else:  # not stabilising: states blow up, the exact return is -inf
            returns = [-math.inf] * n
        return {"returns": returns, "lengths": [self.system.horizon] * n, "cost_exact": cost,
                "cost_opt": self.cost_opt, "suboptimality": cost - self.cost_opt,
                "gain_error": float(np.linalg.norm(K - self.gain_opt))}

    def headline(self, theta: torch.Tensor) -> tuple[str, float, bool, dict[str, float]]:
        cost, _ = self.cost(theta)
        return "final_suboptimality", cost - self.cost_opt, False, {"final_cost": cost, "cost_opt": self.cost_opt}

    def close(self) -> None:
        pass


class EnvListState:
    """Checkpoint adapter for plain lists of `Snapshot`-wrapped gymnasium envs: saves each env's exact state
    (simulator state, np_random, time-limit counter). Envs that cannot snapshot themselves are reseeded with
    `reseed()` + their index on resume instead."""

    def __init__(self, reseed: Callable[[], int], **env_lists: list):
        self.reseed, self.env_lists = reseed, env_lists

    def state_dict(self) -> dict[str, list]:
        return {name: [env.get_state() for env in envs] for name, envs in self.env_lists.items()}

    def load_state_dict(self, state: dict[str, list]) -> None:
        for name, envs in self.env_lists.items():
            if len(state[name]) != len(envs):
                raise ValueError(f"the checkpoint holds {len(state[name])} {name} envs, this run has {len(envs)}")
            for i, (env, env_state) in enumerate(zip(envs, state[name])):
                if env_state is None:
                    env.reset(seed=self.reseed() + i)
                else:
                    env.set_state(env_state)


class GymTestbed:
    """`--n-envs` gymnasium env copies with a tanh MLP policy; separate copies for evaluation."""

    def __init__(self, cfg: Any, device: torch.device):
        import gymnasium as gym

        from envs.registry import make_env_fn, resolve_env_id

        gid = resolve_env_id(cfg.env)
        self.cfg, self.device, self.name = cfg, device, gid
        make = make_env_fn(gid, training=True, max_episode_steps=cfg.max_episode_steps)

        def seeded(seed: int):
            env = make()
            env.reset(seed=seed)
            return env

        self.envs = [seeded(cfg.seed * 1000 + i) for i in range(cfg.n_envs)]
        self.eval_envs = [seeded(cfg.seed * 1000 + 500 + i) for i in range(min(cfg.n_envs, cfg.eval_episodes))]
        space, act_space = self.envs[0].observation_space, self.envs[0].action_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            self.close()
            raise UserError(f"{gid}: the PG family needs a flat Box observation space, got {space}")
        obs_dim = space.shape[0]
        if isinstance(act_space, gym.spaces.Discrete):
            module = CategoricalMLPPolicy(obs_dim, int(act_space.n), list(cfg.hidden_sizes))
        elif isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
            module = GaussianMLPPolicy(obs_dim, act_space.shape[0], list(cfg.hidden_sizes), cfg.init_std,
                                       cfg.min_std)
        else:
            self.close()
            raise UserError(f"{gid}: unsupported action space {act_space} (need Discrete or a flat Box)")
        self.policy = FlatPolicy(module.to(device))
        self.theta0 = self.policy.initial_theta()
        self.state = EnvListState(lambda: cfg.seed * 1000 + 7919, train=self.envs, eval=self.eval_envs)

    def steps_per_batch(self, min_steps: int) -> None:
        return None  # whole episodes: at least min_steps

    def sample(self, theta: torch.Tensor, min_steps: int, counter: SampleCounter) -> TrajBatch:
        return sample_gym(self.envs, self.policy, theta, min_steps, counter, self.device)

    def evaluate(self, theta: torch.Tensor) -> dict[str, Any]:
        batch = sample_gym(self.eval_envs, self.policy, theta, 0, None, self.device, deterministic=True,
                           n_episodes=self.cfg.eval_episodes)
        return {"returns": batch.undiscounted_returns().cpu().tolist(),
                "lengths": batch.mask.sum(1).long().cpu().tolist()}

    def headline(self, theta: torch.Tensor) -> None:
        return None  # the final evaluation return

    def close(self) -> None:
        for env in self.envs + self.eval_envs:
            env.close()


def make_testbed(cfg: Any, device: torch.device) -> LQRTestbed | GymTestbed:
    """The testbed for `cfg.env` (LQR or a gymnasium env)."""
    return LQRTestbed(cfg, device) if is_lqr(cfg.env) else GymTestbed(cfg, device)
