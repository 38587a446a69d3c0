"""Generate D4RL look-alike offline datasets for Hopper-, HalfCheetah- and Walker2d-v5, stored in Minari format.

    python -m envs.offline.generate --env Hopper --level medium                 # 1M transitions (D4RL size)
    python -m envs.offline.generate --env Hopper --level medium --transitions 100000 --seed 1
    python -m envs.offline.generate --small-set                                 # the small-scale set (below)
    python -m envs.offline.generate --env Walker2d --level medium-expert --force  # delete and regenerate

Recipe (D4RL's, with the toolkit's PPO as the behaviour learner; envs/offline/behaviour.py says why):
  1. train one PPO behaviour policy per (env, seed), checkpoint every 10k env steps (cached, reused by every
     level; an interrupted training resumes);
  2. evaluate every checkpoint (mean action, 10 episodes); expert checkpoint = the best one (a short PPO
     run's return oscillates, so its last checkpoint is not always its best);
  3. reference returns: ref_min = uniform-random policy, 100 episodes; ref_max = the expert checkpoint,
     mean action, 20 episodes (stored as Minari's ref_min_score/ref_max_score);
  4. medium checkpoint = the earliest checkpoint whose 10-episode return, normalized with those
     references, reaches 1/3;
  levels (actions *sampled* from the Gaussian policy, as D4RL sampled from SAC; whole episodes only,
  gymnasium's 1000-step time limit; `terminations` and `truncations` stored separately):
  * random        -- uniform-random actions (D4RL used a randomly initialized network: a difference)
  * medium        -- the medium checkpoint
  * expert        -- the expert (best) checkpoint
  * medium-replay -- the training stream up to the medium checkpoint: 4 envs in lockstep (as the trainer
                     ran), episodes continuing across policy changes, the env steps of each checkpoint
                     interval (c_{i-1}, c_i] collected by checkpoint c_i's policy (a re-rollout: the trainer
                     does not record its transitions); capped at --transitions by scaling every interval alike
  * medium-expert -- the medium dataset followed by the expert dataset (made first when missing)
  --transitions N: at least N transitions of whole episodes (trailing partial episodes are dropped), except
  medium-replay (min(N, env steps to the medium checkpoint)) and medium-expert (medium + expert).

Where: Minari's datasets root, $MINARI_DATASETS_PATH or ~/.minari/datasets (classic-rl/<env>/<level>-v0);
the behaviour runs and checkpoints are cached in its hidden folder .classic-rl/. Running the same command
again resumes an interrupted behaviour training and reuses finished datasets. A `random` dataset made before
the env's behaviour policy exists stores D4RL's max as its ref_max (its metadata says so).

The small-scale set (--small-set): medium, medium-replay and medium-expert for the three envs at 100k
transitions per collected dataset (so medium-expert holds ~200k), seed 1.

Everything is deterministic from --seed (same machine). Datasets are written under a staging root and
renamed into place when complete; an existing dataset is reused (a different --transitions/--seed than the
one it was made with is an error unless --force). Metadata (Minari's metadata.json, key "classic_rl"):
level, env id, seed, requested/actual transitions, episode seeds, the behaviour policy (algorithm, flags,
budget, checkpoint step), reference returns (toolkit and D4RL), the dataset's average return and normalized
scores, package versions, git commit, generation time.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from classic_rl import UserError
from classic_rl.config import run_cli
from envs.offline import behaviour as bh
from envs.offline.common import (D4RL_DATASET_SCORE, D4RL_REF, ENVS, LEVELS, METADATA_KEY, check_level,
                                 clean_stale_staging, datasets_root, env_key, minari_id, staged_dataset,
                                 state_dir)

DEFAULT_TRANSITIONS = 1_000_000
SMALL_SET = dict(envs=("hopper", "halfcheetah", "walker2d"), levels=("medium", "medium-replay", "medium-expert"),
                 transitions=100_000)
GENERATOR = "classic-rl envs.offline.generate v1"
LEVEL_CODE = {lvl: i for i, lvl in enumerate(LEVELS)}
REF_MIN_EPISODES, REF_MAX_EPISODES, CHECKPOINT_EVAL_EPISODES = 100, 20, 10


def _versions() -> dict:
    out = {}
    for pkg in ("classic-rl", "gymnasium", "mujoco", "minari", "numpy", "torch", "h5py"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=bh.PROJECT_ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _seed_base(seed: int, level: str) -> int:
    return int(np.random.SeedSequence([seed, LEVEL_CODE[level], 7]).generate_state(1)[0]) % (2**31 - 10**7)


def _rng(seed: int, level: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, LEVEL_CODE[level], 11]))


# ---------------------------------------------------------------------------------------------------------
def behaviour_summary(env: str, seed: int, behaviour_steps: int | None = None, root: Path | None = None,
                      progress: bool = True, log=print) -> dict:
    """Train/reuse the behaviour policy; measure (once, cached) the references and pick the medium checkpoint."""
    bdir = bh.train_behaviour(env, seed, behaviour_steps, root, progress=progress, log=log)
    path = bdir / "summary.json"
    if path.exists():
        return json.loads(path.read_text())
    st = bh.behaviour_state(bdir)
    env_id = ENVS[env]
    ckpts = bh.checkpoints(bdir)
    if not ckpts:
        raise RuntimeError(f"behaviour training of {env} left no checkpoints in {bdir}")
    t0 = time.time()
    ref_min = bh.random_reference(env_id, REF_MIN_EPISODES, seed=123)
    evals = {}
    for step, p in ckpts:  # every checkpoint, mean action, the same episode seeds
        evals[step] = float(np.mean(bh.evaluate(env_id, bh.GaussianPolicy(p, st["activation"]),
                                                CHECKPOINT_EVAL_EPISODES, seed=20_000 + seed)))
    expert_step = max(evals, key=lambda s: (evals[s], s))
    expert = bh.GaussianPolicy(dict(ckpts)[expert_step], st["activation"])
    ref_max = float(np.mean(bh.evaluate(env_id, expert, REF_MAX_EPISODES, seed=10_000 + seed)))
    medium_step = next((s for s, r in evals.items()
                        if ref_max > ref_min and (r - ref_min) / (ref_max - ref_min) >= 1 / 3), expert_step)
    summary = {"env": env, "env_id": env_id, "seed": seed, "behaviour_dir": str(bdir),
               "algorithm": "classic-rl PPO (python -m algos.ppo)", "ppo_flags": bh.PPO_FLAGS,
               "total_steps": st["total_steps"], "checkpoint_every": bh.checkpoint_every(st["total_steps"]),
               "checkpoint_steps": [s for s, _ in ckpts], "checkpoint_gaps": st.get("checkpoint_gaps", []),
               "ref_min": ref_min, "ref_min_how": f"uniform-random policy, {REF_MIN_EPISODES} episodes, seeds 123+k",
               "ref_max": ref_max, "ref_max_how": f"best checkpoint (step {expert_step}), mean action, "
                                                  f"{REF_MAX_EPISODES} episodes, seeds {10_000 + seed}+k",
               "expert_step": expert_step, "medium_step": medium_step,
               "expert_rule": f"checkpoint with the best mean-action return over {CHECKPOINT_EVAL_EPISODES} episodes",
               "medium_rule": f"earliest checkpoint whose mean-action return over {CHECKPOINT_EVAL_EPISODES} episodes "
                              "reaches 1/3 normalized", "checkpoint_eval_returns": evals,
               "reference_seconds": round(time.time() - t0, 1)}
    bh._write_json(path, summary)
    log(f"[{env}] references: random {ref_min:.1f}, expert {ref_max:.1f} (step {expert_step} of {ckpts[-1][0]}); "
        f"medium checkpoint at step {medium_step} (return {evals[medium_step]:.1f})")
    return summary


def _existing_meta(mid: str, root: Path) -> dict | None:
    meta_path = root / mid / "data" / "metadata.json"
    if not (root / mid).exists():
        return None
    try:
        return json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"dataset {mid} at {root / mid} has no readable metadata.json ({err}); "
                        f"delete it (minari delete {mid}) or regenerate with --force") from err


def _episodes_of(mid: str, root: Path) -> list[bh.Episode]:
    from envs.offline.loaders import read_episodes
    return read_episodes(mid, root)


def generate(env: str, level: str, transitions: int | None = None, seed: int = 1, root: Path | None = None,
             force: bool = False, behaviour_steps: int | None = None, progress: bool = True, log=print) -> str:
    """Make (or reuse) one dataset and return its Minari id. (Limits numpy's OpenBLAS to one thread in
    this process: behaviour.single_blas_thread.)"""
    key, level = env_key(env), check_level(level)
    bh.single_blas_thread()
    if transitions is not None and transitions <= 0:
        raise UserError(f"--transitions must be positive, got {transitions}")
    root = Path(root) if root is not None else datasets_root()
    mid = minari_id(key, level)
    clean_stale_staging(root)
    if force and (root / mid).exists():
        shutil.rmtree(root / mid)
        log(f"[{key}-{level}] --force: deleted the existing {mid}")
    meta = _existing_meta(mid, root)
    if meta is not None:
        ours = meta.get(METADATA_KEY)
        if ours is None:
            raise UserError(f"{root / mid} exists but was not made by this generator (no '{METADATA_KEY}' "
                            f"metadata); delete it (minari delete {mid}) or use --force")
        want = transitions if transitions is not None else ours["transitions_requested"]
        want_beh = behaviour_steps or ours.get("behaviour", {}).get("total_steps")
        if (want != ours["transitions_requested"] or seed != ours["seed"]
                or (level != "random" and want_beh != ours.get("behaviour", {}).get("total_steps"))):
            raise UserError(f"dataset {mid} exists with transitions={ours['transitions_requested']}, seed="
                            f"{ours['seed']}; asked for transitions={want}, seed={seed}: pass --force to replace it")
        log(f"[{key}-{level}] cached: {mid} ({meta.get('total_steps')} transitions) in {root}")
        return mid
    n = transitions if transitions is not None else DEFAULT_TRANSITIONS
    env_id = ENVS[key]
    t_beh = time.time()
    summary = None
    if level != "random" or _summary_cached(key, seed, behaviour_steps, root):
        summary = behaviour_summary(key, seed, behaviour_steps, root, progress=progress, log=log)
    beh_s = time.time() - t_beh
    t0 = t_collect = time.time()  # this dataset's own time: after its behaviour policy (timed apart) exists
    beh_meta: dict = {}
    if level == "medium-expert":
        parts = []
        for sub in ("medium", "expert"):
            sub_id = generate(key, sub, transitions, seed, root, False, behaviour_steps, progress, log)
            parts.append(sub_id)
        t0 = t_collect = time.time()  # ... and after its two parts exist
        episodes = _episodes_of(parts[0], root) + _episodes_of(parts[1], root)
        beh_meta = {"concatenation_of": parts, "medium_step": summary["medium_step"],
                    "expert_step": summary["expert_step"]}
        algorithm = "concatenation of the medium and expert datasets"
    else:
        rng, base = _rng(seed, level), _seed_base(seed, level)
        bar = _bar(progress, n if level != "medium-replay" else None, f"{key}-{level}")
        if level == "random":
            import gymnasium as gym
            space = gym.make(env_id).action_space
            schedule = [(bh.UniformPolicy(space), float("inf"))]
            algorithm = "uniform-random actions"
            episodes = bh.rollout(env_id, schedule, base, rng, n_envs=8, min_transitions=n, progress=None if bar is None else bar.update)
        elif level in ("medium", "expert"):
            step = summary["medium_step" if level == "medium" else "expert_step"]
            path = Path(summary["behaviour_dir"]) / "ckpt" / f"step_{step:09d}.pt"
            act = bh.behaviour_state(Path(summary["behaviour_dir"]))["activation"]
            schedule = [(bh.GaussianPolicy(path, act), float("inf"))]
            beh_meta = {"checkpoint_step": step}
            algorithm = f"classic-rl PPO checkpoint at {step} env steps, sampled actions"
            episodes = bh.rollout(env_id, schedule, base, rng, n_envs=8, min_transitions=n, progress=None if bar is None else bar.update)
        else:  # medium-replay
            bdir = Path(summary["behaviour_dir"])
            act = bh.behaviour_state(bdir)["activation"]
            steps = [s for s in summary["checkpoint_steps"] if s <= summary["medium_step"]]
            stream = summary["medium_step"]
            scale = min(1.0, n / stream)
            schedule, prev = [], 0
            for s in steps:
                schedule.append((bh.GaussianPolicy(bdir / "ckpt" / f"step_{s:09d}.pt", act), (s - prev) * scale))
                prev = s
            if bar is not None:
                bar.reset(total=int(sum(b for _, b in schedule)))
            beh_meta = {"checkpoint_steps": steps, "medium_step": summary["medium_step"], "stream_scale": scale,
                        "n_envs": 4}
            algorithm = "classic-rl PPO training stream up to the medium checkpoint (re-rollout of checkpoints)"
            episodes = bh.rollout(env_id, schedule, base, rng, n_envs=4, progress=None if bar is None else bar.update)
        if bar is not None:
            bar.close()
    if not episodes:
        raise UserError(f"{key}-{level}: no complete episode was collected; raise --transitions")
    collect_s = time.time() - t_collect
    ref_min = summary["ref_min"] if summary else bh.random_reference(env_id, REF_MIN_EPISODES, seed=123)
    ref_max = summary["ref_max"] if summary else D4RL_REF[key][1]
    rets = np.array([e.ret for e in episodes])
    d_min, d_max = D4RL_REF[key]
    stats = {
        "episodes": len(episodes), "transitions": int(sum(len(e.rewards) for e in episodes)),
        "terminations": int(sum(e.terminations.sum() for e in episodes)),
        "truncations": int(sum(e.truncations.sum() for e in episodes)),
        "avg_return": float(rets.mean()), "std_return": float(rets.std()),
        "avg_normalized_score": float(100 * (rets.mean() - ref_min) / (ref_max - ref_min)),
        "avg_d4rl_normalized_score": float(100 * (rets.mean() - d_min) / (d_max - d_min)),
        "d4rl_dataset_normalized_score": D4RL_DATASET_SCORE.get((key, level)),
    }
    meta_ours = {
        "generator": GENERATOR, "level": level, "env": key, "env_id": env_id, "seed": seed,
        "transitions_requested": n, "episode_seed_base": None if level == "medium-expert" else _seed_base(seed, level),
        "action_seed": [seed, LEVEL_CODE[level], 11],
        "behaviour": ({k: summary[k] for k in ("algorithm", "ppo_flags", "total_steps", "checkpoint_every",
                                               "medium_step", "expert_step", "medium_rule")} | beh_meta)
                     if summary else {"algorithm": algorithm},
        "ref_min_score": ref_min, "ref_max_score": ref_max,
        "ref_source": "toolkit" if summary else "min: toolkit uniform-random; max: D4RL (no behaviour policy trained)",
        "ref_min_how": summary["ref_min_how"] if summary else "uniform-random policy, 100 episodes",
        "ref_max_how": summary["ref_max_how"] if summary else "D4RL constant",
        "d4rl_ref_min_score": d_min, "d4rl_ref_max_score": d_max,
        "versions": _versions(), "git_commit": _git_commit(),
        "collect_seconds": round(collect_s, 1), "generation_seconds": round(time.time() - t0, 1),
        "behaviour_seconds_in_this_call": round(beh_s, 1),
        **stats,
    }
    _write_dataset(mid, episodes, env_id, algorithm, ref_min, ref_max, meta_ours, root)
    log(f"[{key}-{level}] {stats['transitions']} transitions, {stats['episodes']} episodes "
        f"({stats['terminations']} terminated, {stats['truncations']} truncated); avg return "
        f"{stats['avg_return']:.1f} = {stats['avg_normalized_score']:.1f} normalized "
        f"({stats['avg_d4rl_normalized_score']:.1f} with D4RL's constants; D4RL's own dataset: "
        f"{stats['d4rl_dataset_normalized_score']}); {meta_ours['generation_seconds']:.0f} s "
        f"(collection {collect_s:.0f} s; behaviour policy training/references before it: {beh_s:.0f} s) -> {mid}")
    _append_record(root, {"id": mid, **{k: meta_ours[k] for k in ("seed", "transitions_requested", "collect_seconds",
                                                                   "generation_seconds")}, **stats,
                          "ref_min": ref_min, "ref_max": ref_max, "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
    return mid


def _summary_cached(env: str, seed: int, behaviour_steps: int | None, root: Path) -> bool:
    bdir = bh.behaviour_dir(env, seed, behaviour_steps or bh.BEHAVIOUR_STEPS[env], root)
    return (bdir / "summary.json").exists()


def _bar(progress: bool, total: int | None, desc: str):
    if not progress:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="step", mininterval=2.0, dynamic_ncols=True)


def _write_dataset(mid: str, episodes: list[bh.Episode], env_id: str, algorithm: str, ref_min: float,
                   ref_max: float, meta_ours: dict, root: Path) -> None:
    import minari
    from minari.data_collector import EpisodeBuffer

    buffers = [EpisodeBuffer(id=i, seed=int(e.seed), observations=e.observations, actions=e.actions,
                             rewards=e.rewards, terminations=e.terminations, truncations=e.truncations, infos={})
               for i, e in enumerate(episodes)]
    v = meta_ours["versions"]
    with staged_dataset(mid, root):
        ds = minari.create_dataset_from_buffers(
            mid, buffers, env=env_id, eval_env=env_id, algorithm_name=algorithm, author="classic-rl", author_email="n/a",
            code_permalink="classic-rl: envs/offline/generate.py", ref_min_score=float(ref_min),
            ref_max_score=float(ref_max), description=f"{meta_ours['level']} dataset for {env_id} made by "
            f"{GENERATOR} (D4RL look-alike; see the '{METADATA_KEY}' metadata)",
            requirements=[f"gymnasium=={v['gymnasium']}", f"mujoco=={v['mujoco']}"])
        ds.storage.update_metadata({METADATA_KEY: meta_ours})


def _append_record(root: Path, rec: dict) -> None:
    path = state_dir(root) / "generation_log.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")


def ensure_dataset(name: str, seed: int = 1, root: Path | None = None, progress: bool = True, log=print) -> str:
    """For training scripts: a short id (hopper-medium) is generated if missing (else reused); a Minari id is
    returned unchanged. Returns the Minari id."""
    from envs.offline.common import resolve_dataset_id
    mid, own = resolve_dataset_id(name)
    if own is None or (Path(root or datasets_root()) / mid / "data").is_dir():
        return mid  # a cached dataset is used as it is (the loader validates it)
    return generate(own[0], own[1], None, seed, root, progress=progress, log=log)


# ---------------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m envs.offline.generate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default=None, help="Hopper, HalfCheetah or Walker2d (comma-separated for several)")
    p.add_argument("--level", default=None,
                   help=f"one of {', '.join(LEVELS)} (comma-separated for several)")
    p.add_argument("--transitions", type=int, default=None,
                   help=f"transitions per collected dataset (default {DEFAULT_TRANSITIONS:,}, as D4RL; a cached "
                        "dataset is reused at its own size)")
    p.add_argument("--seed", type=int, default=1, help="seed of the behaviour training and of the collection")
    p.add_argument("--small-set", action="store_true",
                   help="medium, medium-replay and medium-expert for all three envs at 100k transitions")
    p.add_argument("--behaviour-steps", type=int, default=None,
                   help="PPO env steps for the behaviour policy (default: Hopper 500k, Walker2d/HalfCheetah 700k)")
    p.add_argument("--force", action="store_true", help="delete and regenerate the named datasets")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    a = p.parse_args(argv)
    if a.small_set:
        envs = list(SMALL_SET["envs"]) if a.env is None else a.env.split(",")
        levels = list(SMALL_SET["levels"]) if a.level is None else a.level.split(",")
        transitions = a.transitions or SMALL_SET["transitions"]
    else:
        if a.env is None or a.level is None:
            raise UserError("give --env and --level (or --small-set); see --help")
        envs, levels, transitions = a.env.split(","), a.level.split(","), a.transitions
    keys = [env_key(e.strip()) for e in envs]
    levels = [check_level(lvl.strip()) for lvl in levels]
    if a.behaviour_steps is not None and a.behaviour_steps <= 0:
        raise UserError(f"--behaviour-steps must be positive, got {a.behaviour_steps}")
    print(f"datasets root: {datasets_root()}", flush=True)
    for key in keys:
        for level in levels:
            generate(key, level, transitions, a.seed, force=a.force, behaviour_steps=a.behaviour_steps,
                     progress=not a.no_progress, log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    sys.exit(run_cli(main))
