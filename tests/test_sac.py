"""SAC core (classic_rl/sac.py) against its formulas; replay buffer state round trip."""
from __future__ import annotations

import math

import pytest
import torch

from classic_rl.buffers import ReplayBuffer
from classic_rl.ensemble import EnsembleMLP
from classic_rl.sac import (SAC, SACSettings, TanhGaussianActor, ensemble_critic_loss, interleave, mixed_batch,
                            random_subset, sac_actor_loss, sac_target, subset_forward, subset_min,
                            tanh_gaussian_log_prob, temperature_loss)


def test_tanh_gaussian_log_prob_is_change_of_variables():
    torch.manual_seed(0)
    mean, log_std = torch.randn(5, 3), torch.randn(5, 3) * 0.5
    u = mean + log_std.exp() * torch.randn(5, 3)
    base = torch.distributions.Normal(mean, log_std.exp())
    a = torch.tanh(u)
    expected = (base.log_prob(u) - torch.log(1 - a.pow(2))).sum(-1)
    assert torch.allclose(tanh_gaussian_log_prob(u, mean, log_std), expected, atol=1e-5)
    # torch's own TransformedDistribution agrees
    dist = torch.distributions.TransformedDistribution(base, [torch.distributions.TanhTransform()])
    assert torch.allclose(tanh_gaussian_log_prob(u, mean, log_std), dist.log_prob(a).sum(-1), atol=1e-4)


def test_tanh_gaussian_density_integrates_to_one_in_1d():
    grid = torch.linspace(-0.999999, 0.999999, 200001, dtype=torch.float64)
    u = torch.atanh(grid)
    p = tanh_gaussian_log_prob(u[:, None], torch.tensor([[0.3]], dtype=torch.float64),
                               torch.tensor([[math.log(0.8)]], dtype=torch.float64)).exp()
    assert abs(torch.trapezoid(p, grid).item() - 1.0) < 1e-3


def test_actor_sample_shapes_bounds_and_deterministic_mode():
    torch.manual_seed(0)
    actor = TanhGaussianActor(4, 2, (16,))
    a, logp = actor.sample(torch.randn(7, 4))
    assert a.shape == (7, 2) and logp.shape == (7,) and a.abs().max() < 1
    mean, _ = actor(torch.randn(3, 4))
    x = torch.randn(3, 4)
    assert torch.allclose(actor.sample(x, deterministic=True)[0], torch.tanh(actor(x)[0]))


def test_target_and_losses_match_formulas():
    r, d = torch.tensor([1.0, 2.0]), torch.tensor([False, True])
    q, logp = torch.tensor([3.0, 4.0]), torch.tensor([0.5, -1.0])
    y = sac_target(r, d, q, 0.9, logp, 0.2)
    assert torch.allclose(y, torch.tensor([1 + 0.9 * (3 - 0.2 * 0.5), 2.0]))
    assert torch.allclose(sac_target(r, d, q, 0.9), torch.tensor([1 + 0.9 * 3, 2.0]))
    qk = torch.tensor([[[1.0], [2.0]], [[3.0], [0.0]]])  # [K=2, B=2, 1]
    target = torch.tensor([1.0, 1.0])
    assert torch.isclose(ensemble_critic_loss(qk, target), torch.tensor((0 + 1 + 4 + 1) / 4))
    lp = torch.tensor([0.1, -0.3])
    assert torch.isclose(sac_actor_loss(lp, qk, 0.5), ((0.5 * lp) - torch.tensor([2.0, 1.0])).mean())
    log_alpha = torch.tensor(math.log(0.3), requires_grad=True)
    loss = temperature_loss(log_alpha, torch.tensor(1.5), -2.0)
    assert math.isclose(loss.item(), 0.3 * 3.5, rel_tol=1e-6)
    loss.backward()
    assert math.isclose(log_alpha.grad.item(), 0.3 * 3.5, rel_tol=1e-6)


def test_random_subset_min_and_subset_forward():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(3)
    seen = set()
    for _ in range(200):
        idx = random_subset(10, 2, gen)
        assert idx.shape == (2,) and idx[0] != idx[1] and 0 <= idx.min() and idx.max() < 10
        seen.add(tuple(sorted(idx.tolist())))
    assert len(seen) > 30  # many different pairs
    q = torch.randn(10, 6, 1)
    idx = torch.tensor([7, 2])
    assert torch.equal(subset_min(q, idx), torch.minimum(q[7], q[2]).squeeze(-1))
    for ln in (False, True):
        net = EnsembleMLP(10, 5, [8, 8], layer_norm=ln)
        if ln:  # non-trivial LayerNorm gains and biases
            for p in net.norms.parameters():
                p.data.normal_()
        x = torch.randn(6, 5)
        assert torch.allclose(subset_forward(net, x, idx), net(x)[idx], atol=1e-6)


def test_interleave_and_mixed_batch_are_half_and_half():
    dev = torch.device("cpu")
    off = ReplayBuffer(100, (2,), (1,), dev)
    on = ReplayBuffer(100, (2,), (1,), dev)
    off.add(torch.zeros(50, 2), torch.zeros(50, 1), torch.zeros(50), torch.zeros(50, 2), torch.zeros(50, dtype=torch.bool))
    on.add(torch.ones(30, 2), torch.ones(30, 1), torch.ones(30), torch.ones(30, 2), torch.zeros(30, dtype=torch.bool))
    b = mixed_batch(off, on, 16 * 4, torch.Generator().manual_seed(0))
    assert torch.equal(b["rewards"], torch.tensor([0.0, 1.0] * 32))
    for g in range(4):  # every slice of a UTD split is half offline, half online
        assert b["rewards"][g * 16:(g + 1) * 16].mean() == 0.5
    x = interleave({"a": torch.tensor([1, 2])}, {"a": torch.tensor([3, 4])})
    assert x["a"].tolist() == [1, 3, 2, 4]
    assert torch.equal(mixed_batch(None, on, 8, torch.Generator().manual_seed(0))["rewards"], torch.ones(8))


def test_replay_buffer_state_round_trip_and_mismatch():
    dev = torch.device("cpu")
    buf = ReplayBuffer(10, (3,), (2,), dev)
    for i in range(13):  # wraps around
        buf.add(torch.full((1, 3), float(i)), torch.full((1, 2), float(i)), torch.tensor([float(i)]),
                torch.full((1, 3), i + 0.5), torch.tensor([i % 2 == 0]))
    state = buf.state_dict()
    other = ReplayBuffer(10, (3,), (2,), dev)
    other.load_state_dict(state)
    for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
        assert torch.equal(getattr(other, name), getattr(buf, name))
    assert (other.pos, other.size) == (buf.pos, buf.size) == (3, 10)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(buf.sample(5, g1)["obs"], other.sample(5, g2)["obs"])
    part = ReplayBuffer(10, (3,), (2,), dev)
    part.add(torch.ones(4, 3), torch.ones(4, 2), torch.ones(4), torch.ones(4, 3), torch.zeros(4, dtype=torch.bool))
    assert part.state_dict()["obs"].shape[0] == 4  # only the filled rows are saved
    with pytest.raises(ValueError):  # wrapped mid-buffer: only the same capacity can take it
        ReplayBuffer(20, (3,), (2,), dev).load_state_dict(state)
    with pytest.raises(ValueError):
        ReplayBuffer(10, (4,), (2,), dev).load_state_dict(state)
    bigger = ReplayBuffer(20, (3,), (2,), dev)  # a run extended on resume: rows in order, more room
    bigger.load_state_dict(part.state_dict())
    assert (bigger.pos, bigger.size) == (4, 4) and torch.equal(bigger.obs[:4], part.obs[:4])


def test_sac_update_steps_every_piece_and_targets_track():
    torch.manual_seed(0)
    sac = SAC(3, 2, SACSettings(actor_hidden=(16,), critic_hidden=(16, 16), num_qs=5, num_min=2, layer_norm=True))
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in
              (("actor", sac.actor), ("critic", sac.critic), ("target", sac.critic_target), ("temp", sac.temperature))}
    batch = {"obs": torch.randn(32, 3), "actions": torch.rand(32, 2) * 2 - 1, "rewards": torch.randn(32),
             "next_obs": torch.randn(32, 3), "terminated": torch.rand(32) < 0.1}
    stats = sac.update(batch, 4, torch.Generator().manual_seed(0))
    assert {"critic_loss", "actor_loss", "entropy", "temperature"} <= set(stats)
    for k, m in (("actor", sac.actor), ("critic", sac.critic), ("target", sac.critic_target), ("temp", sac.temperature)):
        assert any(not torch.equal(a, b) for a, b in zip(before[k], m.parameters())), k
    # Polyak: after 4 critic steps the target moved only a little towards the critic
    diff = sum((a - b).abs().sum() for a, b in zip(sac.critic_target.parameters(), before["target"]))
    assert 0 < diff < sum((a - b).abs().sum() for a, b in zip(sac.critic.parameters(), before["critic"]))
    with pytest.raises(ValueError):
        SAC(3, 2, SACSettings(num_qs=2, num_min=3))
