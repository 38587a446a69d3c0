"""DR-RPO: robust duals vs direct minimization, update/bonus formulas, the linear MDPs, the rho threshold."""
import json

import numpy as np
import pytest
import scipy.optimize
import torch

from algos import dr_rpo
from envs.linear_mdp import american_put, analytic_lines, optimal_stopping_value, simulated_linear_mdp


@pytest.fixture(autouse=True)
def _one_thread_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # training runs write their run directories under ./runs
    old = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny tensors: extra threads only add contention
    yield
    torch.set_num_threads(old)


def _random_instance(rng, S):
    mu0 = rng.dirichlet(np.ones(S))
    mu0[rng.random(S) < 0.3] = 0.0        # some states the nominal factor never visits
    mu0 = mu0 / mu0.sum() if mu0.sum() > 0 else np.full(S, 1 / S)
    return mu0, rng.uniform(0, 3, S)


def _tv_lp(mu0, V, rho):
    """min_mu mu.V s.t. mu in simplex, 0.5 ||mu - mu0||_1 <= rho, as an LP in (mu, t) with t >= |mu - mu0|."""
    S = len(V)
    c = np.concatenate([V, np.zeros(S)])
    I = np.eye(S)
    A_ub = np.block([[I, -I], [-I, -I], [np.zeros((1, S)), 0.5 * np.ones((1, S))]])
    b_ub = np.concatenate([mu0, -mu0, [rho]])
    A_eq = np.concatenate([np.ones(S), np.zeros(S)])[None]
    res = scipy.optimize.linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=[1.0], bounds=[(0, None)] * (2 * S))
    assert res.success
    return res.fun


def test_tv_dual_equals_linear_program_over_the_uncertainty_set():
    rng = np.random.default_rng(0)
    for trial in range(30):
        S = int(rng.integers(2, 8))
        mu0, V = _random_instance(rng, S)
        rho = float(rng.choice([0.0, 0.05, 0.3, 0.7, 1.0]))
        dual = dr_rpo.tv_dual(torch.tensor(mu0)[None], torch.tensor(V), torch.tensor([rho]),
                              float(V.min()), float(V.max()))
        assert dual.item() == pytest.approx(_tv_lp(mu0, V, rho), abs=1e-7), (trial, rho)


def test_kl_dual_equals_direct_minimization_over_the_kl_ball():
    rng = np.random.default_rng(1)
    for trial in range(12):
        S = int(rng.integers(2, 6))
        mu0 = rng.dirichlet(np.ones(S))           # full support: the KL ball is then a smooth problem
        V = rng.uniform(0, 3, S)
        rho = float(rng.choice([0.01, 0.1, 0.5, 2.0]))
        cons = [{"type": "eq", "fun": lambda m: m.sum() - 1},
                {"type": "ineq", "fun": lambda m: rho - np.sum(m * np.log(np.maximum(m, 1e-300) / mu0))}]
        best = min(scipy.optimize.minimize(lambda m: m @ V, x0, constraints=cons, bounds=[(0, 1)] * S,
                                           method="SLSQP", options={"ftol": 1e-12, "maxiter": 500}).fun
                   for x0 in (mu0, np.full(S, 1 / S)))
        dual = dr_rpo.kl_dual(torch.tensor(mu0)[None], torch.tensor(V), torch.tensor([rho])).item()
        assert dual == pytest.approx(best, abs=2e-5), (trial, rho)
    # rho = 0 is the nominal expectation
    assert dr_rpo.kl_dual(torch.tensor(mu0)[None], torch.tensor(V), torch.tensor([0.0])).item() == \
        pytest.approx(float(mu0 @ V), abs=1e-12)


def test_tv_dual_with_ridge_weights_is_the_exact_max_over_alpha():
    # estimated weights can be negative, so the objective in alpha is not concave: compare to a dense grid
    g = torch.Generator().manual_seed(2)
    W = torch.randn(3, 4, 9, generator=g, dtype=torch.float64) * 0.3
    V = torch.rand(3, 9, generator=g, dtype=torch.float64) * 2
    rho = torch.tensor([0.0, 0.2, 0.5, 0.9], dtype=torch.float64)
    got = dr_rpo.tv_dual(W, V, rho.expand(3, -1), 0.0, 2.0)
    alpha = torch.linspace(0, 2, 200_001, dtype=torch.float64)
    for r in range(3):
        z = torch.einsum("dn,na->da", W[r], torch.minimum(V[r][:, None], alpha[None]))
        grid_best = (z - rho[:, None] * alpha[None]).max(-1).values
        assert (got[r] >= grid_best - 1e-12).all()
        torch.testing.assert_close(got[r], grid_best, rtol=0, atol=1e-4)


def test_mirror_descent_step_solves_its_regularized_problem():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(5, generator=g, dtype=torch.float64)
    Q = torch.rand(5, generator=g, dtype=torch.float64)
    log_ref = torch.log_softmax(torch.randn(5, generator=g, dtype=torch.float64), -1)
    eta, tau = 2.0, 0.3
    pk = torch.softmax(logits, -1).numpy()
    ref = log_ref.exp().numpy()

    def neg_objective(x):
        p = np.exp(x - x.max())
        p /= p.sum()
        return -(p @ Q.numpy() - tau * np.sum(p * np.log(p / ref)) - np.sum(p * np.log(p / pk)) / eta)

    res = scipy.optimize.minimize(neg_objective, np.zeros(5), method="BFGS", options={"gtol": 1e-10})
    p_num = np.exp(res.x - res.x.max())
    p_num /= p_num.sum()
    p_closed = dr_rpo.mirror_descent(logits, Q, log_ref, eta, tau).exp().numpy()
    np.testing.assert_allclose(p_closed, p_num, atol=1e-6)
    # tau = 0 is OPPO's multiplicative-weights step
    np.testing.assert_allclose(dr_rpo.mirror_descent(logits, Q, log_ref, eta, 0.0).exp().numpy(),
                               pk * np.exp(eta * Q.numpy()) / (pk * np.exp(eta * Q.numpy())).sum(), atol=1e-12)


def test_bonus_formulas_by_explicit_loops():
    g = torch.Generator().manual_seed(4)
    phi = torch.rand(3, 2, 4, generator=g, dtype=torch.float64)
    M = torch.randn(2, 4, 4, generator=g, dtype=torch.float64)
    lam_inv = torch.linalg.inv(M @ M.transpose(1, 2) + torch.eye(4, dtype=torch.float64))
    d_rect = dr_rpo.bonus(phi, lam_inv, 0.7, d_rectangular=True)
    lsvi = dr_rpo.bonus(phi, lam_inv, 0.7, d_rectangular=False)
    for r in range(2):
        for s in range(3):
            for a in range(2):
                f = phi[s, a]
                assert d_rect[r, s, a].item() == pytest.approx(
                    0.7 * sum(f[i].item() * lam_inv[r, i, i].sqrt().item() for i in range(4)))
                assert lsvi[r, s, a].item() == pytest.approx(0.7 * (f @ lam_inv[r] @ f).sqrt().item())


def test_linear_mdp_kernel_analytic_lines_and_worst_case_equals_test_shift():
    mdp = simulated_linear_mdp()
    K = mdp.kernel(0.0)
    torch.testing.assert_close(K.sum(-1), torch.ones_like(K.sum(-1)))
    lines = analytic_lines(mdp)
    # hand computation, p = 0.4 under +1: V(x2, step 2) = p + (1-p) 0.999 p + p * 1 (x5, one step left)
    v2 = 0.4 + 0.6 * 0.999 * 0.4 + 0.4 * 1
    for q in (0.0, 0.5, 1.0):
        assert lines["non_robust"](q) == pytest.approx(0.6 * 0.999 * v2 + 0.4 * 2 * (1 - q), abs=1e-12)
    assert lines["rho_star"] == pytest.approx(1 - 0.999 * v2 / 2, abs=1e-12)
    # the TV adversary on (step 1, factor 4) with the fail state as minimum is exactly the test shift q = rho
    g = torch.Generator().manual_seed(5)
    pol = torch.softmax(torch.randn(4, 3, 5, 16, generator=g, dtype=torch.float64), -1)
    log_ref = torch.full((3, 5, 16), -np.log(16), dtype=torch.float64)
    for rho in (0.0, 0.3, 0.8):
        robust = dr_rpo.robust_policy_value(mdp, pol, rho * mdp.rho_mask, 0.0, log_ref)
        torch.testing.assert_close(robust, mdp.expected_return(pol, rho), rtol=0, atol=1e-12)
        v_star = dr_rpo.robust_policy_value(mdp, pol, rho * mdp.rho_mask, 0.002, log_ref, optimal=True)
        assert (v_star >= dr_rpo.robust_policy_value(mdp, pol, rho * mdp.rho_mask, 0.002, log_ref) - 1e-12).all()


def test_linear_mdp_rollouts_match_exact_evaluation():
    mdp = simulated_linear_mdp()
    pol = torch.softmax(torch.randn(2, 3, 5, 16, generator=torch.Generator().manual_seed(6),
                                    dtype=torch.float64), -1)
    G = mdp.rollout_returns(pol, 0.7, 20_000, torch.Generator().manual_seed(0))
    exact = mdp.expected_return(pol, 0.7)
    assert ((G.mean(-1) - exact).abs() < 4 * G.std(-1) / 20_000 ** 0.5).all()


def test_american_put_lattice_against_independent_binomial_tree():
    mdp = american_put(horizon=6, d=10, seed=3)
    s1 = 95.0 + 10.0 * torch.rand((), generator=torch.Generator().manual_seed(3), dtype=torch.float64).item()
    for p in (0.3, 0.5, 0.9):
        # textbook backward induction on explicit prices: value = max(exercise now, continue)
        vals = [max(0.0, 100 - s1 * 1.02 ** u * 0.98 ** (5 - u)) for u in range(6)]
        for h in reversed(range(5)):
            vals = [max(max(0.0, 100 - s1 * 1.02 ** u * 0.98 ** (h - u)), p * vals[u + 1] + (1 - p) * vals[u])
                    for u in range(h + 1)]
        assert optimal_stopping_value(mdp, p) == pytest.approx(vals[0], abs=1e-9)


def _learn(**kw):
    cfg = dr_rpo.DRRPOConfig(n_envs=20, eval_episodes=1, eval_every=0, progress=False, **kw)
    return dr_rpo.train(cfg)


def test_rho_threshold_and_analytic_lines_on_the_linear_mdp():
    lines = analytic_lines(simulated_linear_mdp())
    robust_hi = _learn(method="dr_rpo", rho=0.6)       # rho above rho* ~ 0.48
    robust_lo = _learn(method="dr_rpo", rho=0.3)       # rho below it
    oppo = _learn(method="oppo")
    # medians over replications: with beta = 1 a few runs still oscillate (optimism-driven)
    assert np.median(robust_hi["p_robust_action_at_x1"]) > 0.5     # the robust action dominates
    assert np.median(robust_lo["p_robust_action_at_x1"]) < 0.05    # below rho*: the non-robust action
    assert np.median(oppo["p_robust_action_at_x1"]) < 0.05
    for q in ("0.0", "0.5", "1.0"):
        assert abs(robust_lo["shifts"][q]["exact_mean"] - oppo["shifts"][q]["exact_mean"]) < 0.05
        assert abs(robust_hi["shifts"][q]["exact_mean"] - lines["robust"](float(q))) < 0.1
        assert abs(oppo["shifts"][q]["exact_mean"] - lines["non_robust"](float(q))) < 0.1
    # price of robustness at q = 0, gain under the large shift q = 1
    assert robust_hi["shifts"]["0.0"]["exact_mean"] < oppo["shifts"]["0.0"]["exact_mean"]
    assert robust_hi["shifts"]["1.0"]["exact_mean"] > oppo["shifts"]["1.0"]["exact_mean"] + 0.05
    # greedy baselines: most replications end exactly on the analytic lines' actions
    dr_lsvi, lsvi = _learn(method="dr_lsvi_ucb", rho=0.6), _learn(method="lsvi_ucb")
    assert np.mean(dr_lsvi["p_robust_action_at_x1"]) > 0.8 and np.mean(lsvi["p_robust_action_at_x1"]) < 0.2
    for q in ("0.0", "1.0"):
        assert dr_lsvi["shifts"][q]["exact_mean"] == pytest.approx(lines["robust"](float(q)), abs=0.05)
        assert lsvi["shifts"][q]["exact_mean"] == pytest.approx(lines["non_robust"](float(q)), abs=0.05)


def test_same_seed_same_numbers_and_kl_variant_runs():
    a = _learn(method="dr_rpo", total_steps=20, seed=7)
    b = _learn(method="dr_rpo", total_steps=20, seed=7)
    assert a["cumulative_regret"] == b["cumulative_regret"]
    assert a["headline"] == "worst_shift_test_return"
    # on the linear MDP every policy's least favourable test shift is q = 1 (it diverts the goal to the fail state)
    assert a["headline_value"] == pytest.approx(a["shifts"]["1.0"]["exact_mean"], abs=1e-12)
    kl = _learn(method="dr_rpo", total_steps=20, divergence="kl", rho=0.5)
    assert np.isfinite(kl["cumulative_regret"]).all() and kl["cumulative_regret"][-1] > 0


def test_cli_run_directory_and_bad_input(tmp_path, capsys):
    summary = dr_rpo.main(["--env", "AmericanPut", "--total-steps", "5", "--n-envs", "2",
                           "--eval-episodes", "10", "--run-dir", str(tmp_path), "--no-progress"])
    run = next((tmp_path / "dr_rpo" / "AmericanPut").iterdir())
    saved = json.loads((run / "summary.json").read_text())
    assert saved["shifts"].keys() == summary["shifts"].keys()
    for shift, row in saved["shifts"].items():   # no policy beats the oracle that knows the test p
        assert row["exact_mean"] <= row["oracle"] + 1e-9
    with pytest.raises(SystemExit):
        dr_rpo.main(["--rho", "1.5"])
    with pytest.raises(SystemExit):
        dr_rpo.main(["--env", "Nope"])


def test_regret_flattens_with_a_small_bonus_and_keeps_growing_with_a_large_one():
    # beta = 0.3 plateaus early; beta = 1 keeps paying for optimism-driven oscillation.
    # Judged per replication (median): at beta = 0.3 an occasional run (1 in 20 here) locks onto the wrong
    # action for good, which a mean over replications would turn into apparent linear regret.
    small = np.array(_learn(method="dr_rpo", rho=0.6, beta=0.3, total_steps=400)["cumulative_regret_per_replication"])
    large = np.array(_learn(method="dr_rpo", rho=0.6, beta=1.0, total_steps=400)["cumulative_regret_per_replication"])
    assert (np.diff(small, axis=0) >= -1e-9).all() and (np.diff(large, axis=0) >= -1e-9).all()  # V* >= V^pi
    small_growth, large_growth = small[399] - small[99], large[399] - large[99]
    assert np.median(small_growth) < 0.05 and np.mean(small_growth < 0.05) >= 0.75
    assert np.median(large_growth) > 0.5


def test_linear_mdp_gym_adapter():
    import gymnasium

    env = gymnasium.make("LinearMDP-v0")
    obs, info = env.reset(seed=0)
    assert obs.tolist() == [0, 0] and info["phi"].shape == (16, 4)
    total, steps = 0.0, 0
    while True:
        obs, r, term, trunc, _ = env.step(15)          # all +1: p = 0.4
        total, steps = total + r, steps + 1
        if term or trunc:
            break
    assert steps == 3 and obs[0] == 3
    assert total in (0.0, 0.4, 0.8, 1.0, 1.4, 2.0)       # the rewards reachable under all +1 (x1 pays 0)
