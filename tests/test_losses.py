"""PPO and BPO losses against their formulas; the median head against a sample median."""
import math

import numpy as np
import pytest
import torch

from algos.bpo import bpo_policy_loss, bpo_target_ratio, log_cosh_loss
from algos.ppo import ppo_policy_loss, value_loss


def test_ppo_clipped_loss_equals_formula_elementwise():
    torch.manual_seed(0)
    log_ratio = torch.randn(200) * 0.3
    adv = torch.randn(200)
    eps = 0.2
    expected = []
    for lr_, a in zip(log_ratio.tolist(), adv.tolist()):
        rho = math.exp(lr_)
        expected.append(-min(rho * a, min(max(rho, 1 - eps), 1 + eps) * a))
    assert ppo_policy_loss(log_ratio, adv, eps).item() == pytest.approx(np.mean(expected), rel=1e-5)


def test_ppo_gradient_vanishes_outside_the_box_in_the_improving_direction():
    # A > 0 and rho > 1 + eps: clipped, no gradient. A > 0 and rho < 1 - eps: still pulled up.
    log_ratio = torch.tensor([math.log(1.5), math.log(0.5)], requires_grad=True)
    ppo_policy_loss(log_ratio, torch.tensor([1.0, 1.0]), 0.2).backward()
    assert log_ratio.grad[0].item() == 0.0
    assert log_ratio.grad[1].item() < 0.0


def test_value_loss_clipping_matches_sb3_semantics():
    v, ret, old = torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([1.0])
    assert value_loss(v, ret, old, None).item() == pytest.approx(4.0)
    assert value_loss(v, ret, old, 0.5).item() == pytest.approx(1.5 ** 2)


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_bpo_target_ratio_tends_to_one_plus_minus_eps(eps):
    adv = torch.tensor([-2.0, -0.01, 0.01, 3.0])
    hard = bpo_target_ratio(adv, eps, 1e-6)
    torch.testing.assert_close(hard, 1 + eps * torch.sign(adv))
    # large temperature: target flattens toward 1 (the regularizer dominates)
    soft = bpo_target_ratio(adv, eps, 1e6)
    torch.testing.assert_close(soft, torch.ones(4), atol=1e-5, rtol=0)
    # exactly at the threshold the target is 1
    assert bpo_target_ratio(torch.zeros(1), eps, 0.5).item() == pytest.approx(1.0)
    # formula at a finite temperature
    lam = 0.7
    expected = 1 - eps + 2 * eps / (1 + torch.exp(-adv / lam))
    torch.testing.assert_close(bpo_target_ratio(adv, eps, lam), expected)


def test_bpo_policy_loss_value_and_gradient_sign():
    ratio = torch.tensor([1.0, 1.0, 1.5, 0.6], requires_grad=True)
    target = torch.tensor([1.2, 0.8, 1.2, 0.8])
    weight = torch.tensor([2.0, -3.0, 1.0, -1.0])  # sign of the weight must not matter
    loss = bpo_policy_loss(ratio, target, weight)
    assert loss.item() == pytest.approx((0.2 * 2 + 0.2 * 3 + 0.3 * 1 + 0.2 * 1) / 4)
    loss.backward()
    # gradient descent moves each ratio toward its target, also from outside the box (no clipping)
    step = -ratio.grad
    assert step[0] > 0 and step[1] < 0 and step[2] < 0 and step[3] > 0
    np.testing.assert_allclose(ratio.grad.abs().numpy(), np.abs(weight.numpy()) / 4)


def test_log_cosh_identity():
    r = torch.linspace(-30, 30, 101, dtype=torch.float64)
    torch.testing.assert_close(log_cosh_loss(r), torch.log(2 * torch.cosh(r / 2)).mean())


def test_median_head_converges_to_median_of_skewed_distribution():
    """Minimizing the log-cosh loss over a constant u gives (close to) the median, not the mean, for a
    skewed distribution in return-like units (residuals >> 1)."""
    gen = torch.Generator().manual_seed(0)
    samples = torch.distributions.LogNormal(4.0, 1.0).sample((20000,))  # median e^4 = 54.6, mean 90
    u = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([u], lr=1.0)
    for _ in range(1500):
        idx = torch.randint(0, len(samples), (512,), generator=gen)
        opt.zero_grad()
        log_cosh_loss(samples[idx] - u).backward()
        opt.step()
    median, mean = samples.median().item(), samples.mean().item()
    assert abs(u.item() - median) < 3.0, (u.item(), median, mean)
    assert abs(u.item() - mean) > 25.0


def test_bpo_follows_the_sb3_variant_not_the_isaaclab_clamp():
    """The authors' IsaacLab code clamps A/lambda_T to [-10, 10] before the sigmoid; their SB3 code (which
    the spec's MuJoCo/Atari numbers come from, and which we follow) does not."""
    far = bpo_target_ratio(torch.tensor([50.0], dtype=torch.float64), 0.2, 1.0)
    clamped = 1 - 0.2 + 0.4 * torch.sigmoid(torch.tensor(10.0, dtype=torch.float64))
    assert abs(far.item() - 1.2) < 1e-12
    assert abs(far.item() - clamped.item()) > 1e-5
