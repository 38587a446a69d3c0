"""SAC on any gymnasium Box env, and with --dataset the RLPD-style baseline (Ball, Smith, Kostrikov, Levine,
"Efficient Online Reinforcement Learning with Offline Data", ICML 2023).

    python -m algos.sac --env Hopper                                   # plain SAC (Haarnoja et al. 2018)
    python -m algos.sac --env Hopper --dataset hopper-medium-replay    # RLPD: offline data in every batch

The learner is classic_rl/sac.py (its docstring has the equations). One env step:

    a = uniform in [-1, 1]^d for the first --start-steps steps, else a ~ pi(.|s)   (rescaled to the env's box)
    store (s, a, r, s', terminated) in the online buffer (a time-limit cut keeps s' and bootstraps)
    from step --start-steps on: draw b * G rows (G = --utd): all online, or with --dataset b*G/2 offline and
    b*G/2 online interleaved; G critic steps on consecutive b-row slices, then one actor and one temperature
    step on the last slice

Plain SAC defaults (Haarnoja et al. 2018 "SAC: algorithms and applications"; SB3's defaults): 2 critics,
min over both, 256-256 ReLU, Adam 3e-4, batch 256, UTD 1, target entropy -dim(A), entropy in the backup,
5,000 random warm-up steps (SB3 uses 100; CleanRL 5,000). With --dataset the RLPD preset applies (from
github.com/ikostrikov/rlpd @ c90fd4b, configs/rlpd_config.py and rlpd/agents/sac/sac_learner.py): 10 LayerNorm
critics, min over a random subset of 2, UTD 20, target entropy -dim(A)/2, offline ratio 0.5, observations not
normalized. Datasets: the toolkit's generated Minari datasets (hopper-medium-replay, ...), whose env must be
--env. Evaluation: deterministic actions tanh(mu(s)); with a dataset also its normalized score.
"""
from __future__ import annotations

import sys
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch

from classic_rl import UserError
from classic_rl.buffers import ReplayBuffer
from classic_rl.config import RunConfig, parse_config, require, run_cli
from classic_rl.evaluation import Evaluator, episode_infos
from classic_rl.sac import SAC, SACSettings, mixed_batch, to_env_action, uniform_actions
from classic_rl.session import LoopState, RunSession, VecEnvState


@dataclass
class OffPolicyConfig(RunConfig):
    """Flags every online off-policy learner here shares (SAC/RLPD, EXPO)."""

    total_steps: int = 250_000
    """environment steps to train for"""
    dataset: typing.Optional[str] = None
    """offline dataset mixed into every minibatch (hopper-medium-replay, walker2d-medium, ... or a Minari id);
    its env must be --env (default: none, purely online)"""
    offline_ratio: float = 0.5
    """fraction of each minibatch drawn from the dataset (with --dataset); 0.5 = symmetric sampling"""
    eval_every: int = 5000
    """evaluate every this many env steps (0 = only at the end)"""
    eval_envs: int = 5
    """parallel environments for the evaluation episodes"""
    eval_max_steps: int = 0
    """cut evaluation episodes after this many steps (0 = the env's own time limit)"""
    batch_size: int = 256
    """rows per gradient step"""
    utd: int = 1
    """update-to-data ratio: critic steps per env step (each on its own minibatch)"""
    start_steps: int = 5000
    """uniform-random actions for this many env steps; updates start at this step"""
    buffer_size: int = 1_000_000
    """capacity of the online replay buffer (transitions)"""
    gamma: float = 0.99
    """discount factor"""
    tau: float = 0.005
    """Polyak rate of the target critics"""
    lr: float = 3e-4
    """Adam learning rate of the actor, the critics and the temperature"""
    num_qs: int = 2
    """critics in the ensemble (one batched module)"""
    num_min: int = 2
    """size of the random subset of target critics the TD target takes the min over"""
    layer_norm: bool = False
    """LayerNorm after every hidden layer of the critics (RLPD)"""
    critic_hidden: list[int] = field(default_factory=lambda: [256, 256])
    """hidden widths of each critic (ReLU)"""
    init_temperature: float = 1.0
    """initial entropy temperature alpha"""
    target_entropy_scale: float = 1.0
    """target entropy H_target = -scale * dim(A) (SAC 1.0; RLPD and EXPO 0.5)"""
    log_every: int = 1000
    """write a metrics row every this many env steps"""

    def validate(self) -> None:
        super().validate()
        require(self.n_envs == 1, f"--n-envs must be 1 (one env step per update round), got {self.n_envs}")
        require(self.batch_size > 0 and self.utd > 0, "--batch-size and --utd must be positive")
        require(self.start_steps >= 0, f"--start-steps must be >= 0, got {self.start_steps}")
        require(self.buffer_size > 0, f"--buffer-size must be positive, got {self.buffer_size}")
        require(0 <= self.gamma <= 1, f"--gamma must be in [0, 1], got {self.gamma}")
        require(0 < self.tau <= 1, f"--tau must be in (0, 1], got {self.tau}")
        require(self.lr > 0, f"--lr must be positive, got {self.lr}")
        require(self.num_qs >= 1 and 1 <= self.num_min <= self.num_qs,
                f"need 1 <= --num-min <= --num-qs, got --num-min {self.num_min} --num-qs {self.num_qs}")
        require(0 <= self.offline_ratio < 1, f"--offline-ratio must be in [0, 1), got {self.offline_ratio}")
        require(self.init_temperature > 0, f"--init-temperature must be positive, got {self.init_temperature}")
        require(self.eval_envs > 0 and self.eval_max_steps >= 0 and self.log_every > 0,
                "--eval-envs and --log-every must be positive, --eval-max-steps >= 0")


@dataclass
class SACConfig(OffPolicyConfig):
    """Soft actor-critic; with --dataset the RLPD-style baseline (offline data in every minibatch)."""

    actor_hidden: list[int] = field(default_factory=lambda: [256, 256])
    """hidden widths of the tanh-Gaussian actor (ReLU)"""
    backup_entropy: bool = True
    """subtract alpha log pi(a'|s') in the TD target (SAC and RLPD's default)"""


#: RLPD's settings (configs/rlpd_config.py, sac_learner defaults, train_finetuning.py utd_ratio 20)
RLPD_PRESET = dict(num_qs=10, num_min=2, layer_norm=True, utd=20, target_entropy_scale=0.5)


def presets(dataset: str | None) -> dict[str, Any]:
    """With a dataset: RLPD's settings; without: plain SAC's (the field defaults)."""
    return dict(RLPD_PRESET) if dataset else {}


@dataclass
class OffPolicyLoop(LoopState):
    """Loop variables a checkpoint holds besides networks, optimizers and buffers."""

    recent_returns: list = field(default_factory=list)
    episodes: int = 0


class OnlineSetup:
    """What an online learner with optional offline data needs: the training env (one, exactly
    checkpointable for MuJoCo), the online replay buffer, the dataset's buffer, the action map to the env's
    box, the evaluator and the loop state. Observations are raw (not normalized), as in RLPD and EXPO."""

    def __init__(self, cfg: OffPolicyConfig, run: RunSession):
        from envs.registry import make_vec_env

        device = run.device
        self.cfg, self.device = cfg, device
        self.data = None
        if cfg.dataset:
            from envs.offline.loaders import load_offline_data
            self.data = load_offline_data(cfg.dataset, device, normalize_obs=False, env=cfg.env, seed=cfg.seed)
        self.envs = make_vec_env(cfg.env, 1, training=True)
        run.add_cleanup(self.envs.close)
        space = self.envs.single_action_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise UserError(f"{cfg.env} has a {type(space).__name__} action space; this learner needs a 1-D Box")
        if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
            raise UserError(f"{cfg.env}'s action box is unbounded; a tanh policy needs finite bounds")
        self.obs_dim = self.envs.single_observation_space.shape[0]
        self.act_dim = space.shape[0]
        self.low = torch.as_tensor(space.low, dtype=torch.float32, device=device)
        self.high = torch.as_tensor(space.high, dtype=torch.float32, device=device)
        self.offline = None
        if self.data is not None:
            buf = self.data.buffer
            # dataset actions to [-1, 1] (the env's box), clipped to +-(1 - 1e-5) like RLPD/EXPO's loaders
            buf.actions = ((buf.actions - self.low) / (self.high - self.low) * 2 - 1).clamp(-1 + 1e-5, 1 - 1e-5)
            self.offline = buf
        self.buffer = ReplayBuffer(min(cfg.buffer_size, cfg.total_steps), (self.obs_dim,), (self.act_dim,), device)
        self.rng = torch.Generator(device=device).manual_seed(cfg.seed)
        self.loop = OffPolicyLoop()
        self.env_state = VecEnvState(self.envs, lambda: [cfg.seed + 7919 * (self.loop.episodes + 1)])
        self.env_state.obs, _ = self.envs.reset(seed=[cfg.seed])
        self.evaluator = Evaluator(lambda k: make_vec_env(cfg.env, k, training=False,
                                                          max_episode_steps=cfg.eval_max_steps or None),
                                   cfg.eval_episodes, cfg.eval_envs, cfg.seed + 10_000, device)
        run.add_cleanup(self.evaluator.close)

    def objects(self) -> dict[str, Any]:
        return {"online_buffer": self.buffer, "sample_rng": self.rng, "loop": self.loop, "envs": self.env_state}

    def obs(self) -> torch.Tensor:
        return torch.as_tensor(self.env_state.obs, dtype=torch.float32, device=self.device)

    def step(self, obs: torch.Tensor, action: torch.Tensor) -> None:
        """Step the env with a [-1, 1] action batch [1, d]; store the transition (the true last observation of
        an episode that ended) and keep the next observation."""
        env_action = to_env_action(action, self.low, self.high).cpu().numpy()
        next_obs, reward, terminated, truncated, info = self.envs.step(env_action)
        real_next = next_obs
        if info and "final_obs" in info:
            real_next = next_obs.copy()
            for i in np.flatnonzero(info["_final_obs"]):
                real_next[i] = info["final_obs"][i]
            ended, rets, _ = episode_infos(info)
            self.loop.recent_returns = (self.loop.recent_returns + [float(r) for r in rets[ended]])[-20:]
            self.loop.episodes += int(ended.sum())
        self.buffer.add(obs, action, torch.as_tensor(reward, dtype=torch.float32),
                        torch.as_tensor(real_next, dtype=torch.float32), torch.as_tensor(terminated))
        self.env_state.obs = next_obs

    def batch(self, n: int) -> dict[str, torch.Tensor]:
        return mixed_batch(self.offline, self.buffer, n, self.rng, self.cfg.offline_ratio)

    def make_evaluate(self, act: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], dict[str, Any]]:
        """evaluate() for the session: `act(obs) -> [-1, 1] actions`, rescaled to the env's box."""
        def evaluate() -> dict[str, Any]:
            returns, lengths = self.evaluator.run(
                lambda o: to_env_action(act(o.to(torch.float32)), self.low, self.high))
            out: dict[str, Any] = {"returns": returns, "lengths": lengths}
            if self.data is not None and returns:
                out["normalized_score"] = self.data.normalized_score(sum(returns) / len(returns))
            return out
        return evaluate

    def train_stats(self) -> dict[str, Any]:
        recent = self.loop.recent_returns
        return {"train_return_mean": float(np.mean(recent)) if recent else "", "episodes": self.loop.episodes}

    def headline(self, run: RunSession) -> tuple[str, Any]:
        last = run.last_eval or {}
        if self.data is not None:
            return "normalized_score", last.get("normalized_score")
        return "final_eval_return", last.get("return_mean")


def train(cfg: SACConfig, argv: Sequence[str] | None = None) -> RunSession:
    run = RunSession(cfg, "sac", argv=argv, log_interval=max(1, cfg.log_every))
    cfg, device = run.cfg, run.device
    setup = OnlineSetup(cfg, run)
    sac = SAC(setup.obs_dim, setup.act_dim, SACSettings(
        actor_hidden=cfg.actor_hidden, critic_hidden=cfg.critic_hidden, num_qs=cfg.num_qs, num_min=cfg.num_min,
        layer_norm=cfg.layer_norm, lr=cfg.lr, gamma=cfg.gamma, tau=cfg.tau, init_temperature=cfg.init_temperature,
        target_entropy=-cfg.target_entropy_scale * setup.act_dim, backup_entropy=cfg.backup_entropy), device)
    evaluate = setup.make_evaluate(lambda o: sac.actor.sample(o, deterministic=True)[0])
    stats: dict[str, Any] = {}
    with run:
        run.track(**sac.objects(), **setup.objects(), evaluate=evaluate)
        while run.step < cfg.total_steps:
            obs = setup.obs()
            if run.step < cfg.start_steps:
                action = uniform_actions(1, setup.act_dim, setup.rng, device)
            else:
                with torch.no_grad():
                    action = sac.actor.sample(obs)[0]
            setup.step(obs, action)
            if run.step + 1 >= cfg.start_steps:
                stats = sac.update(setup.batch(cfg.batch_size * cfg.utd), cfg.utd, setup.rng)
            run.advance(1, **stats, **setup.train_stats())
        run.finish(headline=setup.headline(run), dataset=cfg.dataset, utd=cfg.utd, num_qs=cfg.num_qs)
    return run


def main(argv: Sequence[str] | None = None):
    from analysis.plot import finish_run

    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(SACConfig, argv, presets=presets, prog="python -m algos.sac", description=__doc__,
                       preset_field="dataset")
    return finish_run(train(cfg, argv).path)


if __name__ == "__main__":
    sys.exit(run_cli(main))
