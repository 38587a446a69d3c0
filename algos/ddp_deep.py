"""DηN-style deep agent: QR-DQN over stock-augmented states, optimizing E f(c_0 + G) from samples.

Paper: Ávila Pires et al., "Optimizing Return Distributions with Distributional Dynamic Programming", arXiv
2501.13028, section 6 (DηN = DQN + distributional DP). No public code exists and the paper's exact architecture
was not available to us, so this is a reconstruction from the method's definition:
  * the stock c (C_0 = c_0, C_{t+1} = (C_t + R_{t+1}) / gamma; see algos/ddp.py) and, for a finite horizon,
    t / H enter the network beside the one-hot state; it outputs N quantile atoms of c + G_t per action;
  * actions are greedy w.r.t. K(Z(s, c, a)) = mean_j f(z_j), where f is the objective's utility;
  * the target is c + r when the episode ends, else gamma Z_target(s', c', a*) with c' = (c + r) / gamma and
    a* = argmax_a K(Z_target(s', c', a)); the loss is QR-DQN's quantile Huber loss (kappa = 1);
  * replayed transitions get a freshly drawn initial stock with probability --relabel (hindsight stock
    relabelling: the stock dynamics are known, so any c_0 gives a valid transition with the same partial return).
Batched environments run on --device as one tensor simulator of the tabular MDP. Choices beyond the paper: the
training stocks are drawn from U[--stock-low, --stock-high] = U[0, 20] (a first proposal was U[-20, 0], but with
the sign convention c_0 = -b and the cliff's negative returns the CVaR-optimal b, about -9 to -12, needs c_0 in
about [9, 12]); 64 quantiles (CVaR from N atoms is biased when tau N is small: N >= 10 / tau is safe); a small
mean tie-break (--tie-break); target copies every 100 gradient steps.

What the shared flags mean here: `--env` a finite-horizon tabular MDP (CliffWalk, TwoStepCVaR); a step is one
environment step of one of the --n-envs parallel episodes; an evaluation picks c_0* (the CVaR outer search over
a grid of stocks, through the network) and runs --eval-episodes greedy, stock-carrying Monte Carlo episodes
(always the same episodes: a fixed evaluation seed); eval.csv holds their returns and the objective they
reach. The headline of summary.json is that Monte Carlo objective of the final policy, beside the exact stock
DP's optimum (algos/ddp.py) and the mean-optimal policy's value. `--resume` is exact: the networks, Adam, the
replay buffer, the episodes in progress (states, times, stocks) and the simulator's generator are checkpointed.

    python -m algos.ddp_deep --env CliffWalk --objective cvar --tau 0.1
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn as nn

from algos import ddp
from classic_rl import UserError
from classic_rl.config import RunConfig, parse_config, require, run_cli
from classic_rl.session import LoopState, RunSession
from envs.tabular.finite_mdp import FiniteMDP
from envs.tabular.gridworlds import make_mdp


@dataclasses.dataclass
class DeepConfig(RunConfig):
    """QR-DQN with the stock as input (DηN) on a tabular gridworld; checked against the exact stock DP."""

    env: Literal["CliffWalk", "TwoStepCVaR"] = "CliffWalk"
    """tabular MDP with a finite horizon: CliffWalk (4x6 slippery cliff, H = 14) or TwoStepCVaR"""
    total_steps: int = 150_000
    """environment steps, summed over the parallel episodes"""
    n_envs: int = 32
    """parallel episodes (one batched tensor simulator of the MDP)"""
    eval_every: int = 50_000
    """greedy Monte Carlo evaluation every this many env steps (0 = only at the end)"""
    eval_episodes: int = 10_000
    """Monte Carlo episodes per evaluation of the greedy, stock-carrying policy"""
    checkpoint_every: int = 0
    """save a checkpoint every this many env steps (0 = only at the end)"""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """device of the simulator, replay buffer and network (auto picks cuda when available)"""
    torch_threads: int = 1
    """torch CPU threads (small MLP: 1 avoids contention; 0 = torch's default)"""
    log_every: int = 3200
    """write a metrics row (loss, epsilon, gradient steps) every this many env steps"""
    objective: Literal["mean", "cvar", "threshold", "homeostatic-abs", "piecewise"] = "cvar"
    """objective, as in algos.ddp"""
    tau: float = 0.1
    """CVaR level"""
    target: float = -12.0
    """target return for threshold / homeostatic / piecewise objectives (c_0 = -target at evaluation)"""
    stock_low: float = 0.0
    """initial stocks for training are drawn uniformly from [stock_low, stock_high] (see the module docstring
    for why U[0, 20] and not U[-20, 0])"""
    stock_high: float = 20.0
    """upper end of the training c_0 range"""
    stock_scale: float = 20.0
    """the network sees c / stock_scale"""
    n_quantiles: int = 64
    """quantile atoms per action (CVaR from N atoms is biased when tau N is small; N >= 10 / tau is safe)"""
    hidden_sizes: list[int] = dataclasses.field(default_factory=lambda: [128, 128])
    """hidden widths of the MLP (ReLU)"""
    lr: float = 1e-3
    """Adam learning rate"""
    batch_size: int = 256
    """replay minibatch"""
    buffer_size: int = 100_000
    """replay capacity (transitions)"""
    learning_starts: int = 5_000
    """env steps before the first update"""
    updates_per_step: int = 2
    """gradient steps per vector-environment step"""
    target_every: int = 100
    """gradient steps between target-network copies (values must propagate through H bootstraps: with 500
    and one update per step, 150k env steps gave only ~9 copies and a wandering policy)"""
    tie_break: float = 0.01
    """weight of the atoms' mean added to K when choosing actions (acting and targets). CVaR's utility
    min(x, 0) is flat once the stock is safely positive, so the network's noise decides among tied actions and
    the agent wanders into the horizon; a small mean term prefers the quicker of near-tied actions. 0 = off"""
    eps_start: float = 1.0
    """initial epsilon of epsilon-greedy"""
    eps_end: float = 0.05
    """final epsilon"""
    eps_decay_steps: int = 75_000
    """env steps over which epsilon decays linearly (half of the default --total-steps; a number of steps, not a
    fraction of --total-steps, so that extending a run on --resume keeps its schedule)"""
    relabel: float = 0.5
    """fraction of replayed transitions whose initial stock is redrawn (hindsight stock relabelling)"""

    def validate(self) -> None:
        super().validate()
        require(self.stock_low < self.stock_high, "--stock-low must be below --stock-high")
        require(0 < self.tau <= 1, f"--tau must be in (0, 1], got {self.tau}")
        require(self.n_quantiles >= 2, "--n-quantiles must be >= 2")
        require(0 <= self.relabel <= 1, "--relabel must be in [0, 1]")
        require(self.lr > 0, f"--lr must be positive, got {self.lr}")
        require(self.log_every > 0, f"--log-every must be positive, got {self.log_every}")
        require(self.eps_decay_steps >= 0, f"--eps-decay-steps must be >= 0, got {self.eps_decay_steps}")
        require(self.updates_per_step >= 1 and self.target_every >= 1,
                "--updates-per-step and --target-every must be >= 1")
        require(bool(self.hidden_sizes) and min(self.hidden_sizes) > 0, "--hidden-sizes must be positive")
        require(self.batch_size > 0 and self.buffer_size >= self.batch_size, "--buffer-size must be >= --batch-size")


# ----- network ---------------------------------------------------------------------------------------
class QuantileNet(nn.Module):
    """(one-hot state, t / H, c / scale) -> [A, N] quantile atoms of c + G (in stock units)."""

    def __init__(self, n_states: int, n_actions: int, n_quantiles: int, hidden_sizes: Sequence[int], horizon: int,
                 scale: float):
        super().__init__()
        self.n_states, self.n_actions, self.n_quantiles = n_states, n_actions, n_quantiles
        self.horizon, self.scale = horizon, scale
        layers, width = [], n_states + 2
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers, nn.Linear(width, n_actions * n_quantiles))

    def forward(self, s: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = torch.cat([nn.functional.one_hot(s, self.n_states).float(), (t.float() / self.horizon)[:, None],
                       (c.float() / self.scale)[:, None]], -1)
        # predict atoms relative to the stock: c + G has the stock as its natural offset
        return c.float()[:, None, None] + self.body(x).view(-1, self.n_actions, self.n_quantiles)


# ----- pure functions --------------------------------------------------------------------------------
def quantile_midpoints(n: int, device=None) -> torch.Tensor:
    return (torch.arange(n, dtype=torch.float32, device=device) + 0.5) / n


def quantile_huber_loss(pred: torch.Tensor, target: torch.Tensor, kappa: float = 1.0) -> torch.Tensor:
    """QR-DQN loss: pred [B, N] atoms at the quantile midpoints, target [B, M] samples of the target law."""
    taus = quantile_midpoints(pred.shape[1], pred.device)
    u = target[:, None, :] - pred[:, :, None]                                     # [B, N, M]
    huber = torch.where(u.abs() <= kappa, 0.5 * u ** 2, kappa * (u.abs() - 0.5 * kappa))
    weight = (taus[None, :, None] - (u.detach() < 0).float()).abs()
    return (weight * huber / kappa).mean(2).sum(1).mean()


def objective_scores(atoms: torch.Tensor, f) -> torch.Tensor:
    """K(Z) = mean_j f(z_j) for atoms [..., N]."""
    return f(atoms).mean(-1)


def action_scores(atoms: torch.Tensor, f, tie_break: float = 0.0) -> torch.Tensor:
    """K(Z) plus tie_break * mean(Z): what greedy action choices maximize."""
    return objective_scores(atoms, f) + tie_break * atoms.mean(-1)


def stock_targets(next_atoms: torch.Tensor, c: torch.Tensor, r: torch.Tensor, done: torch.Tensor, gamma: float,
                  f, tie_break: float = 0.0) -> torch.Tensor:
    """Target atoms [B, N] for Z(s, c, a): c + r when the episode ended, else gamma Z(s', c', a*) with
    a* = argmax_a K(Z(s', c', a)); next_atoms [B, A, N] are the target network's at (s', c' = (c + r)/gamma)."""
    a_star = action_scores(next_atoms, f, tie_break).argmax(-1)
    chosen = next_atoms.gather(1, a_star[:, None, None].expand(-1, 1, next_atoms.shape[-1])).squeeze(1)
    return torch.where(done[:, None], (c + r)[:, None].expand_as(chosen), gamma * chosen)


def linear_epsilon(step: int, cfg: DeepConfig) -> float:
    frac = min(1.0, step / max(1.0, cfg.eps_decay_steps))
    return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)


# ----- evaluation ------------------------------------------------------------------------------------
@torch.no_grad()
def choose_initial_stock(net: QuantileNet, mdp: FiniteMDP, objective: ddp.Objective, grid: torch.Tensor,
                         device) -> float:
    """CVaR: c_0* = argmax_c -c + max_a K(Z(s_0, c, a)) / tau over a grid; fixed-c_0 objectives keep theirs."""
    if objective.c0 is not None:
        return float(objective.c0)
    s0 = torch.full((len(grid),), int(mdp.mu0.argmax()), dtype=torch.long, device=device)
    scores = objective_scores(net(s0, torch.zeros_like(s0), grid), objective.f).max(-1).values
    return float(grid[int(objective.value(grid, scores.double()).argmax())])


@torch.no_grad()
def rollout_greedy(net: QuantileNet, mdp: FiniteMDP, objective: ddp.Objective, c0: float, n: int,
                   gen: torch.Generator, device, tie_break: float = 0.0) -> tuple[torch.Tensor, str]:
    """Greedy stock-carrying rollouts in the original MDP -> (returns G_0 [n], nominal action path)."""
    s = mdp.sample_initial(n, gen)
    c = torch.full((n,), c0, dtype=torch.float64, device=device)
    G = torch.zeros(n, dtype=torch.float64, device=device)
    alive = torch.ones(n, dtype=torch.bool, device=device)
    for t in range(mdp.horizon):
        a = action_scores(net(s, torch.full_like(s, t), c), objective.f, tie_break).argmax(-1)
        s2, r, ended = mdp.sample_step(s, a, gen)
        G += torch.where(alive, mdp.gamma ** t * r, 0.0)
        c = torch.where(alive, ddp.stock_update(c, r, mdp.gamma), c)
        alive &= ~ended
        s = torch.where(alive, s2, s)
    path, s1, c1 = [], int(mdp.mu0.argmax()), c0
    for t in range(mdp.horizon):
        st = torch.tensor([s1], device=device)
        a = int(action_scores(net(st, torch.tensor([t], device=device),
                                  torch.tensor([c1], device=device)), objective.f, tie_break).argmax(-1))
        path.append(mdp.action_names[a] if mdp.action_names else str(a))
        o = int(mdp.P[s1, a].argmax())
        c1 = ddp.stock_update(c1, float(mdp.reward[s1, a, o]), mdp.gamma)
        s1 = int(mdp.next_state[s1, a, o])
        if bool(mdp.terminal[s1]):
            break
    return G, "".join(path)


# ----- training --------------------------------------------------------------------------------------
@dataclasses.dataclass
class DeepLoop(LoopState):
    """Replay buffer, the episodes in progress and the update counter (checkpointed)."""

    buf: dict            # (s, t, c, c0, a, r, s', done) tensors of the replay buffer, on the device
    s: torch.Tensor      # the parallel episodes' current state, time, stock and initial stock
    t: torch.Tensor
    c: torch.Tensor
    c0: torch.Tensor
    ptr: int = 0
    size: int = 0
    n_updates: int = 0


def train(cfg: DeepConfig, argv: Sequence[str] | None = None) -> RunSession:
    """Train and return the finished session (its `path` is the run directory)."""
    run = RunSession(cfg, "ddp_deep", argv=argv)
    cfg, device = run.cfg, run.device
    mdp = make_mdp(cfg.env)
    objective = ddp.make_objective(cfg.objective, mdp.gamma, tau=cfg.tau, target=cfg.target)
    if mdp.horizon is None:
        raise UserError("ddp_deep needs a finite-horizon MDP")
    mdp_dev = mdp.to(device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    net = QuantileNet(mdp.n_states, mdp.n_actions, cfg.n_quantiles, cfg.hidden_sizes, mdp.horizon,
                      cfg.stock_scale).to(device)
    target_net = QuantileNet(mdp.n_states, mdp.n_actions, cfg.n_quantiles, cfg.hidden_sizes, mdp.horizon,
                             cfg.stock_scale).to(device)
    target_net.load_state_dict(net.state_dict())
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)

    def draw_c0(n):
        return cfg.stock_low + (cfg.stock_high - cfg.stock_low) * torch.rand(n, generator=gen, device=device,
                                                                            dtype=torch.float64)

    dtypes = {"s": torch.long, "t": torch.long, "c": torch.float64, "c0": torch.float64, "a": torch.long,
              "r": torch.float64, "s2": torch.long, "done": torch.bool}
    E = cfg.n_envs
    c0 = draw_c0(E)
    loop = DeepLoop(buf={k: torch.zeros(cfg.buffer_size, dtype=dt, device=device) for k, dt in dtypes.items()},
                    s=mdp_dev.sample_initial(E, gen), t=torch.zeros(E, dtype=torch.long, device=device),
                    c=c0.clone(), c0=c0)
    grid = torch.arange(cfg.stock_low, cfg.stock_high + 1e-9, 0.25, dtype=torch.float64, device=device)

    def evaluate() -> dict:
        """Greedy stock-carrying Monte Carlo episodes, the same ones at every evaluation."""
        eval_gen = torch.Generator(device=device).manual_seed(cfg.seed + 10_000)
        c0_star = choose_initial_stock(net, mdp_dev, objective, grid, device)
        G, path = rollout_greedy(net, mdp_dev, objective, c0_star, cfg.eval_episodes, eval_gen, device,
                                 cfg.tie_break)
        G = G.cpu()
        achieved = ddp.objective_of_law(objective, G.numpy(), np.full(len(G), 1.0 / len(G)))
        return {"returns": G.tolist(), "objective": achieved, "c0": c0_star, "nominal_path": path}

    run.steps_per_update(E, "vector-env step")
    with run:
        run.track(net=net, target_net=target_net, optimizer=opt, gen=gen, loop=loop, evaluate=evaluate)
        loop.buf = {k: v.to(device) for k, v in loop.buf.items()}   # --device may change on resume
        buf, cap = loop.buf, cfg.buffer_size
        while run.step < cfg.total_steps:
            eps = linear_epsilon(run.step, cfg)
            s, t, c = loop.s, loop.t, loop.c
            with torch.no_grad():
                greedy_a = action_scores(net(s, t, c), objective.f, cfg.tie_break).argmax(-1)
            explore = torch.rand(E, generator=gen, device=device) < eps
            a = torch.where(explore, torch.randint(0, mdp.n_actions, (E,), generator=gen, device=device), greedy_a)
            s2, r, term = mdp_dev.sample_step(s, a, gen)
            done = term | (t + 1 >= mdp.horizon)
            idx = (loop.ptr + torch.arange(E, device=device)) % cap
            for k, v in (("s", s), ("t", t), ("c", c), ("c0", loop.c0), ("a", a), ("r", r), ("s2", s2),
                         ("done", done)):
                buf[k][idx] = v
            loop.ptr, loop.size = (loop.ptr + E) % cap, min(loop.size + E, cap)
            # next state, resetting finished episodes with a fresh initial stock
            c = ddp.stock_update(c, r, mdp.gamma)
            new_c0 = draw_c0(E)
            loop.s = torch.where(done, mdp_dev.sample_initial(E, gen), s2)
            loop.t = torch.where(done, 0, t + 1)
            loop.c0 = torch.where(done, new_c0, loop.c0)
            loop.c = torch.where(done, new_c0, c)
            stats: dict = {"epsilon": eps}
            if run.step + E >= cfg.learning_starts:
                for _ in range(cfg.updates_per_step):
                    j = torch.randint(0, loop.size, (cfg.batch_size,), generator=gen, device=device)
                    bc = buf["c"][j]
                    relabel = torch.rand(cfg.batch_size, generator=gen, device=device) < cfg.relabel
                    bc = torch.where(relabel, bc - buf["c0"][j] + draw_c0(cfg.batch_size), bc)  # same partial return
                    br, bdone = buf["r"][j], buf["done"][j]
                    with torch.no_grad():
                        c_next = ddp.stock_update(bc, br, mdp.gamma)
                        nxt = target_net(buf["s2"][j], (buf["t"][j] + 1).clamp(max=mdp.horizon - 1), c_next)
                        tgt = stock_targets(nxt.double(), bc, br, bdone, mdp.gamma, objective.f,
                                            cfg.tie_break).float()
                    pred = net(buf["s"][j], buf["t"][j], bc)
                    pred = pred.gather(1, buf["a"][j][:, None, None].expand(-1, 1, cfg.n_quantiles)).squeeze(1)
                    loss = quantile_huber_loss(pred, tgt)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    loop.n_updates += 1
                    if loop.n_updates % cfg.target_every == 0:
                        target_net.load_state_dict(net.state_dict())
                stats.update(loss=loss.detach(), updates=loop.n_updates)
            run.advance(E, **stats)
        finish(run, cfg, mdp, objective)
    return run


def finish(run: RunSession, cfg: DeepConfig, mdp: FiniteMDP, objective: ddp.Objective) -> None:
    """Final evaluation, the exact stock DP's optimum beside it, summary.json."""
    result = run.evaluate() if not run.logger.evals.rows or \
        float(run.logger.evals.rows[-1]["env_steps"]) < run.step else run.last_eval
    achieved, c0, path = result["objective"], result["c0"], result["nominal_path"]
    mdp_cpu = mdp.to("cpu")
    exact = ddp.solve(mdp_cpu, objective)
    mean_opt = ddp.solve(mdp_cpu, ddp.make_objective("mean", mdp.gamma))
    v = exact.policy.graph.support.numpy()
    extra = {"objective": cfg.objective, "c0": c0, "mc_objective": achieved, "mc_mean": result["return_mean"],
             "nominal_path": path, "dp_optimal_objective": exact.value,
             "dp_optimal_path": ddp.nominal_path(exact.policy),
             "mean_optimal_objective": ddp.objective_of_law(objective, v, ddp.exact_law(mean_opt.policy).numpy()),
             "mean_optimal_path": ddp.nominal_path(mean_opt.policy)}
    print(f"DηN {cfg.objective}: c0* = {c0:.2f}, Monte Carlo objective {achieved:.3f} (mean "
          f"{result['return_mean']:.3f}), path {path}\nexact stock DP optimum {exact.value:.3f} (path "
          f"{extra['dp_optimal_path']}); mean-optimal policy {extra['mean_optimal_objective']:.3f} (path "
          f"{extra['mean_optimal_path']})")
    run.finish(headline=("mc_objective", achieved), higher_is_better=True, **extra)


def main(argv: Sequence[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(DeepConfig, argv, prog="python -m algos.ddp_deep", description=__doc__)
    run = train(cfg, argv)
    from analysis.plot import finish_run
    finish_run(run.path)
    import json
    return json.loads((run.path / "summary.json").read_text())


if __name__ == "__main__":
    sys.exit(run_cli(main))
