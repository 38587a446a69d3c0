"""PDPPO (Felizardo et al., 2025, arXiv 2504.05150): PPO with a pre- and a post-decision critic.

    python -m algos.pdppo --env LotSizing-15x5                     # the paper's latest settings
    python -m algos.pdppo --env LotSizing-15x5 --critics pre-only  # the authors' PPO baseline, same loop
    python -m algos.pdppo --env FrozenLakePD-8x8                   # slippery FrozenLake 8x8
    python -m algos.pdppo --help

Each env step splits into a deterministic half, s -> s^x = f(s, a) (the post-decision state), and a random
half s^x -> s'. The envs in envs.lotsizing expose s^x and the split rewards (r^x = -setup cost of the
deterministic half, r^W = the rest). PDPPO keeps PPO's clipped actor update and learns two critics,
V(s) on the r^W stream and V^x(s^x) on the r^x stream (the authors' latest code, spec 1(c).1), and feeds the
actor A = max(A^pre, A^x) elementwise. Spec vs code: the paper's text (as summarised) calls R^x "the
discounted reward from the post-decision state"; the authors' code makes it the setup-cost stream only. We
follow the code (tests/test_pdppo.py::test_dual_split_targets_and_max_advantage pins it down).
`--critics` selects the variants:
  dual-split  (default) the above;
  dual-shared both critics fit the per-batch z-scored full return R~, A = combine(R~ - V, R~ - V^x)
              (the authors' earlier version);
  one-critic  only V^x(s^x), fit to R~, A = R~ - V^x (their ablation);
  pre-only    only V(s) on the full reward, A = R - V: the authors' PPO baseline (same actor, buffer,
              optimisers), so that PDPPO-vs-PPO differs in the critics only.
Kept from the authors on purpose (spec pitfalls): returns are Monte-Carlo within an episode and every episode
end is terminal (the lot-sizing horizon T is part of the problem), no advantage normalisation, full-batch
epochs, clipping per machine head (`--per-head-ratio`), a sliding window of the last `buffer_rollouts`
rollouts with their old log-probs and advantages. Differences: `--train-actor-trunk` defaults to True (the
authors' optimiser only sees the head; pass --no-train-actor-trunk to reproduce), and at a rollout cut inside
an episode we bootstrap (V(s), and V^x of s^x for an action sampled at s) instead of cutting the return.
Shared with PPO (not copied): `classic_rl.buffers.gae`, `algos.ppo.ppo_policy_loss`, the run logger, the
evaluator, the config CLI.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import nn

from algos.ppo import ppo_policy_loss
from classic_rl import UserError
from classic_rl.buffers import gae
from classic_rl.config import RunConfig, parse_config, require, run_cli
from classic_rl.evaluation import Evaluator
from classic_rl.onpolicy import TrainingDiverged
from classic_rl.runlog import Progress, RunLogger
from classic_rl.utils import resolve_device, save_checkpoint, seed_everything, set_torch_threads

LOT_SIZING = ["LotSizing-15x5", "LotSizing-20x10", "LotSizing-25x10", "LotSizing-25x15"]
FROZEN_LAKE = ["FrozenLakePD-8x8"]
CRITICS = Literal["dual-split", "dual-shared", "one-critic", "pre-only"]
ALGO_NAMES = {"dual-split": "pdppo", "dual-shared": "pdppo-shared", "one-critic": "pdppo-one-critic",
              "pre-only": "ppo-authors"}


@dataclass
class PDPPOConfig(RunConfig):
    """PDPPO: clipped PPO actor, pre- and post-decision critics. Defaults: the authors' latest lot-sizing run."""

    env: str = "LotSizing-15x5"
    """LotSizing-15x5 | LotSizing-20x10 | LotSizing-25x10 | LotSizing-25x15 | FrozenLakePD-8x8"""
    n_envs: int = 4
    """plants (or lakes) stepped in parallel on the device; one rollout of update_every steps is split
    evenly over them (4 x 100 steps = the authors' 4 sequential episodes)"""
    eval_every: int = 50_000
    """greedy evaluation every this many env steps (0 = only at the end)"""
    eval_episodes: int = 40
    """episodes per evaluation (same start seeds as algos.ppo's evaluator)"""
    update_every: int = 400
    """env steps per rollout (all envs together) between updates"""
    epochs: int = 40
    """full-batch optimisation passes per update (no minibatches)"""
    buffer_rollouts: int = 5
    """sliding window: the last this many rollouts are trained on, with their old log-probs/advantages"""
    clip_eps: float = 0.2
    """surrogate clipping range"""
    gamma: float = 0.9
    """discount factor"""
    gae_lambda: float = 1.0
    """lambda of the advantage estimator (1 = the authors' Monte-Carlo returns)"""
    actor_lr: float = 5.5e-4
    """actor Adam learning rate"""
    critic_lr: float = 1e-3
    """learning rate of each critic's own Adam"""
    ent_coef: float = 0.001
    """entropy bonus coefficient (mean entropy over heads)"""
    hidden: int = 128
    """width of the two hidden layers of the actor (ReLU) and of each critic (tanh)"""
    critics: CRITICS = "dual-split"
    """dual-split (PDPPO latest) | dual-shared (earlier PDPPO) | one-critic (ablation) | pre-only (PPO)"""
    combine: Literal["max", "min", "mean", "pre", "post"] = "max"
    """how the two advantage estimates are merged (dual modes): the paper's elementwise max, or others"""
    per_head_ratio: bool = True
    """clip each machine head's ratio separately (authors); False clips the joint ratio prod_m rho_m"""
    train_actor_trunk: bool = True
    """train the actor's hidden layers; False reproduces the authors' optimiser, which only sees the head"""
    obs_scale: float = 1.0
    """observations are divided by this before the networks (1 = raw stock levels, as the authors)"""
    log_every: int = 4000
    """log the mean return of the training episodes finished in each window of this many steps"""
    observe_setups: bool = False
    """lot-sizing: observe machine setups too (the authors' latest code observes inventories only)"""
    negative_production: bool = True
    """lot-sizing quirk: an item a machine cannot make still costs a setup and loses stock (authors' env)"""
    stored_lost_sales: bool = True
    """lot-sizing quirk: lost-sales costs as stored, {0.1, 1.1}; False maps them to the intended 0.1..0.3"""
    map_seed: int = 0
    """FrozenLake: seed of the random 8x8 map"""
    torch_threads: int = 1
    """torch CPU threads (0 = torch's default); one thread is fastest for these small full-batch MLPs
    and avoids oversubscription when several runs share the cores"""

    def validate(self) -> None:
        super().validate()
        require(self.env in LOT_SIZING + FROZEN_LAKE,
                f"pdppo needs an env with post-decision states: {', '.join(LOT_SIZING + FROZEN_LAKE)}; "
                f"got {self.env!r}")
        require(self.update_every > 0 and self.update_every % self.n_envs == 0,
                f"--update-every ({self.update_every}) must be a positive multiple of --n-envs ({self.n_envs})")
        require(self.epochs > 0 and self.buffer_rollouts > 0, "--epochs and --buffer-rollouts must be positive")
        require(0 < self.clip_eps < 1, f"--clip-eps must be in (0, 1), got {self.clip_eps}")
        require(0 <= self.gamma <= 1 and 0 <= self.gae_lambda <= 1, "--gamma and --gae-lambda must be in [0, 1]")
        require(self.actor_lr > 0 and self.critic_lr > 0, "learning rates must be positive")
        require(self.hidden > 0 and self.obs_scale > 0 and self.log_every > 0,
                "--hidden, --obs-scale and --log-every must be positive")
        require(self.resume is None, "pdppo does not support --resume yet (its sliding window is not saved)")


def presets(env: str) -> dict[str, Any]:
    """The authors' FrozenLake settings (spec 1(d)); lot-sizing uses the dataclass defaults."""
    if env in FROZEN_LAKE:
        return dict(gamma=0.99, update_every=1000, epochs=50, total_steps=200_000, log_every=5000)
    return {}


# ----------------------------------------------------------------------------- environments


def make_batched_env(cfg: PDPPOConfig, n: int, device: torch.device, seed: int):
    if cfg.env in FROZEN_LAKE:
        from envs.lotsizing.frozen_lake import BatchedFrozenLake
        return BatchedFrozenLake(n, device, seed=seed, map_seed=cfg.map_seed)
    from envs.lotsizing.batched import BatchedLotSizing
    return BatchedLotSizing(cfg.env.split("-", 1)[1], n, device, seed=seed, observe_setups=cfg.observe_setups,
                            negative_production=cfg.negative_production, stored_lost_sales=cfg.stored_lost_sales)


def gym_env_kwargs(cfg: PDPPOConfig) -> dict[str, Any]:
    if cfg.env in FROZEN_LAKE:
        return {"map_seed": cfg.map_seed}
    return {"observe_setups": cfg.observe_setups, "negative_production": cfg.negative_production,
            "stored_lost_sales": cfg.stored_lost_sales}


def make_eval_envs(cfg: PDPPOConfig, k: int) -> gym.vector.VectorEnv:
    """The registered single env (numpy) in a same-step-autoreset vector env, as algos.ppo evaluates."""
    import envs.lotsizing  # noqa: F401 - registers the ids
    from envs.wrappers import EpisodeStats

    kwargs = gym_env_kwargs(cfg)
    fns = [lambda: EpisodeStats(gym.make(cfg.env, **kwargs)) for _ in range(k)]
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


# ----------------------------------------------------------------------------- networks


class Actor(nn.Module):
    """Trunk 2 x ReLU -> one categorical head per machine (logits [B, heads, classes])."""

    def __init__(self, obs_dim: int, heads: int, classes: int, hidden: int):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, heads * classes)
        nn.init.kaiming_uniform_(self.head.weight)  # the authors' head init
        nn.init.zeros_(self.head.bias)
        self.heads, self.classes = heads, classes

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(obs)).view(-1, self.heads, self.classes)


def critic(obs_dim: int, hidden: int) -> nn.Sequential:
    """2 x tanh MLP -> scalar, Xavier-uniform weights and zero biases (the authors' critics)."""
    net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                        nn.Linear(hidden, 1))
    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return net


def sample_actions(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw per head: actions [B, heads] and their per-head log-probs [B, heads]."""
    log_probs = torch.log_softmax(logits, -1)
    flat = torch.multinomial(log_probs.exp().reshape(-1, logits.shape[-1]), 1)
    actions = flat.view(logits.shape[:-1])
    return actions, log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def head_log_prob_entropy(logits: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head log pi_m(a_m|s) and entropy H(pi_m(.|s)), both [B, heads]."""
    log_probs = torch.log_softmax(logits, -1)
    return (log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1),
            -(log_probs.exp() * log_probs).sum(-1))


# ----------------------------------------------------------------------------- pure estimator functions


def episode_advantages(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor,
                       episode_end: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """GAE over [T, N] with every episode end terminal (no bootstrap at the horizon, as the authors).

    next_values[T-1] is the bootstrap at the rollout cut; it only counts where the episode goes on.
    With lam = 1 the targets advantages + values are the Monte-Carlo returns within each episode.
    """
    return gae(rewards, values, next_values, episode_end, episode_end, gamma, lam)


def discounted_returns(rewards: torch.Tensor, episode_end: torch.Tensor, gamma: float) -> torch.Tensor:
    """R_t = sum_k gamma^k r_{t+k} within the episode, cut (not bootstrapped) at the rollout end."""
    zeros = torch.zeros_like(rewards)
    return gae(rewards, zeros, zeros, episode_end, episode_end, gamma, 1.0)


def zscore(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean()) / (x.std() + 1e-8)


def combine_advantages(adv_pre: torch.Tensor, adv_post: torch.Tensor, how: str) -> torch.Tensor:
    """The actor's advantage from the two estimates: the paper's elementwise max, or an alternative."""
    if how == "max":
        return torch.maximum(adv_pre, adv_post)
    if how == "min":
        return torch.minimum(adv_pre, adv_post)
    if how == "mean":
        return 0.5 * (adv_pre + adv_post)
    if how == "pre":
        return adv_pre
    if how == "post":
        return adv_post
    raise UserError(f"unknown advantage combination {how!r}: use max, min, mean, pre or post")


def advantages_and_targets(critics: str, how: str, reward_decision: torch.Tensor, reward_exogenous: torch.Tensor,
                           values: torch.Tensor, next_values: torch.Tensor, values_post: torch.Tensor,
                           next_values_post: torch.Tensor, episode_end: torch.Tensor, gamma: float, lam: float
                           ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(actor advantage, target of V(s) or None, target of V^x(s^x) or None), all [T, N].

    values/values_post are the collection-time V(s_t), V^x(s^x_t); next_values*[t] the same critics at
    t + 1 (the last row: the bootstrap at the rollout cut).
    """
    if critics == "dual-split":  # V on r^W = everything but setups, V^x on r^x = -setup cost
        adv_pre = episode_advantages(reward_exogenous, values, next_values, episode_end, gamma, lam)
        adv_post = episode_advantages(reward_decision, values_post, next_values_post, episode_end, gamma, lam)
        return combine_advantages(adv_pre, adv_post, how), adv_pre + values, adv_post + values_post
    if critics == "pre-only":  # the authors' PPO: one critic on the full reward
        adv = episode_advantages(reward_decision + reward_exogenous, values, next_values, episode_end, gamma, lam)
        return adv, adv + values, None
    target = zscore(discounted_returns(reward_decision + reward_exogenous, episode_end, gamma))
    if critics == "dual-shared":
        return combine_advantages(target - values, target - values_post, how), target, target
    if critics == "one-critic":
        return target - values_post, None, target
    raise UserError(f"unknown --critics {critics!r}")


def actor_loss(logits: torch.Tensor, actions: torch.Tensor, old_log_probs: torch.Tensor,
               advantages: torch.Tensor, clip_eps: float, ent_coef: float, per_head_ratio: bool
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate with per-head ratios [B, heads] (or the joint ratio), minus the entropy bonus."""
    log_probs, entropy = head_log_prob_entropy(logits, actions)
    log_ratio = log_probs - old_log_probs
    if per_head_ratio:
        policy = ppo_policy_loss(log_ratio, advantages.unsqueeze(-1).expand_as(log_ratio), clip_eps)
    else:
        log_ratio = log_ratio.sum(-1)
        policy = ppo_policy_loss(log_ratio, advantages, clip_eps)
    entropy = entropy.mean()
    with torch.no_grad():
        stats = {"policy_loss": policy.detach(), "entropy": entropy.detach(),
                 "approx_kl": ((log_ratio.exp() - 1) - log_ratio).mean(),
                 "clip_fraction": ((log_ratio.exp() - 1).abs() > clip_eps).float().mean()}
    return policy - ent_coef * entropy, stats


# ----------------------------------------------------------------------------- training


def train(cfg: PDPPOConfig) -> RunLogger:
    device = resolve_device(cfg.device)
    set_torch_threads(cfg.torch_threads)
    seed_everything(cfg.seed)
    env = make_batched_env(cfg, cfg.n_envs, device, cfg.seed)
    heads, classes = len(env.action_nvec), env.action_nvec[0]
    actor = Actor(env.obs_dim, heads, classes, cfg.hidden).to(device)
    v_pre = critic(env.obs_dim, cfg.hidden).to(device) if cfg.critics != "one-critic" else None
    v_post = critic(env.obs_dim, cfg.hidden).to(device) if cfg.critics != "pre-only" else None
    actor_params = list(actor.parameters()) if cfg.train_actor_trunk else list(actor.head.parameters())
    opt_actor = torch.optim.Adam(actor_params, lr=cfg.actor_lr)
    opt_pre = torch.optim.Adam(v_pre.parameters(), lr=cfg.critic_lr) if v_pre is not None else None
    opt_post = torch.optim.Adam(v_post.parameters(), lr=cfg.critic_lr) if v_post is not None else None
    algo = ALGO_NAMES[cfg.critics] + ("" if cfg.combine == "max" or cfg.critics in ("pre-only", "one-critic")
                                      else f"-{cfg.combine}")
    config = dataclasses.asdict(cfg) | {"env_config": env.config()}
    logger = RunLogger.create(cfg.run_dir, algo, cfg.env, cfg.seed, config, str(device), cfg.track == "tensorboard")
    evaluator = Evaluator(lambda k: make_eval_envs(cfg, k), cfg.eval_episodes, 8, cfg.seed + 10_000, device)

    def scaled(obs: torch.Tensor) -> torch.Tensor:
        return obs / cfg.obs_scale

    def value(net: nn.Module | None, obs: torch.Tensor) -> torch.Tensor:
        if net is None:
            return torch.zeros(obs.shape[:-1], device=device)
        return net(scaled(obs)).squeeze(-1)

    def greedy(obs: torch.Tensor) -> torch.Tensor:
        if cfg.env in FROZEN_LAKE:  # the gymnasium lake returns the cell index
            obs = F.one_hot(obs.long().view(-1), env.obs_dim).float()
        actions = actor(scaled(obs.float())).argmax(-1)
        return actions[:, 0] if cfg.env in FROZEN_LAKE else actions

    def checkpoint() -> None:
        """Weights and optimiser states (for inspection and evaluation; resuming is not supported)."""
        nets = {"actor": actor, "v_pre": v_pre, "v_post": v_post, "opt_actor": opt_actor, "opt_pre": opt_pre,
                "opt_post": opt_post}
        save_checkpoint(logger.path / "checkpoints" / "latest.pt", {
            "algo": algo, "global_step": global_step,
            **{k: v.state_dict() for k, v in nets.items() if v is not None}})

    steps_per_env = cfg.update_every // cfg.n_envs
    T, N = steps_per_env, cfg.n_envs
    buf = {"obs": torch.zeros(T, N, env.obs_dim, device=device),
           "post_obs": torch.zeros(T, N, env.obs_dim, device=device),
           "actions": torch.zeros(T, N, heads, dtype=torch.long, device=device),
           "log_probs": torch.zeros(T, N, heads, device=device),
           "reward_decision": torch.zeros(T, N, device=device), "reward_exogenous": torch.zeros(T, N, device=device),
           "episode_end": torch.zeros(T, N, dtype=torch.bool, device=device)}
    window: deque[dict[str, torch.Tensor]] = deque(maxlen=cfg.buffer_rollouts)
    running_return = torch.zeros(N, device=device)
    finished_sum = torch.zeros((), device=device)   # episode statistics stay on the device until logged
    finished_count = torch.zeros((), device=device)
    logged: list[float] = []
    stats_sum: dict[str, torch.Tensor] = {}
    n_stats = 0
    last_eval: dict | None = None
    global_step = 0
    next_log, next_eval, next_ckpt = cfg.log_every, (cfg.eval_every or None), (cfg.checkpoint_every or None)
    obs = env.reset(seed=cfg.seed)
    progress = Progress(cfg.total_steps, enabled=cfg.progress, desc=f"{algo} {cfg.env}")
    start = time.time()
    try:
        while global_step < cfg.total_steps:
            # ---- collect one rollout with the current (= old) actor ----
            with torch.no_grad():
                for t in range(T):
                    actions, log_probs = sample_actions(actor(scaled(obs)))
                    next_obs, reward, terminated, truncated, info = env.step(actions)
                    end = terminated | truncated
                    buf["obs"][t], buf["post_obs"][t] = obs, info["post_decision_obs"]
                    buf["actions"][t], buf["log_probs"][t] = actions, log_probs
                    buf["reward_decision"][t] = info["reward_decision"]
                    buf["reward_exogenous"][t] = info["reward_exogenous"]
                    buf["episode_end"][t] = end
                    running_return += reward
                    finished_sum += (running_return * end).sum()
                    finished_count += end.sum()
                    running_return *= ~end
                    obs = next_obs
                values = value(v_pre, buf["obs"])
                values_post = value(v_post, buf["post_obs"])
                bootstrap_action, _ = sample_actions(actor(scaled(obs)))
                next_values = torch.cat([values[1:], value(v_pre, obs)[None]])
                next_values_post = torch.cat([values_post[1:], value(v_post, env.post_decision_obs(bootstrap_action))[None]])
                adv, target_pre, target_post = advantages_and_targets(
                    cfg.critics, cfg.combine, buf["reward_decision"], buf["reward_exogenous"], values, next_values,
                    values_post, next_values_post, buf["episode_end"], cfg.gamma, cfg.gae_lambda)
            rollout = {"obs": buf["obs"], "post_obs": buf["post_obs"], "actions": buf["actions"],
                       "log_probs": buf["log_probs"], "advantages": adv,
                       "target_pre": target_pre if target_pre is not None else adv,
                       "target_post": target_post if target_post is not None else adv}
            window.append({k: v.reshape(T * N, *v.shape[2:]).clone() for k, v in rollout.items()})
            data = {k: torch.cat([r[k] for r in window]) for k in window[0]}
            global_step += T * N

            # ---- K full-batch epochs on the window ----
            for _ in range(cfg.epochs):
                loss, stats = actor_loss(actor(scaled(data["obs"])), data["actions"], data["log_probs"],
                                         data["advantages"], cfg.clip_eps, cfg.ent_coef, cfg.per_head_ratio)
                opt_actor.zero_grad(set_to_none=True)
                loss.backward()
                opt_actor.step()
                for net, opt, key, obs_key in ((v_pre, opt_pre, "target_pre", "obs"),
                                               (v_post, opt_post, "target_post", "post_obs")):
                    if net is None:
                        continue
                    critic_loss = F.mse_loss(value(net, data[obs_key]), data[key])
                    opt.zero_grad(set_to_none=True)
                    critic_loss.backward()
                    opt.step()
                    stats[f"value_loss_{key[7:]}"] = critic_loss.detach()
                for k, v in stats.items():
                    stats_sum[k] = stats_sum.get(k, 0.0) + v
                n_stats += 1

            if global_step >= next_log:
                count = int(finished_count)
                means = {k: float(v) / n_stats for k, v in stats_sum.items()}
                bad = [k for k, v in means.items() if not math.isfinite(v)]
                if bad:
                    raise TrainingDiverged(f"{', '.join(bad)} became non-finite at env step {global_step}")
                train_return = float(finished_sum) / count if count else float("nan")
                if count:
                    logged.append(train_return)
                logger.log(global_step, train_return_mean=train_return if count else "", train_episodes=count,
                           fps=round(global_step / max(time.time() - start, 1e-9), 1), **means)
                finished_sum.zero_(), finished_count.zero_()
                stats_sum, n_stats = {}, 0
                next_log += cfg.log_every
                progress.update(0, train_ret=train_return)
            if next_eval is not None and global_step >= next_eval:
                returns, lengths = evaluator.run(greedy)
                last_eval = logger.log_eval(global_step, returns, lengths) if returns else last_eval
                next_eval += cfg.eval_every
            if next_ckpt is not None and global_step >= next_ckpt:
                checkpoint()
                next_ckpt += cfg.checkpoint_every
            progress.update(T * N)
        if cfg.eval_episodes and (not logger.evals.rows or float(logger.evals.rows[-1]["env_steps"]) < global_step):
            returns, lengths = evaluator.run(greedy)
            last_eval = logger.log_eval(global_step, returns, lengths)
        checkpoint()
        logger.write_summary({
            "algo": algo, "env": cfg.env, "seed": cfg.seed, "env_steps": global_step,
            "max_logged_return": max(logged) if logged else None,
            "cumulative_logged_return": sum(logged) if logged else None, "logged_points": len(logged),
            "final_train_return": logged[-1] if logged else None,
            "final_eval_return": (last_eval or {}).get("return_mean"), "wall_time": logger.wall_time()})
    finally:
        progress.close()
        evaluator.close()
        logger.close()
    return logger


def main(argv: Sequence[str] | None = None):
    cfg = parse_config(PDPPOConfig, argv, presets=presets, prog="python -m algos.pdppo")
    logger = train(cfg)
    print(f"run directory: {logger.path}")
    return logger


if __name__ == "__main__":
    sys.exit(run_cli(main))
