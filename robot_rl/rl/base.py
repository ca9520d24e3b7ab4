"""The base of the on-policy algorithms: rollout storage, value fit, update skeleton.

The seams follow rsl_rl.  :class:`OnPolicyAlgorithm` owns the policy, the rollout
storage and the value-function fit, and provides

* :meth:`~OnPolicyAlgorithm.act` -- sample actions for normalized observations and
  remember what the update needs (log prob, value, mean, std);
* :meth:`~OnPolicyAlgorithm.process_env_step` -- store the env's outcome, with the
  value of the true final observation for truncated episodes;
* :meth:`~OnPolicyAlgorithm.compute_returns` -- GAE over the finished rollout;
* :meth:`~OnPolicyAlgorithm.update` -- policy step (the only part the subclasses
  change, in :meth:`~OnPolicyAlgorithm.update_policy`: :mod:`robot_rl.rl.trpo` and
  :mod:`robot_rl.rl.ppo`), then the value fit (Adam, ``value_epochs`` x
  ``value_minibatches`` on the GAE returns; the gradient is written out by hand
  (:class:`~robot_rl.rl.models.FlatMLP`) and Adam runs on one flat vector
  (:class:`~robot_rl.rl.numerics.FlatAdam`), 3x faster than autograd +
  ``torch.optim.Adam`` at these sizes), then clears the storage.

Two ways fill the storage.  ``act`` / ``process_env_step`` are the per-step API, one
call each per env step (:meth:`RolloutStorage.add <robot_rl.rl.storage.RolloutStorage.add>`
underneath): the seam for a caller that steps its own env loop in torch.
:class:`~robot_rl.rl.runner.OnPolicyRunner` instead collects the rollout in numpy
(:mod:`robot_rl.rl.rollout`) and fills the storage at once
(:meth:`~robot_rl.rl.storage.RolloutStorage.fill`), computing values and
log-probabilities in one batch; tests/rl/test_rl_runner.py checks that both give
the same storage.

Update statistics (:meth:`~OnPolicyAlgorithm.update` returns them; the runner logs the
numbers as ``train/<key>`` and the skip reason as text):

``kl``                   mean KL(old || new) over the batch after the update (nats)
``step_size``            TRPO/NPG: scalar multiplying the CG direction in the applied step
``step_norm``            TRPO/NPG: Euclidean norm of the applied parameter step
``accepted``             1 if the policy changed, 0 if not (line search failed, update
                         skipped, or every PPO minibatch skipped)
``backtracks``           TRPO: line-search trials rejected before the accepted one
``surrogate_improvement``  new minus old surrogate E[ratio * A] on the batch
``expected_improvement``   TRPO/NPG: first-order prediction g . step of the full step
``grad_norm``            norm of the surrogate gradient (TRPO/NPG) or last minibatch (PPO)
``skipped``              1 if a guard skipped the policy update
``skip_reason``          "" or why (str): non_finite_gradient, gradient_norm_too_large,
                         non_finite_direction, non_positive_curvature, non_finite_step
                         (TRPO/NPG); non_finite_loss (PPO)
``shs``                  TRPO/NPG: damped curvature s^T (F + lambda I) s of the CG direction
``value_loss``           mean squared error of the value fit, averaged over its minibatches
``value_skip_reason``    "" or why the value fit was skipped/undone (str): non_finite_returns,
                         non_finite_value_weights
``explained_variance``   1 - Var(returns - V_old) / Var(returns), before the value fit
``entropy``              policy entropy after the update (nats)
``beta``                 PPO-KL: penalty coefficient after adaptation
``clip_fraction``        PPO-clip: fraction of samples whose ratio left [1-eps, 1+eps]
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from robot_rl.rl.config import AlgoConfig
from robot_rl.rl.models import ActorCritic, FlatMLP, gaussian_kl
from robot_rl.rl.numerics import FlatAdam, explained_variance, flat_params, set_flat_params
from robot_rl.rl.storage import Batch, RolloutStorage, minibatch_indices

Stats = dict[str, Any]


def _normalized(adv: Tensor) -> Tensor:
    if adv.numel() < 2:
        return adv
    return (adv - adv.mean()) / (adv.std() + 1e-8)


class OnPolicyAlgorithm:
    """Base of the on-policy algorithms; subclasses implement :meth:`update_policy` only."""

    #: algorithm name, as in :attr:`AlgoConfig.name`
    name = "base"

    def __init__(self, policy: ActorCritic, cfg: AlgoConfig, device: torch.device | str = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        self.policy = policy.to(self.device)
        numel = sum(p.numel() for p in self.policy.critic_parameters())
        self.value_optimizer = FlatAdam(numel, cfg.value_lr, device=self.device)
        self.storage: RolloutStorage | None = None
        self._pending: tuple[Tensor, ...] | None = None

    # -- rollout side -------------------------------------------------------------------

    def init_storage(self, num_envs: int, num_steps: int, obs_dim: int, action_dim: int) -> None:
        """Allocate the rollout buffers on the algorithm's device."""
        self.storage = RolloutStorage(num_envs, num_steps, obs_dim, action_dim, self.device)
        self._zeros = torch.zeros(num_envs, device=self.device)

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        """Sample actions for normalized observations ``(num_envs, obs_dim)``; remember the step."""
        actions, log_prob, mean, std = self.policy.act(obs)
        values = self.policy.value(obs)
        self._pending = (obs, actions, log_prob, values, mean, std)
        return actions

    @torch.no_grad()
    def process_env_step(
        self,
        rewards: Tensor,
        terminated: Tensor,
        truncated: Tensor,
        final_obs: Tensor | None = None,
    ) -> None:
        """Store the outcome of the step started by the last :meth:`act`.

        ``final_obs`` are the normalized final observations of the episodes that ended in
        this step, shape ``(num_envs, obs_dim)`` (rows of envs that did not end are
        ignored).  Required when any env is truncated: their values bootstrap the return.
        """
        if self._pending is None or self.storage is None:
            raise RuntimeError("process_env_step() needs init_storage() and act() first")
        obs, actions, log_prob, values, mean, std = self._pending
        truncated = truncated.to(torch.bool)
        if final_obs is not None:
            final_values = torch.where(truncated, self.policy.value(final_obs), 0.0)
        else:
            if bool(truncated.any()):
                raise ValueError("truncated episodes need final_obs to bootstrap their value")
            final_values = self._zeros
        self.storage.add(
            obs, actions, log_prob, values, mean, std, rewards, terminated, truncated, final_values
        )
        self._pending = None

    @torch.no_grad()
    def compute_returns(self, last_obs: Tensor) -> None:
        """GAE advantages and returns; ``last_obs`` = normalized obs after the last step."""
        assert self.storage is not None
        self.storage.compute_returns(self.policy.value(last_obs), self.cfg.gamma, self.cfg.lam)

    # -- update side --------------------------------------------------------------------

    def update(self) -> Stats:
        """Policy step (:meth:`update_policy`), value fit, then clear the storage."""
        assert self.storage is not None
        batch = self.storage.batch()
        adv = _normalized(batch.advantages) if self.cfg.normalize_advantages else batch.advantages
        stats: Stats = {
            "kl": 0.0,
            "accepted": 0.0,
            "surrogate_improvement": 0.0,
            "skipped": 0.0,
            "skip_reason": "",
        }
        stats["explained_variance"] = explained_variance(batch.values, batch.returns)
        stats.update(self.update_policy(batch, adv))
        stats["value_loss"], stats["value_skip_reason"] = self.fit_value(batch)
        with torch.no_grad():
            stats["entropy"] = float(self.policy.entropy())
        self.storage.clear()
        return stats

    def update_policy(self, batch: Batch, advantages: Tensor) -> Stats:
        """Change the policy parameters from one batch; return statistics."""
        raise NotImplementedError

    def fit_value(self, batch: Batch) -> tuple[float, str]:
        """Fit the value net to ``batch.returns`` (MSE, Adam).

        Returns ``(mean minibatch loss, skip reason)``.  Guards: non-finite returns or
        observations skip the fit; if the fit itself ends with non-finite weights, the
        value net and its optimizer are restored to their state before the fit.
        """
        if not bool(torch.isfinite(batch.returns).all() & torch.isfinite(batch.obs).all()):
            return float("nan"), "non_finite_returns"
        params = self.policy.critic_parameters()
        x = flat_params(params)  # the fit works on this copy; params change only on success
        net = FlatMLP(self.policy.critic, x)
        opt, opt_state = self.value_optimizer, self.value_optimizer.state_dict()
        loss_sum, n = torch.zeros((), device=self.device), 0
        for idx in minibatch_indices(
            len(batch), self.cfg.value_minibatches, self.cfg.value_epochs, self.device
        ):
            loss_sum += net.mse_and_grad(batch.obs[idx], batch.returns[idx])
            opt.update(x, net.grad)
            n += 1
        if not bool(torch.isfinite(x).all()):
            opt.load_state_dict(opt_state)
            return float("nan"), "non_finite_value_weights"
        set_flat_params(params, x)
        return float(loss_sum) / max(n, 1), ""

    # -- shared helpers -----------------------------------------------------------------

    def surrogate(self, batch: Batch, advantages: Tensor) -> tuple[Tensor, Tensor]:
        """``(E[ratio * A], action mean)`` of the current policy on ``batch``."""
        log_prob, mean = self.policy.log_prob(batch.obs, batch.actions)
        ratio = torch.exp(log_prob - batch.log_probs)
        return (ratio * advantages).mean(), mean

    def mean_kl(self, batch: Batch, mean: Tensor) -> Tensor:
        """Mean KL(pi_old || pi_current) over ``batch``, given the current action mean."""
        std = self.policy.action_std().expand_as(mean)
        return gaussian_kl(batch.action_mean, batch.action_std, mean, std).mean()

    # -- checkpoints --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Policy (with normalizer), optimizers and algorithm state."""
        return {
            "policy": self.policy.state_dict(),
            "value_optimizer": self.value_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], load_optimizer: bool = True) -> None:
        """Inverse of :meth:`state_dict`."""
        self.policy.load_state_dict(state["policy"])
        if load_optimizer:
            self.value_optimizer.load_state_dict(state["value_optimizer"])
