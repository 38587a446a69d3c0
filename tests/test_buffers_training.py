"""Replay buffer wrap-around and sampling; a NaN loss stops training with the step and quantity named."""
import pytest
import torch

from algos.ppo import PPOConfig
from classic_rl.buffers import ReplayBuffer, minibatches
from classic_rl import TrainingDiverged
from classic_rl.onpolicy import train_on_policy
from envs.registry import make_vec_env


def test_replay_buffer_is_circular_and_samples_stored_transitions():
    buf = ReplayBuffer(5, (2,), (1,), torch.device("cpu"))
    with pytest.raises(ValueError):
        buf.sample(1)
    for start in (0, 3):  # 3 + 3 transitions into capacity 5: the first one is overwritten
        obs = torch.arange(start, start + 3, dtype=torch.float32).unsqueeze(1).repeat(1, 2)
        buf.add(obs, obs[:, :1], obs[:, 0], obs + 100, torch.tensor([False, True, False]))
    assert buf.size == 5 and buf.pos == 1
    assert buf.obs[:, 0].tolist() == [5.0, 1.0, 2.0, 3.0, 4.0]
    batch = buf.sample(64, torch.Generator().manual_seed(0))
    assert set(batch["obs"][:, 0].tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    torch.testing.assert_close(batch["next_obs"], batch["obs"] + 100)
    torch.testing.assert_close(batch["rewards"], batch["obs"][:, 0])


def test_minibatches_cover_each_transition_once_per_epoch():
    data = {"x": torch.arange(10), "y": torch.arange(10) * 2}
    seen = torch.cat([mb["x"] for mb in minibatches(data, 4, torch.Generator().manual_seed(1))])
    assert sorted(seen.tolist()) == list(range(10))
    for mb in minibatches(data, 4, torch.Generator().manual_seed(1)):
        torch.testing.assert_close(mb["y"], mb["x"] * 2)


def test_nan_loss_stops_the_run_naming_step_and_loss(tmp_path):
    def nan_loss(model, mb, cfg):
        out = model.evaluate(mb["obs"], mb["actions"])
        loss = out["value"].mean() * float("nan")
        return loss, {"policy_loss": loss.detach()}

    cfg = PPOConfig(env="CartPole", total_steps=128, n_steps=64, batch_size=32, n_epochs=1, eval_every=0,
                    eval_episodes=1, progress=False, run_dir=str(tmp_path))
    with pytest.raises(TrainingDiverged, match=r"policy_loss.*env step 64"):
        train_on_policy(cfg, "ppo", nan_loss, make_vec_env)
