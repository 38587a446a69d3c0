"""Gradient updates per second of our SAC (classic_rl/sac.py) and of Stable-Baselines3's SAC, same networks,
batch size, UTD and critic count, alternating in one process, one torch thread each.

    python -m benchmarks.offpolicy_throughput --env Hopper            # 10 critics, UTD 20, batch 256, ~2 min

Both learners get a replay buffer pre-filled with random transitions of the env's shapes, so only the update is
timed (no env stepping). One "update round" is what one env step triggers at UTD G: ours = G critic steps on
G minibatches, then one actor and one temperature step (RLPD's update); SB3 = `model.train(gradient_steps=G)`,
i.e. G times (critic step, actor step, temperature step, target update), SB3's own algorithm. The rate reported
is critic gradient steps per second (G per round) for both. Networks: actor and each critic 256-256 ReLU, no
LayerNorm (SB3's critics have none), n_critics = --num-qs for both; our TD target evaluates only the random
subset of --num-min target critics, SB3's takes the min over all of them. Rounds alternate (ours, SB3, ours,
...) so both see the same machine load; the last line is `ratio=<ours/sb3>` (median over rounds).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Sequence

import numpy as np
import torch


def _ours(obs_dim: int, act_dim: int, args) -> tuple:
    from classic_rl.buffers import ReplayBuffer
    from classic_rl.sac import SAC, SACSettings

    sac = SAC(obs_dim, act_dim, SACSettings(actor_hidden=(256, 256), critic_hidden=(256, 256), num_qs=args.num_qs,
                                            num_min=args.num_min, layer_norm=args.layer_norm, target_entropy=-act_dim))
    n = args.buffer
    buf = ReplayBuffer(n, (obs_dim,), (act_dim,), torch.device("cpu"))
    buf.add(torch.randn(n, obs_dim), torch.rand(n, act_dim) * 2 - 1, torch.randn(n), torch.randn(n, obs_dim),
            torch.rand(n) < 0.01)
    gen = torch.Generator().manual_seed(0)

    def round_():
        sac.update(buf.sample(args.batch_size * args.utd, gen), args.utd, gen)
    return round_


def _sb3(env_id: str, args) -> tuple:
    import gymnasium as gym
    from stable_baselines3 import SAC as SB3SAC
    from stable_baselines3.common.logger import configure

    env = gym.make(env_id)
    model = SB3SAC("MlpPolicy", env, batch_size=args.batch_size, gradient_steps=args.utd, learning_starts=0,
                   buffer_size=args.buffer, policy_kwargs=dict(net_arch=[256, 256], n_critics=args.num_qs),
                   device="cpu", seed=0)
    model.set_logger(configure(None, []))
    rb, n = model.replay_buffer, args.buffer
    rng = np.random.default_rng(0)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    rb.observations[:n, 0] = rng.standard_normal((n, obs_dim))
    rb.next_observations[:n, 0] = rng.standard_normal((n, obs_dim))
    rb.actions[:n, 0] = rng.uniform(-1, 1, (n, act_dim))
    rb.rewards[:n, 0] = rng.standard_normal(n)
    rb.dones[:n, 0] = rng.uniform(size=n) < 0.01
    rb.full = True

    def round_():
        model.train(gradient_steps=args.utd, batch_size=args.batch_size)
    return round_


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.offpolicy_throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Hopper", help="a gymnasium Box env (short names as in the toolkit)")
    p.add_argument("--num-qs", type=int, default=10, help="critics in the ensemble (SB3: n_critics)")
    p.add_argument("--num-min", type=int, default=2, help="our random target subset size")
    p.add_argument("--utd", type=int, default=20, help="critic steps per update round (SB3: gradient_steps)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--buffer", type=int, default=100_000, help="pre-filled random transitions")
    p.add_argument("--layer-norm", action="store_true", help="LayerNorm in our critics (SB3 has none)")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds per learner (alternating)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each timed round")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from envs.registry import resolve_env_id
    import gymnasium as gym

    env_id = resolve_env_id(args.env)
    probe = gym.make(env_id)
    obs_dim, act_dim = probe.observation_space.shape[0], probe.action_space.shape[0]
    probe.close()
    learners = {"ours": _ours(obs_dim, act_dim, args), "sb3": _sb3(env_id, args)}
    for fn in learners.values():  # warm-up
        fn()
    rates: dict[str, list[float]] = {k: [] for k in learners}
    print(f"{env_id}: obs {obs_dim}, actions {act_dim}, {args.num_qs} critics 256-256, batch {args.batch_size}, "
          f"UTD {args.utd}, torch threads {torch.get_num_threads()}")
    for r in range(args.rounds):
        for name, fn in learners.items():
            t0, n = time.perf_counter(), 0
            while time.perf_counter() - t0 < args.seconds:
                fn()
                n += 1
            rate = n * args.utd / (time.perf_counter() - t0)
            rates[name].append(rate)
            print(f"round {r + 1} {name}: {rate:.1f} critic updates/s ({n} rounds of {args.utd})", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"median critic updates/s: ours {med['ours']:.1f}, sb3 {med['sb3']:.1f}")
    print(f"ratio={med['ours'] / med['sb3']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
