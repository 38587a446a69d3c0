"""The on-policy actor-critic loop shared by PPO, BPO and their relatives.

An algorithm supplies only its config (a subclass of OnPolicyConfig with its presets) and a loss function
`loss_fn(model, minibatch, cfg) -> (loss, stats)`; collection, GAE, normalization, evaluation, logging,
checkpoints and resume live here once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import gymnasium as gym
import numpy as np
import torch

from classic_rl.buffers import RolloutBuffer, minibatches
from classic_rl.config import RunConfig, require
from classic_rl.evaluation import Evaluator, episode_infos
from classic_rl.networks import ActorCritic
from classic_rl.normalize import ObsNormalizer, RewardScaler
from classic_rl.session import LoopState, RunSession, VecEnvState

LossFn = Callable[[ActorCritic, dict, Any], tuple[torch.Tensor, dict]]
#: make_envs(env_name, n_envs, training=..., async_envs=..., max_episode_steps=...) -> vector env
#: (the algorithm passes the registry's factory in: the core does not import envs/)
EnvFactory = Callable[..., Any]


@dataclass
class OnPolicyLoop(LoopState):
    """Loop variables a checkpoint must hold besides models, optimizers and normalizers."""

    update: int = 0
    recent_returns: list = field(default_factory=list)


@dataclass
class OnPolicyConfig(RunConfig):
    """Rollout, optimisation and network settings of an on-policy actor-critic."""

    n_steps: int = 2048
    """rollout length per environment between updates"""
    batch_size: int = 64
    """minibatch size (transitions)"""
    n_epochs: int = 10
    """passes over each rollout"""
    lr: float = 3e-4
    """Adam learning rate (Adam eps = 1e-5 as in SB3/CleanRL)"""
    anneal_lr: bool = False
    """linearly anneal the learning rate to 0 over training"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    vf_coef: float = 0.5
    """value-loss coefficient"""
    ent_coef: float = 0.0
    """entropy-bonus coefficient"""
    max_grad_norm: float = 0.5
    """global gradient-norm clip over all parameters"""
    normalize_obs: bool = False
    """running observation normalization (vector observations only), saved with checkpoints"""
    normalize_reward: bool = False
    """scale rewards by the std of the running discounted return (VecNormalize-style)"""
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """hidden layer widths of the actor and of the critic MLP (vector observations)"""
    activation: Literal["tanh", "relu", "elu"] = "tanh"
    """MLP activation"""
    ortho_init: bool = True
    """orthogonal initialization (sqrt(2) hidden, 0.01 policy output, 1 value output)"""
    log_std_init: float = 0.0
    """initial log standard deviation of the Gaussian policy"""
    head_hidden: list[int] = field(default_factory=list)
    """hidden widths of each head on top of the shared Nature-CNN (image observations)"""
    eval_envs: int = 5
    """parallel environments used for evaluation"""
    eval_max_steps: int = 0
    """cut evaluation episodes after this many steps (0 = the env's own time limit)"""
    async_envs: bool = False
    """step training envs in subprocesses (worth it for slow envs and n_envs > 2)"""

    def validate(self) -> None:
        super().validate()
        require(self.n_steps > 0, f"--n-steps must be positive, got {self.n_steps}")
        require(self.batch_size > 0, f"--batch-size must be positive, got {self.batch_size}")
        require(self.n_epochs > 0, f"--n-epochs must be positive, got {self.n_epochs}")
        require(self.lr > 0, f"--lr must be positive, got {self.lr}")
        require(0 <= self.gamma <= 1, f"--gamma must be in [0, 1], got {self.gamma}")
        require(0 <= self.gae_lambda <= 1, f"--gae-lambda must be in [0, 1], got {self.gae_lambda}")
        require(self.max_grad_norm > 0, f"--max-grad-norm must be positive, got {self.max_grad_norm}")
        require(self.eval_max_steps >= 0, f"--eval-max-steps must be >= 0, got {self.eval_max_steps}")
        require(self.eval_envs > 0, f"--eval-envs must be positive, got {self.eval_envs}")


def _flat_final_obs(info: dict, idx: np.ndarray) -> np.ndarray:
    return np.stack([info["final_obs"][i] for i in idx])


def train_on_policy(cfg: OnPolicyConfig, algo: str, loss_fn: LossFn, make_envs: EnvFactory,
                    extra_heads: Sequence[str] = (), extra_head_hidden: Sequence[int] = (256, 256),
                    argv: Sequence[str] | None = None) -> RunSession:
    """Train and return the finished session (its `path` is the run directory)."""
    run = RunSession(cfg, algo, argv=argv)
    cfg, device = run.cfg, run.device
    envs = make_envs(cfg.env, cfg.n_envs, training=True, async_envs=cfg.async_envs)
    run.add_cleanup(envs.close)
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    image = len(obs_space.shape) == 3
    obs_dtype = torch.uint8 if image else torch.float32
    if isinstance(act_space, gym.spaces.Box):
        act_shape, act_dtype = act_space.shape, torch.float32
        act_low, act_high = act_space.low, act_space.high
    else:
        act_shape = () if isinstance(act_space, gym.spaces.Discrete) else (len(act_space.nvec),)
        act_dtype, act_low, act_high = torch.long, None, None

    model = ActorCritic(obs_space, act_space, cfg.hidden_sizes, cfg.activation, cfg.ortho_init,
                        cfg.log_std_init, cfg.head_hidden, extra_heads, extra_head_hidden).to(device)
    # fused: one kernel for the whole Adam step instead of a chain of small ops (CPU and CUDA)
    params = list(model.parameters())  # walked once, not per minibatch by clip_grad_norm_
    optimizer = torch.optim.Adam(params, lr=cfg.lr, eps=1e-5, fused=True)
    obs_norm = ObsNormalizer(obs_space.shape, cfg.normalize_obs and not image, device)
    reward_scaler = RewardScaler(cfg.n_envs, cfg.gamma, cfg.normalize_reward, device)
    buffer = RolloutBuffer(cfg.n_steps, cfg.n_envs, obs_space.shape, obs_dtype, act_shape, act_dtype, device)
    minibatch_rng = torch.Generator().manual_seed(cfg.seed)
    evaluator = Evaluator(lambda k: make_envs(cfg.env, k, training=False,
                                              max_episode_steps=cfg.eval_max_steps or None),
                          cfg.eval_episodes, cfg.eval_envs, cfg.seed + 10_000, device)
    run.add_cleanup(evaluator.close)
    loop = OnPolicyLoop()
    # episodes in progress restart on resume where the env state cannot be captured (Atari, async envs)
    env_state = VecEnvState(envs, lambda: [cfg.seed + 7919 * loop.update + i for i in range(cfg.n_envs)])
    env_state.obs, _ = envs.reset(seed=[cfg.seed + i for i in range(cfg.n_envs)])

    def to_obs(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, dtype=obs_dtype, device=device)

    def evaluate() -> dict:
        returns, lengths = evaluator.run(lambda obs: model.act(obs_norm(obs.to(obs_dtype)), deterministic=True)[0])
        return {"returns": returns, "lengths": lengths}

    steps_per_update = cfg.n_steps * cfg.n_envs
    n_updates = run.steps_per_update(steps_per_update)
    with run:
        run.track(model=model, optimizer=optimizer, obs_norm=obs_norm, reward_scaler=reward_scaler,
                  minibatch_rng=minibatch_rng, loop=loop, envs=env_state, evaluate=evaluate)
        next_obs = env_state.obs
        while run.step < cfg.total_steps:
            if cfg.anneal_lr:
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * (1.0 - loop.update / n_updates)
            # ---- collect a rollout (no autograd; storage on the device) ----
            # Rewards and done flags come from the (CPU) simulators as numpy: they are gathered on the host
            # and moved to the device once per rollout rather than once per step.
            rewards_np = np.zeros((cfg.n_steps, cfg.n_envs))
            terminated_np = np.zeros((cfg.n_steps, cfg.n_envs), dtype=bool)
            truncated_np = np.zeros((cfg.n_steps, cfg.n_envs), dtype=bool)
            for t in range(cfg.n_steps):
                obs = obs_norm(to_obs(next_obs), update=True)
                actions, log_prob, value = model.act(obs)
                env_actions = actions.cpu().numpy()
                if act_low is not None:  # log-prob stays that of the unclipped sample (as in SB3)
                    env_actions = np.clip(env_actions, act_low, act_high)
                next_obs, rewards_np[t], terminated_np[t], truncated_np[t], info = envs.step(env_actions)
                buffer.obs[t] = obs
                buffer.actions[t] = actions
                buffer.log_probs[t] = log_prob
                buffer.values[t] = value
                if info:  # an episode ended somewhere
                    cut = np.flatnonzero(truncated_np[t] & ~terminated_np[t])
                    if cut.size:  # bootstrap time-limit truncations from the state they stopped in
                        final = obs_norm(to_obs(_flat_final_obs(info, cut)))
                        with torch.no_grad():
                            truncation_values = model.value(final)
                        buffer.truncation_values[t, torch.as_tensor(cut, device=device)] = truncation_values
                    ended, rets, _ = episode_infos(info)
                    loop.recent_returns = (loop.recent_returns + [float(r) for r in rets[ended]])[-100:]
            env_state.obs = next_obs
            buffer.terminated.copy_(torch.as_tensor(terminated_np))
            buffer.episode_end.copy_(torch.as_tensor(terminated_np | truncated_np))
            buffer.rewards.copy_(reward_scaler.scale_rollout(torch.as_tensor(rewards_np, device=device),
                                                             buffer.episode_end))
            with torch.no_grad():
                last_values = model.value(obs_norm(to_obs(next_obs)))
            buffer.compute_returns(last_values, cfg.gamma, cfg.gae_lambda)

            # ---- optimise ----
            data = buffer.flat()
            stats_sum: torch.Tensor | None = None
            stat_names: list[str] = []
            n_minibatches = 0
            for _ in range(cfg.n_epochs):
                for mb in minibatches(data, cfg.batch_size, minibatch_rng):
                    loss, stats = loss_fn(model, mb, cfg)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm,
                                                                        foreach=True)
                    optimizer.step()
                    stats["loss"] = loss.detach()
                    # one stacked add per minibatch; read back once per update (no per-minibatch sync)
                    row = torch.stack([v.detach().float() for v in stats.values()])
                    stats_sum = row if stats_sum is None else stats_sum + row
                    stat_names = list(stats)
                    n_minibatches += 1
            loop.update += 1
            means = dict(zip(stat_names, (stats_sum / n_minibatches).tolist()))
            var_y = data["returns"].var()
            explained_var = float(1 - (data["returns"] - data["values"]).var() / var_y) if var_y > 0 else ""
            recent = loop.recent_returns
            run.advance(steps_per_update, **means, lr=optimizer.param_groups[0]["lr"],
                        train_return_mean=float(np.mean(recent)) if recent else "",
                        train_episodes=len(recent), explained_variance=explained_var)
        recent = loop.recent_returns
        run.finish(final_train_return=float(np.mean(recent)) if recent else None, updates=loop.update)
    return run
