"""The on-policy actor-critic loop shared by PPO, BPO and their relatives.

An algorithm supplies only its config (a subclass of OnPolicyConfig with its presets) and a loss function
`loss_fn(model, minibatch, cfg) -> (loss, stats)`; collection, GAE, normalization, evaluation, logging,
checkpoints and resume live here once.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import gymnasium as gym
import numpy as np
import torch

from classic_rl import UserError
from classic_rl.buffers import RolloutBuffer, minibatches
from classic_rl.config import RunConfig, require
from classic_rl.evaluation import Evaluator, episode_infos
from classic_rl.networks import ActorCritic
from classic_rl.normalize import ObsNormalizer, RewardScaler
from classic_rl.runlog import Progress, RunLogger
from classic_rl.utils import (latest_checkpoint, load_checkpoint, resolve_device, rng_state, save_checkpoint,
                              seed_everything, set_rng_state, set_torch_threads)
from envs.registry import make_vec_env, resolve_env_id

LossFn = Callable[[ActorCritic, dict, Any], tuple[torch.Tensor, dict]]


class TrainingDiverged(UserError):
    """A loss or statistic became NaN/inf; the run stops and names the step and the quantity."""


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


def resumed_config(cfg: OnPolicyConfig, explicit: set[str]) -> OnPolicyConfig:
    """The stored config of the run being resumed; only flags the user typed that are safe to change
    (total steps, progress bar, checkpoint and eval cadence, device) override it."""
    run_dir = Path(cfg.resume)
    latest_checkpoint(run_dir)  # clear error if missing
    try:
        stored = json.loads((run_dir / "config.json").read_text())["config"]
    except (OSError, KeyError, json.JSONDecodeError) as err:
        raise UserError(f"--resume: {run_dir}/config.json is missing or unreadable ({err})") from err
    names = {f.name for f in dataclasses.fields(cfg)}
    merged = {k: v for k, v in stored.items() if k in names}
    for key in ("total_steps", "progress", "checkpoint_every", "eval_every", "device", "torch_threads"):
        if key in explicit:
            merged[key] = getattr(cfg, key)
    merged["resume"] = cfg.resume
    out = type(cfg)(**merged)
    out.validate()
    return out


def _flat_final_obs(info: dict, idx: np.ndarray) -> np.ndarray:
    return np.stack([info["final_obs"][i] for i in idx])


def train_on_policy(cfg: OnPolicyConfig, algo: str, loss_fn: LossFn, extra_heads: Sequence[str] = (),
                    extra_head_hidden: Sequence[int] = (256, 256), explicit: set[str] | None = None) -> Path:
    """Train and return the run directory."""
    if cfg.resume:
        cfg = resumed_config(cfg, explicit or set())
    device = resolve_device(cfg.device)
    set_torch_threads(cfg.torch_threads)
    seed_everything(cfg.seed)
    env_id = resolve_env_id(cfg.env)

    envs = make_vec_env(env_id, cfg.n_envs, training=True, async_envs=cfg.async_envs)
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
    evaluator = Evaluator(lambda k: make_vec_env(env_id, k, training=False,
                                                 max_episode_steps=cfg.eval_max_steps or None), cfg.eval_episodes,
                          cfg.eval_envs, cfg.seed + 10_000, device)

    def to_obs(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, dtype=obs_dtype, device=device)

    def act_deterministic(obs: torch.Tensor) -> torch.Tensor:
        return model.act(obs_norm(obs.to(obs_dtype)), deterministic=True)[0]

    steps_per_update = cfg.n_steps * cfg.n_envs
    n_updates = math.ceil(cfg.total_steps / steps_per_update)
    global_step, update, recent_returns, last_eval = 0, 0, [], None

    if cfg.resume:
        ckpt = load_checkpoint(latest_checkpoint(cfg.resume), map_location=device)
        try:
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            obs_norm.load_state_dict(ckpt["obs_norm"])
            reward_scaler.load_state_dict(ckpt["reward_scaler"])
            set_rng_state(ckpt["rng"])
            minibatch_rng.set_state(ckpt["minibatch_rng"])
            global_step, update = int(ckpt["global_step"]), int(ckpt["update"])
            recent_returns, last_eval = list(ckpt["recent_returns"]), ckpt.get("last_eval")
        except (KeyError, RuntimeError, ValueError) as err:
            raise UserError(f"checkpoint in {cfg.resume} does not match this algorithm/config: {err}") from err
        envs.reset(seed=[cfg.seed + 7919 * update + i for i in range(cfg.n_envs)])
        next_obs = ckpt["next_obs"].cpu().numpy()
        if ckpt.get("env_states") is not None and hasattr(envs, "envs"):
            for env, state in zip(envs.envs, ckpt["env_states"]):
                env.get_wrapper_attr("set_state")(state)
        else:  # env state not restorable (Atari, async envs): the episodes in progress restart
            next_obs, _ = envs.reset(seed=[cfg.seed + 7919 * update + i for i in range(cfg.n_envs)])
        logger = RunLogger.reopen(cfg.resume, global_step, float(ckpt["wall_time"]), cfg.track == "tensorboard")
    else:
        logger = RunLogger.create(cfg.run_dir, algo, cfg.env, cfg.seed, dataclasses.asdict(cfg), str(device),
                                  cfg.track == "tensorboard")
        next_obs, _ = envs.reset(seed=[cfg.seed + i for i in range(cfg.n_envs)])

    def save(tag: str = "latest") -> None:
        states = list(envs.call("get_state"))
        save_checkpoint(logger.path / "checkpoints" / f"{tag}.pt", {
            "algo": algo, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "obs_norm": obs_norm.state_dict(), "reward_scaler": reward_scaler.state_dict(),
            "rng": rng_state(), "minibatch_rng": minibatch_rng.get_state(),
            "global_step": global_step, "update": update, "recent_returns": recent_returns,
            "last_eval": last_eval, "wall_time": logger.wall_time(),
            "next_obs": torch.as_tensor(np.asarray(next_obs)),
            "env_states": None if any(s is None for s in states) else states,
        })

    def evaluate() -> dict:
        returns, lengths = evaluator.run(act_deterministic)
        return logger.log_eval(global_step, returns, lengths) if returns else {}

    if not cfg.resume and cfg.eval_every:
        last_eval = evaluate() or None  # the curve starts at the initial policy
    progress = Progress(cfg.total_steps, initial=global_step, enabled=cfg.progress, desc=f"{algo} {cfg.env}")
    start_step, start_time = global_step, time.time()
    next_eval = (global_step // cfg.eval_every + 1) * cfg.eval_every if cfg.eval_every else None
    next_ckpt = (global_step // cfg.checkpoint_every + 1) * cfg.checkpoint_every if cfg.checkpoint_every else None
    try:
        while global_step < cfg.total_steps:
            if cfg.anneal_lr:
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * (1.0 - update / n_updates)
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
                    recent_returns = (recent_returns + [float(r) for r in rets[ended]])[-100:]
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
            global_step += steps_per_update
            update += 1
            means = dict(zip(stat_names, (stats_sum / n_minibatches).tolist()))
            bad = [k for k, v in means.items() if not math.isfinite(v)]
            if bad:
                raise TrainingDiverged(f"{', '.join(bad)} became non-finite at env step {global_step} "
                                       f"(update {update}); lower --lr or check rewards")
            var_y = data["returns"].var()
            explained_var = float(1 - (data["returns"] - data["values"]).var() / var_y) if var_y > 0 else float("nan")
            fps = (global_step - start_step) / max(time.time() - start_time, 1e-9)
            logger.log(global_step, fps=round(fps, 1), update=update, lr=optimizer.param_groups[0]["lr"],
                       train_return_mean=float(np.mean(recent_returns)) if recent_returns else "",
                       train_episodes=len(recent_returns), explained_variance=explained_var, **means)
            post = {"fps": int(fps)}
            if recent_returns:
                post["train_ret"] = float(np.mean(recent_returns))
            if next_eval is not None and global_step >= next_eval:
                last_eval = evaluate() or last_eval
                next_eval = (global_step // cfg.eval_every + 1) * cfg.eval_every
            if last_eval:
                post["eval_ret"] = last_eval["return_mean"]
            progress.update(steps_per_update, **post)
            if next_ckpt is not None and global_step >= next_ckpt:
                save()
                next_ckpt = (global_step // cfg.checkpoint_every + 1) * cfg.checkpoint_every
        # ---- final evaluation, checkpoint, summary ----
        if not logger.evals.rows or float(logger.evals.rows[-1]["env_steps"]) < global_step:
            last_eval = evaluate() or last_eval
        save()
        logger.write_summary({
            "algo": algo, "env": cfg.env, "env_id": env_id, "seed": cfg.seed, "env_steps": global_step,
            "updates": update, "final_eval_return": (last_eval or {}).get("return_mean"),
            "final_train_return": float(np.mean(recent_returns)) if recent_returns else None,
            "wall_time": logger.wall_time(), "fps": (global_step - start_step) / max(time.time() - start_time, 1e-9),
        })
    finally:
        progress.close()
        envs.close()
        evaluator.close()
        logger.close()
    return logger.path

