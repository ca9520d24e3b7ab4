"""PPO: epochs of shuffled minibatches with Adam on the actor, two objectives.

:class:`PPOClip` maximizes the clipped ratio objective; :class:`PPOAdaptiveKL` the
surrogate minus a KL penalty whose coefficient follows
:func:`~robot_rl.rl.numerics.adapt_kl_beta`.  Both share :class:`_PPOBase`'s loop.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from robot_rl.rl.base import OnPolicyAlgorithm, Stats
from robot_rl.rl.config import AlgoConfig
from robot_rl.rl.models import ActorCritic
from robot_rl.rl.numerics import adapt_kl_beta
from robot_rl.rl.storage import Batch, minibatch_indices


class _PPOBase(OnPolicyAlgorithm):
    """Shared PPO machinery: Adam on the actor, epochs of shuffled minibatches."""

    def __init__(self, policy: ActorCritic, cfg: AlgoConfig, device: torch.device | str = "cpu"):
        super().__init__(policy, cfg, device)
        self.policy_optimizer = torch.optim.Adam(self.policy.actor_parameters(), lr=cfg.ppo_lr)

    def policy_loss(self, mb: Batch, adv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(loss, ratio, action mean)`` for one minibatch."""
        raise NotImplementedError

    def update_policy(self, batch: Batch, advantages: Tensor) -> Stats:
        cfg = self.cfg
        params = self.policy.actor_parameters()
        with torch.no_grad():
            surr_old = float(self.surrogate(batch, advantages)[0])
        skipped, stepped, grad_norm = 0, 0, 0.0
        for idx in minibatch_indices(len(batch), cfg.ppo_minibatches, cfg.ppo_epochs, self.device):
            loss, _, _ = self.policy_loss(batch[idx], advantages[idx])
            loss = loss - cfg.entropy_coef * self.policy.entropy()
            if not bool(torch.isfinite(loss)):
                skipped += 1
                continue
            self.policy_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            gn = nn.utils.clip_grad_norm_(params, cfg.ppo_max_grad_norm)
            if not bool(torch.isfinite(gn)):
                skipped += 1
                continue
            grad_norm = float(gn)
            self.policy_optimizer.step()
            stepped += 1
        with torch.no_grad():
            surr_new, mean = self.surrogate(batch, advantages)
            kl = float(self.mean_kl(batch, mean))
        return {
            "kl": kl,
            "accepted": float(stepped > 0),  # 0 when every minibatch was skipped
            "surrogate_improvement": float(surr_new) - surr_old,
            "grad_norm": grad_norm,
            "step_size": cfg.ppo_lr,
            "skipped": float(skipped > 0),
            "skip_reason": "non_finite_loss" if skipped else "",
        }

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "policy_optimizer": self.policy_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any], load_optimizer: bool = True) -> None:
        super().load_state_dict(state, load_optimizer)
        if load_optimizer:
            self.policy_optimizer.load_state_dict(state["policy_optimizer"])


class PPOClip(_PPOBase):
    """PPO with the clipped ratio objective ``min(r A, clip(r, 1 - eps, 1 + eps) A)``."""

    name = "ppo_clip"

    def policy_loss(self, mb: Batch, adv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        log_prob, mean = self.policy.log_prob(mb.obs, mb.actions)
        ratio = torch.exp(log_prob - mb.log_probs)
        eps = self.cfg.ppo_clip
        surr = torch.min(ratio * adv, ratio.clamp(1.0 - eps, 1.0 + eps) * adv)
        return -surr.mean(), ratio, mean

    def update_policy(self, batch: Batch, advantages: Tensor) -> Stats:
        stats = super().update_policy(batch, advantages)
        with torch.no_grad():
            log_prob, _ = self.policy.log_prob(batch.obs, batch.actions)
            ratio = torch.exp(log_prob - batch.log_probs)
            stats["clip_fraction"] = float(((ratio - 1.0).abs() > self.cfg.ppo_clip).float().mean())
        return stats


class PPOAdaptiveKL(_PPOBase):
    """PPO with a KL penalty ``E[r A] - beta KL(old || new)``, ``beta`` adapted by :func:`adapt_kl_beta`."""

    name = "ppo_kl"

    def __init__(self, policy: ActorCritic, cfg: AlgoConfig, device: torch.device | str = "cpu"):
        super().__init__(policy, cfg, device)
        self.beta = float(cfg.kl_beta_init)

    def policy_loss(self, mb: Batch, adv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        log_prob, mean = self.policy.log_prob(mb.obs, mb.actions)
        ratio = torch.exp(log_prob - mb.log_probs)
        kl = self.mean_kl(mb, mean)
        return -(ratio * adv).mean() + self.beta * kl, ratio, mean

    def update_policy(self, batch: Batch, advantages: Tensor) -> Stats:
        stats = super().update_policy(batch, advantages)
        self.beta = adapt_kl_beta(self.beta, stats["kl"], self.cfg.kl_target)
        stats["beta"] = self.beta
        return stats

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "beta": self.beta}

    def load_state_dict(self, state: dict[str, Any], load_optimizer: bool = True) -> None:
        super().load_state_dict(state, load_optimizer)
        self.beta = float(state["beta"])
