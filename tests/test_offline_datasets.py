"""Offline datasets (envs/offline): tiny datasets made by the real generator in temporary Minari roots."""
import json

import numpy as np
import pytest
import torch

from classic_rl import UserError
from classic_rl.buffers import ReplayBuffer
from classic_rl.config import run_cli
from envs.offline import generate as gen
from envs.offline.loaders import load_dataset, normalized_score, ref_scores, read_episodes

QUIET = dict(progress=False, log=lambda msg: None)


@pytest.fixture
def mroot(tmp_path, monkeypatch):
    """An empty Minari root for one test; the random reference uses 5 episodes instead of 100 (speed)."""
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    monkeypatch.setattr(gen, "REF_MIN_EPISODES", 5)
    return root


@pytest.fixture(scope="module")
def ppo_root(tmp_path_factory):
    """Hopper medium / expert / medium-expert / medium-replay from a 4096-step PPO behaviour run (the real
    subprocess trainer, a checkpoint every 2048 steps), 300 transitions each."""
    root = tmp_path_factory.mktemp("minari_ppo")
    old = gen.REF_MIN_EPISODES
    gen.REF_MIN_EPISODES = 5
    try:
        gen.generate("Hopper", "medium-expert", 300, seed=0, root=root, behaviour_steps=4096, **QUIET)
        gen.generate("Hopper", "medium-replay", 300, seed=0, root=root, behaviour_steps=4096, **QUIET)
    finally:
        gen.REF_MIN_EPISODES = old
    return root


def _arrays(name, root):
    d = load_dataset(name, root=root)
    return [t.numpy().copy() for t in (d.obs, d.actions, d.rewards, d.next_obs, d.terminations, d.truncations)]


# ---------------------------------------------------------------------------------------------------------
def test_random_dataset_is_minari_readable_with_metadata(mroot):
    import minari
    mid = gen.generate("Hopper", "random", 300, seed=0, **QUIET)
    assert mid == "classic-rl/hopper/random-v0"
    assert list(minari.list_local_datasets()) == [mid]  # the generator's hidden state folder is not a dataset
    ds = minari.load_dataset(mid)
    assert ds.total_steps >= 300 and ds.total_episodes == len(ds)
    ep = ds[0]
    assert ep.observations.shape == (len(ep.actions) + 1, 11) and ep.actions.shape[1] == 3
    assert ds.recover_environment().spec.id == "Hopper-v5"
    meta = ds.storage.metadata
    ours = meta["classic_rl"]
    for key in ("generator", "level", "env_id", "seed", "transitions_requested", "versions", "git_commit",
                "ref_min_score", "ref_max_score", "d4rl_ref_min_score", "d4rl_ref_max_score", "avg_return",
                "avg_normalized_score", "generation_seconds", "episode_seed_base", "terminations", "truncations"):
        assert key in ours, key
    assert ours["level"] == "random" and ours["seed"] == 0 and ours["env_id"] == "Hopper-v5"
    assert {"gymnasium", "mujoco", "minari", "torch"} <= set(ours["versions"])
    assert meta["ref_min_score"] == pytest.approx(ours["ref_min_score"])
    assert ours["d4rl_ref_min_score"] == -20.272305 and ours["d4rl_ref_max_score"] == 3234.3
    assert ours["transitions"] == ds.total_steps
    # episode seeds recorded per episode
    assert [int(e.id) for e in ds.iterate_episodes()] == list(range(ds.total_episodes))


def test_deterministic_from_seed(tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "REF_MIN_EPISODES", 5)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for root, seed in ((a, 3), (b, 3), (c, 4)):
        gen.generate("Walker2d", "random", 200, seed=seed, root=root, **QUIET)
    xa, xb, xc = (_arrays("walker2d-random", r) for r in (a, b, c))
    for u, v in zip(xa, xb):
        np.testing.assert_array_equal(u, v)
    assert xa[0].shape != xc[0].shape or not np.array_equal(xa[1], xc[1])


def test_terminations_and_truncations_kept_apart(mroot):
    gen.generate("HalfCheetah", "random", 1, seed=0, **QUIET)  # never terminates: 1000-step time limit
    gen.generate("Hopper", "random", 100, seed=0, **QUIET)     # falls: terminations, no truncation
    cheetah, hopper = load_dataset("halfcheetah-random"), load_dataset("hopper-random")
    eps = read_episodes("halfcheetah-random")
    assert all(len(e.rewards) == 1000 for e in eps)
    assert not cheetah.terminations.any()
    assert int(cheetah.truncations.sum()) == len(eps) and bool(cheetah.truncations[999])
    # the truncated transition keeps its real next observation (not dropped as in d4rl.qlearning_dataset)
    np.testing.assert_array_equal(cheetah.next_obs[999].numpy(), eps[0].observations[-1])
    assert not hopper.truncations.any()
    assert int(hopper.terminations.sum()) == len(read_episodes("hopper-random"))
    buf = hopper.replay_buffer()
    assert torch.equal(buf.terminated, hopper.terminations)  # only true terminals stop bootstrapping


def test_normalized_score_formula(mroot):
    assert normalized_score(110.0, 10.0, 210.0) == pytest.approx(50.0)
    np.testing.assert_allclose(normalized_score([10.0, 210.0, 410.0], 10.0, 210.0), [0.0, 100.0, 200.0])
    with pytest.raises(UserError):
        normalized_score(1.0, 5.0, 5.0)
    gen.generate("Hopper", "random", 50, seed=0, **QUIET)
    d = load_dataset("hopper-random")
    ref = ref_scores("hopper-random")
    assert ref == d.ref_scores()
    assert d.normalized_score(1000.0) == pytest.approx(100 * (1000 - ref["min"]) / (ref["max"] - ref["min"]))
    assert d.normalized_score(1000.0, reference="d4rl") == pytest.approx(100 * (1000 + 20.272305) / (3234.3 + 20.272305))


def test_loader_shapes_dtypes_device_and_buffer(mroot):
    gen.generate("Walker2d", "random", 200, seed=1, **QUIET)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        d = load_dataset("walker2d-random", device=dev, env="Walker2d")
        n = len(d)
        assert n >= 200 and d.env_id == "Walker2d-v5"
        assert d.obs.shape == d.next_obs.shape == (n, 17) and d.actions.shape == (n, 6)
        assert d.rewards.shape == d.terminations.shape == d.truncations.shape == (n,)
        assert d.obs.dtype == d.next_obs.dtype == d.actions.dtype == d.rewards.dtype == torch.float32
        assert d.terminations.dtype == d.truncations.dtype == torch.bool
        assert all(t.device.type == dev for t in (d.obs, d.actions, d.rewards, d.next_obs, d.obs_mean, d.obs_std))
        x = d.obs.double().cpu()
        torch.testing.assert_close(d.obs_mean.cpu(), x.mean(0).float())
        torch.testing.assert_close(d.obs_std.cpu(), x.std(0, unbiased=False).float())
        # consecutive transitions inside an episode chain: next_obs[t] == obs[t+1]
        first = int(torch.nonzero(d.terminations | d.truncations)[0])
        torch.testing.assert_close(d.next_obs[: first], d.obs[1: first + 1])
        buf = d.replay_buffer()
        assert isinstance(buf, ReplayBuffer) and buf.size == buf.capacity == n
        assert buf.obs.data_ptr() == d.obs.data_ptr()  # no copy
        batch = buf.sample(32, torch.Generator(device=dev).manual_seed(0))
        assert batch["obs"].shape == (32, 17) and batch["terminated"].dtype == torch.bool


def test_replay_buffer_from_arrays():
    obs, act = torch.randn(5, 3), torch.randn(5, 2)
    buf = ReplayBuffer.from_arrays(obs, act, torch.arange(5.0), obs + 1, torch.tensor([0, 0, 1, 0, 1]))
    assert buf.size == buf.capacity == 5 and buf.pos == 0 and buf.terminated.dtype == torch.bool
    assert buf.obs is obs and buf.actions is act
    torch.testing.assert_close(buf.next_obs, obs + 1)
    s = buf.sample(4, torch.Generator().manual_seed(0))
    assert set(s) == {"obs", "actions", "rewards", "next_obs", "terminated"}
    with pytest.raises(ValueError, match="rows"):
        ReplayBuffer.from_arrays(obs, act[:4], torch.zeros(5), obs, torch.zeros(5))


# ---------------------------------------------------------------------------------------------------------
def test_ppo_levels_replay_expert_and_reuse(ppo_root):
    meds, exps, mix = (read_episodes(f"hopper-{lvl}", ppo_root) for lvl in ("medium", "expert", "medium-expert"))
    assert len(mix) == len(meds) + len(exps)
    for a, b in zip(mix, meds + exps):  # medium-expert = medium followed by expert
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
    meta = {lvl: load_dataset(f"hopper-{lvl}", root=ppo_root).metadata["classic_rl"]
            for lvl in ("medium", "expert", "medium-replay", "medium-expert")}
    beh = meta["medium"]["behaviour"]
    assert beh["algorithm"].startswith("classic-rl PPO") and beh["total_steps"] == 4096
    assert beh["checkpoint_step"] == beh["medium_step"] <= beh["expert_step"] <= 4096
    assert meta["expert"]["behaviour"]["checkpoint_step"] == beh["expert_step"]
    summary = json.loads(next((ppo_root / ".classic-rl" / "behaviour").glob("*/summary.json")).read_text())
    evals = {int(k): v for k, v in summary["checkpoint_eval_returns"].items()}
    assert sorted(evals) == summary["checkpoint_steps"] and max(evals.values()) == evals[beh["expert_step"]]
    rep = meta["medium-replay"]["behaviour"]
    assert rep["checkpoint_steps"] and max(rep["checkpoint_steps"]) == rep["medium_step"]
    assert 0 < meta["medium-replay"]["transitions"] <= 300
    refs = {json.dumps([m["ref_min_score"], m["ref_max_score"]]) for m in meta.values()}
    assert len(refs) == 1 and all(m["ref_source"] == "toolkit" for m in meta.values())
    # reuse: a second call trains nothing and returns the cached dataset
    bdir = next((ppo_root / ".classic-rl" / "behaviour").iterdir())
    n_ckpt = len(list((bdir / "ckpt").glob("*.pt")))
    logs = []
    gen.generate("Hopper", "medium", 300, seed=0, root=ppo_root, behaviour_steps=4096, progress=False,
                 log=logs.append)
    assert "cached" in logs[0] and len(list((bdir / "ckpt").glob("*.pt"))) == n_ckpt
    # collection from a cached behaviour policy is deterministic: --force regenerates the same arrays
    before = _arrays("hopper-medium", ppo_root)
    gen.generate("Hopper", "medium", 300, seed=0, root=ppo_root, behaviour_steps=4096, force=True, **QUIET)
    for u, v in zip(before, _arrays("hopper-medium", ppo_root)):
        np.testing.assert_array_equal(u, v)
    # a different size for an existing dataset needs --force
    with pytest.raises(UserError, match="--force"):
        gen.generate("Hopper", "medium", 500, seed=0, root=ppo_root, behaviour_steps=4096, **QUIET)


# ---------------------------------------------------------------------------------------------------------
def test_unknown_ids_and_levels(mroot, capsys):
    with pytest.raises(UserError, match="hopper-medium"):
        load_dataset("hopper-meduim")
    with pytest.raises(UserError, match="not found"):
        load_dataset("mujoco/hopper/medium-v0")
    with pytest.raises(UserError, match="envs.offline.generate --env Walker2d --level expert"):
        load_dataset("walker2d-expert")
    assert run_cli(gen.main, ["--env", "Hoper", "--level", "medium"]) == 2
    assert "hopper" in capsys.readouterr().err
    assert run_cli(gen.main, ["--env", "Hopper", "--level", "mediun"]) == 2
    assert "medium" in capsys.readouterr().err
    assert run_cli(gen.main, ["--env", "Hopper"]) == 2
    assert run_cli(gen.main, ["--env", "Hopper", "--level", "random", "--transitions", "0"]) == 2
    with pytest.raises(SystemExit) as exc:
        gen.main(["--help"])
    assert exc.value.code == 0 and "medium-replay" in capsys.readouterr().out


def test_corrupted_or_truncated_dataset_is_a_clear_error(mroot):
    gen.generate("Hopper", "random", 100, seed=0, **QUIET)
    h5 = mroot / "classic-rl/hopper/random-v0/data/main_data.hdf5"
    size = h5.stat().st_size
    with open(h5, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(UserError, match="corrupted or truncated"):
        load_dataset("hopper-random")
    h5.write_bytes(b"not an hdf5 file")
    with pytest.raises(UserError, match="corrupted or truncated"):
        load_dataset("hopper-random")
    (h5.parent / "metadata.json").write_text("{ broken")
    with pytest.raises(UserError, match="corrupted or truncated"):
        load_dataset("hopper-random")
    with pytest.raises(UserError, match="--force"):  # the generator does not take it as complete either
        gen.generate("Hopper", "random", 100, seed=0, **QUIET)
    gen.generate("Hopper", "random", 100, seed=0, force=True, **QUIET)
    assert len(load_dataset("hopper-random")) >= 100


def test_spaces_that_do_not_match_the_env(mroot):
    gen.generate("Hopper", "random", 50, seed=0, **QUIET)
    with pytest.raises(UserError, match="does not match env Walker2d-v5"):
        load_dataset("hopper-random", env="Walker2d")
    assert load_dataset("hopper-random", env="Hopper-v5").env_id == "Hopper-v5"


def test_failed_or_killed_generation_leaves_nothing_that_looks_complete(mroot, monkeypatch):
    import minari
    real = minari.create_dataset_from_buffers

    def dies_after_writing(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("killed while finishing")

    monkeypatch.setattr(minari, "create_dataset_from_buffers", dies_after_writing)
    with pytest.raises(RuntimeError, match="killed"):
        gen.generate("Hopper", "random", 50, seed=0, **QUIET)
    assert not (mroot / "classic-rl/hopper/random-v0").exists()
    assert list(minari.list_local_datasets()) == []
    assert not any((mroot / ".classic-rl" / "staging").iterdir())
    # a staging folder of a process that died (SIGKILL: no cleanup ran) is removed by the next run
    stale = mroot / ".classic-rl" / "staging" / "999999999-deadbeef" / "classic-rl"
    stale.mkdir(parents=True)
    monkeypatch.setattr(minari, "create_dataset_from_buffers", real)
    gen.generate("Hopper", "random", 50, seed=0, **QUIET)
    assert not stale.parent.exists()
    assert list(minari.list_local_datasets()) == ["classic-rl/hopper/random-v0"]


def test_official_minari_id_is_passed_through(mroot):
    """A dataset made by minari itself (no toolkit metadata), e.g. a downloaded mujoco/hopper/medium-v0."""
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer
    env = gym.make("Hopper-v5")
    obs, _ = env.reset(seed=0)
    O, A, R, TE, TR = [obs], [], [], [], []
    for _ in range(30):
        a = env.action_space.sample()
        obs, r, te, tr, _ = env.step(a)
        O.append(obs), A.append(a), R.append(r), TE.append(te), TR.append(tr)
        if te or tr:
            break
    TR[-1] = TR[-1] or not TE[-1]
    buf = EpisodeBuffer(id=0, seed=0, observations=np.asarray(O, np.float32), actions=np.asarray(A, np.float32),
                        rewards=R, terminations=TE, truncations=TR, infos={})
    minari.create_dataset_from_buffers("mujoco/hopper/medium-v0", [buf], env="Hopper-v5", eval_env="Hopper-v5",
                                       ref_min_score=-20.0, ref_max_score=3000.0, algorithm_name="random",
                                       author="test", author_email="test", code_permalink="test", description="test")
    d = load_dataset("mujoco/hopper/medium-v0", env="Hopper")
    assert len(d) == len(A) and d.rewards.dtype == torch.float32  # float64 rewards on disk are cast
    ref = d.ref_scores()
    assert (ref["min"], ref["max"], ref["d4rl_min"], ref["d4rl_max"]) == (-20.0, 3000.0, -20.272305, 3234.3)
    with pytest.raises(UserError, match="closest local ids: mujoco/hopper/medium-v0"):
        load_dataset("mujoco/hopper/medium-v1")


def test_load_offline_data_for_offline_algorithms(mroot):
    from envs.offline.loaders import load_offline_data
    gen.generate("Hopper", "random", 100, seed=0, **QUIET)
    off = load_offline_data("hopper-random", "cpu", normalize_obs=True, env="Hopper")
    raw = load_dataset("hopper-random")
    torch.testing.assert_close(off.obs_std, raw.obs_std + 1e-3)
    torch.testing.assert_close(off.buffer.obs, (raw.obs - raw.obs_mean) / off.obs_std)
    torch.testing.assert_close(off.buffer.next_obs, (raw.next_obs - raw.obs_mean) / off.obs_std)
    torch.testing.assert_close(off.buffer.terminated, raw.terminations)
    assert off.env_id == "Hopper-v5" and off.action_high == 1.0
    assert (off.ref_min, off.ref_max) == (raw.ref_scores()["min"], raw.ref_scores()["max"])
    plain = load_offline_data("hopper-random", "cpu", normalize_obs=False)
    torch.testing.assert_close(plain.buffer.obs, raw.obs)
