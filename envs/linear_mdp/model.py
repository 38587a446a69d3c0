"""Finite-horizon linear MDPs on finite state sets: features, known rewards, nominal and shifted kernels.

P_h(s' | s, a) = sum_i phi_h(s, a)_i mu_{h,i}(s') when the factors mu are known (the simulated d-rectangular
MDP); environments whose features only approximate the dynamics (the American put) give the kernel
directly and no factors. Everything is a torch tensor, so evaluation and rollouts run batched on a device.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import torch


@dataclasses.dataclass
class LinearMDP:
    name: str
    phi: torch.Tensor
    """[H, S, A, d] features phi_h(s, a)"""
    reward: torch.Tensor
    """[H, S, A] known mean reward r_h(s, a) (= phi^T theta_h in a linear MDP)"""
    mu0: torch.Tensor
    """[S] initial state distribution"""
    kernel_fn: Callable[[float], torch.Tensor]
    """shift -> [H, S, A, S] transition kernel; shift = nominal_shift gives the training kernel"""
    nominal_shift: float
    test_shifts: tuple
    """the test-time perturbation grid (q for the simulated MDP, the up-probability p for the put)"""
    rho_mask: torch.Tensor
    """[H, d] 1 where the uncertainty set is placed (rho[h, i] = rho * rho_mask[h, i])"""
    value_upper: torch.Tensor
    """[H] Q_h is clipped to [0, value_upper[h]]"""
    fail_state: Optional[int] = None
    """an absorbing zero-reward state: its value is known to be 0 (and it is the minimum of V)"""
    factors: Optional[torch.Tensor] = None
    """[H, d, S] nominal factor distributions mu_{h,i}, when the MDP is exactly linear"""
    action_labels: tuple = ()

    @property
    def horizon(self) -> int:
        return self.phi.shape[0]

    @property
    def n_states(self) -> int:
        return self.phi.shape[1]

    @property
    def n_actions(self) -> int:
        return self.phi.shape[2]

    @property
    def dim(self) -> int:
        return self.phi.shape[3]

    def kernel(self, shift: Optional[float] = None) -> torch.Tensor:
        return self.kernel_fn(self.nominal_shift if shift is None else shift)

    def to(self, device) -> "LinearMDP":
        fn = self.kernel_fn
        return dataclasses.replace(
            self, phi=self.phi.to(device), reward=self.reward.to(device), mu0=self.mu0.to(device),
            kernel_fn=lambda q: fn(q).to(device), rho_mask=self.rho_mask.to(device),
            value_upper=self.value_upper.to(device),
            factors=None if self.factors is None else self.factors.to(device))

    def evaluate(self, policy: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """Exact expected return of Markov policies [..., H, S, A] under `kernel` -> V [..., H + 1, S]."""
        H = self.horizon
        V = torch.zeros(*policy.shape[:-3], H + 1, self.n_states, dtype=torch.float64, device=policy.device)
        for h in reversed(range(H)):
            Q = self.reward[h] + torch.einsum("san,...n->...sa", kernel[h], V[..., h + 1, :])
            V[..., h, :] = (policy[..., h, :, :] * Q).sum(-1)
        return V

    def expected_return(self, policy: torch.Tensor, shift: Optional[float] = None) -> torch.Tensor:
        return (self.evaluate(policy, self.kernel(shift))[..., 0, :] * self.mu0).sum(-1)

    def rollout_returns(self, policy: torch.Tensor, shift: Optional[float], n: int,
                        generator: torch.Generator) -> torch.Tensor:
        """Monte Carlo returns of policies [R, H, S, A]: n episodes each, all batched -> [R, n]."""
        kern = self.kernel(shift)
        R = policy.shape[0]
        s = torch.multinomial(self.mu0, R * n, replacement=True, generator=generator).view(R, n)
        ridx = torch.arange(R, device=s.device)[:, None].expand(R, n)
        G = torch.zeros(R, n, dtype=torch.float64, device=s.device)
        for h in range(self.horizon):
            a = torch.multinomial(policy[ridx, h, s].reshape(R * n, -1), 1, generator=generator).view(R, n)
            G += self.reward[h, s, a]
            s = torch.multinomial(kern[h, s, a].reshape(R * n, -1), 1, generator=generator).view(R, n)
        return G
