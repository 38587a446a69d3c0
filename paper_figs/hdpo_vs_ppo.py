"""HDPO vs PPO on one S2 (lost sales, Poisson(5) demand) instance: cost vs wall-clock time and vs samples.

    python -m paper_figs.hdpo_vs_ppo --scale smoke     # about a minute on 2 cores: proves the pipeline
    python -m paper_figs.hdpo_vs_ppo --scale small     # about 10 minutes on 2 cores
    python -m paper_figs.hdpo_vs_ppo --scale small --lead-time 2 --underage-cost 19 --seeds 2

Every training run is a plain `python -m algos.hdpo` / `python -m algos.ppo` process launched through the sweep
runner `classic_rl.sweep`, in a deterministic slot <run-dir>/<scale>/<algo>/<env>/<flags hash>/seed<S> (its
stdout.log and stderr.log beside the run directory). With the default --workers 1 they run one after the
other (so neither competes with the other for the CPU), with one torch thread each: first the HDPO runs of
every seed, then PPO chunk by chunk. Re-running the same command skips the finished runs (HDPO runs stopped
early by --patience / --time-limit count as finished) and resumes interrupted ones from their latest
checkpoint; a failed run is reported with its command and the tail of its stderr (the script then stops with
an error: the figure needs every run). The common unit is the average cost per period per store:
  * HDPO: the run's own test cost (`algos.hdpo`: its test scenarios, warm-up excluded, orders rounded for
    Poisson demand), as a curve (eval.csv test_cost, the run's --test-curve) and for the final, best-dev
    policy (summary.json).
  * PPO: trained in chunks: successive sweeps of the same run spec with a growing --total-steps, so the
    runner resumes and extends the same run from its checkpoint after each chunk; every chunk's
    checkpoint (deterministic mean action clipped to the env's [0, max_order], observation normalizer
    applied) is evaluated here, in the batched simulator on exactly HDPO's test scenarios, with the same
    warm-up and the same rounding. The last one is the number in the table. The chunk evaluations are kept
    in the slot (ppo_chunk_costs.json), since the next chunk overwrites the checkpoint; a re-run reads them.
  * PPO's own eval episodes are drawn too (dotted) as -return_mean / length_mean of eval.csv: an episode
    return is -(sum over all its periods of the cost per store), warm-up included, from a near-empty start
    (initial stock U(0,1) x mean), orders not rounded. Same unit, different (upward-biased) estimate.
Samples: HDPO counts simulated periods x paths of training rollouts (its env steps: epochs x n_train x
train_periods);
PPO counts env steps. Evaluation rollouts are counted by neither. Wall time is the run logger's clock
(setup of scenarios and of the optimum excluded for both).
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Literal

import gymnasium as gym
import numpy as np
import torch

from algos import hdpo
from analysis.runs import load_run
from classic_rl import UserError
from classic_rl.config import parse_config, require, run_cli
from classic_rl.networks import ActorCritic
from classic_rl.normalize import ObsNormalizer
from classic_rl.runlog import atomic_write_json, atomic_write_text
from classic_rl.sweep import RunSpec, finished_summary, parse_overrides, plan, run_sweep
from classic_rl.utils import load_checkpoint, resolve_device
from envs.inventory import GYM_IDS, LOST_SALES_GRID, lost_sales_id
from envs.inventory import settings as st
from envs.inventory.simulator import routing

SCALES = {
    "smoke": dict(
        hdpo=dict(n_train=512, n_envs=256, eval_episodes=256, n_test=256, dev_periods=60, dev_ignore=20,
                  test_periods=200, test_ignore=60, epochs=30, dev_every=3),
        ppo=dict(total_steps=20480, stages=4, eval_every=4096, eval_episodes=2)),
    "small": dict(
        hdpo=dict(n_train=4096, n_envs=1024, eval_episodes=2048, n_test=2048, test_periods=1000, test_ignore=300,
                  epochs=600, dev_every=20, patience=200, time_limit=2.5),
        ppo=dict(total_steps=1_000_000, stages=10, eval_every=50_000, eval_episodes=10)),
}


@dataclasses.dataclass
class CompareConfig:
    """Train HDPO and PPO on the same S2 instance and plot cost vs wall time and vs samples."""

    scale: Literal["smoke", "small"] = "smoke"
    """smoke (about a minute on 2 cores) or small (about 10 minutes)"""
    lead_time: int = 4
    """lead time L of the S2 instance, 1..8 (PPO's env ids; the optimum line needs L <= 4)"""
    underage_cost: float = 9.0
    """underage (lost-sales) cost p of the S2 instance: 4, 9, 19 or 39 (PPO's env ids)"""
    seeds: int = 1
    """number of seeds per method (seeds 1..n)"""
    out: str = ""
    """output folder for the figure, table and results (default paper_figs/out/hdpo_vs_ppo-<scale>)"""
    run_dir: str = "runs/paper_figs/hdpo_vs_ppo"
    """root of the training runs' sweep slots (one sub-folder per scale)"""
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    """device of both methods (CPU by default: PPO steps a CPU env, so a GPU helps neither much here)"""
    workers: int = 1
    """training processes run at once (1: one after the other, so no run competes with another for the CPU)"""

    def validate(self) -> None:
        require(self.lead_time >= 1, "--lead-time must be >= 1 for lost sales")
        require(self.underage_cost > 0, "--underage-cost must be positive")
        require(self.seeds >= 1, "--seeds must be >= 1")
        require(self.workers >= 1, "--workers must be >= 1")
        gym_env_id(self.lead_time, self.underage_cost)  # PPO's env must exist in a fresh process


# ---------------------------------------------------------------- unit conversion (pure functions)
def episode_return_to_cost(return_mean: np.ndarray, length_mean: np.ndarray) -> np.ndarray:
    """Cost per period per store of a gym episode: the env's reward is -(cost per store) each period, so
    the return is -(sum of per-store costs over the episode) and the per-period cost is -return / length."""
    return -np.asarray(return_mean, dtype=float) / np.asarray(length_mean, dtype=float)


def gym_env_id(lead_time: int, underage_cost: float) -> str:
    """The registered gymnasium id of the S2 instance (the default id for L=4, p=9; else the one envs.inventory
    registers at import for the paper's grid, so that the separate `python -m algos.ppo` process knows it)."""
    default = next(k for k, v in GYM_IDS.items() if v == "lost_sales")
    if (lead_time, underage_cost) == (4, 9.0):
        return default
    env_id = lost_sales_id(lead_time, underage_cost)
    if env_id not in gym.registry:
        raise UserError(f"PPO trains in its own process (python -m algos.ppo --env ID), which knows the S2 "
                        f"instances envs.inventory registers: --lead-time in {list(LOST_SALES_GRID['lead_time'])}, "
                        f"--underage-cost in {[f'{p:g}' for p in LOST_SALES_GRID['underage_cost']]}; "
                        f"L={lead_time}, p={underage_cost:g} is not one of them")
    return env_id


class PPOOrderPolicy(torch.nn.Module):
    """A trained PPO actor as a simulator policy `policy(x, t) -> orders`: the gym observation is the
    flattened simulator state, and the env clips orders to [0, max_order], so this does the same."""

    def __init__(self, model: ActorCritic, obs_norm: ObsNormalizer, max_order: float):
        super().__init__()
        self.model, self.obs_norm, self.max_order = model, obs_norm, max_order

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        obs = self.obs_norm(x.reshape(x.shape[0], -1))
        return self.model.act(obs, deterministic=True)[0].clamp(0.0, self.max_order)


def load_ppo_policy(run_dir: Path, env_id: str, device) -> PPOOrderPolicy:
    stored = json.loads((Path(run_dir) / "config.json").read_text())["config"]
    env = gym.make(env_id)
    model = ActorCritic(env.observation_space, env.action_space, stored["hidden_sizes"], stored["activation"],
                        stored["ortho_init"], stored["log_std_init"], stored["head_hidden"]).to(device)
    ckpt = load_checkpoint(Path(run_dir) / "checkpoints" / "latest.pt", map_location=device)
    model.load_state_dict(ckpt["objects"]["model"])
    obs_norm = ObsNormalizer(env.observation_space.shape, stored["normalize_obs"], device)
    obs_norm.load_state_dict(ckpt["objects"]["obs_norm"])
    max_order = float(env.unwrapped.max_order)
    env.close()
    return PPOOrderPolicy(model.eval(), obs_norm, max_order)


def simulator_test_cost(policy, hcfg: hdpo.HDPOConfig) -> float:
    """Cost of `policy` on HDPO's test scenarios of this config (same seed, warm-up and rounding)."""
    device = resolve_device(hcfg.device)
    net = st.make_network("lost_sales", hcfg.lead_time, hcfg.underage_cost)
    test_set = st.make_test(net, hcfg.n_test, hcfg.test_periods, hcfg.test_ignore, device=device)
    net = net.to(device)
    round_test = hcfg.round_test == "yes" or (hcfg.round_test == "auto" and net.demand["kind"] == "poisson")
    return hdpo.evaluate(net, policy, test_set, routing(net), round_test)


# ---------------------------------------------------------------- runs
CHUNK_COSTS = "ppo_chunk_costs.json"   # in the PPO slot: every evaluated chunk checkpoint's cost


def hdpo_config(cfg: CompareConfig, seed: int) -> hdpo.HDPOConfig:
    """HDPO's config for this scale (budgets written in epochs, as the paper's), with its test-cost curve."""
    return hdpo.HDPOConfig(env="lost_sales", seed=seed, progress=False, **hdpo_settings(cfg))


def hdpo_settings(cfg: CompareConfig) -> dict:
    """HDPOConfig fields this comparison sets (all but env, seed and the runner's own flags)."""
    sizes = dict(SCALES[cfg.scale]["hdpo"])
    budget = hdpo.epoch_budget(sizes.pop("n_train"), sizes.pop("epochs"), sizes.pop("dev_every"),
                               sizes.pop("patience", None), sizes.pop("train_periods", 50))
    return dict(lead_time=cfg.lead_time, underage_cost=cfg.underage_cost, policy="mlp", device=cfg.device,
                torch_threads=1, reference=cfg.lead_time <= 4, test_curve=True, **sizes, **budget)


def hdpo_spec(cfg: CompareConfig, seed: int) -> RunSpec:
    """The sweep entry of one HDPO run: `python -m algos.hdpo --env lost_sales --seed S --total-steps N` plus a
    flag per setting of hdpo_settings (None = the CLI's default, left out)."""
    flags = {k: v for k, v in hdpo_settings(cfg).items() if k != "total_steps" and v is not None}
    return RunSpec("hdpo", "lost_sales", seed, hdpo_settings(cfg)["total_steps"], parse_overrides(flags))


def ppo_spec(cfg: CompareConfig, seed: int, total_steps: int) -> RunSpec:
    """The sweep entry of the PPO run of a seed, trained to `total_steps`; total_steps is not in the slot's
    hash, so every chunk's spec names the same slot and the runner resumes and extends the same run."""
    flags = {k: v for k, v in SCALES[cfg.scale]["ppo"].items() if k not in ("stages", "total_steps")}
    flags.update(device=cfg.device, torch_threads=1)
    return RunSpec("ppo", gym_env_id(cfg.lead_time, cfg.underage_cost), seed, total_steps, parse_overrides(flags))


def ppo_chunks(cfg: CompareConfig) -> list[int]:
    """The env steps at the end of each PPO chunk."""
    ppo = SCALES[cfg.scale]["ppo"]
    stages, total = ppo["stages"], ppo["total_steps"]
    require(total % stages == 0, "PPO total_steps must be a multiple of its stages")
    return [stage * total // stages for stage in range(1, stages + 1)]


def run_root(cfg: CompareConfig) -> Path:
    return Path(cfg.run_dir) / cfg.scale


def train_hdpo(cfg: CompareConfig, root: Path) -> None:
    """Bring every seed's HDPO run to its budget (finished ones, stopped early or not, are left alone)."""
    specs = [hdpo_spec(cfg, seed) for seed in range(1, cfg.seeds + 1)]
    todo = [spec for spec in specs if finished_summary(spec, root) is None]
    if todo:
        run_sweep(todo, root, workers=cfg.workers)
    else:
        print(f"all {len(specs)} HDPO runs already finished under {root}")


def read_hdpo(cfg: CompareConfig, seed: int, root: Path) -> dict:
    spec = hdpo_spec(cfg, seed)
    summary = finished_summary(spec, root)
    if summary is None:
        raise UserError(f"HDPO seed {seed} did not finish (see the sweep's messages above; slot {spec.slot(root)})")
    m = load_run(Path(summary["run_dir"])).eval   # dev checks, each with the current iterate's test cost
    return {"method": "HDPO", "seed": seed, "run_dir": summary["run_dir"], "final_cost": summary["test_cost"],
            "wall": np.asarray(m["wall_time"], float), "samples": np.asarray(m["env_steps"], float),
            "cost": np.asarray(m["test_cost"], float), "reference": summary["reference"],
            "final_wall": float(m["wall_time"][-1]), "final_samples": float(m["env_steps"][-1])}


def _test_key(hcfg: hdpo.HDPOConfig) -> dict:
    """What a chunk's simulator cost depends on besides the checkpoint: HDPO's test scenarios and rounding."""
    return {k: getattr(hcfg, k) for k in ("lead_time", "underage_cost", "n_test", "test_periods", "test_ignore",
                                          "round_test", "device")}


def chunk_cost(cfg: CompareConfig, spec: RunSpec, root: Path, device, chunk: int) -> dict:
    """Simulator test cost of the PPO run's checkpoint at the end of the chunk that trained it to
    spec.total_steps env steps (PPO stops at the first whole rollout at or past its target, so a little
    further), with the run's wall time and env steps there. Evaluated once, while the run's latest checkpoint
    is that chunk's end (fewer than `chunk` env steps past the target: the next chunk has not run), and kept in
    the slot's CHUNK_COSTS (the next chunk overwrites the checkpoint), so a re-run reads it back."""
    state, run_dir = plan(spec, root)
    if state != "skip" or run_dir is None:
        raise UserError(f"PPO seed {spec.seed} did not reach {spec.total_steps} env steps (see the sweep's "
                        f"messages above; slot {spec.slot(root)})")
    hcfg = hdpo_config(cfg, spec.seed)
    path = spec.slot(root) / CHUNK_COSTS
    try:
        book = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        book = {}
    if book.get("run_dir") != str(run_dir) or book.get("test") != _test_key(hcfg):
        book = {"run_dir": str(run_dir), "test": _test_key(hcfg), "chunks": {}}
    key = str(spec.total_steps)
    if key not in book["chunks"]:
        summary = json.loads((run_dir / "summary.json").read_text())
        if int(summary["env_steps"]) >= spec.total_steps + chunk:
            raise UserError(f"{run_dir} is at {summary['env_steps']} env steps, past the chunk ending at "
                            f"{spec.total_steps} that was never evaluated (its checkpoint is overwritten); move "
                            f"the slot {spec.slot(root)} aside to train it again")
        cost = simulator_test_cost(load_ppo_policy(run_dir, spec.env, device), hcfg)
        book["chunks"][key] = {"wall_time": float(summary["wall_time"]), "env_steps": float(summary["env_steps"]),
                               "test_cost": cost}
        atomic_write_json(path, book)
    return {"run_dir": str(run_dir), **book["chunks"][key]}


def train_ppo(cfg: CompareConfig, root: Path) -> dict[int, list[dict]]:
    """PPO in `stages` equal chunks: one run per seed, extended by a sweep per chunk (the runner resumes it
    from its checkpoint: optimizer, rng, normalizers and env states restored), so the checkpoint of every
    chunk end is evaluated on the common test scenarios. The simulator evaluations happen between chunks,
    outside PPO's wall clock. The inventory env has no snapshot, so at each chunk boundary the episode in
    progress restarts (the trainer's documented resume approximation): one cut episode per chunk, negligible
    at 10 chunks. Returns each seed's chunk evaluations."""
    device = resolve_device(cfg.device)
    chunks: dict[int, list[dict]] = {seed: [] for seed in range(1, cfg.seeds + 1)}
    ends = ppo_chunks(cfg)
    for steps in ends:
        specs = [ppo_spec(cfg, seed, steps) for seed in chunks]
        if any(plan(spec, root)[0] != "skip" for spec in specs):
            run_sweep(specs, root, workers=cfg.workers)
        for spec in specs:
            c = chunk_cost(cfg, spec, root, device, ends[0])
            chunks[spec.seed].append(c)
            print(f"ppo seed {spec.seed}: {c['env_steps']:.0f} steps, {c['wall_time']:.1f} s, "
                  f"test cost {c['test_cost']:.4f}")
    return chunks


def read_ppo(seed: int, chunks: list[dict]) -> dict:
    run_dir = chunks[-1]["run_dir"]
    wall = [c["wall_time"] for c in chunks]
    samples = [c["env_steps"] for c in chunks]
    cost = [c["test_cost"] for c in chunks]
    e = load_run(Path(run_dir)).eval
    episode_cost = episode_return_to_cost(e["return_mean"], e["length_mean"])
    return {"method": "PPO", "seed": seed, "run_dir": str(run_dir), "final_cost": cost[-1],
            "final_episode_cost": float(episode_cost[-1]),
            "wall": np.array(wall), "samples": np.array(samples), "cost": np.array(cost),
            "episode_wall": np.asarray(e["wall_time"], float), "episode_cost": episode_cost,
            "episode_samples": np.asarray(e["env_steps"], float), "final_wall": wall[-1], "final_samples": samples[-1]}


# ---------------------------------------------------------------- table and figure
def table(results: list[dict], reference: float | None) -> str:
    gap = (lambda c: f"{100 * (c - reference) / reference:.2f}") if reference else (lambda c: "-")
    lines = ["| method | seed | final test cost | gap to optimum (%) | wall time (s) | samples | "
             "cost from eval episodes (warm-up incl.) |", "|---|---|---|---|---|---|---|"]
    for r in results:
        episode = f"{r['final_episode_cost']:.3f}" if "final_episode_cost" in r else "-"
        lines.append(f"| {r['method']} | {r['seed']} | {r['final_cost']:.4f} | {gap(r['final_cost'])} | "
                     f"{r['final_wall']:.1f} | {r['final_samples']:.3g} | {episode} |")
    for method in ("HDPO", "PPO"):
        rs = [r for r in results if r["method"] == method]
        if len(rs) > 1:
            c = float(np.mean([r["final_cost"] for r in rs]))
            lines.append(f"| {method} | mean of {len(rs)} | {c:.4f} | {gap(c)} | "
                         f"{np.mean([r['final_wall'] for r in rs]):.1f} | "
                         f"{np.mean([r['final_samples'] for r in rs]):.3g} | |")
    ref = f"{reference:.4f}" if reference else "not computed (L > 4)"
    return "\n".join(lines) + f"\n\noptimum (value iteration): {ref}\n"


def draw(results: list[dict], reference: float | None, title: str, out_png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    colors = {"HDPO": "tab:blue", "PPO": "tab:orange"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, x, xlabel in ((axes[0], "wall", "wall-clock seconds (1 CPU thread)"),
                          (axes[1], "samples", "simulated samples (HDPO: periods x paths; PPO: env steps)")):
        for i, r in enumerate(results):
            first = i == next(j for j, s in enumerate(results) if s["method"] == r["method"])
            color = colors[r["method"]]
            ax.plot(r[x], r["cost"], "-o", ms=3, color=color, alpha=0.8,
                    label=f"{r['method']} (common test scenarios)" if first else None)
            ax.plot(r[f"final_{x}"], r["final_cost"], "*", ms=12, color=color, markeredgecolor="k",
                    label=f"{r['method']} final" if first else None)
            if "episode_cost" in r:
                keep = r["episode_samples"] > 0  # the initial policy has no place on a log axis
                ax.plot(r[f"episode_{x}"][keep], r["episode_cost"][keep], ":", color=color, alpha=0.6,
                        label="PPO eval episodes (warm-up incl.)" if first else None)
        if reference:
            ax.axhline(reference, color="k", lw=1, ls=":", label=f"optimum {reference:.3f}")
        if x == "samples":
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylabel("cost per period per store")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def compare(cfg: CompareConfig) -> dict:
    out = Path(cfg.out or f"paper_figs/out/hdpo_vs_ppo-{cfg.scale}")
    root = run_root(cfg)
    torch.set_num_threads(1)   # the chunk evaluations run here, one thread like the training runs
    train_hdpo(cfg, root)
    ppo_chunk_costs = train_ppo(cfg, root)
    results = []
    for seed in range(1, cfg.seeds + 1):
        results.append(read_hdpo(cfg, seed, root))
        results.append(read_ppo(seed, ppo_chunk_costs[seed]))
    reference = next(r["reference"] for r in results if r["method"] == "HDPO")
    text = table(results, reference)
    print(text)
    title = f"S2 lost sales L={cfg.lead_time}, p={cfg.underage_cost:g}: HDPO vs PPO ({cfg.scale})"
    png = draw(results, reference, title, out / "hdpo_vs_ppo.png")
    atomic_write_text(out / "table.md", f"# {title}\n\n{text}")
    atomic_write_json(out / "results.json", {
        "config": dataclasses.asdict(cfg), "reference": reference,
        "runs": [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in r.items()} for r in results]})
    print(f"figure: {png}\ntable: {out / 'table.md'}")
    return {"results": results, "reference": reference, "figure": png}


def main(argv=None) -> None:
    cfg = parse_config(CompareConfig, argv, prog="python -m paper_figs.hdpo_vs_ppo")
    compare(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
