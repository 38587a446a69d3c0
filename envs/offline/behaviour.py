"""Behaviour policies for the offline datasets: the toolkit's PPO, trained once per (env, seed) and cached.

Why PPO and not SB3 SAC (as D4RL used SAC): on the project's 2-core CPU SB3 SAC runs at roughly 50-150
env steps/s (one gradient step per env step), so the 0.5-1M steps a locomotion expert needs take hours per
env; the toolkit's PPO trains at about 1.5-2k env steps/s here, so the three behaviour policies train in
about 20 minutes together. The datasets therefore come from a Gaussian PPO policy (state-independent std),
not a tanh-Gaussian SAC policy; levels are defined relative to our own expert (see generate.py).

Training runs as a subprocess through the public CLI, ``python -m algos.ppo ... --checkpoint-every N``,
in ``<root>/.classic-rl/behaviour/<env>-seed<S>-<config hash>/runs/``. The trainer keeps only
``checkpoints/latest.pt`` (written to a temporary name and renamed), so this module watches the file and
hard-links every new version to ``ckpt/step_<env steps>.pt``; that history is what the medium level and the
medium-replay stream are picked from. An interrupted training resumes with ``--resume RUN_DIR`` (the
trainer's exact resume) and a finished one is reused.

PPO settings (``PPO_FLAGS``): the rl-zoo MuJoCo policy (ReLU [256, 256], log-std init -2, observation and
reward normalization, no orthogonal init) with a throughput-oriented rollout/optimizer setting
(4 envs x 512 steps, minibatch 128, 10 epochs, lr 3e-4, gamma 0.99, GAE 0.95), chosen because the zoo's
per-env settings (1 env, minibatch 32, up to 20 epochs) run at only ~600-1300 steps/s on this machine.
Budgets (``BEHAVIOUR_STEPS``): Hopper 500k, Walker2d 700k, HalfCheetah 700k env steps.

Policies are evaluated/rolled out here in numpy from the checkpoint's state dict (actor MLP, mean head,
log-std, observation normalizer), so dataset collection does not depend on the trainer's internals beyond
the checkpoint's tensor names; a checkpoint with other names fails with a clear error.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import gymnasium as gym
import numpy as np

from classic_rl import UserError
from envs.offline.common import ENVS, state_dir

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PPO_FLAGS = ["--n-envs", "4", "--n-steps", "512", "--batch-size", "128", "--n-epochs", "10", "--lr", "3e-4",
             "--gamma", "0.99", "--gae-lambda", "0.95", "--eval-every", "0", "--eval-episodes", "5",
             "--torch-threads", "1"]
BEHAVIOUR_STEPS = {"hopper": 500_000, "walker2d": 700_000, "halfcheetah": 700_000}
CHECKPOINT_EVERY = 10_000


def single_blas_thread() -> bool:
    """Limit numpy's bundled OpenBLAS to one thread (process-wide; numbers unchanged, checked bit for bit).

    The policies' small matmuls (8-20 rows x 256) cross OpenBLAS's threading threshold; on a 2-core machine
    shared with other jobs the second thread spins and made collection 3-6x slower while using both
    cores. Returns whether the limit could be set (False: no bundled OpenBLAS found; nothing changes)."""
    import ctypes
    import glob
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*"))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "openblas_set_num_threads64_", "openblas_set_num_threads"):
            if hasattr(lib, name):
                getattr(lib, name)(1)
                return True
    return False


# ---------------------------------------------------------------------------------------------------------
# Policies in numpy
# ---------------------------------------------------------------------------------------------------------
_ACT = {"relu": lambda x: np.maximum(x, 0.0), "tanh": np.tanh, "elu": lambda x: np.where(x > 0, x, np.expm1(x))}


def _ckpt_parts(ckpt: dict) -> tuple[dict, dict | None, int]:
    """(model state dict, obs normalizer state or None, env steps) of a trainer checkpoint; both layouts:
    {"model", "obs_norm", "global_step"} (first on-policy loop) and {"objects": {"model", "obs_norm"},
    "step"} (run-session checkpoints, format 2)."""
    objs = ckpt.get("objects", ckpt)
    return objs["model"], objs.get("obs_norm"), int(ckpt.get("step", ckpt.get("global_step", -1)))


class GaussianPolicy:
    """The actor of a toolkit ActorCritic checkpoint: obs normalization -> MLP -> mean, fixed log-std."""

    def __init__(self, ckpt_path: str | os.PathLike, activation: str = "relu"):
        import torch

        try:
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            objects = ckpt.get("objects", ckpt)  # run-session checkpoints keep tracked objects under "objects"
            sd = objects["model"]
            idx = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r"actor_trunk\.(\d+)\.weight", k)))
            self.layers = [(sd[f"actor_trunk.{i}.weight"].numpy().astype(np.float32).T,
                            sd[f"actor_trunk.{i}.bias"].numpy().astype(np.float32)) for i in idx]
            self.mean = (sd["mean_head.weight"].numpy().astype(np.float32).T,
                         sd["mean_head.bias"].numpy().astype(np.float32))
            self.std = np.exp(sd["log_std"].numpy().astype(np.float32))
            norm = objects.get("obs_norm")
            self.global_step = int(ckpt.get("step", ckpt.get("global_step", -1)))
        except (OSError, KeyError, RuntimeError, ValueError, EOFError) as err:
            raise UserError(f"behaviour checkpoint {ckpt_path} is unreadable or not a Gaussian "
                            f"actor-critic checkpoint ({type(err).__name__}: {err})") from err
        self.act = _ACT[activation]
        if norm is not None:  # ObsNormalizer: (obs - mean) / sqrt(var + 1e-8), clipped to [-10, 10]
            self.obs_mean = norm["mean"].numpy().astype(np.float32)
            self.obs_inv_std = (1.0 / np.sqrt(norm["var"].numpy() + 1e-8)).astype(np.float32)
        else:
            self.obs_mean = self.obs_inv_std = None

    def __call__(self, obs: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """Actions for a batch of raw observations; rng=None gives the deterministic (mean) action."""
        x = obs.astype(np.float32)
        if self.obs_mean is not None:
            x = np.clip((x - self.obs_mean) * self.obs_inv_std, -10.0, 10.0)
        for w, b in self.layers:
            x = self.act(x @ w + b)
        mean = x @ self.mean[0] + self.mean[1]
        if rng is None:
            return mean
        return mean + self.std * rng.standard_normal(mean.shape, dtype=np.float32)


class UniformPolicy:
    def __init__(self, space: gym.spaces.Box):
        self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)

    def __call__(self, obs: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        rng = rng or np.random.default_rng(0)
        return rng.uniform(self.low, self.high, size=(obs.shape[0], self.low.shape[0])).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# Rollouts
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Episode:
    seed: int
    observations: np.ndarray  # (T+1, obs_dim) float32: reset obs then every next obs
    actions: np.ndarray       # (T, act_dim) float32, as executed (clipped to the action bounds)
    rewards: np.ndarray       # (T,) float32
    terminations: np.ndarray  # (T,) bool
    truncations: np.ndarray   # (T,) bool

    @property
    def ret(self) -> float:
        return float(self.rewards.astype(np.float64).sum())


def rollout(env_id: str, schedule: Sequence[tuple[Callable, float]], seed_base: int, rng: np.random.Generator,
            n_envs: int = 8, min_transitions: int | None = None, deterministic: bool = False,
            progress: Callable[[int], None] | None = None) -> list[Episode]:
    """Run `n_envs` envs in lockstep and return whole episodes in the order they end.

    `schedule` is a list of (policy, env steps): the first policy acts for its number of steps (summed over
    envs), then the next one, as in a training stream where episodes continue across policy updates.
    Collection stops when the schedule is used up or, with `min_transitions`, as soon as the finished
    episodes hold at least that many transitions; episodes still running then are dropped (only whole
    episodes are kept, so time-limit truncations and terminations are always real). Episode k (in start
    order) is reset with seed `seed_base + k`; actions are sampled with `rng`, so the output is a function of
    the arguments only.
    """
    envs = [gym.make(env_id) for _ in range(n_envs)]
    low, high = envs[0].action_space.low, envs[0].action_space.high
    started = 0
    cur: list[dict] = []
    obs = np.zeros((n_envs, *envs[0].observation_space.shape), dtype=np.float32)
    for i, env in enumerate(envs):
        o, _ = env.reset(seed=seed_base + started)
        cur.append({"seed": seed_base + started, "obs": [o], "act": [], "rew": [], "term": [], "trunc": []})
        obs[i] = o
        started += 1
    done: list[Episode] = []
    n_done = 0
    sched = list(schedule)
    stage, used = 0, 0
    try:
        while stage < len(sched):
            policy, budget = sched[stage]
            actions = policy(obs, None if deterministic else rng)
            actions = np.clip(actions, low, high).astype(np.float32)
            for i, env in enumerate(envs):
                o, r, te, tr, _ = env.step(actions[i])
                ep = cur[i]
                for k, v in (("obs", o), ("act", actions[i]), ("rew", r), ("term", te), ("trunc", tr)):
                    ep[k].append(v)
                if te or tr:
                    done.append(Episode(ep["seed"], np.asarray(ep["obs"], np.float32), np.asarray(ep["act"], np.float32),
                                        np.asarray(ep["rew"], np.float32), np.asarray(ep["term"], bool),
                                        np.asarray(ep["trunc"], bool)))
                    n_done += len(ep["rew"])
                    o, _ = env.reset(seed=seed_base + started)
                    cur[i] = {"seed": seed_base + started, "obs": [o], "act": [], "rew": [], "term": [], "trunc": []}
                    started += 1
                obs[i] = o
            if progress is not None:
                progress(n_envs)
            used += n_envs
            if used >= budget:
                stage, used = stage + 1, 0
            if min_transitions is not None and n_done >= min_transitions:
                break
    finally:
        for env in envs:
            env.close()
    return done


_EVAL_ENVS: dict[str, list] = {}


def _eval_envs(env_id: str, n: int) -> list:
    """Envs reused across evaluate() calls (each episode starts with reset(seed=...), which restores the full
    state, so reuse changes no number; it saves a MuJoCo model compile per env and checkpoint)."""
    pool = _EVAL_ENVS.setdefault(env_id, [])
    while len(pool) < n:
        pool.append(gym.make(env_id))
    return pool[:n]


def evaluate(env_id: str, policy: Callable, episodes: int, seed: int, deterministic: bool = True) -> list[float]:
    """Mean-action (or sampled) returns of `episodes` episodes, all run in parallel, seeds seed..seed+n-1."""
    envs = _eval_envs(env_id, episodes)
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
    rets = np.zeros(episodes)
    alive = np.ones(episodes, dtype=bool)
    rng = None if deterministic else np.random.default_rng(seed)
    low, high = envs[0].action_space.low, envs[0].action_space.high
    while alive.any():
        act = np.clip(policy(obs, rng), low, high)
        for i in np.flatnonzero(alive):
            o, r, te, tr, _ = envs[i].step(act[i])
            rets[i] += r
            obs[i] = o
            if te or tr:
                alive[i] = False
    return rets.tolist()


def random_reference(env_id: str, episodes: int = 100, seed: int = 123) -> float:
    """Mean return of the uniform-random policy (the toolkit's ref_min), episode k reset with seed + k."""
    env = gym.make(env_id)
    pol = UniformPolicy(env.action_space)
    env.close()
    return _random_mean(env_id, pol, episodes, seed)


def _random_mean(env_id: str, pol: UniformPolicy, episodes: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    env = gym.make(env_id)
    rets = []
    for k in range(episodes):
        o, _ = env.reset(seed=seed + k)
        total, end = 0.0, False
        while not end:
            o, r, te, tr, _ = env.step(pol(o[None], rng)[0])
            total += r
            end = te or tr
        rets.append(total)
    env.close()
    return float(np.mean(rets))


# ---------------------------------------------------------------------------------------------------------
# Training (subprocess) with checkpoint capture
# ---------------------------------------------------------------------------------------------------------
def checkpoint_every(total_steps: int) -> int:
    """10k env steps; tiny test budgets (< 200k) checkpoint every quarter of the run (at least one rollout)."""
    return CHECKPOINT_EVERY if total_steps >= 20 * CHECKPOINT_EVERY else max(2048, total_steps // 4)


def behaviour_dir(env: str, seed: int, total_steps: int, root: Path | None = None) -> Path:
    tag = hashlib.sha1(json.dumps([PPO_FLAGS, total_steps, checkpoint_every(total_steps)]).encode()).hexdigest()[:8]
    return state_dir(root) / "behaviour" / f"{env}-seed{seed}-{tag}"


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _capture(latest: Path, ckpt_dir: Path, seen: set) -> int | None:
    """Hard-link a new version of latest.pt into ckpt_dir/step_<n>.pt; returns n (or None)."""
    try:
        st = latest.stat()
    except FileNotFoundError:
        return None
    key = (st.st_ino, st.st_mtime_ns)
    if key in seen:
        return None
    seen.add(key)
    tmp = ckpt_dir / f".capture{os.getpid()}.pt"
    tmp.unlink(missing_ok=True)
    try:
        os.link(latest, tmp)
    except FileNotFoundError:
        return None
    except OSError:  # no hard links on this file system
        shutil.copyfile(latest, tmp)
    import torch
    try:
        step = _ckpt_parts(torch.load(tmp, map_location="cpu", weights_only=True))[2]
    except (KeyError, RuntimeError, EOFError, OSError) as err:
        raise RuntimeError(f"cannot read the trainer's checkpoint {latest}: {err}") from err
    os.replace(tmp, ckpt_dir / f"step_{step:09d}.pt")
    return step


def _is_trainer(pid: int) -> bool:
    try:
        return b"algos.ppo" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # cannot tell: assume it is


def checkpoints(bdir: Path) -> list[tuple[int, Path]]:
    out = []
    for p in sorted((bdir / "ckpt").glob("step_*.pt")):
        out.append((int(p.stem.split("_")[1]), p))
    return out


def train_behaviour(env: str, seed: int, total_steps: int | None = None, root: Path | None = None,
                    progress: bool = True, log=print) -> Path:
    """Train (or resume, or reuse) the PPO behaviour policy of `env`; returns its cache folder."""
    total_steps = total_steps or BEHAVIOUR_STEPS[env]
    bdir = behaviour_dir(env, seed, total_steps, root)
    state_file = bdir / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    if state.get("done"):
        return bdir
    from envs.offline.common import pid_alive
    if state.get("trainer_pid") and pid_alive(int(state["trainer_pid"])) and _is_trainer(int(state["trainer_pid"])):
        raise UserError(f"the {env} behaviour policy is being trained by another process (pid "
                        f"{state['trainer_pid']}, {bdir}); wait for it or stop it, then run this again")
    (bdir / "ckpt").mkdir(parents=True, exist_ok=True)
    runs = bdir / "runs"
    run_dirs = sorted(runs.glob("ppo/*/*")) if runs.exists() else []
    resume = None
    if run_dirs and (run_dirs[-1] / "checkpoints" / "latest.pt").exists():
        resume = run_dirs[-1]
    elif runs.exists():  # killed before its first checkpoint: start again
        shutil.rmtree(runs)
    cmd = [sys.executable, "-m", "algos.ppo", "--no-progress", "--checkpoint-every", str(checkpoint_every(total_steps)),
           "--total-steps", str(total_steps)]
    if resume is not None:
        cmd += ["--resume", str(resume)]
        log(f"[{env}] resuming behaviour training from {resume}")
    else:
        cmd += ["--env", ENVS[env].split("-v")[0], "--seed", str(seed), "--run-dir", str(runs), *PPO_FLAGS]
        log(f"[{env}] training the PPO behaviour policy for {total_steps} env steps (cached in {bdir})")
    _write_json(state_file, {"env": env, "seed": seed, "total_steps": total_steps, "cmd": cmd, "done": False})
    train_log = open(bdir / "train.log", "a")
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=train_log, stderr=subprocess.STDOUT)
    _write_json(state_file, {"env": env, "seed": seed, "total_steps": total_steps, "cmd": cmd, "done": False,
                             "trainer_pid": proc.pid})
    seen: set = set()
    bar = None
    if progress:
        from tqdm import tqdm
        done_steps = checkpoints(bdir)[-1][0] if checkpoints(bdir) else 0
        bar = tqdm(total=total_steps, initial=done_steps, desc=f"{env} behaviour PPO", unit="step",
                   mininterval=2.0, dynamic_ncols=True)
    try:
        while True:
            ret = proc.poll()
            latest = sorted(runs.glob("ppo/*/*/checkpoints/latest.pt"))
            if latest:
                step = _capture(latest[-1], bdir / "ckpt", seen)
                if step is not None and bar is not None:
                    bar.update(max(0, step - bar.n))
            if ret is not None:
                break
            time.sleep(0.2)
    except BaseException:
        proc.terminate()
        proc.wait()
        raise
    finally:
        train_log.close()
        if bar is not None:
            bar.close()
    if ret != 0:
        tail = (bdir / "train.log").read_text()[-2000:]
        raise RuntimeError(f"behaviour training of {env} failed (exit {ret}); log {bdir / 'train.log'}:\n{tail}")
    steps = [s for s, _ in checkpoints(bdir)]
    gaps = [b - a for a, b in zip(steps, steps[1:]) if b - a > 2 * checkpoint_every(total_steps)]
    run_dir = sorted(runs.glob("ppo/*/*"))[-1]
    cfg = json.loads((run_dir / "config.json").read_text()).get("config", {})
    _write_json(state_file, {"env": env, "seed": seed, "total_steps": total_steps, "cmd": cmd, "done": True,
                             "run_dir": str(run_dir), "activation": cfg.get("activation", "relu"),
                             "checkpoint_steps": steps, "checkpoint_gaps": gaps,
                             "train_seconds_last_call": round(time.time() - t0, 1)})
    return bdir


def behaviour_state(bdir: Path) -> dict:
    return json.loads((bdir / "state.json").read_text())
