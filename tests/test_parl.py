"""PARL / A-PARL: the exact hypergradient against finite differences, the bias of the naive (PEBBLE-style)
gradient, the correction methods against each other, Bradley-Terry and score terms by hand, the
tanh change of variables, and the deep variant's unrolled correction against brute-force autograd."""
import math

import pytest
import torch

from algos.parl import (ParlConfig, RewardEnsemble, TabularLoop, cosine, deep_correction, implicit_correction,
                        leave_one_out_baseline, score_weights, segment_log_prob, tabular_direction)
from envs.tabular.parl_chain import (BilevelTestbed, bradley_terry_loglik, chain_toy, conjugate_gradient,
                                     teacher_label)


@pytest.fixture(scope="module")
def beds():
    return {fb: BilevelTestbed(chain_toy(), 0.3, fb) for fb in ("utility", "preference")}


def some_nu(seed=0, scale=0.5):
    return scale * torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_chain_toy_layout(beds):
    tb = beds["utility"]
    assert tb.n_traj == 3 ** 6 and math.isclose(tb.best_return, 3.9)
    logpi = tb.soft_value_iteration(some_nu())
    assert math.isclose(float(tb.log_traj_probs(logpi).exp().sum()), 1.0, abs_tol=1e-12)
    # the bait: the best left-end trajectory L L L S S S collects 3 * 0.4 + 0.4 - 0.05 - 0.05 = 1.5
    left = (tb.actions == torch.tensor([0, 0, 0, 1, 1, 1])).all(1)
    assert math.isclose(float(tb.true_returns[left]), 1.5)


@pytest.mark.parametrize("feedback", ["utility", "preference"])
def test_exact_hypergradient_matches_finite_differences(beds, feedback):
    tb = beds[feedback]
    nu = some_nu(1)
    h = tb.exact_hypergradient(nu)
    fd = tb.finite_difference_gradient(nu, eps=1e-5)
    assert cosine(h["total"], fd) > 0.9999
    assert float((h["total"] - fd).norm() / fd.norm()) < 1e-6
    if feedback == "utility":  # U = true return does not depend on nu: the naive gradient is identically zero
        assert float(h["direct"].abs().max()) == 0.0
    else:  # the naive (PEBBLE-style) gradient is biased on the same instance
        assert cosine(h["direct"], fd) < 0.99
        assert float((h["direct"] - fd).norm() / fd.norm()) > 0.3


def test_forward_soft_bellman_jacobian_equals_autograd(beds):
    tb = beds["utility"]
    nu = some_nu(2)
    J = tb.policy_jacobian(nu)
    Ja = torch.autograd.functional.jacobian(tb.soft_value_iteration, nu).reshape(J.shape)
    torch.testing.assert_close(J, Ja, rtol=0, atol=1e-12)


def test_soft_optimal_policy_is_stationary_for_the_lower_objective(beds):
    tb = beds["utility"]
    nu = some_nu(3)
    theta = tb.soft_value_iteration(nu).requires_grad_(True)
    g = torch.autograd.grad(tb.lower_objective(theta, nu), theta)[0]
    assert float(g.abs().max()) < 1e-12
    # and it is the maximum: random perturbations do not improve it
    base = float(tb.lower_objective(theta.detach(), nu))
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        assert float(tb.lower_objective(theta.detach() + 0.1 * torch.randn(theta.shape, generator=gen,
                                                                           dtype=torch.float64), nu)) < base


@pytest.mark.parametrize("feedback", ["utility", "preference"])
def test_cg_correction_equals_exact_and_unrolled_is_an_approximation(beds, feedback):
    tb = beds[feedback]
    nu = some_nu(4, 1.0)
    logpi = tb.soft_value_iteration(nu)
    v = tb.score_vector(logpi, torch.arange(tb.n_traj), tb.exact_trajectory_weights(nu, logpi))
    exact, _ = implicit_correction(tb, logpi, nu, v, "exact")
    torch.testing.assert_close(exact, tb.exact_hypergradient(nu)["correction"], rtol=0, atol=1e-10)
    cg, info = implicit_correction(tb, logpi, nu, v, "cg", cg_iters=60, damping=1e-10)
    assert float((cg - exact).norm() / exact.norm()) < 1e-4, info
    unrolled, _ = implicit_correction(tb, logpi, nu, v, "unrolled", unroll_lr=1.0)
    assert 0 < cosine(unrolled, exact) < 0.9999


def test_conjugate_gradient_solves_a_spd_system():
    gen = torch.Generator().manual_seed(0)
    M = torch.randn(12, 12, generator=gen, dtype=torch.float64)
    A = M @ M.T + 0.1 * torch.eye(12, dtype=torch.float64)
    b = torch.randn(12, generator=gen, dtype=torch.float64)
    x, info = conjugate_gradient(lambda p: A @ p, b, 100, tol=1e-13)
    torch.testing.assert_close(x, torch.linalg.solve(A, b), rtol=1e-8, atol=1e-10)
    x2, _ = conjugate_gradient(lambda p: A @ p, b, 100, tol=1e-13, precondition=lambda r: r / A.diagonal())
    torch.testing.assert_close(x2, torch.linalg.solve(A, b), rtol=1e-8, atol=1e-10)


def test_bradley_terry_and_teacher_by_hand():
    r0, r1 = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([3.0, 3.0, 3.0])
    o = torch.tensor([1.0, 0.0, 0.5])
    u = bradley_terry_loglik(r0, r1, o)
    s = 1 / (1 + math.exp(-2.0))  # P(sigma1 > sigma0) = sigmoid(3 - 1)
    expected = [math.log(s), math.log(1 - s), 0.5 * math.log(s) + 0.5 * math.log(1 - s)]
    torch.testing.assert_close(u, torch.tensor(expected), rtol=0, atol=1e-6)
    assert teacher_label(torch.tensor([1.0, 2.0, 2.0]), torch.tensor([2.0, 1.0, 2.0])).tolist() == [1.0, 0.0, 0.5]
    # gradient in r1: o - sigmoid(r1 - r0)
    r1g = r1.clone().requires_grad_(True)
    g = torch.autograd.grad(bradley_terry_loglik(r0, r1g, o).sum(), r1g)[0]
    torch.testing.assert_close(g, o - s, rtol=0, atol=1e-6)


def test_score_term_by_hand():
    # horizon 1 from the middle of a 3-state chain: three one-step trajectories, one per action (L, S, R)
    tb = BilevelTestbed(chain_toy(3, 1), 0.3, "utility")
    assert tb.n_traj == 3 and tb.actions[:, 0].tolist() == [0, 1, 2]
    theta = torch.zeros(1, 3, 3, dtype=torch.float64)
    theta[0, 1] = torch.tensor([0.2, -0.1, 0.5], dtype=torch.float64)
    pi = torch.softmax(theta[0, 1], -1)
    u = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)        # utilities of trajectories 0, 1, 2
    b = leave_one_out_baseline(u)
    torch.testing.assert_close(b, torch.tensor([3.0, 2.5, 1.5], dtype=torch.float64))
    w = score_weights(u, baseline=True)
    torch.testing.assert_close(w, (u - b) / 3)
    v = tb.score_vector(theta, torch.tensor([0, 1, 2]), w)
    by_hand = sum(float(w[n]) * (torch.eye(3, dtype=torch.float64)[n] - pi) for n in range(3))  # e_a - pi
    torch.testing.assert_close(v[0, 1], by_hand, rtol=0, atol=1e-12)
    assert float(v[0, 0].abs().sum() + v[0, 2].abs().sum()) == 0.0   # unvisited states get nothing
    # the leave-one-out baseline keeps the estimator unbiased: E over i.i.d. draws equals E[U grad log pi]
    exact = sum(float(pi[a]) * float(u[a]) * (torch.eye(3, dtype=torch.float64)[a] - pi) for a in range(3))
    n = 3
    import itertools
    mean = torch.zeros(3, dtype=torch.float64)
    for draw in itertools.product(range(3), repeat=n):
        prob = math.prod(float(pi[a]) for a in draw)
        ud = u[list(draw)]
        wd = score_weights(ud, baseline=True)
        mean += prob * sum(float(wd[k]) * (torch.eye(3, dtype=torch.float64)[a] - pi) for k, a in enumerate(draw))
    torch.testing.assert_close(mean, exact, rtol=0, atol=1e-12)


def test_utility_feedback_naive_direction_is_zero_and_exact_direction_is_the_hypergradient(beds):
    tb = beds["utility"]
    nu = some_nu(5)
    for estimator in ("sampled", "exact"):
        cfg = ParlConfig(env="ChainToy", feedback="utility", estimator=estimator, correction="exact")
        loop = TabularLoop(nu=nu, queries=torch.zeros(0, 2, dtype=torch.long))
        g1, g2, _ = tabular_direction(tb, nu, cfg, torch.Generator().manual_seed(0), loop)
        assert float(g1.abs().max()) == 0.0 and float(g2.norm()) > 0
    torch.testing.assert_close(g1 + g2, tb.exact_hypergradient(nu)["total"], rtol=0, atol=1e-10)


def test_exact_preference_direction_is_the_hypergradient(beds):
    tb = beds["preference"]
    nu = some_nu(6)
    cfg = ParlConfig(env="ChainToy", feedback="preference", estimator="exact", correction="exact")
    loop = TabularLoop(nu=nu, queries=torch.zeros(0, 2, dtype=torch.long))
    g1, g2, _ = tabular_direction(tb, nu, cfg, torch.Generator().manual_seed(0), loop)
    h = tb.exact_hypergradient(nu)
    torch.testing.assert_close(g1, h["direct"], rtol=0, atol=1e-10)
    torch.testing.assert_close(g2, h["correction"], rtol=0, atol=1e-10)


def test_utility_feedback_apparl_reaches_95_percent_naive_does_not_move(beds):
    tb = beds["utility"]
    soft_true = float(tb.true_return(tb.soft_value_iteration(tb.r_true)))
    for w in (1.0, 0.0):
        cfg = ParlConfig(env="ChainToy", feedback="utility", estimator="exact", correction="exact",
                         correction_weight=w)
        nu = torch.zeros(7, 3, dtype=torch.float64)
        start = float(tb.true_return(tb.soft_value_iteration(nu)))
        loop = TabularLoop(nu=nu, queries=torch.zeros(0, 2, dtype=torch.long))
        for _ in range(60):
            g1, g2, _ = tabular_direction(tb, nu, cfg, torch.Generator().manual_seed(0), loop)
            nu = nu + 0.5 * (g1 + w * g2)
        final = float(tb.true_return(tb.soft_value_iteration(nu)))
        if w:
            assert final >= 0.95 * tb.best_return and final > soft_true
        else:
            assert final == start


def test_tanh_squashed_log_prob_includes_the_change_of_variables():
    from classic_rl.sac import TanhGaussianActor
    torch.manual_seed(0)
    actor = TanhGaussianActor(4, 2, (8,))
    obs = torch.randn(3, 5, 4)
    u = torch.randn(3, 5, 2)
    actions = torch.tanh(u)
    mask = torch.ones(3, 5)
    mask[2, 3:] = 0
    got = segment_log_prob(actor, obs, actions, mask)
    mean, log_std = actor(obs)
    dist = torch.distributions.TransformedDistribution(torch.distributions.Normal(mean, log_std.exp()),
                                                       [torch.distributions.TanhTransform()])
    ref = (dist.log_prob(actions).sum(-1) * mask).sum(-1)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    gauss_only = (torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1) * mask).sum(-1)
    jac = (torch.log(1 - actions.pow(2)).sum(-1) * mask).sum(-1)
    torch.testing.assert_close(got, gauss_only - jac, rtol=1e-4, atol=1e-4)
    assert float((got - gauss_only).detach().abs().min()) > 0.1


def test_deep_unrolled_correction_equals_brute_force_autograd():
    from classic_rl.sac import TanhGaussianActor, tanh_gaussian_log_prob
    torch.manual_seed(1)
    N, L, ds, da, K, beta, gamma = 3, 4, 3, 2, 2, 0.7, 0.9
    actor = TanhGaussianActor(ds, da, (8,))
    reward = RewardEnsemble(K, ds + da, [8])
    obs = torch.randn(N, 2, L, ds)
    act = torch.tanh(torch.randn(N, 2, L, da))
    mask = torch.ones(N, 2, L)
    mask[0, 1, 2:] = 0
    U = torch.randn(N)
    got = deep_correction(actor, reward, obs, act, mask, U, beta, gamma)
    # brute force: theta'(psi) = theta + beta grad_theta Vhat(psi, theta); g2 = K d/dpsi [v . theta'(psi)]
    params = list(actor.parameters())
    o, a, m = obs.reshape(2 * N, L, ds), act.reshape(2 * N, L, da), mask.reshape(2 * N, L)
    w = score_weights(U, True).repeat_interleave(2)
    v = torch.autograd.grad((w * segment_log_prob(actor, o, a, m)).sum(), params)
    r = reward.mean_reward(o, a) * m
    G = torch.zeros_like(r)
    running = torch.zeros(2 * N)
    for t in reversed(range(L)):
        running = r[:, t] + gamma * running
        G[:, t] = running
    A = G - G.mean(0, keepdim=True)
    mean, log_std = actor(o)
    lp = tanh_gaussian_log_prob(torch.atanh(a.clamp(-1 + 1e-6, 1 - 1e-6)), mean, log_std) * m
    vhat = (lp * A).sum() / (2 * N)
    grad_theta = torch.autograd.grad(vhat, params, create_graph=True)
    s = beta * sum((g * vi).sum() for g, vi in zip(grad_theta, v))
    ref = torch.autograd.grad(s, list(reward.parameters()))
    for g, rg in zip(got, ref):
        torch.testing.assert_close(g, K * rg, rtol=1e-4, atol=1e-6)
    assert sum(float(g.abs().sum()) for g in got) > 0
