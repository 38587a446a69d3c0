"""Training throughput: our PPO vs Stable-Baselines3 PPO with identical hyperparameters.

    python -m benchmarks.throughput --env Humanoid                     # CPU, 1 env, 1 torch thread
    python -m benchmarks.throughput --env Humanoid --n-envs 16 --device cuda

Both train MlpPolicy-sized networks ([64, 64] tanh, separate actor and critic, orthogonal init, no
normalization) with n_steps 2048, batch 64, 10 epochs for the same number of env steps; runs alternate
(ours, sb3, ours, sb3, ...) so machine noise hits both alike. Prints env-steps/s of each and, as the last
line, ratio=<ours/sb3> (median over repeats).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch


def run_ours(env: str, steps: int, n_envs: int, device: str, seed: int) -> tuple[float, float]:
    """(env-steps per wall second, env-steps per CPU second of this process)."""
    from algos.ppo import PPOConfig, ppo_loss
    from classic_rl.onpolicy import train_on_policy
    from envs.registry import make_vec_env

    cfg = PPOConfig(env=env, seed=seed, device=device, total_steps=steps, n_envs=n_envs, n_steps=2048 // n_envs,
                    batch_size=64, n_epochs=10, lr=3e-4, hidden_sizes=[64, 64], activation="tanh",
                    normalize_obs=False, normalize_reward=False, eval_every=0, eval_episodes=1, progress=False,
                    torch_threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        cfg.run_dir = tmp
        start, cpu = time.perf_counter(), time.process_time()
        train_on_policy(cfg, "ppo", ppo_loss, make_vec_env)
        return steps / (time.perf_counter() - start), steps / (time.process_time() - cpu)


def run_sb3(env: str, steps: int, n_envs: int, device: str, seed: int) -> tuple[float, float]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from envs.registry import resolve_env_id

    vec = make_vec_env(resolve_env_id(env), n_envs=n_envs, seed=seed)
    model = PPO("MlpPolicy", vec, n_steps=2048 // n_envs, batch_size=64, n_epochs=10, learning_rate=3e-4,
                device=device, seed=seed, verbose=0)
    start, cpu = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=steps)
    rate = steps / (time.perf_counter() - start), steps / (time.process_time() - cpu)
    vec.close()
    return rate


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Humanoid")
    parser.add_argument("--steps", type=int, default=16384, help="env steps per run (multiple of 2048)")
    parser.add_argument("--n-envs", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=2, help="alternating (ours, sb3) pairs")
    parser.add_argument("--only", choices=["ours", "sb3"], default=None, help="run one side only")
    parser.add_argument("--sb3-threads", type=int, default=1,
                        help="torch threads while SB3 trains (default 1, as ours; 0 = torch's default, as SB3 "
                             "users usually run it)")
    args = parser.parse_args(argv)
    if args.steps <= 0 or args.steps % 2048:
        parser.error("--steps must be a positive multiple of 2048")
    default_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    # Warm-up outside the timed region: imports and the optimizer's lazy torch._dynamo import (seconds).
    import stable_baselines3  # noqa: F401

    import algos.ppo  # noqa: F401
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    ours, sb3 = [], []
    for rep in range(args.repeats):
        if args.only != "sb3":
            ours.append(run_ours(args.env, args.steps, args.n_envs, args.device, rep))
            print(f"repeat {rep}: ours {ours[-1][0]:.0f} env-steps/s ({ours[-1][1]:.0f} per CPU-second)", flush=True)
        if args.only != "ours":
            torch.set_num_threads(args.sb3_threads or default_threads)
            sb3.append(run_sb3(args.env, args.steps, args.n_envs, args.device, rep))
            torch.set_num_threads(1)
            print(f"repeat {rep}: sb3  {sb3[-1][0]:.0f} env-steps/s ({sb3[-1][1]:.0f} per CPU-second)", flush=True)
    dev = f"{args.device}, {args.n_envs} env(s), {args.steps} steps"
    med = lambda xs, k: statistics.median(x[k] for x in xs)  # noqa: E731
    if ours:
        print(f"ours: median {med(ours, 0):.0f} env-steps/s, {med(ours, 1):.0f} per CPU-second ({dev}, 1 torch thread)")
    if sb3:
        print(f"sb3:  median {med(sb3, 0):.0f} env-steps/s, {med(sb3, 1):.0f} per CPU-second ({dev}, "
              f"{args.sb3_threads or default_threads} torch thread(s))")
    if ours and sb3:
        # CPU-second ratio is printed too: on a shared, loaded machine it is the steadier of the two
        print(f"cpu_ratio={med(ours, 1) / med(sb3, 1):.2f}")
        print(f"ratio={med(ours, 0) / med(sb3, 0):.2f}")


if __name__ == "__main__":
    sys.exit(main())
