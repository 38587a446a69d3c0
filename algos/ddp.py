"""Distributional dynamic programming with stock augmentation (exact, tabular, finite horizon).

Paper: Ávila Pires et al., "Optimizing Return Distributions with Distributional Dynamic Programming",
arXiv 2501.13028 (2025). No public code exists; the DP below is derived from the definitions (exact
backward induction over the reachable stock-augmented states of a finite-horizon MDP).

The state is augmented with a stock c (C_0 = c_0, C_{t+1} = (C_t + R_{t+1}) / gamma), so that
c_0 + G_0 = gamma^t (C_t + G_t). The stock-augmented return law eta(s, t, c) = Law(c + G_t) obeys
    eta(s, t, c) = E_{a ~ pi(s,t,c), (R, S')}[ (x -> gamma x)_# eta(S', t + 1, (c + R) / gamma) ],
with eta = delta_{c + R} when the episode ends. Greedy w.r.t. an expected utility K(eta) = E f(X) gives
the maximum of E f(c_0 + G_0) over history-dependent policies when f's ranking is invariant to scaling
by gamma (always true with gamma = 1).

Representation (exact): the reachable augmented states (s, t, c) of a finite-horizon MDP are finite, and
by the invariant every law at time t is a law over gamma^{-t} (c_0 + x) for x in one global support X
(all achievable values of G_0). So each law is a probability vector over X, mixtures are exact, and one
graph built with c_0 = 0 serves every initial stock (c_0 only shifts the values), which lets the CVaR
outer search run all candidate c_0 as one batch.

Objectives: every optimizable one is an expected utility of the stock-augmented return, f(c_0 + G):
mean (f = x), CVaR_tau (Rockafellar-Uryasev: max_b b + E[min(G - b, 0)] / tau, i.e. f = min(x, 0) with an
outer search over c_0 = -b among the achievable returns), VaR (the largest b with P(G >= b) >= 1 - tau),
threshold P(G >= T) (f = 1{x >= 0}, c_0 = -T), homeostatic -|G - T| and -(G - T)^2, piecewise-linear and
exp-utility (gamma = 1 only: -exp(-lambda x) is not invariant to scaling by gamma). Mean-variance is rejected:
it is not an expected utility (not indifferent to mixtures) and greedy choices are time-inconsistent.
Pitfalls the code guards against: the stock update is c' = (c + r) / gamma (not c / gamma + r); the terminal
law is delta_{c + r}; stock keys are rounded (floating-point noise would duplicate states); the deployed policy
must carry the stock, and it is checked by Monte Carlo rollouts that do.

This is not a training algorithm: there is no loop, so it takes only the shared flags that mean something
without one (--env, --seed and --device of the Monte Carlo check, --eval-episodes = its episodes, --run-dir,
--torch-threads); --total-steps, --n-envs, --eval-every, --checkpoint-every, --resume, --track and --progress
are refused with the reason. The run directory still has the shared layout: config.json, one metrics row (the
size of the augmented state space), eval.csv (the Monte Carlo returns of the objective's optimal policy) and
summary.json with the shared schema (headline: the DP's optimal objective value).

Run: python -m algos.ddp --env CliffWalk --objective cvar --tau 0.1
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
from typing import Callable, Literal, Optional, Sequence

import numpy as np
import torch

from classic_rl import UserError
from classic_rl.config import RunConfig, parse_config, require, run_cli
from classic_rl.session import RunSession
from envs.tabular.finite_mdp import VALUE_DECIMALS, FiniteMDP
from envs.tabular.gridworlds import make_mdp

OBJECTIVES = ("mean", "cvar", "var", "threshold", "homeostatic-abs", "homeostatic-sq", "piecewise",
              "exp-utility", "mean-variance")


@dataclasses.dataclass
class DDPConfig:
    """Exact stock-augmented distributional DP on a tabular MDP, evaluated exactly and by Monte Carlo."""

    env: Literal["CliffWalk", "TwoStepCVaR"] = "CliffWalk"
    """tabular MDP: CliffWalk (4x6 cliff, slips toward the cliff, H = 14) or TwoStepCVaR (two steps, the
    CVaR-optimal policy is stock-dependent)"""
    objective: Literal[OBJECTIVES] = "cvar"  # type: ignore[valid-type]
    """what to maximize over the law of the return G: mean, cvar (lower tail, level --tau), var (the largest
    b with P(G >= b) >= 1 - tau, by a search over thresholds), threshold
    (P(G >= --target)), homeostatic-abs / homeostatic-sq (-|G - target|, -(G - target)^2), piecewise
    (upside * (G - target)^+ - downside * (G - target)^-), exp-utility (-exp(-risk_aversion G), gamma = 1 only);
    mean-variance is rejected with the reason"""
    tau: float = 0.1
    """CVaR / VaR level in (0, 1]: CVaR is the mean of the worst tau fraction of returns"""
    target: float = -12.0
    """target return T for threshold / homeostatic / piecewise objectives (the initial stock is c_0 = -T)"""
    upside: float = 1.0
    """piecewise utility: slope above the target"""
    downside: float = 2.0
    """piecewise utility: slope below the target"""
    risk_aversion: float = 0.1
    """exp-utility: lambda in -exp(-lambda * G)"""
    gamma: Optional[float] = None
    """override the MDP's discount factor (None keeps the environment's)"""
    atoms: Optional[int] = None
    """None: exact law support; M: categorical representation with M atoms (approximate DP)"""
    eval_episodes: int = 20_000
    """Monte Carlo episodes (run in parallel on --device) that check the DP's predictions"""
    seed: int = 1
    """random seed of the Monte Carlo rollouts (the DP itself is exact)"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """device of the batched Monte Carlo simulator (the DP runs on the CPU in float64)"""
    run_dir: str = "runs"
    """root folder; the run goes to runs/ddp/<env>/<seed>-<timestamp>/ (never overwritten)"""
    torch_threads: int = 1
    """torch CPU threads (0 = torch's default, all cores)"""
    total_steps: int = dataclasses.field(default=0, init=False)
    """not a flag: the exact DP takes no environment steps"""

    def validate(self) -> None:
        require(0 < self.tau <= 1, f"--tau must be in (0, 1], got {self.tau}")
        require(self.eval_episodes > 0, f"--eval-episodes must be positive, got {self.eval_episodes}")
        require(self.torch_threads >= 0, f"--torch-threads must be >= 0, got {self.torch_threads}")
        require(self.gamma is None or 0 < self.gamma <= 1, f"--gamma must be in (0, 1], got {self.gamma}")
        require(self.upside >= 0 and self.downside >= 0, "--upside and --downside must be >= 0")
        require(self.risk_aversion > 0, f"--risk-aversion must be positive, got {self.risk_aversion}")


# ----- stock update --------------------------------------------------------------------------------
def stock_update(c, r, gamma: float):
    """C_{t+1} = (C_t + R_{t+1}) / gamma (not c / gamma + r)."""
    return (c + r) / gamma


# ----- objectives ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Objective:
    """An expected utility E f(c_0 + G_0), optionally with an outer search over c_0 (CVaR, VaR)."""
    name: str
    f: Callable[[torch.Tensor], torch.Tensor]
    c0: Optional[float] = None
    """fixed initial stock; None = outer search over c_0 = -b for b in the achievable returns"""
    tau: float = 1.0
    """CVaR / VaR level (only for the outer search)"""
    search: Literal["cvar", "var"] = "cvar"
    """what the outer search maximizes"""

    def value(self, c0: torch.Tensor, expected_f: torch.Tensor) -> torch.Tensor:
        """The objective reached with initial stock c0 and E f(c0 + G) = expected_f."""
        if self.c0 is None and self.search == "cvar":
            # Rockafellar-Uryasev: CVaR = max_b b + E[min(G - b, 0)] / tau, with c0 = -b
            return -c0 + expected_f / self.tau
        if self.c0 is None:
            # VaR: the largest b whose best achievable P(G >= b) (f = 1{x >= 0}, c0 = -b) is >= 1 - tau
            return torch.where(expected_f >= 1 - self.tau - 1e-12, -c0, torch.tensor(-math.inf, dtype=c0.dtype))
        return expected_f


def make_objective(name: str, gamma: float, tau: float = 0.1, target: float = 0.0, upside: float = 1.0,
                   downside: float = 2.0, risk_aversion: float = 0.1) -> Objective:
    """Build an optimizable objective, or explain why it is not optimizable by greedy stock DP."""
    if name == "mean-variance":
        raise UserError("mean-variance is not optimizable by distributional DP: it is not an expected utility "
                        "of the stock-augmented return (the variance of a mixture is not determined by the "
                        "components' scores, so it violates indifference to mixtures) and greedy action "
                        "choices are time-inconsistent; optimize e.g. cvar or homeostatic-sq instead")
    if name == "exp-utility" and gamma < 1:
        raise UserError("exp-utility is only optimizable with gamma = 1: -exp(-lambda x) ranks distributions "
                        "differently after scaling by gamma (it is not gamma-indifferent), so greedy choices in "
                        "the stock-augmented MDP are not optimal; use --gamma 1")
    c0 = -target
    zero = 0.0
    table: dict[str, Objective] = {
        "mean": Objective("mean", lambda x: x, c0=0.0),
        "cvar": Objective("cvar", lambda x: torch.clamp(x, max=zero), c0=None, tau=tau),
        "var": Objective("var", lambda x: (x >= -1e-9).double(), c0=None, tau=tau, search="var"),
        # 1{x >= 0} with a tolerance, since stock values carry floating-point noise
        "threshold": Objective("threshold", lambda x: (x >= -1e-9).double(), c0=c0),
        "homeostatic-abs": Objective("homeostatic-abs", lambda x: -x.abs(), c0=c0),
        "homeostatic-sq": Objective("homeostatic-sq", lambda x: -x ** 2, c0=c0),
        "piecewise": Objective("piecewise", lambda x: upside * x.clamp(min=0) - downside * (-x).clamp(min=0),
                               c0=c0),
        "exp-utility": Objective("exp-utility", lambda x: -torch.exp(-risk_aversion * x), c0=0.0),
    }
    if name not in table:
        raise UserError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
    return table[name]


def cvar_of_law(values: np.ndarray, probs: np.ndarray, tau: float) -> float:
    """Lower-tail CVaR_tau of a discrete law: the mean of its worst tau probability mass."""
    order = np.argsort(values)
    v, p = np.asarray(values, float)[order], np.asarray(probs, float)[order]
    before = np.concatenate([[0.0], np.cumsum(p)[:-1]])
    take = np.clip(tau - before, 0.0, p)
    return float((take * v).sum() / tau)


def var_of_law(values: np.ndarray, probs: np.ndarray, tau: float) -> float:
    """Lower-tail VaR_tau: the largest b with P(G >= b) >= 1 - tau (a support point of the law)."""
    v, p = np.asarray(values, float), np.asarray(probs, float)
    ok = [b for b in np.unique(v) if p[v >= b - 1e-9].sum() >= 1 - tau - 1e-12]
    return float(max(ok))


def cvar_of_samples(returns: torch.Tensor, tau: float) -> float:
    """Empirical lower-tail CVaR_tau (each sample has mass 1/n)."""
    x = returns.double().cpu().numpy()
    return cvar_of_law(x, np.full(len(x), 1.0 / len(x)), tau)


# ----- the reachable stock-augmented state graph ---------------------------------------------------
@dataclasses.dataclass
class Level:
    """Augmented states (s, c) at one time step, and where each (node, action) leads."""
    state: np.ndarray     # [N] MDP state of each node
    acc: np.ndarray       # [N] gamma^t C_t - c_0 = reward collected so far (discounted), rounded
    keys: np.ndarray      # [N] sorted int64 lookup keys of (state, acc)
    cont_row: torch.Tensor   # [E] node * A + action of each continuing outcome
    cont_col: torch.Tensor   # [E] child node at the next level
    cont_p: torch.Tensor     # [E] its probability
    end_row: torch.Tensor    # [F] node * A + action of each episode-ending outcome
    end_col: torch.Tensor    # [F] index of its final value c_0-free return in the support X
    end_p: torch.Tensor      # [F]


@dataclasses.dataclass
class StockGraph:
    mdp: FiniteMDP
    levels: list
    support: torch.Tensor   # [X] achievable values of G_0, sorted
    start_nodes: np.ndarray  # level-0 node of each start state with mu0 > 0
    start_probs: torch.Tensor


def _keys(states: np.ndarray, acc: np.ndarray) -> np.ndarray:
    # s in the high bits, the rounded accumulated reward in the low bits: sorted like (s, acc)
    return states.astype(np.int64) * (1 << 42) + np.round(acc * 1e6).astype(np.int64)


def categorical_projection(values: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split each value between its two neighbouring grid atoms by linear interpolation (the Cramér
    projection of C51): returns (lower index, upper index, weight of the upper atom). Mean-preserving for
    values inside the grid."""
    step = grid[1] - grid[0]
    lo = np.clip(np.floor((values - grid[0]) / step).astype(np.int64), 0, len(grid) - 2)
    w_hi = np.clip((values - grid[lo]) / step, 0.0, 1.0)
    return lo, lo + 1, w_hi


def build_stock_graph(mdp: FiniteMDP, atoms: Optional[int] = None) -> StockGraph:
    """Enumerate the augmented states reachable from every start state with c_0 = 0.

    atoms=None keeps the exact law support (every achievable return); atoms=M projects the laws onto M
    evenly spaced atoms over the achievable range (categorical representation: approximate, for reward
    sets whose exact support would be too large). Augmented states themselves stay exact either way."""
    if mdp.horizon is None:
        raise UserError("exact stock DP needs a finite horizon (give the MDP a horizon)")
    P, nxt = mdp.P.cpu().numpy(), mdp.next_state.cpu().numpy()
    rew, term = mdp.reward.cpu().numpy(), mdp.terminal.cpu().numpy()
    mu0 = mdp.mu0.cpu().numpy()
    if (mu0[term] > 0).any():
        raise UserError("the initial distribution puts mass on a terminal state")
    starts = np.flatnonzero(mu0 > 0)
    states, acc = starts, np.zeros(len(starts))
    A, H, raw = mdp.n_actions, mdp.horizon, []
    for t in range(H):
        p, ns = P[states], nxt[states]
        new_acc = np.round(acc[:, None, None] + mdp.gamma ** t * rew[states], VALUE_DECIMALS)
        valid = p > 0
        ends = valid & (term[ns] | (t + 1 == H))
        cont = valid & ~ends
        i, a, _ = np.nonzero(cont)
        uniq, inv = np.unique(np.column_stack([ns[cont].astype(float), new_acc[cont]]), axis=0,
                              return_inverse=True)
        ei, ea, _ = np.nonzero(ends)
        raw.append((states, acc, i * A + a, inv.reshape(-1), p[cont], ei * A + ea, new_acc[ends], p[ends]))
        states, acc = uniq[:, 0].astype(np.int64), uniq[:, 1]
    support = np.unique(np.concatenate([r[6] for r in raw]))
    if atoms is not None:
        if atoms < 2:
            raise UserError(f"--atoms must be >= 2, got {atoms}")
        support = np.linspace(support[0], support[-1], atoms) if len(support) > 1 else support
    levels = []
    for st, ac, crow, ccol, cp, erow, evals, ep in raw:
        if atoms is not None and len(support) > 1:
            lo, hi, w = categorical_projection(evals, support)
            erow, ecol = np.concatenate([erow, erow]), np.concatenate([lo, hi])
            ep = np.concatenate([ep * (1 - w), ep * w])
        else:
            ecol = np.searchsorted(support, evals)
        levels.append(Level(state=st, acc=ac, keys=_keys(st, ac),
                            cont_row=torch.as_tensor(crow), cont_col=torch.as_tensor(ccol),
                            cont_p=torch.as_tensor(cp, dtype=torch.float64),
                            end_row=torch.as_tensor(erow), end_col=torch.as_tensor(ecol),
                            end_p=torch.as_tensor(ep, dtype=torch.float64)))
    return StockGraph(mdp=mdp, levels=levels, support=torch.as_tensor(support, dtype=torch.float64),
                      start_nodes=np.searchsorted(levels[0].keys, _keys(starts, np.zeros(len(starts)))),
                      start_probs=torch.as_tensor(mu0[starts], dtype=torch.float64))


# ----- distributional Bellman operators on the graph -----------------------------------------------
def candidate_laws(graph: StockGraph, t: int, next_laws: Optional[torch.Tensor], batch: int) -> torch.Tensor:
    """[B, N_t, A, X]: law of c_0 + G_0 (in X units) after taking each action at each node at time t,
    given the laws [B, N_{t+1}, X] of the next level's nodes (None at the last level)."""
    L, A, X = graph.levels[t], graph.mdp.n_actions, len(graph.support)
    N = len(L.state)
    cand = torch.zeros(batch, N * A, X, dtype=torch.float64)
    if len(L.cont_row):
        cand.index_add_(1, L.cont_row, L.cont_p[None, :, None] * next_laws[:, L.cont_col, :])
    flat = cand.view(batch, N * A * X)
    flat.index_add_(1, L.end_row * X + L.end_col, L.end_p.expand(batch, -1).contiguous())
    return cand.view(batch, N, A, X)


def utility_table(graph: StockGraph, f, c0: torch.Tensor, t: int) -> torch.Tensor:
    """[B, X]: f at the stock-augmented values gamma^{-t} (c_0 + x) seen from time t (local units)."""
    local = (c0[:, None] + graph.support[None, :]) / graph.mdp.gamma ** t
    return f(local)


def greedy(cand: torch.Tensor, util: torch.Tensor, keep: Optional[torch.Tensor] = None) -> torch.Tensor:
    """argmax_a K(candidate law); with `keep`, switch only on a strict improvement (PI without cycling)."""
    score = torch.einsum("bnax,bx->bna", cand, util)
    score = torch.round(score * 1e10) / 1e10   # ties broken by the lowest action, not by rounding noise
    best = score.argmax(-1)
    if keep is not None:
        kept = score.gather(2, keep[..., None]).squeeze(-1)
        best = torch.where(kept >= score.max(-1).values, keep, best)
    return best


def select(cand: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    X = cand.shape[-1]
    return cand.gather(2, actions[:, :, None, None].expand(-1, -1, 1, X)).squeeze(2)


def backward(graph: StockGraph, f, c0: torch.Tensor, policy: Optional[list] = None):
    """Distributional VI (policy=None: greedy backward induction, exact at a finite horizon) or policy
    evaluation (policy = list over t of [B, N_t] actions). Returns (laws per level, actions per level)."""
    H, B = len(graph.levels), len(c0)
    laws, acts, nxt = [None] * H, [None] * H, None
    for t in reversed(range(H)):
        cand = candidate_laws(graph, t, nxt, B)
        acts[t] = policy[t] if policy is not None else greedy(cand, utility_table(graph, f, c0, t))
        laws[t] = nxt = select(cand, acts[t])
    return laws, acts


def policy_iteration(graph: StockGraph, f, c0: torch.Tensor, max_iter: int = 100):
    """Distributional PI: evaluate the stock policy, improve greedily everywhere, until stable."""
    H, B = len(graph.levels), len(c0)
    policy = [torch.zeros(B, len(L.state), dtype=torch.long) for L in graph.levels]
    for _ in range(max_iter):
        laws, _ = backward(graph, f, c0, policy)
        improved = [greedy(candidate_laws(graph, t, laws[t + 1] if t + 1 < H else None, B),
                           utility_table(graph, f, c0, t), keep=policy[t]) for t in range(H)]
        if all(torch.equal(a, b) for a, b in zip(improved, policy)):
            return laws, policy
        policy = improved
    raise RuntimeError("policy iteration did not converge")


def root_law(graph: StockGraph, laws: list) -> torch.Tensor:
    """[B, X] law of G_0 at the start (mixed over the initial states)."""
    return torch.einsum("s,bsx->bx", graph.start_probs, laws[0][:, graph.start_nodes, :])


# ----- the deployed stock-carrying policy ----------------------------------------------------------
@dataclasses.dataclass
class StockPolicy:
    """pi(s, t, c): a history-dependent policy of the original MDP, through the stock it carries."""
    graph: StockGraph
    c0: float
    actions: list   # per level [N_t] action of each augmented state

    def lookup(self, t: int, s: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(action, found) for a batch of (s, c) at time t, computed on s's device without host copies;
        found is False where (s, c) is not an augmented state the DP enumerated."""
        acc = c * self.graph.mdp.gamma ** t - self.c0      # = reward collected so far, by the invariant
        keys = s.long() * (1 << 42) + torch.round(acc * 1e6).long()     # same encoding as _keys
        table, actions = self._tables(t, s.device)
        idx = torch.searchsorted(table, keys).clamp(max=len(table) - 1)
        return actions[idx], table[idx] == keys

    def act(self, t: int, s: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        a, found = self.lookup(t, s, c)
        if not bool(found.all()):
            raise RuntimeError(f"a rollout reached a stock the DP never saw at t={t}")
        return a

    def _tables(self, t: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        cache = self.__dict__.setdefault("_cache", {})
        if (t, str(device)) not in cache:
            cache[(t, str(device))] = (torch.as_tensor(self.graph.levels[t].keys).to(device),
                                       self.actions[t].to(device))
        return cache[(t, str(device))]


def exact_law(policy: StockPolicy) -> torch.Tensor:
    """Law of G_0 under the policy by forward propagation of probability mass (independent of `backward`)."""
    g, A = policy.graph, policy.graph.mdp.n_actions
    mass = torch.zeros(len(g.levels[0].state), dtype=torch.float64)
    mass.index_add_(0, torch.as_tensor(g.start_nodes), g.start_probs)
    final = torch.zeros(len(g.support), dtype=torch.float64)
    for t, L in enumerate(g.levels):
        chosen = torch.arange(len(L.state)) * A + policy.actions[t]
        on = torch.isin(L.end_row, chosen)
        final.index_add_(0, L.end_col[on], L.end_p[on] * mass[L.end_row[on] // A])
        if t + 1 < len(g.levels):
            on = torch.isin(L.cont_row, chosen)
            nxt = torch.zeros(len(g.levels[t + 1].state), dtype=torch.float64)
            nxt.index_add_(0, L.cont_col[on], L.cont_p[on] * mass[L.cont_row[on] // A])
            mass = nxt
    return final


def monte_carlo(policy: StockPolicy, n: int, device: torch.device, seed: int):
    """Roll the stock-carrying policy out in the original MDP, n episodes in parallel on `device`.
    Returns (G_0, final stock C_T, episode length T), one entry per episode."""
    mdp = policy.graph.mdp.to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    s = mdp.sample_initial(n, gen)
    c = torch.full((n,), policy.c0, dtype=torch.float64, device=device)
    G = torch.zeros(n, dtype=torch.float64, device=device)
    alive = torch.ones(n, dtype=torch.bool, device=device)
    length = torch.zeros(n, dtype=torch.long, device=device)
    missing = torch.zeros(n, dtype=torch.bool, device=device)
    for t in range(mdp.horizon):
        a, found = policy.lookup(t, s, c)
        missing |= alive & ~found        # finished episodes hold stale (s, c): only live ones must be found
        s2, r, ended = mdp.sample_step(s, a, gen)
        G = G + torch.where(alive, mdp.gamma ** t * r, 0.0)
        c = torch.where(alive, stock_update(c, r, mdp.gamma), c)
        length = length + alive.long()
        alive = alive & ~ended
        s = torch.where(alive, s2, s)
    if bool(missing.any()):             # one check at the end: no host round trip per step
        raise RuntimeError("a rollout reached a stock the DP never saw")
    return G, c, length


# ----- objective recipes ---------------------------------------------------------------------------
@dataclasses.dataclass
class DDPResult:
    objective: Objective
    value: float          # the DP's optimal objective value
    policy: StockPolicy
    law: torch.Tensor     # [X] law of G_0 under the deployed policy (over graph.support)


def solve(mdp: FiniteMDP, objective: Objective, method: Literal["vi", "pi"] = "vi",
          graph: Optional[StockGraph] = None) -> DDPResult:
    """Maximize the objective with stock-augmented distributional VI (or PI); CVaR searches c_0 = -b over
    every achievable return b, all candidates in one batch."""
    graph = graph or build_stock_graph(mdp)
    c0 = -graph.support.clone() if objective.c0 is None else torch.tensor([objective.c0], dtype=torch.float64)
    laws, acts = backward(graph, objective.f, c0) if method == "vi" else policy_iteration(graph, objective.f, c0)
    law = root_law(graph, laws)
    expected_f = (law * objective.f(c0[:, None] + graph.support[None, :])).sum(-1)
    values = objective.value(c0, expected_f)
    b = int(values.argmax())
    policy = StockPolicy(graph=graph, c0=float(c0[b]), actions=[a[b] for a in acts])
    return DDPResult(objective=objective, value=float(values[b]), policy=policy, law=law[b])


def objective_of_law(objective: Objective, values: np.ndarray, probs: np.ndarray) -> float:
    """The objective's value for a law of G_0 computed directly (CVaR from the tail, not via c_0)."""
    if objective.c0 is None and objective.search == "var":
        return var_of_law(values, probs, objective.tau)
    if objective.c0 is None:
        return cvar_of_law(values, probs, objective.tau)
    x = torch.as_tensor(objective.c0 + np.asarray(values, float))
    return float((torch.as_tensor(probs, dtype=torch.float64) * objective.f(x)).sum())


def law_stats(values: np.ndarray, probs: np.ndarray, tau: float, target: float) -> dict:
    return {"mean": float((values * probs).sum()), f"cvar_{tau:g}": cvar_of_law(values, probs, tau),
            f"p_return_ge_{target:g}": float(probs[values >= target - 1e-9].sum())}


def nominal_path(policy: StockPolicy) -> str:
    """Actions along the most likely outcome sequence (e.g. 'URRRRRD' on the cliff)."""
    mdp, s, c, out = policy.graph.mdp, int(policy.graph.levels[0].state[0]), policy.c0, []
    for t in range(mdp.horizon):
        a = int(policy.act(t, torch.tensor([s]), torch.tensor([c], dtype=torch.float64))[0])
        out.append(mdp.action_names[a] if mdp.action_names else str(a))
        o = int(mdp.P[s, a].argmax())
        c, s = stock_update(c, float(mdp.reward[s, a, o]), mdp.gamma), int(mdp.next_state[s, a, o])
        if bool(mdp.terminal[s]):
            break
    sep = "" if all(len(x) == 1 for x in out) else " "
    return sep.join(out)


# ----- main ----------------------------------------------------------------------------------------
#: shared training flags that have no meaning for an exact solve (no loop), with the reason
NOT_FOR_EXACT_DP = ("total_steps", "n_envs", "eval_every", "checkpoint_every", "resume", "track", "progress")


def refuse_loop_flags(argv: Sequence[str]) -> None:
    """A clear error for the shared training flags this command does not take (they are not in --help)."""
    names = {f.name for f in dataclasses.fields(RunConfig)} & set(NOT_FOR_EXACT_DP)
    for tok in argv:
        name = tok[2:].split("=", 1)[0].replace("-", "_") if tok.startswith("--") else ""
        name = name[3:] if name.startswith("no_") and name[3:] in names else name
        if name in names:
            raise UserError(f"{tok.split('=', 1)[0]} has no meaning for algos.ddp: it solves the MDP exactly by "
                            f"backward induction, with no training loop (no steps, parallel envs, periodic "
                            f"evaluations, checkpoints or resume); use algos.ddp_deep for a learning agent")


def train(cfg: DDPConfig) -> dict:
    """Solve, check by exact forward propagation and Monte Carlo, write the run directory; return the summary."""
    run = RunSession(cfg, "ddp", steps_name="solves")
    device = run.device
    mdp = make_mdp(cfg.env, **({"gamma": cfg.gamma} if cfg.gamma is not None else {}))
    kw = dict(tau=cfg.tau, target=cfg.target, upside=cfg.upside, downside=cfg.downside,
              risk_aversion=cfg.risk_aversion)
    objective = make_objective(cfg.objective, mdp.gamma, **kw)
    graph = build_stock_graph(mdp, cfg.atoms)
    support = graph.support.numpy()
    n_states = sum(len(L.state) for L in graph.levels)
    extra: dict = {"objective": cfg.objective, "gamma": mdp.gamma, "horizon": mdp.horizon}
    print(f"{cfg.env}: {n_states} augmented states, {len(support)} achievable returns, objective {cfg.objective}")
    results = {cfg.objective: solve(mdp, objective, graph=graph)}
    if cfg.objective != "mean":
        results["mean"] = solve(mdp, make_objective("mean", mdp.gamma), graph=graph)
    print(f"{'policy':<16}{'objective':>10}{'MC':>9}{'mean':>9}{'MC':>9}{'CVaR':>9}{'MC':>9}"
          f"{'P(G>=T)':>9}{'MC':>8}  nominal path")
    checks = {}
    for name, res in results.items():
        law = exact_law(res.policy).numpy()
        G, _, _ = monte_carlo(res.policy, cfg.eval_episodes, device, cfg.seed)
        G = G.cpu().double()
        exact = law_stats(support, law, cfg.tau, cfg.target)
        exact["objective"] = objective_of_law(objective, support, law)
        mc = law_stats(G.numpy(), np.full(len(G), 1.0 / len(G)), cfg.tau, cfg.target)
        mc["objective"] = objective_of_law(objective, G.numpy(), np.full(len(G), 1.0 / len(G)))
        path = nominal_path(res.policy)
        cols = ["objective", "mean", f"cvar_{cfg.tau:g}", f"p_return_ge_{cfg.target:g}"]
        print(f"{name + '-optimal':<16}" + "".join(f"{exact[k]:>9.4f}{mc[k]:>9.4f}" for k in cols) + f"  {path}")
        extra[f"{name}_optimal"] = {"dp_value": res.value, "c0": res.policy.c0, "nominal_path": path,
                                    **exact, **{f"mc_{k}": v for k, v in mc.items()}}
        checks[name] = (G, res.value, mc["objective"])
    G, value, mc_objective = checks[cfg.objective]

    def evaluate() -> dict:  # the Monte Carlo check of the objective's optimal policy, computed above
        return {"returns": G.tolist(), "policy": f"{cfg.objective}-optimal", "dp_value": value,
                "mc_objective": mc_objective}

    with run:
        run.track(evaluate=evaluate)
        run.advance(0, augmented_states=n_states, achievable_returns=len(support))  # the one solve
        run.finish(headline=("dp_value", value), higher_is_better=True, **extra)
    return json.loads((run.path / "summary.json").read_text())


def main(argv: Sequence[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    refuse_loop_flags(argv)
    cfg = parse_config(DDPConfig, argv, prog="python -m algos.ddp", description=__doc__)
    return train(cfg)


if __name__ == "__main__":
    sys.exit(run_cli(main))
