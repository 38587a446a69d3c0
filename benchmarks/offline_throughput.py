"""Offline training throughput: our TD3+BC vs Stable-Baselines3 TD3 on the same replay data, and A2PR.

    python -m benchmarks.offline_throughput                    # CPU, 1 torch thread, 3000 gradient steps per run
    python -m benchmarks.offline_throughput --device cuda

Both sides train from the same transitions (a random-policy Hopper-v5 dataset made by the toolkit's own
generator in a temporary Minari root), with the same networks (actor and twin critics 256-256 ReLU), batch
256, policy delay 2, target smoothing 0.2/0.5 and Adam 3e-4. SB3's TD3 has no BC term (it is the nearest
library reference; the BC term is one extra MSE on the actor step) and its replay buffer is filled once
with the dataset. Runs alternate (ours, sb3, ours, sb3, ...) so machine noise hits both alike. Prints
gradient steps per second of each and of A2PR and, as the last line, ratio=<ours/sb3> (median over repeats).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import torch


def run_ours(module: str, steps: int, device: str, seed: int, extra: list[str]) -> float:
    """Gradient steps per second of one offline training run (the session's fps: setup excluded)."""
    import importlib
    import json

    from classic_rl.config import parse_config

    mod = importlib.import_module(f"algos.{module}")
    cls = mod.A2PRConfig if module == "a2pr" else mod.TD3BCConfig
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["--dataset", "hopper-random", "--total-steps", str(steps), "--eval-every", "0",
                "--eval-episodes", "1", "--eval-max-steps", "5", "--n-envs", "1", "--device", device,
                "--seed", str(seed), "--run-dir", tmp, "--no-progress", "--torch-threads", "1", *extra]
        presets = getattr(mod, "presets", None)
        cfg = parse_config(cls, argv, presets=presets, preset_field="dataset")
        run = mod.train(cfg, argv)
        return float(json.loads((run.path / "summary.json").read_text())["fps"])


def run_sb3(arrays: dict[str, np.ndarray], steps: int, device: str, seed: int) -> float:
    import gymnasium as gym
    from stable_baselines3 import TD3

    env = gym.make("Hopper-v5")
    model = TD3("MlpPolicy", env, learning_rate=3e-4, buffer_size=len(arrays["rewards"]), batch_size=256,
                policy_delay=2, target_policy_noise=0.2, target_noise_clip=0.5, policy_kwargs={"net_arch": [256, 256]},
                device=device, seed=seed, verbose=0)
    n = len(arrays["rewards"])
    buf = model.replay_buffer
    buf.observations[:n, 0] = arrays["obs"]
    buf.next_observations[:n, 0] = arrays["next_obs"]
    buf.actions[:n, 0] = arrays["actions"]
    buf.rewards[:n, 0] = arrays["rewards"]
    buf.dones[:n, 0] = arrays["terminated"]
    buf.pos, buf.full = 0, True
    model._setup_learn(total_timesteps=1)  # logger and counters, as learn() would
    model.train(gradient_steps=10, batch_size=256)  # warm-up
    start = time.perf_counter()
    model.train(gradient_steps=steps, batch_size=256)
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.offline_throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="gradient steps per timed run")
    parser.add_argument("--transitions", type=int, default=20_000, help="size of the random Hopper dataset")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=2, help="alternating (ours, sb3) pairs")
    parser.add_argument("--a2pr-steps", type=int, default=1000, help="gradient steps of the A2PR run (0 = skip)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    root = tempfile.mkdtemp(prefix="offline-throughput-")
    os.environ["MINARI_DATASETS_PATH"] = root
    from envs.offline.generate import generate
    from envs.offline.loaders import load_offline_data

    generate("hopper", "random", transitions=args.transitions, seed=1, progress=False, log=lambda *a: None)
    data = load_offline_data("hopper-random", "cpu", normalize_obs=False)
    b = data.buffer
    arrays = {"obs": b.obs[:b.size].numpy(), "next_obs": b.next_obs[:b.size].numpy(),
              "actions": b.actions[:b.size].numpy(), "rewards": b.rewards[:b.size].numpy(),
              "terminated": b.terminated[:b.size].numpy().astype(np.float32)}
    print(f"dataset: {b.size} transitions of Hopper-v5 (random policy), batch 256, {args.device}, 1 torch thread")
    ours, sb3 = [], []
    for rep in range(args.repeats):
        ours.append(run_ours("td3_bc", args.steps, args.device, rep, []))
        print(f"repeat {rep}: ours TD3+BC {ours[-1]:.0f} gradient steps/s", flush=True)
        sb3.append(run_sb3(arrays, args.steps, args.device, rep))
        print(f"repeat {rep}: sb3  TD3    {sb3[-1]:.0f} gradient steps/s", flush=True)
    if args.a2pr_steps:
        print(f"A2PR (paper networks: actor 256x3, critics/value 256x4, VAE 750x2): "
              f"{run_ours('a2pr', args.a2pr_steps, args.device, 0, []):.0f} gradient steps/s")
    print(f"ours: median {statistics.median(ours):.0f}, sb3: median {statistics.median(sb3):.0f} gradient steps/s")
    print(f"ratio={statistics.median(ours) / statistics.median(sb3):.2f}")


if __name__ == "__main__":
    main()
