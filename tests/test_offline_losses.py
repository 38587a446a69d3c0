"""Offline algorithms' pure pieces against their formulas: the batched critic ensemble, Polyak updates, the
TD3 target and smoothing, TD3+BC's actor loss, and A2PR's value target, VAE loss, augmented target and gate."""
import pytest
import torch
import torch.nn.functional as F

from algos import a2pr, td3_bc
from classic_rl.ensemble import EnsembleMLP, adam_step, ensemble_linear, soft_update
from classic_rl.offline import critic_loss, smoothed_target_action, td3_target


def test_ensemble_equals_separate_networks_and_layer_norm():
    torch.manual_seed(0)
    for layer_norm in (False, True):
        net = EnsembleMLP(3, 5, [7, 4], out_dim=2, layer_norm=layer_norm)
        with torch.no_grad():  # distinct LayerNorm gains per member, so sharing them would be caught
            for norm in net.norms or []:
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.uniform_(-0.1, 0.1)
        x = torch.randn(6, 5)
        out = net(x)
        assert out.shape == (3, 6, 2)
        for k in range(3):
            h = x
            for i, layer in enumerate(net.hidden):
                h = h @ layer.weight[k] + layer.bias[k, 0]
                if layer_norm:
                    h = F.layer_norm(h, h.shape[-1:]) * net.norms[i].weight[k, 0] + net.norms[i].bias[k, 0]
                h = torch.relu(h)
            torch.testing.assert_close(out[k], h @ net.out.weight[k] + net.out.bias[k, 0])
        torch.testing.assert_close(net(x, members=slice(1, 2))[0], out[1])  # one member alone
    # members start different (independent initialisation)
    assert not torch.allclose(net.hidden[0].weight[0], net.hidden[0].weight[1])


def test_ensemble_linear_width_one_head_equals_the_batched_matmul_with_its_gradients():
    torch.manual_seed(0)
    for out in (1, 3):
        x, w, b = torch.randn(4, 6, 5), torch.randn(4, 5, out), torch.randn(4, 1, out)
        ours = [t.clone().requires_grad_() for t in (x, w, b)]
        ref = [t.clone().requires_grad_() for t in (x, w, b)]
        y, y_ref = ensemble_linear(*ours), torch.baddbmm(ref[2], ref[0], ref[1])
        torch.testing.assert_close(y, y_ref)
        g = torch.randn_like(y)
        y.backward(g)
        y_ref.backward(g)
        for a, r in zip(ours, ref):
            torch.testing.assert_close(a.grad, r.grad)


def test_adam_step_is_bitwise_adam_step_and_keeps_its_state():
    def make():
        torch.manual_seed(0)
        net = EnsembleMLP(2, 5, [8, 8])
        return net, torch.optim.Adam(net.parameters(), lr=1e-2, fused=True)

    def grads(net, seed):
        net.zero_grad(set_to_none=True)
        net(torch.randn(4, 5, generator=torch.Generator().manual_seed(seed))).pow(2).mean().backward()

    (ref, ref_opt), (new, new_opt) = make(), make()
    for t in range(5):
        for net, opt, step in ((ref, ref_opt, ref_opt.step), (new, new_opt, lambda: adam_step(new_opt))):
            grads(net, t)
            step()
        for a, b in zip(ref.parameters(), new.parameters()):
            assert torch.equal(a, b)
    sd = new_opt.state_dict()  # the state stays the optimizer's: a checkpoint round trip continues the same
    assert all(float(s["step"]) == 5 for s in sd["state"].values())
    again, again_opt = make()
    again.load_state_dict(new.state_dict())
    again_opt.load_state_dict(sd)
    for net, opt, step in ((ref, ref_opt, ref_opt.step), (again, again_opt, lambda: adam_step(again_opt))):
        grads(net, 9)
        step()
    for a, b in zip(ref.parameters(), again.parameters()):
        assert torch.equal(a, b)
    sgd = torch.optim.SGD(again.parameters(), lr=0.1)  # anything else is opt.step()
    before = [p.detach().clone() for p in again.parameters()]
    adam_step(sgd)
    assert not any(torch.equal(a, b) for a, b in zip(before, again.parameters()))


def test_soft_update_is_polyak_average():
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    wa, wb = a.weight.detach().clone(), b.weight.detach().clone()
    soft_update(a, b, 0.1)
    torch.testing.assert_close(a.weight, 0.9 * wa + 0.1 * wb)


def test_td3_target_by_hand():
    rewards = torch.tensor([1.0, 2.0])
    terminated = torch.tensor([False, True])
    next_q = torch.tensor([[[3.0], [5.0]], [[4.0], [-1.0]]])  # [members, B, 1]
    torch.testing.assert_close(td3_target(rewards, terminated, next_q, 0.9), torch.tensor([1 + 0.9 * 3.0, 2.0]))


def test_target_smoothing_noise_is_clipped_and_action_bounded():
    torch.manual_seed(0)
    obs = torch.zeros(10_000, 1)
    actions = smoothed_target_action(lambda o: torch.full((o.shape[0], 2), 0.9), obs, 0.2, 0.5, 1.0)
    assert actions.max() <= 1.0 and actions.min() >= 0.4 - 1e-6
    assert (actions == 1.0).any()  # clipped to the action bound
    assert abs(float((actions - 0.9).clamp(max=0.1).std()) - 0.2) < 0.1


def test_critic_loss_sums_member_mses():
    q = torch.randn(2, 8, 1)
    y = torch.randn(8)
    expected = F.mse_loss(q[0, :, 0], y) + F.mse_loss(q[1, :, 0], y)
    torch.testing.assert_close(critic_loss(q, y), expected)


def test_td3_bc_actor_loss_formula():
    q = torch.tensor([[2.0], [-4.0]])
    pi = torch.tensor([[0.5], [0.0]])
    a = torch.tensor([[0.0], [1.0]])
    loss, lam = td3_bc.td3_bc_actor_loss(q, pi, a, alpha=2.5)
    assert float(lam) == pytest.approx(2.5 / 3.0)
    assert float(loss) == pytest.approx(-(2.5 / 3.0) * (-1.0) + (0.25 + 1.0) / 2)


def test_a2pr_value_target_is_the_smaller_bootstrap():
    torch.testing.assert_close(a2pr.value_target(torch.tensor([1.0, 5.0]), torch.tensor([2.0, 3.0])),
                               torch.tensor([1.0, 3.0]))


def test_a2pr_vae_loss_formula():
    recon = torch.tensor([[0.5, 0.0], [1.0, 1.0]])
    actions = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    mu = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    std = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 2.0]])
    weight = torch.tensor([[1.5], [0.0]])  # only the first (positive-advantage) sample reconstructs
    rec = 1.5 * 0.25 / 4  # mean over batch and action dims
    kl_terms = torch.tensor([1 + 0 - 1 - 1, 0, 0, 0, 0, 0, 0, 1 + torch.log(torch.tensor(4.0)) - 0 - 4])
    kl = float(-0.5 * kl_terms.sum() / 8)
    assert float(a2pr.vae_loss(recon, actions, mu, std, weight)) == pytest.approx(rec + 0.5 * kl)


def test_augmented_target_picks_the_higher_advantage_action():
    actions = torch.tensor([[1.0], [1.0], [1.0]])
    generated = torch.tensor([[-1.0], [-1.0], [-1.0]])
    adv_data = torch.tensor([[0.5], [0.5], [0.5]])
    adv_gen = torch.tensor([[0.7], [0.1], [0.5]])  # better, worse, tie
    torch.testing.assert_close(a2pr.augmented_target(actions, generated, adv_data, adv_gen),
                               torch.tensor([[-1.0], [1.0], [-1.0]]))


def test_bc_gate_is_an_or_never_twice_the_mask():
    adv_data = torch.tensor([[1.0], [-1.0], [0.0], [-1.0]])
    adv_gen = torch.tensor([[1.0], [0.0], [-1.0], [-0.5]])
    gate = a2pr.bc_gate(adv_data, adv_gen, mask=0.4)
    torch.testing.assert_close(gate, torch.tensor([[0.4], [0.4], [0.0], [0.0]]))


def test_a2pr_actor_loss_formula():
    q = torch.tensor([[3.0], [1.0]])
    pi = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    target = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    gate = torch.tensor([[0.5], [0.0]])
    loss, lam = a2pr.a2pr_actor_loss(q, pi, target, gate, alpha=2.0)
    assert float(lam) == pytest.approx(1.0)
    assert float(loss) == pytest.approx(-2.0 + (0.5 * 1.0) / 4)


def test_a2pr_presets_follow_the_dataset():
    assert a2pr.presets("hopper-medium") == dict(alpha=2.5, vae_weight=1.0, mask=0.4, gamma=0.995)
    assert a2pr.presets("mujoco/halfcheetah/medium-v0")["alpha"] == 40.0
    assert a2pr.presets("walker2d-expert")["mask"] == 1.0
    assert a2pr.presets("something-else") == {}


def test_q_divergence_warning_fires_once_above_the_return_bound():
    from types import SimpleNamespace

    from classic_rl.offline import warn_if_q_diverges

    warned = []
    run = SimpleNamespace(iteration=10, log_every=10, step=10, warnings=warned, warn=warned.append)
    warn_if_q_diverges(run, torch.tensor(50.0), bound=100.0)
    assert not warned
    warn_if_q_diverges(run, torch.tensor(150.0), bound=100.0)
    warn_if_q_diverges(run, torch.tensor(250.0), bound=100.0)
    assert len(warned) == 1 and "diverging" in warned[0]
