"""Rollout storage and generalized advantage estimation (GAE).

Time-limit truncation is not termination.  For every step ``t`` the storage keeps
``terminated[t]`` and ``truncated[t]`` separately, and for truncated steps the value of
the true final observation of the episode, ``final_values[t] = V(final_obs)``, in its
own buffer.  :func:`compute_gae` then bootstraps from that value; a terminated step
bootstraps from zero; either way the advantage recursion stops at the episode boundary.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import torch
from torch import Tensor


def compute_gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    dones: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimates and value targets, shape ``(T, ...)`` each.

    Args:
        rewards: ``r_t``, shape ``(T, ...)`` (any trailing env dims).
        values: ``V(s_t)`` for the observation the action was taken in.
        next_values: ``V(s_{t+1})`` for the state step ``t`` actually reached: the next
            observation within an episode, ``V(final_obs)`` where the episode was
            truncated at ``t``, and anything (ignored) where it terminated at ``t``.
        terminated: true where ``s_{t+1}`` is terminal (its value is taken as zero).
        dones: true where the episode ended at ``t`` (terminated or truncated); the
            advantage of step ``t`` then does not look past ``t``.
        gamma: discount factor.
        lam: GAE lambda.

    Returns:
        ``(advantages, returns)`` with
        ``delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t``,
        ``A_t = delta_t + gamma * lam * (1 - dones_t) * A_{t+1}`` (``A_T = 0``) and
        ``returns = A + values``.
    """
    not_term = 1.0 - terminated.to(values.dtype)
    not_done = 1.0 - dones.to(values.dtype)
    deltas = rewards + gamma * not_term * next_values - values
    carry_coef = gamma * lam * not_done
    advantages = torch.empty_like(values)
    carry = torch.zeros_like(values[0])
    for t in range(values.shape[0] - 1, -1, -1):
        carry = deltas[t] + carry_coef[t] * carry
        advantages[t] = carry
    return advantages, advantages + values


@dataclass
class Batch:
    """A flat batch of transitions, leading dimension = samples."""

    obs: Tensor  # normalized observations (B, obs_dim)
    actions: Tensor  # sampled (unclipped) actions (B, action_dim)
    log_probs: Tensor  # log pi_old(a|s), summed over action dims (B,)
    values: Tensor  # V_old(s) at rollout time (B,)
    action_mean: Tensor  # mean of pi_old (B, action_dim)
    action_std: Tensor  # std of pi_old (B, action_dim)
    advantages: Tensor  # GAE advantages (B,)
    returns: Tensor  # value targets (B,)

    def __getitem__(self, idx: Tensor | slice) -> Batch:
        return Batch(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def __len__(self) -> int:
        return self.obs.shape[0]


def minibatch_indices(
    num_samples: int, num_minibatches: int, num_epochs: int, device: torch.device | str = "cpu"
) -> Iterator[Tensor]:
    """Index tensors of ``num_minibatches`` near-equal shuffled chunks, for each epoch."""
    for _ in range(num_epochs):
        perm = torch.randperm(num_samples, device=device)
        yield from torch.chunk(perm, num_minibatches)


class RolloutStorage:
    """Fixed-size buffers of ``num_steps`` x ``num_envs`` transitions on one device."""

    def __init__(
        self,
        num_envs: int,
        num_steps: int,
        obs_dim: int,
        action_dim: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.num_envs, self.num_steps = num_envs, num_steps
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.device = torch.device(device)
        T, N, f32 = num_steps, num_envs, dict(dtype=torch.float32, device=self.device)
        self.observations = torch.zeros(T, N, obs_dim, **f32)
        self.actions = torch.zeros(T, N, action_dim, **f32)
        self.log_probs = torch.zeros(T, N, **f32)
        self.values = torch.zeros(T, N, **f32)
        self.action_mean = torch.zeros(T, N, action_dim, **f32)
        self.action_std = torch.zeros(T, N, action_dim, **f32)
        self.rewards = torch.zeros(T, N, **f32)
        self.terminated = torch.zeros(T, N, dtype=torch.bool, device=self.device)
        self.truncated = torch.zeros(T, N, dtype=torch.bool, device=self.device)
        # V(final_obs) where truncated[t], else 0: the separate bootstrap buffer
        self.final_values = torch.zeros(T, N, **f32)
        self.advantages = torch.zeros(T, N, **f32)
        self.returns = torch.zeros(T, N, **f32)
        self.step = 0

    def add(
        self,
        obs: Tensor,
        actions: Tensor,
        log_probs: Tensor,
        values: Tensor,
        action_mean: Tensor,
        action_std: Tensor,
        rewards: Tensor,
        terminated: Tensor,
        truncated: Tensor,
        final_values: Tensor,
    ) -> None:
        """Append one vector step (every argument has leading dimension ``num_envs``)."""
        if self.step >= self.num_steps:
            raise RuntimeError("RolloutStorage is full; call clear() after the update")
        t = self.step
        self.observations[t] = obs
        self.actions[t] = actions
        self.log_probs[t] = log_probs
        self.values[t] = values
        self.action_mean[t] = action_mean
        self.action_std[t] = action_std
        self.rewards[t] = rewards
        self.terminated[t] = terminated
        self.truncated[t] = truncated
        self.final_values[t] = final_values
        self.step += 1

    def clear(self) -> None:
        """Start a new rollout (buffers are overwritten, not zeroed)."""
        self.step = 0

    @property
    def full(self) -> bool:
        """True when ``num_steps`` steps have been added."""
        return self.step == self.num_steps

    def compute_returns(self, last_values: Tensor, gamma: float, lam: float) -> None:
        """Fill ``advantages`` and ``returns`` with GAE; ``last_values`` = V(obs after the last step)."""
        if not self.full:
            raise RuntimeError(f"rollout incomplete: {self.step}/{self.num_steps} steps")
        next_values = torch.cat([self.values[1:], last_values.reshape(1, -1)], dim=0)
        next_values = torch.where(self.truncated, self.final_values, next_values)
        dones = self.terminated | self.truncated
        self.advantages, self.returns = compute_gae(
            self.rewards, self.values, next_values, self.terminated, dones, gamma, lam
        )

    def batch(self) -> Batch:
        """All transitions flattened to ``(num_steps * num_envs, ...)`` (views, no copy)."""
        B = self.num_steps * self.num_envs
        return Batch(
            obs=self.observations.reshape(B, self.obs_dim),
            actions=self.actions.reshape(B, self.action_dim),
            log_probs=self.log_probs.reshape(B),
            values=self.values.reshape(B),
            action_mean=self.action_mean.reshape(B, self.action_dim),
            action_std=self.action_std.reshape(B, self.action_dim),
            advantages=self.advantages.reshape(B),
            returns=self.returns.reshape(B),
        )
