"""Finite MDPs with exact evaluation, value iteration and brute force over history-dependent policies.

A transition is an *outcome* o of (state, action): with probability P[s, a, o] the agent receives reward
reward[s, a, o] and moves to next_state[s, a, o]. Outcomes (rather than a dense P[s, a, s'] with a
deterministic R[s, a, s']) let one (s, a, s') carry several rewards, which the stock-augmentation examples
need (e.g. "step 1 pays 0 or 10 and lands in the same state").

Episodes end when a `terminal` state is entered (no reward afterwards) or after `horizon` steps
(truncation: no reward afterwards either, since the horizon is part of the problem here). `horizon=None`
means an infinite-horizon discounted MDP (gamma < 1 required).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Callable, Optional

import numpy as np
import torch

from classic_rl import UserError

# Rounding used to identify equal return values in brute force and stock memoization; floating-point noise
# below this would otherwise duplicate atoms / augmented states.
VALUE_DECIMALS = 9


@dataclasses.dataclass
class FiniteMDP:
    P: torch.Tensor
    """[S, A, O] probability of outcome o after action a in state s (rows sum to 1)"""
    next_state: torch.Tensor
    """[S, A, O] long: the state an outcome leads to"""
    reward: torch.Tensor
    """[S, A, O] the reward an outcome pays"""
    mu0: torch.Tensor
    """[S] initial state distribution"""
    terminal: torch.Tensor
    """[S] bool: entering one of these ends the episode"""
    gamma: float = 1.0
    """discount factor"""
    horizon: Optional[int] = None
    """number of steps per episode (None = infinite horizon, needs gamma < 1)"""
    name: str = "mdp"
    action_names: tuple = ()

    def __post_init__(self):
        self.P = self.P.double()
        self.reward = self.reward.double()
        self.mu0 = self.mu0.double()
        self.next_state = self.next_state.long()
        self.terminal = self.terminal.bool()
        S, A, O = self.P.shape
        if self.next_state.shape != (S, A, O) or self.reward.shape != (S, A, O):
            raise UserError(f"next_state/reward must have shape {(S, A, O)}")
        if (self.P < 0).any() or not torch.allclose(self.P.sum(-1), torch.ones(S, A, dtype=torch.float64)):
            raise UserError("P[s, a, :] must be a probability vector for every (s, a)")
        if not math.isclose(float(self.mu0.sum()), 1.0, abs_tol=1e-9):
            raise UserError("mu0 must sum to 1")
        if self.horizon is None and not self.gamma < 1:
            raise UserError("an infinite-horizon MDP needs gamma < 1")
        if not 0 < self.gamma <= 1:
            raise UserError(f"gamma must be in (0, 1], got {self.gamma}")

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]

    @classmethod
    def from_dense(cls, P: torch.Tensor, R: torch.Tensor, **kw) -> "FiniteMDP":
        """Build from a dense kernel P[s, a, s'] and a reward R[s, a, s'] (or R[s, a])."""
        S, A, _ = P.shape
        if R.dim() == 2:
            R = R[:, :, None].expand(S, A, S)
        nxt = torch.arange(S).expand(S, A, S).clone()
        return cls(P=P, next_state=nxt, reward=R, **kw)

    def to(self, device) -> "FiniteMDP":
        return dataclasses.replace(self, P=self.P.to(device), next_state=self.next_state.to(device),
                                   reward=self.reward.to(device), mu0=self.mu0.to(device),
                                   terminal=self.terminal.to(device))

    # ----- exact evaluation of Markov policies -------------------------------------------------------
    def _continue(self) -> torch.Tensor:
        """[S, A, O] 1 where the outcome does not end the episode."""
        return (~self.terminal[self.next_state]).double()

    def q_from_v(self, v_next: torch.Tensor) -> torch.Tensor:
        """Q[s, a] = E[r + gamma * V(s') * not_terminal(s')] for a value vector v_next[S]."""
        return (self.P * (self.reward + self.gamma * self._continue() * v_next[self.next_state])).sum(-1)

    def evaluate(self, policy: torch.Tensor) -> torch.Tensor:
        """Exact expected return of a Markov policy.

        Finite horizon: policy [H, S, A] (or [S, A], used at every step) -> V [H + 1, S], V[H] = 0.
        Infinite horizon: policy [S, A] -> V [S], by solving the linear Bellman system.
        """
        policy = policy.double()
        if self.horizon is None:
            r_pi = (policy * (self.P * self.reward).sum(-1)).sum(-1)
            S = self.n_states
            P_pi = torch.zeros(S, S, dtype=torch.float64, device=self.P.device)
            w = policy[:, :, None] * self.P * self._continue()
            rows = torch.arange(S, device=self.P.device)[:, None, None].expand_as(w)
            P_pi.index_put_((rows, self.next_state), w, accumulate=True)
            return torch.linalg.solve(torch.eye(S, dtype=torch.float64, device=self.P.device) - self.gamma * P_pi, r_pi)
        H = self.horizon
        if policy.dim() == 2:
            policy = policy.expand(H, *policy.shape)
        V = torch.zeros(H + 1, self.n_states, dtype=torch.float64, device=self.P.device)
        for t in reversed(range(H)):
            V[t] = (policy[t] * self.q_from_v(V[t + 1])).sum(-1)
        return V

    def value_iteration(self, tol: float = 1e-12, max_iter: int = 100_000):
        """Optimal values and a greedy deterministic policy.

        Finite horizon: backward induction -> (V [H + 1, S], actions [H, S]).
        Infinite horizon: value iteration to `tol` -> (V [S], actions [S]).
        """
        if self.horizon is None:
            V = torch.zeros(self.n_states, dtype=torch.float64, device=self.P.device)
            for _ in range(max_iter):
                Q = self.q_from_v(V)
                V_new = Q.max(-1).values
                if (V_new - V).abs().max() < tol:
                    V = V_new
                    break
                V = V_new
            return V, self.q_from_v(V).argmax(-1)
        H = self.horizon
        V = torch.zeros(H + 1, self.n_states, dtype=torch.float64, device=self.P.device)
        acts = torch.zeros(H, self.n_states, dtype=torch.long, device=self.P.device)
        for t in reversed(range(H)):
            Q = self.q_from_v(V[t + 1])
            V[t], acts[t] = Q.max(-1)
        return V, acts

    # ----- batched sampling (runs on the MDP's device) -----------------------------------------------
    def sample_initial(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.multinomial(self.mu0.expand(n, -1), 1, generator=generator).squeeze(-1)

    def sample_step(self, s: torch.Tensor, a: torch.Tensor, generator: torch.Generator | None = None):
        """One step for a batch: returns (next_state, reward, entered_terminal)."""
        o = torch.multinomial(self.P[s, a], 1, generator=generator).squeeze(-1)
        s2 = self.next_state[s, a, o]
        return s2, self.reward[s, a, o], self.terminal[s2]


def onehot_policy(actions: torch.Tensor, n_actions: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(actions, n_actions).double()


# ----- brute force over deterministic history-dependent policies ------------------------------------
Dist = tuple  # a return distribution as a sorted tuple of (value, prob) pairs


def _mix(parts: list[tuple[float, float, float, Dist]], gamma: float) -> Dist:
    """Law of r + gamma * G' mixed over outcomes (prob, reward, _, law of G')."""
    acc: dict[float, float] = {}
    for p, r, _, dist in parts:
        for g, q in dist:
            v = round(r + gamma * g, VALUE_DECIMALS)
            acc[v] = acc.get(v, 0.0) + p * q
    return tuple(sorted((v, round(q, 14)) for v, q in acc.items()))


def achievable_return_laws(mdp: FiniteMDP, max_laws: int = 200_000) -> list[Dist]:
    """Every law of G_0 that some deterministic history-dependent policy achieves (finite horizon).

    Enumerates the history tree: at each history the policy picks an action, and different outcomes
    are different histories, so the sub-policies after each outcome are chosen independently (the
    cartesian product below). The set of achievable continuation laws depends on the history only
    through (state, t), which is what makes memoizing on (state, t) exact. Deterministic policies
    suffice for every objective here: expected utilities are linear in the law and CVaR is convex in it
    (a max of linear functions), so a randomized policy never beats the best deterministic one.
    """
    if mdp.horizon is None:
        raise UserError("brute force needs a finite horizon")
    P, nxt, rew, term = mdp.P.numpy(), mdp.next_state.numpy(), mdp.reward.numpy(), mdp.terminal.numpy()
    memo: dict[tuple[int, int], list[Dist]] = {}

    def laws(s: int, t: int) -> list[Dist]:
        if (s, t) in memo:
            return memo[(s, t)]
        out: set[Dist] = set()
        for a in range(mdp.n_actions):
            branches = []
            for o in np.flatnonzero(P[s, a] > 0):
                s2, r = int(nxt[s, a, o]), float(rew[s, a, o])
                ends = bool(term[s2]) or t + 1 == mdp.horizon
                branches.append([(float(P[s, a, o]), r, s2, d) for d in ([((0.0, 1.0),)] if ends else laws(s2, t + 1))])
            n = math.prod(len(b) for b in branches)
            if n > max_laws:
                raise UserError(f"brute force would enumerate {n} policies at (s={s}, t={t}); MDP too large")
            for combo in itertools.product(*branches):
                out.add(_mix(list(combo), mdp.gamma))
        memo[(s, t)] = sorted(out)
        return memo[(s, t)]

    starts = [int(s) for s in np.flatnonzero(mdp.mu0.numpy() > 0)]
    per_start = [[(float(mdp.mu0[s]), 0.0, s, d) for d in laws(s, 0)] for s in starts]
    result = {_mix(list(c), 1.0) for c in itertools.product(*per_start)}
    return sorted(result)


def brute_force_best(mdp: FiniteMDP, objective: Callable[[np.ndarray, np.ndarray], float]) -> tuple[float, Dist]:
    """max over deterministic history-dependent policies of objective(values, probs) of the law of G_0."""
    best, arg = -math.inf, None
    for law in achievable_return_laws(mdp):
        v, p = np.array([x for x, _ in law]), np.array([q for _, q in law])
        val = objective(v, p)
        if val > best:
            best, arg = val, law
    return best, arg
