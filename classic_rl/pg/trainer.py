"""Config, presets and the run scaffold shared by vanilla PG, NSGDM, N-PG-IGT and (N)-HARPG.

The estimators, samplers, policies and schedules they use live in classic_rl/pg/estimators.py.
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch

from classic_rl.pg.estimators import (CategoricalMLPPolicy, FlatPolicy, GaussianMLPPolicy, LinearFeatureBaseline, LinearGaussianPolicy, SampleCounter, TrajBatch, discounted_reward_to_go, gpomdp_gradient, gpomdp_weights, sample_batched, sample_gym)
from classic_rl import UserError
from classic_rl.config import RunConfig, require, to_dict
from classic_rl.runlog import Progress, RunLogger
from classic_rl.utils import resolve_device, save_checkpoint, seed_everything, set_torch_threads

# ----------------------------------------------------------------------------- config and run scaffold

LQR_NAMES = ("LQR", "LQR-v0")


class DivergedError(UserError):
    """Training produced non-finite parameters; the run directory (eval.csv so far, summary.json with
    status 'diverged') is kept so analyses can count the run as censored."""

    def __init__(self, message: str, run_dir: str):
        super().__init__(message)
        self.run_dir = run_dir


@dataclasses.dataclass
class PGConfig(RunConfig):
    """Stochastic policy gradient on a gymnasium env or the exact LQR testbed (--env LQR)."""

    env: str = "CartPole"
    """environment: LQR (batched exact testbed), a short name (CartPole, Acrobot, Hopper, ...) or a gymnasium id"""
    total_steps: int = 500_000
    """sample budget in env steps, counting every batch the method draws (IGT's extrapolated-point batch and
    HARPG's HVP batch included); training stops at the first iteration that reaches it"""
    n_envs: int = 8
    """gymnasium env copies stepped in lockstep (one batched policy forward per step); ignored on LQR"""
    eval_every: int = 10_000
    """deterministic evaluation every this many counted env steps (also at start and end; 0 = start and end)"""
    eval_log_points: int = 0
    """also evaluate at this many log-spaced env-step counts (dense early points for log-log rate fits)"""
    eval_episodes: int = 20
    """episodes per evaluation (the authors' code uses 20 deterministic episodes)"""
    gamma0: float = 0.1
    """initial step size gamma_0 of the method's step-size schedule"""
    eta0: float = 1.0
    """initial momentum weight eta_0 (eta_0 = 1 makes d_0 the first gradient)"""
    batch_size: int = 5000
    """env steps per gradient batch, collected as whole episodes until at least this many (LQR: rounded up to
    whole fixed-length trajectories, so --batch-size 80 = one trajectory)"""
    discount: float = 0.99
    """discount gamma of the objective; GPOMDP weights step h by gamma^h (the paper's convention)"""
    max_episode_steps: int = 0
    """episode time limit (0 = the env's default); the authors cap CartPole at 200"""
    hidden: list[int] = dataclasses.field(default_factory=lambda: [32, 32])
    """hidden layer sizes of the tanh MLP policy (authors: [32, 32] discrete, [64, 64] MuJoCo)"""
    init_std: float = 1.0
    """initial std of the Gaussian MLP policy (continuous actions)"""
    min_std: float = 1e-6
    """floor on the learned std (keeps the Fisher matrix non-degenerate, spec pitfall 10)"""
    baseline: bool = True
    """subtract a linear-feature baseline fitted on the previous batch (keeps the estimator unbiased)"""
    lqr_sigma: float = 0.5
    """LQR: fixed exploration std of the linear Gaussian policy u = -Kx + sigma*eps"""
    lqr_horizon: int = 80
    """LQR: simulator episode length H (truncation bias is O(discount^H))"""
    torch_threads: int = 1
    """torch CPU threads (0 = torch's default); 1 is fastest for these small per-step tensors"""

    def validate(self) -> None:
        super().validate()
        require(self.resume is None, "--resume is not supported by the policy-gradient family yet")
        require(self.checkpoint_every == 0, "--checkpoint-every is not supported by the policy-gradient family yet "
                                            "(the final parameters are saved to checkpoints/final.pt)")
        require(self.gamma0 > 0, f"--gamma0 must be positive, got {self.gamma0}")
        require(0 < self.eta0 <= 1, f"--eta0 must be in (0, 1], got {self.eta0}")
        require(self.batch_size > 0, f"--batch-size must be positive, got {self.batch_size}")
        require(0 < self.discount <= 1, f"--discount must be in (0, 1], got {self.discount}")
        require(self.max_episode_steps >= 0, f"--max-episode-steps must be >= 0, got {self.max_episode_steps}")
        require(all(h > 0 for h in self.hidden), f"--hidden sizes must be positive, got {self.hidden}")
        require(self.min_std > 0 and self.init_std > 0, "--init-std and --min-std must be positive")
        require(self.lqr_sigma > 0, f"--lqr-sigma must be positive, got {self.lqr_sigma}")
        require(self.lqr_horizon > 0, f"--lqr-horizon must be positive, got {self.lqr_horizon}")
        require(self.eval_log_points >= 0, f"--eval-log-points must be >= 0, got {self.eval_log_points}")
        if self.env in LQR_NAMES:
            require(self.discount < 1, "--discount must be < 1 on LQR (the exact cost is the discounted one)")


def is_lqr(env: str) -> bool:
    return env in LQR_NAMES


def resolve_gym_id(name: str) -> str:
    from envs.registry import resolve_env_id
    return resolve_env_id(name)


def peek_flag(argv: list[str], flag: str, default: str) -> str:
    """The value of `flag` in argv (either '--flag v' or '--flag=v') before full parsing, for presets."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return default


def common_presets(env: str, algo_overrides: dict[str, dict]) -> dict:
    """Per-env defaults shared by the PG family, then the algorithm's own per-env overrides.

    CartPole / Acrobot / MuJoCo follow the authors' code (spec 1(d)); the LQR values are ours (tuned on the
    default system so every method converges within the 'small' budget, see paper_figs/npg_sample_complexity).
    """
    if is_lqr(env):
        base = dict(discount=0.9, batch_size=80, total_steps=80 * 2000, eval_every=0, eval_log_points=40,
                    eval_episodes=16, n_envs=1)
        key = "LQR"
    else:
        gid = resolve_gym_id(env)
        from envs.registry import env_family
        if env_family(gid) == "mujoco":
            base = dict(hidden=[64, 64], batch_size=10_000, total_steps=2_000_000, eval_every=20_000)
            key = "mujoco"
        else:
            base = dict(hidden=[32, 32], batch_size=5000, total_steps=500_000, eval_every=10_000)
            if gid == "CartPole-v1":
                base["max_episode_steps"] = 200
            key = gid.split("-")[0]
    base.update(algo_overrides.get(key, {}))
    return base


class PGRun:
    """Env, policy, sampler, counters, baseline, evaluation and run directory for one PG training run."""

    def __init__(self, cfg: PGConfig, algo: str):
        set_torch_threads(cfg.torch_threads)
        seed_everything(cfg.seed)
        self.cfg = cfg
        self.algo = algo
        self.device = resolve_device(cfg.device)
        self.counter = SampleCounter()
        self.baseline = LinearFeatureBaseline() if cfg.baseline else None
        self.lqr = is_lqr(cfg.env)
        if self.lqr:
            self._make_lqr()
        else:
            self._make_gym()
        self.theta0 = self.policy.initial_theta().to(self.device)
        self.logger = RunLogger.create(cfg.run_dir, algo, self.env_name, cfg.seed, to_dict(cfg), str(self.device),
                                       tensorboard=cfg.track == "tensorboard")
        self.progress = Progress(cfg.total_steps, enabled=cfg.progress, desc=f"{algo} {self.env_name}")
        self.eval_points = self._eval_points()
        self.next_eval = 0
        self.last_eval_return = float("nan")
        self.start = time.time()

    # -- construction
    def _make_lqr(self) -> None:
        from envs import lqr
        cfg = self.cfg
        self.env_name = "LQR"
        self.system = lqr.default_system(discount=cfg.discount, horizon=cfg.lqr_horizon, sigma=cfg.lqr_sigma)
        self.env = lqr.BatchedLQR(self.system, self.device)
        # evaluation rollouts draw their initial states from their own generator, so how often we evaluate
        # does not change the training samples (same seed + different --eval-every = same learning curve)
        self.eval_env = lqr.BatchedLQR(self.system, self.device,
                                       generator=torch.Generator(device=self.device).manual_seed(cfg.seed + 7919))
        module = LinearGaussianPolicy(self.system.n, self.system.m, cfg.lqr_sigma, self.system.K0).to(self.device)
        self.policy = FlatPolicy(module)
        self.cost_opt = lqr.optimal_cost(self.system)
        self.gain_opt = lqr.optimal_gain(self.system)
        self.traj_per_batch = max(1, math.ceil(cfg.batch_size / self.system.horizon))

    def _make_gym(self) -> None:
        import gymnasium as gym
        cfg = self.cfg
        gid = resolve_gym_id(cfg.env)
        self.env_name = gid
        kwargs = {"max_episode_steps": cfg.max_episode_steps} if cfg.max_episode_steps else {}

        def make(seed: int):
            env = gym.make(gid, **kwargs)
            env.reset(seed=seed)
            env.action_space.seed(seed)
            return env

        self.envs = [make(cfg.seed * 1000 + i) for i in range(cfg.n_envs)]
        self.eval_envs = [make(cfg.seed * 1000 + 500 + i) for i in range(min(cfg.n_envs, max(cfg.eval_episodes, 1)))]
        space = self.envs[0].observation_space
        act_space = self.envs[0].action_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise UserError(f"{gid}: the PG family needs a flat Box observation space, got {space}")
        obs_dim = space.shape[0]
        if isinstance(act_space, gym.spaces.Discrete):
            module = CategoricalMLPPolicy(obs_dim, int(act_space.n), list(cfg.hidden))
        elif isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
            module = GaussianMLPPolicy(obs_dim, act_space.shape[0], list(cfg.hidden), cfg.init_std, cfg.min_std)
        else:
            raise UserError(f"{gid}: unsupported action space {act_space} (need Discrete or a flat Box)")
        self.policy = FlatPolicy(module.to(self.device))

    def _eval_points(self) -> list[int]:
        cfg = self.cfg
        pts = {0, cfg.total_steps}
        if cfg.eval_every > 0:
            pts.update(range(cfg.eval_every, cfg.total_steps, cfg.eval_every))
        if cfg.eval_log_points > 0:
            pts.update(int(x) for x in np.geomspace(1, cfg.total_steps, cfg.eval_log_points))
        return sorted(pts)

    # -- sampling and estimation
    def sample(self, theta: torch.Tensor, min_steps: int | None = None) -> TrajBatch:
        """Training batch at theta (every step counted). min_steps defaults to --batch-size."""
        steps = self.cfg.batch_size if min_steps is None else min_steps
        if self.lqr:
            n = max(1, math.ceil(steps / self.system.horizon))
            return sample_batched(self.env, self.policy, theta, n, self.counter)
        return sample_gym(self.envs, self.policy, theta, steps, self.counter, self.device)

    def weights(self, batch: TrajBatch) -> torch.Tensor:
        b = self.baseline.predict(batch) if self.baseline is not None else None
        return gpomdp_weights(batch, self.cfg.discount, b)

    def gradient(self, theta: torch.Tensor, batch: TrajBatch) -> torch.Tensor:
        return gpomdp_gradient(self.policy, theta, batch, self.weights(batch))

    def refit_baseline(self, batch: TrajBatch) -> None:
        """Called after the update (garage's order), so the next batch's baseline does not see its own actions."""
        if self.baseline is not None:
            self.baseline.fit(batch, discounted_reward_to_go(batch.rew, batch.mask, self.cfg.discount))

    def budget_left(self) -> bool:
        return self.counter.env_steps < self.cfg.total_steps

    def check_finite(self, theta: torch.Tensor, what: str, iteration: int) -> None:
        if not torch.isfinite(theta).all():
            self.logger.write_summary({"status": "diverged", "iteration": iteration,
                                       "env_steps": self.counter.env_steps, "what": what})
            self.progress.close()
            raise DivergedError(f"{self.algo}: {what} became non-finite at iteration {iteration} "
                                f"(env step {self.counter.env_steps}); lower --gamma0", str(self.logger.path))

    # -- evaluation and logging
    def evaluate(self, theta: torch.Tensor, iteration: int) -> dict:
        cfg = self.cfg
        extra = {"iteration": iteration, "trajectories": self.counter.trajectories}
        if self.lqr:
            from envs import lqr
            K = theta.detach().view(self.system.m, self.system.n).cpu().numpy()
            cost = lqr.exact_cost(self.system, K)
            extra.update(cost_exact=cost, cost_opt=self.cost_opt, suboptimality=cost - self.cost_opt,
                         gain_error=float(np.linalg.norm(K - self.gain_opt)))
            n = max(cfg.eval_episodes, 1)
            lengths = [self.system.horizon] * n
            if math.isfinite(cost):
                batch = sample_batched(self.eval_env, self.policy, theta, n, self.counter, deterministic=True)
                disc = cfg.discount ** torch.arange(batch.rew.shape[1], dtype=batch.rew.dtype,
                                                    device=batch.rew.device)
                # deterministic (sigma = 0 actions) discounted return, for the common return_mean column
                returns = (batch.rew * disc).sum(1).cpu().tolist()
            else:  # not stabilising: states blow up, the exact return is -inf
                returns = [-math.inf] * n
        else:
            if cfg.eval_episodes == 0:
                returns, lengths = [], []
            else:
                batch = sample_gym(self.eval_envs, self.policy, theta, 0, None, self.device, deterministic=True,
                                   n_episodes=cfg.eval_episodes)
                returns = batch.undiscounted_returns().cpu().tolist()
                lengths = batch.mask.sum(1).long().cpu().tolist()
        out = self.logger.log_eval(self.counter.env_steps, returns, lengths, **extra)
        out.update(extra)
        self.last_eval_return = out.get("suboptimality", out["return_mean"])
        return out

    def maybe_evaluate(self, theta: torch.Tensor, iteration: int) -> None:
        """Evaluate (before the update, as the authors do) when the counter has passed the next eval point."""
        fired = False
        while self.next_eval < len(self.eval_points) and self.counter.env_steps >= self.eval_points[self.next_eval]:
            self.next_eval += 1
            fired = True
        if fired:
            self.evaluate(theta, iteration)

    def log_iteration(self, steps_before: int, iteration: int, **metrics) -> None:
        self.progress.update(self.counter.env_steps - steps_before, it=iteration,
                             **{("subopt" if self.lqr else "eval"): self.last_eval_return})
        if iteration % 10 == 0:
            self.logger.log(self.counter.env_steps, iteration=iteration, trajectories=self.counter.trajectories,
                            **{k: float(v) for k, v in metrics.items()})

    def finish(self, theta: torch.Tensor, iteration: int) -> dict:
        final = self.evaluate(theta, iteration)
        summary = {"status": "done", "iterations": iteration, "env_steps": self.counter.env_steps,
                   "trajectories": self.counter.trajectories, "wall_time": time.time() - self.start,
                   "final_return_mean": final["return_mean"]}
        if self.lqr:
            summary.update(final_cost=final["cost_exact"], cost_opt=self.cost_opt,
                           final_suboptimality=final["suboptimality"])
        self.logger.write_summary(summary)
        save_checkpoint(self.logger.path / "checkpoints" / "final.pt",
                        {"theta": theta.detach().cpu(), "iteration": iteration, "env_steps": self.counter.env_steps})
        self.progress.close()
        self.logger.close()
        for env in getattr(self, "envs", []) + getattr(self, "eval_envs", []):
            env.close()
        summary["run_dir"] = str(self.logger.path)
        return summary
