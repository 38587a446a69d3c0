"""Hand-written log-probs and entropies against torch.distributions; normalizers against numpy."""
import gymnasium as gym
import numpy as np
import torch

from classic_rl.networks import ActorCritic
from classic_rl.normalize import ObsNormalizer, RewardScaler, RunningMeanStd


def test_gaussian_log_prob_and_entropy():
    torch.manual_seed(0)
    model = ActorCritic(gym.spaces.Box(-1, 1, (5,)), gym.spaces.Box(-1, 1, (3,)), log_std_init=-0.5)
    with torch.no_grad():
        model.log_std.copy_(torch.tensor([-0.5, 0.1, 0.3]))
    obs = torch.randn(7, 5)
    actions, log_prob, value = model.act(obs)
    mean = model.mean_head(model.actor_trunk(obs))
    dist = torch.distributions.Normal(mean, model.log_std.exp())
    torch.testing.assert_close(log_prob, dist.log_prob(actions).sum(-1))
    out = model.evaluate(obs, actions)
    torch.testing.assert_close(out["log_prob"], dist.log_prob(actions).sum(-1))
    torch.testing.assert_close(out["entropy"], dist.entropy().sum(-1))
    torch.testing.assert_close(out["value"], value)


def test_multicategorical_log_prob_entropy_and_mode():
    torch.manual_seed(1)
    space = gym.spaces.MultiDiscrete([3, 4, 2])
    model = ActorCritic(gym.spaces.Box(-1, 1, (6,)), space)
    with torch.no_grad():
        model.logits_head.weight.mul_(300)  # make the distribution non-uniform
    obs = torch.randn(9, 6)
    actions, log_prob, _ = model.act(obs)
    logits = torch.split(model.logits_head(model.actor_trunk(obs)), [3, 4, 2], -1)
    dists = [torch.distributions.Categorical(logits=l) for l in logits]
    ref = sum(d.log_prob(actions[:, i]) for i, d in enumerate(dists))
    torch.testing.assert_close(log_prob, ref)
    out = model.evaluate(obs, actions)
    torch.testing.assert_close(out["log_prob"], ref)
    torch.testing.assert_close(out["entropy"], sum(d.entropy() for d in dists))
    mode, _, _ = model.act(obs, deterministic=True)
    torch.testing.assert_close(mode, torch.stack([l.argmax(-1) for l in logits], -1))


def test_discrete_actions_are_flat_and_image_model_builds():
    model = ActorCritic(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(6),
                        head_hidden=[256], extra_heads=("median",), extra_head_hidden=[256])
    obs = torch.randint(0, 255, (2, 4, 84, 84), dtype=torch.uint8)
    actions, _, value = model.act(obs)
    assert actions.shape == (2,) and value.shape == (2,)
    assert model.evaluate(obs, actions)["median"].shape == (2,)


def test_running_mean_std_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 4))
    rms = RunningMeanStd((4,))
    for chunk in np.array_split(data, 17):
        rms.update(torch.tensor(chunk))
    np.testing.assert_allclose(rms.mean.numpy(), data.mean(0), rtol=1e-6)
    np.testing.assert_allclose(rms.var.numpy(), data.var(0), rtol=1e-4)
    norm = ObsNormalizer((4,), True, "cpu")
    norm.load_state_dict(rms.state_dict())
    out = norm(torch.tensor(data, dtype=torch.float32))
    np.testing.assert_allclose(out.mean(0).numpy(), 0, atol=1e-4)


def test_reward_scaler_divides_by_discounted_return_std():
    scaler = RewardScaler(1, 0.9, True, "cpu")
    rewards = [1.0, 2.0, -1.0, 0.5]
    returns, ret = [], 0.0
    for r in rewards:
        ret = ret * 0.9 + r
        returns.append(ret)
        out = scaler(torch.tensor([r], dtype=torch.float64), torch.tensor([False]))
    # the last output divides by the std of all discounted returns seen so far (prior count 1e-4 is negligible)
    assert out.item() == __import__("pytest").approx(0.5 / np.sqrt(np.var(returns)), rel=1e-3)
    # an episode end resets the running discounted return
    scaler(torch.tensor([1.0], dtype=torch.float64), torch.tensor([True]))
    assert scaler.discounted_return.item() == 0.0
