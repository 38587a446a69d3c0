"""PDPPO (Felizardo et al., 2025, arXiv 2504.05150): PPO with a pre- and a post-decision critic.

    python -m algos.pdppo --env LotSizing-15x5                     # the authors' latest settings
    python -m algos.pdppo --env LotSizing-15x5 --critics pre-only  # the authors' PPO baseline, same loop
    python -m algos.pdppo --env FrozenLakePD-8x8                   # slippery FrozenLake 8x8
    python -m algos.pdppo --resume runs/pdppo/LotSizing-15x5/1-...  # continue a run exactly
    python -m algos.pdppo --help

Idea. Each env step splits into a deterministic half, s -> s^x = f(s, a) (the post-decision state), and a
random half s^x -> s'. The envs (envs.lotsizing, envs.frozen_lake) expose s^x and the split rewards
r^x = -setup cost (the deterministic half) and r^W = r - r^x (lost sales + holding). PDPPO keeps PPO's
clipped actor and learns two critics, each with its own Adam. In one rollout, with returns reset at
episode ends,

    R_t = sum_k gamma^k r^W_{t+k},   R^x_t = sum_k gamma^k r^x_{t+k},
    A^pre_t = R_t - V_old(s_t),      A^x_t = R^x_t - V^x_old(s^x_t),      A_t = max(A^pre_t, A^x_t),
    L_actor = -mean_{t,m} min(rho_{t,m} A_t, clip(rho_{t,m}, 1 - eps, 1 + eps) A_t) - c_ent mean_{t,m} H_m,
    L_V = mean_t (V(s_t) - R_t)^2,   L_Vx = mean_t (V^x(s^x_t) - R^x_t)^2,

where rho_{t,m} is the ratio of machine head m (the actor is one categorical per machine). With
--gae-lambda < 1 the advantages are GAE on each stream instead of Monte-Carlo returns.

Paper vs the authors' code. A summary of the paper calls R^x "the discounted reward from the
post-decision state"; the authors' latest code makes it the setup-cost stream only, and we follow the code
(tests/test_pdppo.py::test_dual_split_targets_and_max_advantage pins it down). The two streams have
different scales, so the max is not scale-consistent; `--critics dual-shared` is the alternative. Variants
(`--critics`):
  dual-split  (default) the above (the authors' latest code, behind their 20-run logs);
  dual-shared both critics fit the per-batch z-scored full return R~, A = combine(R~ - V, R~ - V^x)
              (the authors' earlier version);
  one-critic  only V^x(s^x), fit to R~, A = R~ - V^x (their ablation);
  pre-only    only V(s) on the full reward, A = R - V: the authors' PPO baseline (same actor, buffer and
              optimisers), so PDPPO-vs-PPO differs in the critics only.
Kept from the authors on purpose: returns are Monte-Carlo within an episode and every episode end is
terminal (the lot-sizing horizon T = 100 is part of the problem); no advantage normalisation; full-batch
epochs; clipping per machine head (`--per-head-ratio`; False clips the joint ratio prod_m rho_m); a sliding
window of the last `--buffer-rollouts` rollouts trained on with their old log-probs and advantages (stale
samples, closer to off-policy PPO). Our differences: `--train-actor-trunk` defaults to True (the authors'
optimiser only receives the actor's output layer, so their 128-128 trunk stays at its random init; pass
--no-train-actor-trunk to reproduce), and at a rollout cut inside an episode we bootstrap (V(s), and V^x of
s^x for an action sampled at s) instead of cutting the return. The code's 0.7 x critic loss added to the
actor loss is detached there (no effect) and omitted here.

Settings (all from the authors' latest public code, leokan92/pdppo): rollout of 400 steps (4 episodes of
T = 100), 40 full-batch epochs, window of 5 rollouts, eps = 0.2, gamma = 0.9, actor lr 5.5e-4, critic lr
1e-3 (each critic its own Adam), entropy 0.001, no gradient clipping or weight decay, actor trunk
128-128 ReLU with a Kaiming-uniform output layer, critics 128-128 tanh with Xavier-uniform weights and zero
biases. FrozenLake: rollouts of 5 x 200 steps, 50 epochs, gamma = 0.99, 200k steps. The authors report the
mean training return of the episodes in each window of 40 episodes (4 000 steps); its maximum over the
run ("max reward") and its sum ("cumulative reward") are their metrics (`--window-steps`).

What the run records. A step is one env step of one plant (or lake); `--n-envs` plants run in parallel
on the device and one update consumes `--update-every` steps summed over them. metrics.csv gets one row
per update (losses, the mean return of the training episodes that ended in it, and `window_return` when
a window of `--window-steps` closes); eval.csv the greedy policy's returns on the gymnasium envs every
`--eval-every` steps; summary.json has the final greedy evaluation return as the headline, plus the
authors' max/cumulative window returns. Checkpoints hold the networks, optimisers, the sliding window, the
plants' state and every random stream, so `--resume` continues exactly.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from algos.ppo import ppo_policy_loss
from classic_rl import UserError
from classic_rl.buffers import gae
from classic_rl.config import RunConfig, parse_config, require, run_cli
from classic_rl.evaluation import Evaluator
from classic_rl.session import LoopState, RunSession
from envs.lotsizing.post_decision import (FROZEN_LAKE, POST_DECISION_ENVS, env_kwargs, make_batched_env,
                                          make_eval_envs)

CRITICS = Literal["dual-split", "dual-shared", "one-critic", "pre-only"]
VARIANT_NAMES = {"dual-split": "pdppo", "dual-shared": "pdppo-shared", "one-critic": "pdppo-one-critic",
                 "pre-only": "ppo-authors"}


@dataclass
class PDPPOConfig(RunConfig):
    """PDPPO: clipped PPO actor, pre- and post-decision critics. Defaults: the authors' latest lot-sizing run."""

    env: str = "LotSizing-15x5"
    """LotSizing-15x5 | LotSizing-20x10 | LotSizing-25x10 | LotSizing-25x15 | FrozenLakePD-8x8"""
    total_steps: int = 1_000_000
    """env steps to train for, summed over the parallel plants (or lakes); rounded up to whole rollouts of
    --update-every steps (announced)"""
    n_envs: int = 4
    """plants (or lakes) stepped in parallel on the device; one rollout of --update-every steps is split
    evenly over them (4 x 100 steps = the authors' 4 sequential episodes)"""
    eval_every: int = 50_000
    """greedy evaluation on the gymnasium envs every this many env steps (0 = only at the end)"""
    eval_episodes: int = 40
    """episodes per greedy evaluation (fixed start seeds, the same in every evaluation)"""
    checkpoint_every: int = 0
    """save a resumable checkpoint every this many env steps, at the next rollout end (0 = only at the end)"""
    update_every: int = 400
    """env steps per rollout (all envs together) between updates"""
    n_epochs: int = 40
    """full-batch optimisation passes over the window per update (no minibatches)"""
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
    hidden_sizes: list[int] = field(default_factory=lambda: [128, 128])
    """hidden layer widths of the actor trunk (ReLU) and of each critic (tanh)"""
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
    window_steps: int = 4000
    """the authors' logging window: the mean return of the training episodes that end in each window of
    this many env steps is metrics.csv's window_return; its max and sum over the run are summary.json's
    max_window_return and cumulative_window_return (the paper's "max reward" and "cumulative reward")"""
    observe_setups: bool = False
    """lot-sizing: observe machine setups too (the authors' latest code observes inventories only)"""
    negative_production: bool = True
    """lot-sizing quirk: an item a machine cannot make still costs a setup and loses stock (authors' env)"""
    stored_lost_sales: bool = True
    """lot-sizing quirk: lost-sales costs as stored, {0.1, 1.1}; False maps them to the intended 0.1..0.3"""
    map_seed: int = 0
    """FrozenLake: seed of the random 8x8 map"""

    def validate(self) -> None:
        super().validate()
        require(self.env in POST_DECISION_ENVS,
                f"pdppo needs an env with post-decision states: {', '.join(POST_DECISION_ENVS)}; got {self.env!r}")
        require(self.update_every > 0 and self.update_every % self.n_envs == 0,
                f"--update-every ({self.update_every}) must be a positive multiple of --n-envs ({self.n_envs})")
        require(self.n_epochs > 0, f"--n-epochs must be positive, got {self.n_epochs}")
        require(self.buffer_rollouts > 0, f"--buffer-rollouts must be positive, got {self.buffer_rollouts}")
        require(0 < self.clip_eps < 1, f"--clip-eps must be in (0, 1), got {self.clip_eps}")
        require(0 <= self.gamma <= 1, f"--gamma must be in [0, 1], got {self.gamma}")
        require(0 <= self.gae_lambda <= 1, f"--gae-lambda must be in [0, 1], got {self.gae_lambda}")
        require(self.actor_lr > 0, f"--actor-lr must be positive, got {self.actor_lr}")
        require(self.critic_lr > 0, f"--critic-lr must be positive, got {self.critic_lr}")
        require(self.ent_coef >= 0, f"--ent-coef must be >= 0, got {self.ent_coef}")
        require(len(self.hidden_sizes) > 0 and all(h > 0 for h in self.hidden_sizes),
                f"--hidden-sizes must be positive widths, got {self.hidden_sizes}")
        require(self.obs_scale > 0, f"--obs-scale must be positive, got {self.obs_scale}")
        require(self.window_steps > 0, f"--window-steps must be positive, got {self.window_steps}")


def presets(env: str) -> dict[str, Any]:
    """The authors' FrozenLake settings; lot-sizing uses the dataclass defaults."""
    if env in FROZEN_LAKE:
        return dict(gamma=0.99, update_every=1000, n_epochs=50, total_steps=200_000, window_steps=5000)
    return {}


def variant_name(cfg: PDPPOConfig) -> str:
    """pdppo | pdppo-shared | pdppo-one-critic | ppo-authors, with -<combine> for a non-max dual variant."""
    dual = cfg.critics in ("dual-split", "dual-shared")
    return VARIANT_NAMES[cfg.critics] + (f"-{cfg.combine}" if dual and cfg.combine != "max" else "")


# ----------------------------------------------------------------------------- networks (the authors')


def mlp(sizes: Sequence[int], activation: type[nn.Module]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), activation()]
    return layers


class Actor(nn.Module):
    """ReLU trunk -> one categorical head per machine (logits [B, heads, classes])."""

    def __init__(self, obs_dim: int, heads: int, classes: int, hidden_sizes: Sequence[int]):
        super().__init__()
        self.trunk = nn.Sequential(*mlp([obs_dim, *hidden_sizes], nn.ReLU))
        self.head = nn.Linear(hidden_sizes[-1], heads * classes)
        nn.init.kaiming_uniform_(self.head.weight)  # the authors' head init
        nn.init.zeros_(self.head.bias)
        self.heads, self.classes = heads, classes

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(obs)).view(-1, self.heads, self.classes)


def critic(obs_dim: int, hidden_sizes: Sequence[int]) -> nn.Sequential:
    """tanh MLP -> scalar, Xavier-uniform weights and zero biases (the authors' critics)."""
    net = nn.Sequential(*mlp([obs_dim, *hidden_sizes], nn.Tanh), nn.Linear(hidden_sizes[-1], 1))
    for layer in net:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return net


def sample_actions(logits: torch.Tensor, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw per head: actions [B, heads] and their per-head log-probs [B, heads]."""
    log_probs = torch.log_softmax(logits, -1)
    flat = torch.multinomial(log_probs.exp().reshape(-1, logits.shape[-1]), 1, generator=generator)
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


@dataclass
class PDPPOLoop(LoopState):
    """Loop variables a checkpoint holds: the observation acted on next, the sliding window of rollouts,
    the return of each env's episode in progress and the authors' logging window."""

    obs: Any = None
    window: list = field(default_factory=list)
    running_return: Any = None
    window_sum: float = 0.0
    window_count: int = 0
    window_returns: list = field(default_factory=list)


def train(cfg: PDPPOConfig, argv: Sequence[str] | None = None) -> RunSession:
    """Train and return the finished session (its `path` is the run directory)."""
    run = RunSession(cfg, "pdppo", argv=argv)
    cfg, device = run.cfg, run.device
    kwargs = env_kwargs(cfg.env, cfg.observe_setups, cfg.negative_production, cfg.stored_lost_sales, cfg.map_seed)
    env = make_batched_env(cfg.env, cfg.n_envs, device, cfg.seed, **kwargs)
    heads, classes = len(env.action_nvec), env.action_nvec[0]
    actor = Actor(env.obs_dim, heads, classes, cfg.hidden_sizes).to(device)
    critics = {"pre": critic(env.obs_dim, cfg.hidden_sizes).to(device) if cfg.critics != "one-critic" else None,
               "post": critic(env.obs_dim, cfg.hidden_sizes).to(device) if cfg.critics != "pre-only" else None}
    actor_params = list(actor.parameters()) if cfg.train_actor_trunk else list(actor.head.parameters())
    opt_actor = torch.optim.Adam(actor_params, lr=cfg.actor_lr)
    critic_opts = {k: torch.optim.Adam(net.parameters(), lr=cfg.critic_lr) for k, net in critics.items() if net}
    action_rng = torch.Generator(device=device).manual_seed(cfg.seed)
    evaluator = Evaluator(lambda k: make_eval_envs(cfg.env, k, **kwargs), cfg.eval_episodes, 8,
                          cfg.seed + 10_000, device)
    run.add_cleanup(evaluator.close)

    def scaled(obs: torch.Tensor) -> torch.Tensor:
        return obs / cfg.obs_scale

    def value(key: str, obs: torch.Tensor) -> torch.Tensor:
        net = critics[key]
        if net is None:
            return torch.zeros(obs.shape[:-1], device=device)
        return net(scaled(obs)).squeeze(-1)

    def evaluate() -> dict:
        def greedy(obs: torch.Tensor) -> torch.Tensor:
            if cfg.env in FROZEN_LAKE:  # the gymnasium lake returns the cell index
                obs = F.one_hot(obs.long().view(-1), env.obs_dim).float()
            actions = actor(scaled(obs.float())).argmax(-1)
            return actions[:, 0] if cfg.env in FROZEN_LAKE else actions

        returns, lengths = evaluator.run(greedy)
        return {"returns": returns, "lengths": lengths}

    T, N = cfg.update_every // cfg.n_envs, cfg.n_envs
    buf = {"obs": torch.zeros(T, N, env.obs_dim, device=device),
           "post_obs": torch.zeros(T, N, env.obs_dim, device=device),
           "actions": torch.zeros(T, N, heads, dtype=torch.long, device=device),
           "log_probs": torch.zeros(T, N, heads, device=device),
           "reward_decision": torch.zeros(T, N, device=device), "reward_exogenous": torch.zeros(T, N, device=device),
           "episode_end": torch.zeros(T, N, dtype=torch.bool, device=device)}
    loop = PDPPOLoop(obs=env.reset(seed=cfg.seed), running_return=torch.zeros(N, device=device))
    run.steps_per_update(cfg.update_every, "rollout")
    if cfg.total_steps < cfg.window_steps:
        print(f"note: --total-steps {cfg.total_steps} is shorter than one --window-steps window ({cfg.window_steps}): "
              f"metrics.csv will have no window_return and summary.json no max/cumulative window return",
              file=sys.stderr)
    tracked = {"actor": actor, "opt_actor": opt_actor, "action_rng": action_rng, "env": env, "loop": loop,
               **{f"critic_{k}": net for k, net in critics.items() if net is not None},
               **{f"opt_critic_{k}": opt for k, opt in critic_opts.items()}}
    with run:
        run.track(evaluate=evaluate, **tracked)
        loop.window = [{k: v.to(device) for k, v in r.items()} for r in loop.window]  # checkpoints load on the CPU
        while run.step < cfg.total_steps:
            # ---- collect one rollout with the current (= old) actor ----
            finished_sum, finished_count = torch.zeros((), device=device), torch.zeros((), device=device)
            with torch.no_grad():
                obs = loop.obs
                for t in range(T):
                    actions, log_probs = sample_actions(actor(scaled(obs)), action_rng)
                    next_obs, reward, terminated, truncated, info = env.step(actions)
                    end = terminated | truncated
                    buf["obs"][t], buf["post_obs"][t] = obs, info["post_decision_obs"]
                    buf["actions"][t], buf["log_probs"][t] = actions, log_probs
                    buf["reward_decision"][t] = info["reward_decision"]
                    buf["reward_exogenous"][t] = info["reward_exogenous"]
                    buf["episode_end"][t] = end
                    loop.running_return += reward
                    finished_sum += (loop.running_return * end).sum()
                    finished_count += end.sum()
                    loop.running_return *= ~end
                    obs = next_obs
                loop.obs = obs
                values, values_post = value("pre", buf["obs"]), value("post", buf["post_obs"])
                bootstrap_action, _ = sample_actions(actor(scaled(obs)), action_rng)
                next_values = torch.cat([values[1:], value("pre", obs)[None]])
                next_values_post = torch.cat([values_post[1:],
                                              value("post", env.post_decision_obs(bootstrap_action))[None]])
                adv, target_pre, target_post = advantages_and_targets(
                    cfg.critics, cfg.combine, buf["reward_decision"], buf["reward_exogenous"], values, next_values,
                    values_post, next_values_post, buf["episode_end"], cfg.gamma, cfg.gae_lambda)
            rollout = {"obs": buf["obs"], "post_obs": buf["post_obs"], "actions": buf["actions"],
                       "log_probs": buf["log_probs"], "advantages": adv,
                       "target_pre": target_pre if target_pre is not None else adv,
                       "target_post": target_post if target_post is not None else adv}
            loop.window = (loop.window + [{k: v.reshape(T * N, *v.shape[2:]).clone() for k, v in rollout.items()}]
                           )[-cfg.buffer_rollouts:]
            data = {k: torch.cat([r[k] for r in loop.window]) for k in loop.window[0]}

            # ---- full-batch epochs on the window ----
            stats_sum: dict[str, torch.Tensor] = {}
            for _ in range(cfg.n_epochs):
                loss, stats = actor_loss(actor(scaled(data["obs"])), data["actions"], data["log_probs"],
                                         data["advantages"], cfg.clip_eps, cfg.ent_coef, cfg.per_head_ratio)
                opt_actor.zero_grad(set_to_none=True)
                loss.backward()
                opt_actor.step()
                for key, opt in critic_opts.items():
                    critic_loss = F.mse_loss(value(key, data["obs" if key == "pre" else "post_obs"]),
                                             data[f"target_{key}"])
                    opt.zero_grad(set_to_none=True)
                    critic_loss.backward()
                    opt.step()
                    stats[f"value_loss_{key}"] = critic_loss.detach()
                for k, v in stats.items():
                    stats_sum[k] = stats_sum.get(k, 0.0) + v
            means = {k: float(v) / cfg.n_epochs for k, v in stats_sum.items()}

            # ---- training returns: this update's episodes, and the authors' window ----
            count, total = int(finished_count), float(finished_sum)
            loop.window_sum += total
            loop.window_count += count
            window_return: float | str = ""
            before, after = run.step, run.step + T * N
            if after // cfg.window_steps > before // cfg.window_steps:  # a window closed in this update
                if loop.window_count:
                    window_return = loop.window_sum / loop.window_count
                    loop.window_returns.append(window_return)
                loop.window_sum, loop.window_count = 0.0, 0
            run.advance(T * N, **means, train_return_mean=total / count if count else "", train_episodes=count,
                        window_return=window_return)
        windows = loop.window_returns
        run.finish(variant=variant_name(cfg), env_config=env.config(),
                   max_window_return=max(windows) if windows else None,
                   cumulative_window_return=sum(windows) if windows else None, windows=len(windows),
                   final_window_return=windows[-1] if windows else None)
    return run


def main(argv: Sequence[str] | None = None):
    from analysis.plot import finish_run

    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(PDPPOConfig, argv, presets=presets, prog="python -m algos.pdppo", description=__doc__)
    run = train(cfg, argv=argv)
    return finish_run(run.path)


if __name__ == "__main__":
    sys.exit(run_cli(main))
