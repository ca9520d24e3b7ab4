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


#: Per-step fields of :meth:`RolloutStorage.add`, in order (also the buffer attribute names).
STEP_FIELDS = (
    "observations",
    "actions",
    "log_probs",
    "values",
    "action_mean",
    "action_std",
    "rewards",
    "terminated",
    "truncated",
    "final_values",
)


class RolloutStorage:
    """Buffers of ``num_steps`` x ``num_envs`` transitions on one device.

    Two ways in: :meth:`fill` sets a whole rollout at once (the runner's path), :meth:`add`
    appends one vector step (the per-step path,
    :meth:`OnPolicyAlgorithm.process_env_step <robot_rl.rl.base.OnPolicyAlgorithm.process_env_step>`).
    :meth:`add` only keeps references to the step's tensors (a list append, once per env
    step, where per-field copies would dominate on a CPU); the buffers ``observations``,
    ``actions``, ... (shape ``(num_steps, num_envs, ...)``) are filled by one
    ``torch.stack`` per field when the rollout is complete, in :meth:`compute_returns`.
    The tensors passed to :meth:`add` must therefore not be modified in place afterwards
    (the algorithm passes fresh tensors).
    """

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
        self._steps: list[tuple[Tensor, ...]] = []
        self._filled = False

    @property
    def step(self) -> int:
        """Steps added since the last :meth:`clear`."""
        return self.num_steps if self._filled else len(self._steps)

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
        step = (
            obs,
            actions,
            log_probs,
            values,
            action_mean,
            action_std,
            rewards,
            terminated,
            truncated,
            final_values,
        )
        if not self._steps:  # shapes checked once per rollout
            for name, x in zip(STEP_FIELDS, step):
                want = getattr(self, name).shape[1:]
                if tuple(x.shape) != tuple(want):
                    raise ValueError(
                        f"RolloutStorage.add: {name} has shape {tuple(x.shape)}, "
                        f"expected {tuple(want)}"
                    )
        self._steps.append(step)

    def fill(self, **fields: Tensor) -> None:
        """Set a whole rollout at once: every name of :data:`STEP_FIELDS`, each of shape
        ``(num_steps, num_envs, ...)`` (copied into the buffers)."""
        if self.step:
            raise RuntimeError("RolloutStorage.fill: storage not empty; call clear() first")
        if set(fields) != set(STEP_FIELDS):
            raise ValueError(f"RolloutStorage.fill needs exactly {STEP_FIELDS}, got {sorted(fields)}")
        for name in STEP_FIELDS:
            buf, x = getattr(self, name), fields[name]
            if tuple(x.shape) != tuple(buf.shape):
                raise ValueError(
                    f"RolloutStorage.fill: {name} has shape {tuple(x.shape)}, "
                    f"expected {tuple(buf.shape)}"
                )
            buf.copy_(x)
        self._filled = True

    def clear(self) -> None:
        """Start a new rollout (buffers are overwritten, not zeroed)."""
        self._steps = []
        self._filled = False

    @property
    def full(self) -> bool:
        """True when ``num_steps`` steps have been added (or :meth:`fill` was called)."""
        return self.step == self.num_steps

    def compute_returns(self, last_values: Tensor, gamma: float, lam: float) -> None:
        """Fill the buffers, then ``advantages`` and ``returns`` with GAE.

        ``last_values`` = V(obs after the last step), shape ``(num_envs,)``.
        """
        if not self.full:
            raise RuntimeError(f"rollout incomplete: {self.step}/{self.num_steps} steps")
        if self._steps:
            for i, name in enumerate(STEP_FIELDS):
                getattr(self, name).copy_(torch.stack([s[i] for s in self._steps]))
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
