"""EXPO (algos/expo.py): noise schedule, sampler, edit squashing, OTF argmax, subset-min target, one update."""
from __future__ import annotations

import math

import pytest
import torch

from algos.expo import (EXPO, CPU_PRESET, EXPOConfig, Denoiser, apply_edit, ddpm_sample, diffusion_loss,
                        edit_log_prob, edit_loss, noisy_actions, otf_select, presets_for, vp_schedule)
from classic_rl.ensemble import EnsembleMLP
from classic_rl.sac import TanhGaussianActor, subset_forward, subset_min


def test_vp_schedule_matches_formula():
    T, b_min, b_max = 10, 0.1, 10.0
    betas, alphas, alpha_bars = vp_schedule(T, b_min, b_max)
    for i in range(T):
        t = i + 1
        expected = 1 - math.exp(-b_min / T - 0.5 * (b_max - b_min) * (2 * t - 1) / T ** 2)
        assert math.isclose(betas[i].item(), expected, rel_tol=1e-6)
    assert torch.allclose(alphas, 1 - betas)
    assert torch.allclose(alpha_bars, torch.cumprod(1 - betas, 0))
    assert alpha_bars[-1] < 1e-2 and (betas[1:] > betas[:-1]).all()  # nearly pure noise at t = T-1


def _optimal_eps(mu: float, sigma: float, alpha_bars: torch.Tensor):
    """The exact noise predictor for data N(mu, sigma^2): E[n | x_t]."""
    def eps(x, t):
        ab = alpha_bars[t]
        return (1 - ab).sqrt() * (x - ab.sqrt() * mu) / (ab * sigma ** 2 + 1 - ab)
    return eps


def test_sampler_is_ddpm_recursion_and_reaches_gaussian_target():
    torch.manual_seed(0)
    mu, sigma = 0.3, 0.2
    betas, alphas, alpha_bars = vp_schedule(10)
    eps = _optimal_eps(mu, sigma, alpha_bars)
    x = ddpm_sample(eps, (200_000, 1), betas, alphas, alpha_bars, clip=False)
    # exact mean and variance of the linear-Gaussian recursion, step by step
    m, v = 0.0, 1.0
    for t in range(9, -1, -1):
        ab = alpha_bars[t].item()
        c = betas[t].item() / math.sqrt(1 - ab) * math.sqrt(1 - ab) / (ab * sigma ** 2 + 1 - ab)
        a_coef = (1 - c) / math.sqrt(alphas[t].item())
        b_coef = c * math.sqrt(ab) * mu / math.sqrt(alphas[t].item())
        m, v = a_coef * m + b_coef, a_coef ** 2 * v + (betas[t].item() if t > 0 else 0.0)
    assert abs(x.mean().item() - m) < 5e-3 and abs(x.var().item() / v - 1) < 0.02
    # and the marginal is close to the target (T = 10 steps of the VP schedule)
    assert abs(x.mean().item() - mu) < 0.03 and abs(x.std().item() / sigma - 1) < 0.15
    # with the per-step clip (the authors' sampler) the samples stay in [-1, 1]; clipping the first noisy
    # iterates narrows the marginal at T = 10 (measured: std ~0.85 sigma), the mean stays on target
    xc = ddpm_sample(eps, (100_000, 1), betas, alphas, alpha_bars, clip=True)
    assert xc.abs().max() <= 1 and abs(xc.mean().item() - mu) < 0.03
    assert 0.75 < xc.std().item() / sigma < 1.0


def test_noisy_actions_and_diffusion_loss_formulas():
    _, _, ab = vp_schedule(10)
    a, n, t = torch.tensor([[0.5, -0.5]]), torch.tensor([[1.0, 2.0]]), torch.tensor([3])
    assert torch.allclose(noisy_actions(a, t, n, ab), ab[3].sqrt() * a + (1 - ab[3]).sqrt() * n)
    pred, noise = torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert math.isclose(diffusion_loss(pred, noise).item(), (1 + 2) / 2)  # sum over d, mean over B


def test_edit_squashing_log_prob_and_loss():
    a = torch.tensor([[0.95, -0.2]])
    e = torch.tensor([[0.9, -0.5]])
    assert torch.allclose(apply_edit(a, e, 0.1, clip=False), torch.tensor([[1.04, -0.25]]))
    assert torch.allclose(apply_edit(a, e, 0.1), torch.tensor([[1.0, -0.25]]))  # clipped for acting/scoring
    # the edit is bounded by beta_e: a tanh-squashed e lies in (-1, 1)
    actor = TanhGaussianActor(4, 2, (8,))
    e2, logp = actor.sample(torch.randn(1000, 4) * 10)
    assert ((apply_edit(torch.zeros(1000, 2), e2, 0.05, clip=False)).abs() < 0.05 + 1e-7).all()
    # log density of the scaled edit: change of variables x = beta e -> - d log beta
    assert torch.allclose(edit_log_prob(logp, 2, 0.05), logp - 2 * math.log(0.05))
    q = torch.tensor([[[1.0], [3.0]], [[3.0], [5.0]]])  # [K=2, B=2, 1]
    assert math.isclose(edit_loss(torch.tensor([0.5, 1.0]), q, 0.2).item(), ((0.1 - 2) + (0.2 - 4)) / 2, rel_tol=1e-6)


def test_otf_argmax_picks_best_scored_candidate():
    cands = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    scores = torch.tensor([[0.1, 0.9, 0.3], [5.0, -1.0, 4.0]])
    assert torch.equal(otf_select(cands, scores), torch.stack([cands[0, 1], cands[1, 0]]))


def test_ensemble_subset_min_target():
    torch.manual_seed(0)
    net = EnsembleMLP(10, 4, [8], layer_norm=True)
    x = torch.randn(5, 4)
    idx = torch.tensor([3, 8])
    full = net(x)
    assert torch.allclose(subset_forward(net, x, idx).min(0).values.squeeze(-1), subset_min(full, idx), atol=1e-6)
    assert torch.allclose(subset_min(full, idx), torch.minimum(full[3], full[8]).squeeze(-1))


def _tiny_cfg(**kw) -> EXPOConfig:
    cfg = EXPOConfig(dataset=None, num_qs=4, num_min=2, critic_hidden=[16, 16], edit_hidden=[16], denoiser_width=16,
                     denoiser_blocks=1, diffusion_steps=3, n_samples=3, n_edit=2, batch_size=8, utd=2, **kw)
    cfg.validate()
    return cfg


def _batch(n=16, obs=3, act=2):
    return {"obs": torch.randn(n, obs), "actions": torch.rand(n, act) * 2 - 1, "rewards": torch.randn(n),
            "next_obs": torch.randn(n, obs), "terminated": torch.rand(n) < 0.2}


def test_otf_policy_returns_one_of_its_candidates_and_scores_with_target_critics():
    torch.manual_seed(0)
    agent = EXPO(3, 2, _tiny_cfg(), torch.device("cpu"))
    a = agent.otf(torch.randn(5, 3), ema=True, generator=torch.Generator().manual_seed(0))
    assert a.shape == (5, 2) and a.abs().max() <= 1
    # with no edits and N = 1, OTF returns the base sample itself (same RNG stream)
    agent.cfg.n_edit, agent.cfg.n_samples = 0, 1
    s = torch.randn(4, 3)
    torch.manual_seed(1)
    a1 = agent.otf(s, ema=True, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    assert torch.equal(a1, agent.base_sample(s, ema=True))


def test_one_update_steps_every_network_without_q_gradients_into_the_diffusion_chain():
    torch.manual_seed(0)
    agent = EXPO(3, 2, _tiny_cfg(), torch.device("cpu"))
    snap = {k: [p.detach().clone() for p in m.parameters()] for k, m in
            (("denoiser", agent.denoiser), ("ema", agent.denoiser_ema), ("edit", agent.edit),
             ("critic", agent.critic), ("target", agent.critic_target), ("temp", agent.temperature))}
    # the critic step alone leaves the denoiser without any gradient (OTF targets are sampled under no_grad)
    agent.critic_step(_batch(8), torch.Generator().manual_seed(0))
    assert all(p.grad is None for p in agent.denoiser.parameters())
    stats = agent.update(_batch(16), 2, torch.Generator().manual_seed(0))
    assert {"critic_loss", "diffusion_loss", "edit_loss", "edit_entropy", "temperature"} <= set(stats)
    for k, m in (("denoiser", agent.denoiser), ("ema", agent.denoiser_ema), ("edit", agent.edit),
                 ("critic", agent.critic), ("target", agent.critic_target), ("temp", agent.temperature)):
        assert any(not torch.equal(a, b) for a, b in zip(snap[k], m.parameters())), k
    # EMA moved by 0.001 of the way: theta_bar = 0.999 theta_bar0 + 0.001 theta
    for e0, e1, p in zip(snap["ema"], agent.denoiser_ema.parameters(), agent.denoiser.parameters()):
        assert torch.allclose(e1, 0.999 * e0 + 0.001 * p.detach(), atol=1e-6)


def test_denoiser_chain_equals_forward():
    torch.manual_seed(0)
    net = Denoiser(3, 2, 16, 2)
    s, x = torch.randn(6, 3), torch.randn(6, 2)
    assert torch.allclose(net.chain(s)(x, 4), net(s, x, torch.full((6,), 4)), atol=1e-6)


def test_presets_cpu_vs_paper_and_env_extension():
    cuda, cpu = presets_for("Hopper", "cuda"), presets_for("Hopper", "cpu")
    assert cuda["dataset"] == cpu["dataset"] == "hopper-medium-replay"
    assert "utd" not in cuda and EXPOConfig().utd == 20 and EXPOConfig().n_samples == 8  # paper = defaults
    assert EXPOConfig().diffusion_steps == 10 and cuda["eval_episodes"] == 100
    assert cpu["utd"] == CPU_PRESET["utd"] < 20 and cpu["diffusion_steps"] < 10 and cpu["n_samples"] < 8
    with pytest.raises(Exception):
        EXPOConfig(dataset=None, protocol="offline-to-online").validate()
