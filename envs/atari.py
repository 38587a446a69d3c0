"""Atari with the standard DQN/PPO preprocessing (as in SB3's AtariWrapper + 4-frame stack).

Training: noop reset (<=30), frame skip 4 with max-pool, 84x84 grayscale, episodic life, fire reset,
reward clipping to its sign, 4-frame stack. Evaluation: the same observation pipeline but without
episodic life and reward clipping, so the reported return is the raw game score.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from envs.wrappers import EpisodeStats

MAX_AGENT_STEPS = 27_000  # 108k emulator frames, the usual cap


class EpisodicLife(gym.Wrapper):
    """Signal termination on every life loss but only reset the game when it is really over."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs):
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:  # a life was lost: take a no-op step instead of restarting the game
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info


class FireReset(gym.Wrapper):
    """Press FIRE after reset for games that wait for it (Breakout, ...)."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        return obs, info


class ClipRewardSign(gym.RewardWrapper):
    def reward(self, reward):
        return float(np.sign(reward))


def make_atari(env_id: str, training: bool, max_episode_steps: int | None = None) -> gym.Env:
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make(env_id, frameskip=1, max_num_frames_per_episode=4 * MAX_AGENT_STEPS)
    if max_episode_steps:  # counted in emulator frames here, since the frame skip sits outside
        env = gym.wrappers.TimeLimit(env, 4 * max_episode_steps)
    env = EpisodeStats(env)
    env = gym.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84,
                                          terminal_on_life_loss=False, grayscale_obs=True, scale_obs=False)
    if training:
        env = EpisodicLife(env)
    if "FIRE" in env.unwrapped.get_action_meanings():
        env = FireReset(env)
    if training:
        env = ClipRewardSign(env)
    env = gym.wrappers.FrameStackObservation(env, 4)
    return env
