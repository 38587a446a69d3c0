"""Exact bilevel testbed for PARL / A-PARL: a finite-horizon tabular MDP, a tabular learned reward r_nu, an
entropy-regularized soft-optimal lower level solved exactly, and every trajectory enumerated exactly.

The chain toy (`chain_toy`): 7 states in a row, start in the middle, actions L / S / R (move left, stay, move
right; moves into a wall stay), horizon H = 6, no discount. The true reward is paid for the state entered:
+1 at the right end, +0.4 at the left end (a bait: closer, smaller), -0.05 anywhere else. The best of the
3^6 = 729 trajectories is R R R S S S (or any stay-at-the-right tail): -0.05 - 0.05 + 1 + 1 + 1 + 1 = 3.9.

Bilevel problem (notation of docs/parl.md):

    lower:  pi_nu = argmax_pi  E_pi[ sum_t gamma^t ( r_nu(s_t, a_t) - tau_ent log pi(a_t | s_t, t) ) ]
    upper:  max_nu  F(nu) = E_{y ~ rho(.; pi_nu)}[ U(nu, y) ]

r_nu(s, a) = nu[s, a] (|S| |A| = 21 parameters). The lower level's unique solution is the time-dependent
soft-optimal policy of soft value iteration (V_H = 0):

    Q_t(s, a) = r_nu(s, a) + gamma sum_s' P(s' | s, a) V_{t+1}(s')
    V_t(s)    = tau_ent log sum_a exp(Q_t(s, a) / tau_ent)
    log pi_t(a | s) = (Q_t(s, a) - V_t(s)) / tau_ent

which is a differentiable function of nu (here by autograd, and by the forward recursion of the spec in
`policy_jacobian`: dQ_t = dr + gamma P dV_{t+1}, dV_t = sum_a pi_t dQ_t, d log pi_t = (dQ_t - dV_t) / tau_ent).

Feedback (U):
* utility:    y is one trajectory, U(y) = its true return sum_t gamma^t r*(s_t, a_t) (does not depend on nu);
* preference: y = (sigma0, sigma1) is a pair of independent trajectories of pi_nu (segments = whole
  trajectories), labelled by the scripted teacher o = 1[R*(sigma1) > R*(sigma0)] (1/2 on ties), and
  U(nu, y) = o log P_nu(sigma1 > sigma0) + (1 - o) log P_nu(sigma0 > sigma1) with the Bradley-Terry model
  P_nu(sigma1 > sigma0) = sigmoid(R_nu(sigma1) - R_nu(sigma0)), R_nu(sigma) = sum_t gamma^t r_nu(s_t, a_t).

Exact F: trajectory probabilities rho_nu(y) = mu0(s_0) prod_t pi_t(a_t | s_t) P(s_{t+1} | s_t, a_t) over the
enumerated trajectories; F = sum_y rho_nu(y) U(y) (utility) or sum_{i,j} rho_i rho_j U_ij(nu) (preference).
Its exact hypergradient splits into

    direct term:          E_y[ grad_nu U(nu, y) ]                               (what PEBBLE-style learning uses)
    implicit correction:  E_y[ U(nu, y) grad_nu log rho(y; pi_nu) ]
                          = J(nu)^T E_y[ U grad_theta log rho(y; theta) ] at theta = theta*(nu)

with J = d theta*/d nu; `exact_hypergradient` computes both by autograd through soft value iteration;
tests check them against central finite differences of F. `lower_objective(theta, nu)` is the lower
objective of a logit policy theta[t, s, a] by exact occupancy propagation, the function whose Hessian the
conjugate-gradient (implicit function theorem) and one-step unrolled corrections of algos/parl.py use.

True rewards are r*(s, a) = E[reward of the outcome]; the testbed needs a finite horizon and no terminal
states (every trajectory has H steps), and enumerates all trajectories, so it is meant for small MDPs
(A^H branches times the stochastic branching; the chain has 729). Everything is float64 on `device`.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from classic_rl import UserError
from envs.tabular.finite_mdp import FiniteMDP

LEFT, STAY, RIGHT = 0, 1, 2
MAX_TRAJECTORIES = 200_000


def chain_toy(n_states: int = 7, horizon: int = 6, right_reward: float = 1.0, left_reward: float = 0.4,
              step_reward: float = -0.05) -> FiniteMDP:
    """The PARL chain: start in the middle, L/S/R moves, reward for the state entered (right end +1, left end
    +0.4, elsewhere -0.05), deterministic, finite horizon, gamma = 1."""
    if n_states < 3:
        raise UserError(f"the chain needs at least 3 states, got {n_states}")
    if horizon < 1:
        raise UserError(f"the horizon must be >= 1, got {horizon}")
    S, A = n_states, 3
    P = torch.ones(S, A, 1, dtype=torch.float64)
    nxt = torch.zeros(S, A, 1, dtype=torch.long)
    rew = torch.zeros(S, A, 1, dtype=torch.float64)
    for s in range(S):
        for a in range(A):
            s2 = min(max(s + a - 1, 0), S - 1)
            nxt[s, a, 0] = s2
            rew[s, a, 0] = right_reward if s2 == S - 1 else left_reward if s2 == 0 else step_reward
    mu0 = torch.zeros(S, dtype=torch.float64)
    mu0[S // 2] = 1.0
    return FiniteMDP(P=P, next_state=nxt, reward=rew, mu0=mu0, terminal=torch.zeros(S, dtype=torch.bool),
                     gamma=1.0, horizon=horizon, name="ChainToy", action_names=("L", "S", "R"))


def bradley_terry_loglik(r0: torch.Tensor, r1: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """U = o log sigmoid(r1 - r0) + (1 - o) log sigmoid(r0 - r1), elementwise (o = P(sigma1 preferred))."""
    d = r1 - r0
    return F.logsigmoid(d) - (1 - label) * d  # log sigmoid(-d) = log sigmoid(d) - d


def teacher_label(true0: torch.Tensor, true1: torch.Tensor) -> torch.Tensor:
    """Scripted (B-Pref 'oracle') teacher: 1 if sigma1 has the higher true return, 0 if lower, 1/2 on ties."""
    return (true1 > true0).double() + 0.5 * (true1 == true0).double()


def conjugate_gradient(matvec, b: torch.Tensor, iters: int, tol: float = 1e-12,
                       precondition=None) -> tuple[torch.Tensor, dict]:
    """Solve A x = b for a symmetric positive (semi)definite A given only x -> A x (never forming A), by
    (preconditioned) conjugate gradient; `precondition(r)` applies M^{-1} (M ~ A, symmetric positive).
    Stops after `iters` iterations or when ||r|| <= tol ||b||. Returns x and {iterations, rel_residual}."""
    apply_m = precondition or (lambda r: r)
    x = torch.zeros_like(b)
    r = b.clone()
    z = apply_m(r)
    p = z.clone()
    rz = (r * z).sum()
    b_norm = b.norm().clamp_min(1e-300)
    k = 0
    for k in range(1, iters + 1):
        if float(r.norm()) <= tol * float(b_norm):
            k -= 1
            break
        Ap = matvec(p)
        alpha = rz / (p * Ap).sum()
        x = x + alpha * p
        r = r - alpha * Ap
        z = apply_m(r)
        rz_new = (r * z).sum()
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, {"iterations": k, "rel_residual": float(r.norm() / b_norm)}


class BilevelTestbed:
    """Exact PARL bilevel problem on a finite-horizon tabular MDP with a tabular reward nu[s, a]."""

    def __init__(self, mdp: FiniteMDP, tau_ent: float = 0.3,
                 feedback: Literal["utility", "preference"] = "preference", device: str | torch.device = "cpu"):
        if mdp.horizon is None:
            raise UserError("the PARL testbed needs a finite-horizon MDP")
        if bool(mdp.terminal.any()):
            raise UserError("the PARL testbed needs an MDP without terminal states (every trajectory has H steps)")
        if tau_ent <= 0:
            raise UserError(f"tau_ent must be positive, got {tau_ent}")
        if feedback not in ("utility", "preference"):
            raise UserError(f"feedback must be utility or preference, got {feedback!r}")
        self.device = torch.device(device)
        mdp = mdp.to(self.device)
        self.mdp, self.tau, self.feedback = mdp, float(tau_ent), feedback
        self.S, self.A, self.H, self.gamma = mdp.n_states, mdp.n_actions, int(mdp.horizon), float(mdp.gamma)
        S, A = self.S, self.A
        P = torch.zeros(S, A, S, dtype=torch.float64, device=self.device)
        P.scatter_add_(2, mdp.next_state, mdp.P)
        self.P = P                                              # [S, A, S']
        self.r_true = (mdp.P * mdp.reward).sum(-1)              # [S, A]
        self.mu0 = mdp.mu0
        self._enumerate()
        self.discounts = self.gamma ** torch.arange(self.H, dtype=torch.float64, device=self.device)
        K = S * A
        sa = self.states * A + self.actions                     # [N, H] flat (s, a) index
        self.sa = sa
        self.phi = torch.zeros(self.n_traj, K, dtype=torch.float64, device=self.device)
        self.phi.scatter_add_(1, sa, self.discounts.expand(self.n_traj, -1).contiguous())
        self.true_returns = self.phi @ self.r_true.reshape(-1)  # [N]
        self.best_return = float(self.true_returns.max())
        self.labels = teacher_label(self.true_returns[:, None], self.true_returns[None, :])  # [i, j]: o for (i, j)

    # ------------------------------------------------------------------ trajectories
    def _enumerate(self) -> None:
        """All trajectories with positive probability under a full-support policy: states/actions [N, H],
        log of the environment's part of their probability [N]."""
        start = torch.nonzero(self.mu0 > 0).flatten()
        states = start[:, None]
        actions = torch.zeros(len(start), 0, dtype=torch.long, device=self.device)
        log_env = self.mu0[start].log()
        for t in range(self.H):
            probs = self.P[states[:, -1]]                       # [n, A, S']
            idx = torch.nonzero(probs > 0)                      # (trajectory, a, s')
            if len(idx) > MAX_TRAJECTORIES:
                raise UserError(f"the testbed enumerates every trajectory; this MDP has more than "
                                f"{MAX_TRAJECTORIES} (horizon {self.H}, {self.A} actions)")
            i, a, s2 = idx[:, 0], idx[:, 1], idx[:, 2]
            log_env = log_env[i] + probs[i, a, s2].log()
            actions = torch.cat([actions[i], a[:, None]], 1)
            states = torch.cat([states[i], s2[:, None]], 1) if t + 1 < self.H else states[i]
        self.states, self.actions, self.log_env = states, actions, log_env
        self.n_traj = states.shape[0]

    # ------------------------------------------------------------------ lower level
    def soft_value_iteration(self, nu: torch.Tensor) -> torch.Tensor:
        """log pi_nu [H, S, A] of the soft-optimal policy for reward nu [S, A] (differentiable in nu)."""
        V = torch.zeros(self.S, dtype=torch.float64, device=self.device)
        logpi = []
        for _ in range(self.H):
            Q = nu + self.gamma * self.P @ V
            V = self.tau * torch.logsumexp(Q / self.tau, -1)
            logpi.append((Q - V[:, None]) / self.tau)
        return torch.stack(logpi[::-1])

    def policy_jacobian(self, nu: torch.Tensor) -> torch.Tensor:
        """d log pi_t(a | s) / d nu [H, S, A, S*A] by forward differentiation of the soft Bellman recursion:
        dQ_t = e_(s,a) + gamma P dV_{t+1},  dV_t = sum_a pi_t dQ_t,  d log pi_t = (dQ_t - dV_t) / tau_ent."""
        S, A, K = self.S, self.A, self.S * self.A
        logpi = self.soft_value_iteration(nu.detach())
        eye = torch.eye(K, dtype=torch.float64, device=self.device).reshape(S, A, K)
        dV = torch.zeros(S, K, dtype=torch.float64, device=self.device)
        out = []
        for t in reversed(range(self.H)):
            dQ = eye + self.gamma * torch.einsum("sap,pk->sak", self.P, dV)
            pi = logpi[t].exp()
            dV = torch.einsum("sa,sak->sk", pi, dQ)
            out.append((dQ - dV[:, None, :]) / self.tau)
        return torch.stack(out[::-1])

    def lower_objective(self, theta: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
        """V(nu, theta) = E_{pi_theta}[sum_t gamma^t (r_nu - tau_ent log pi_theta)] for logits theta [H, S, A],
        by exact state-occupancy propagation d_{t+1}(s') = sum_{s,a} d_t(s) pi_t(a|s) P(s'|s,a)."""
        logpi = torch.log_softmax(theta, -1)
        pi = logpi.exp()
        d = self.mu0
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        for t in range(self.H):
            total = total + self.discounts[t] * (d[:, None] * pi[t] * (nu - self.tau * logpi[t])).sum()
            d = torch.einsum("s,sa,sap->p", d, pi[t], self.P)
        return total

    def occupancy(self, logpi: torch.Tensor) -> torch.Tensor:
        """d_t(s) [H, S]: probability of being in s at step t under the policy log pi [H, S, A]."""
        pi = logpi.exp()
        d = [self.mu0]
        for t in range(self.H - 1):
            d.append(torch.einsum("s,sa,sap->p", d[-1], pi[t], self.P))
        return torch.stack(d)

    # ------------------------------------------------------------------ trajectory laws and returns
    def log_traj_probs(self, logpi: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """log rho(y) of the enumerated trajectories (or those in idx) under the policy log pi [H, S, A]."""
        states = self.states if idx is None else self.states[idx]
        actions = self.actions if idx is None else self.actions[idx]
        log_env = self.log_env if idx is None else self.log_env[idx]
        t = torch.arange(self.H, device=self.device)
        return logpi[t, states, actions].sum(-1) + log_env

    def reward_returns(self, nu: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """R_nu(y) = sum_t gamma^t nu[s_t, a_t] of the enumerated trajectories (or those in idx)."""
        phi = self.phi if idx is None else self.phi[idx]
        return phi @ nu.reshape(-1)

    def true_return(self, logpi: torch.Tensor) -> torch.Tensor:
        """Exact expected true return of the policy log pi [H, S, A]."""
        return (self.log_traj_probs(logpi).exp() * self.true_returns).sum()

    def utilities(self, nu: torch.Tensor) -> torch.Tensor:
        """U(nu, y) over the support: [N] (utility) or [N, N] with U[i, j] for the pair (sigma0=i, sigma1=j)."""
        if self.feedback == "utility":
            return self.true_returns + 0.0 * nu.sum()
        R = self.reward_returns(nu)
        return bradley_terry_loglik(R[:, None], R[None, :], self.labels)

    def objective(self, nu: torch.Tensor, detach_policy: bool = False, detach_utility: bool = False) -> torch.Tensor:
        """Exact F(nu); with detach_policy the trajectory law is held fixed (gives the direct term), with
        detach_utility U is held fixed (gives the implicit correction)."""
        p = self.log_traj_probs(self.soft_value_iteration(nu)).exp()
        U = self.utilities(nu)
        if detach_policy:
            p = p.detach()
        if detach_utility:
            U = U.detach()
        return p @ U if U.dim() == 1 else p @ U @ p

    def exact_hypergradient(self, nu: torch.Tensor) -> dict[str, torch.Tensor]:
        """{'direct', 'correction', 'total'} of grad F(nu), [S, A] each, by autograd through soft VI."""
        out = {}
        for name, kw in (("direct", dict(detach_policy=True)), ("correction", dict(detach_utility=True))):
            x = nu.detach().clone().requires_grad_(True)
            out[name] = torch.autograd.grad(self.objective(x, **kw), x, allow_unused=True)[0]
            if out[name] is None:
                out[name] = torch.zeros_like(nu)
        out["total"] = out["direct"] + out["correction"]
        return out

    def finite_difference_gradient(self, nu: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
        """Central finite differences of the exact F(nu), one coordinate at a time."""
        g = torch.zeros_like(nu)
        flat = g.reshape(-1)
        with torch.no_grad():
            for k in range(nu.numel()):
                e = torch.zeros_like(nu).reshape(-1)
                e[k] = eps
                e = e.reshape(nu.shape)
                flat[k] = (self.objective(nu + e) - self.objective(nu - e)) / (2 * eps)
        return g

    # ------------------------------------------------------------------ estimators
    def exact_trajectory_weights(self, nu: torch.Tensor, logpi: torch.Tensor, baseline: bool = True):
        """Weights w_y with E_y[(U - b) grad log rho(y)] = sum_y w_y grad log rho(y) over the support
        (for pairs each trajectory collects the weight of both of its roles); b = E[U] when `baseline`."""
        with torch.no_grad():
            p = self.log_traj_probs(logpi).exp()
            U = self.utilities(nu)
            if U.dim() == 1:
                b = (p @ U) if baseline else 0.0
                return p * (U - b)
            b = (p @ U @ p) if baseline else 0.0
            return p * ((U - b) @ p + (U - b).T @ p)

    def score_vector(self, theta: torch.Tensor, idx: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """v = sum_n weights_n grad_theta log rho(y_n; theta) for logits theta [H, S, A] and trajectory indices
        idx [n] (a pair contributes both of its trajectories with the pair's weight)."""
        th = theta.detach().clone().requires_grad_(True)
        logp = self.log_traj_probs(torch.log_softmax(th, -1), idx)
        return torch.autograd.grad((weights * logp).sum(), th)[0]

    def sample_trajectories(self, logpi: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        """n independent trajectory indices drawn exactly from rho(.; pi)."""
        p = self.log_traj_probs(logpi).exp()
        return torch.multinomial(p, n, replacement=True, generator=generator)
