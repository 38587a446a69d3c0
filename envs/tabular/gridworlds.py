"""Small MDPs with known answers: the slippery cliff walk, the two-step CVaR MDP, random tiny MDPs.

DDP-1 (the two-step CVaR MDP) and DDP-2 (the 4x6 slippery cliff) are the reference experiments of the
distributional-DP checks (algos/ddp.py, paper_figs/ddp_objectives.py).
"""
from __future__ import annotations

import torch

from classic_rl import UserError
from envs.tabular.finite_mdp import FiniteMDP

UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
MOVES = {UP: (-1, 0), RIGHT: (0, 1), DOWN: (1, 0), LEFT: (0, -1)}
ACTION_LETTERS = ("U", "R", "D", "L")


def cliff_walk(rows: int = 4, cols: int = 6, slip: float = 0.03, cliff_reward: float = -15.0,
               step_reward: float = -1.0, horizon: int = 14, gamma: float = 1.0) -> FiniteMDP:
    """Cliff walk with slips toward the cliff (DDP-2: 4x6, slip 0.03, cliff -15, step -1, H = 14).

    Start at the bottom-left cell, goal at the bottom-right; the bottom row between them is the cliff.
    Each move costs `step_reward`; with probability `slip` the agent moves DOWN (toward the cliff) instead
    of where it intended. Entering the cliff pays `cliff_reward` instead of the step cost and ends the
    episode; entering the goal ends it too. Moves into a wall leave the agent in place.
    State index = row * cols + col.
    """
    if rows < 2 or cols < 3:
        raise UserError("cliff walk needs at least 2 rows and 3 columns")
    if not 0 <= slip < 1:
        raise UserError(f"slip must be in [0, 1), got {slip}")
    S, A = rows * cols, 4
    start, goal = (rows - 1) * cols, rows * cols - 1
    cliff = {(rows - 1) * cols + c for c in range(1, cols - 1)}
    P = torch.zeros(S, A, 2, dtype=torch.float64)
    nxt = torch.zeros(S, A, 2, dtype=torch.long)
    rew = torch.zeros(S, A, 2, dtype=torch.float64)

    def move(s: int, a: int) -> int:
        r, c = divmod(s, cols)
        dr, dc = MOVES[a]
        r2, c2 = r + dr, c + dc
        return r2 * cols + c2 if 0 <= r2 < rows and 0 <= c2 < cols else s

    for s in range(S):
        for a in range(A):
            for o, (p, direction) in enumerate(((1 - slip, a), (slip, DOWN))):
                s2 = move(s, direction)
                P[s, a, o], nxt[s, a, o] = p, s2
                rew[s, a, o] = cliff_reward if s2 in cliff else step_reward
    terminal = torch.zeros(S, dtype=torch.bool)
    terminal[list(cliff) + [goal]] = True
    mu0 = torch.zeros(S, dtype=torch.float64)
    mu0[start] = 1.0
    return FiniteMDP(P=P, next_state=nxt, reward=rew, mu0=mu0, terminal=terminal, gamma=gamma,
                     horizon=horizon, name="CliffWalk", action_names=ACTION_LETTERS)


def two_step_cvar(gamma: float = 1.0) -> FiniteMDP:
    """DDP-1. Step 1 pays 0 or 10 (prob 1/2 each) and always lands in the same decision state;
    step 2: SAFE (action 0) pays 5, RISKY (action 1) pays 12 w.p. 0.8 and 0 w.p. 0.2.
    Because both step-1 outcomes land in the same state, only the stock can tell them apart.
    States: 0 start, 1 decision, 2 end (terminal)."""
    P = torch.zeros(3, 2, 2, dtype=torch.float64)
    nxt = torch.full((3, 2, 2), 2, dtype=torch.long)
    rew = torch.zeros(3, 2, 2, dtype=torch.float64)
    P[0, :, 0], P[0, :, 1] = 0.5, 0.5
    nxt[0, :, :] = 1
    rew[0, :, 1] = 10.0
    P[1, 0, 0], rew[1, 0, 0] = 1.0, 5.0
    P[1, 1, 0], rew[1, 1, 0] = 0.8, 12.0
    P[1, 1, 1], rew[1, 1, 1] = 0.2, 0.0
    P[2, :, 0], nxt[2, :, :] = 1.0, 2
    terminal = torch.tensor([False, False, True])
    return FiniteMDP(P=P, next_state=nxt, reward=rew, mu0=torch.tensor([1.0, 0, 0]), terminal=terminal,
                     gamma=gamma, horizon=2, name="TwoStepCVaR", action_names=("SAFE", "RISKY"))


def random_mdp(n_states: int = 3, n_actions: int = 2, n_outcomes: int = 2, horizon: int = 3,
               gamma: float = 1.0, reward_values=(-2, -1, 0, 1, 3), seed: int = 0) -> FiniteMDP:
    """A random tiny MDP with integer rewards; the last state is terminal (for brute-force tests)."""
    g = torch.Generator().manual_seed(seed)
    S, A, O = n_states, n_actions, n_outcomes
    P = torch.rand(S, A, O, generator=g, dtype=torch.float64) + 0.1
    P = P / P.sum(-1, keepdim=True)
    nxt = torch.randint(0, S, (S, A, O), generator=g)
    vals = torch.tensor(reward_values, dtype=torch.float64)
    rew = vals[torch.randint(0, len(reward_values), (S, A, O), generator=g)]
    terminal = torch.zeros(S, dtype=torch.bool)
    terminal[-1] = True
    mu0 = torch.zeros(S, dtype=torch.float64)
    mu0[0] = 1.0
    return FiniteMDP(P=P, next_state=nxt, reward=rew, mu0=mu0, terminal=terminal, gamma=gamma,
                     horizon=horizon, name=f"Random{seed}")


TABULAR_MDPS = {
    "CliffWalk": cliff_walk,
    "TwoStepCVaR": two_step_cvar,
}


def make_mdp(name: str, **kwargs) -> FiniteMDP:
    """Build a tabular MDP by short name or gymnasium id ('CliffWalk' or 'CliffWalk-v0')."""
    base = name.split("-v")[0]
    if base not in TABULAR_MDPS:
        raise UserError(f"unknown tabular MDP {name!r}; available: {', '.join(sorted(TABULAR_MDPS))}")
    return TABULAR_MDPS[base](**kwargs)
