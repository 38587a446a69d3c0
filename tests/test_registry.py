"""Every short name builds with the right preprocessing; unknown names fail with close matches."""
import gymnasium as gym
import numpy as np
import pytest

from classic_rl import UserError
from envs.registry import SHORT_NAMES, env_family, make_vec_env, resolve_env_id


@pytest.mark.parametrize("name", sorted(SHORT_NAMES))
def test_every_short_name_builds_and_steps(name):
    env_id = resolve_env_id(name)
    envs = make_vec_env(env_id, 1, training=True)
    obs, _ = envs.reset(seed=0)
    obs, reward, term, trunc, info = envs.step(envs.action_space.sample())
    family = env_family(env_id)
    if family == "atari":
        assert obs.shape == (1, 4, 84, 84) and obs.dtype == np.uint8
        assert reward[0] in (-1.0, 0.0, 1.0)  # clipped for training
    elif family == "mujoco":
        assert env_id.endswith("-v5")
    envs.close()


def test_any_registered_gymnasium_id_works_and_unknown_names_are_explained():
    assert resolve_env_id("Pendulum-v1") == "Pendulum-v1"
    with pytest.raises(UserError, match="did you mean: .*Humanoid"):
        resolve_env_id("Humanoi")
    with pytest.raises(UserError, match="unknown environment"):
        resolve_env_id("zzzz-nothing")


def test_truncation_exposes_final_observation_for_bootstrapping():
    envs = make_vec_env("Pendulum-v1", 2, max_episode_steps=3)
    envs.reset(seed=0)
    for _ in range(2):
        _, _, term, trunc, info = envs.step(envs.action_space.sample())
        assert not trunc.any()
    _, _, term, trunc, info = envs.step(envs.action_space.sample())
    assert trunc.all() and not term.any()
    assert info["final_obs"][0].shape == (3,)
    assert info["final_info"]["episode"]["l"].tolist() == [3, 3]


def test_atari_evaluation_reports_raw_score_and_training_clips():
    train = make_vec_env(resolve_env_id("Pong"), 1, training=True)
    evaluation = make_vec_env(resolve_env_id("Pong"), 1, training=False)
    assert not isinstance(evaluation.envs[0].env.env, gym.RewardWrapper)
    assert any("ClipRewardSign" in type(w).__name__ for w in _chain(train.envs[0]))
    assert not any("EpisodicLife" in type(w).__name__ for w in _chain(evaluation.envs[0]))


def _chain(env):
    while isinstance(env, gym.Wrapper):
        yield env
        env = env.env
