"""On-policy algorithms over one storage: TRPO, NPG, PPO-clip, PPO with adaptive KL penalty.

The seams follow rsl_rl.  :class:`OnPolicyAlgorithm` owns the policy, the rollout
storage and the value-function fit, and provides

* :meth:`~OnPolicyAlgorithm.act` -- sample actions for normalized observations and
  remember what the update needs (log prob, value, mean, std);
* :meth:`~OnPolicyAlgorithm.process_env_step` -- store the env's outcome, with the
  value of the true final observation for truncated episodes;
* :meth:`~OnPolicyAlgorithm.compute_returns` -- GAE over the finished rollout;
* :meth:`~OnPolicyAlgorithm.update` -- policy step (the only part the subclasses
  change, in :meth:`~OnPolicyAlgorithm.update_policy`), then the value fit (Adam,
  ``value_epochs`` x ``value_minibatches`` on the GAE returns; the gradient is written
  out by hand (:class:`~robot_rl.rl.models.FlatMLP`) and Adam runs on one flat vector
  (:class:`FlatAdam`), 3x faster than autograd + ``torch.optim.Adam`` at these sizes),
  then clears the storage.

A runner may also fill the storage with a whole rollout at once
(:meth:`RolloutStorage.fill`); :class:`~robot_rl.rl.runner.OnPolicyRunner` does, computing
values and log-probabilities for the rollout in one batch.

The building blocks of the natural-gradient step are pure functions, tested on their
own: :func:`conjugate_gradient`, :func:`fisher_vector_product` (and
:func:`make_fisher_vector_product`, which builds the KL gradient graph once per update),
:func:`line_search` and :func:`adapt_kl_beta`.

The natural step, and where it departs on purpose from the TRPO lecture (and the
paper's appendix C, Schulman et al. 2015).  CG solves ``(H + lambda I) s = g`` (``H`` the
Hessian of the mean KL, i.e. the Fisher matrix, ``lambda = cg_damping``) and the full
step is ``sqrt(2 delta / s^T (H + lambda I) s) * s``, so that
``1/2 step^T (H + lambda I) step = delta`` exactly.  The lecture scales by the undamped
curvature ``s^T H s`` (``1/2 step^T H step = delta``); like sb3-contrib's TRPO we scale
by the damped one, so with ``lambda > 0`` the quadratic KL model of the full step is
``delta - lambda/2 |step|^2``, below ``delta`` by an amount that grows with ``lambda``
relative to the Fisher's eigenvalues along the step.  The two agree at
``cg_damping = 0``.  TRPO's line search checks the true mean KL against ``delta``
(docs/rl.md lists these rules and the tests that pin them).

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
``value_loss``           mean squared error of the value fit, averaged over its minibatches
``value_skip_reason``    "" or why the value fit was skipped/undone (str): non_finite_returns,
                         non_finite_value_weights
``explained_variance``   1 - Var(returns - V_old) / Var(returns), before the value fit
``entropy``              policy entropy after the update (nats)
``beta``                 PPO-KL: penalty coefficient after adaptation
``clip_fraction``        PPO-clip: fraction of samples whose ratio left [1-eps, 1+eps]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from robot_rl.rl.config import AlgoConfig
from robot_rl.rl.models import ActorCritic, FlatMLP, gaussian_kl
from robot_rl.rl.storage import Batch, RolloutStorage, minibatch_indices

Stats = dict[str, Any]


# ----------------------------------------------------------------------------- utilities


def flat_params(params: Sequence[Tensor]) -> Tensor:
    """Concatenate parameters into one detached 1-D tensor (a copy)."""
    return torch.cat([p.detach().reshape(-1) for p in params]).clone()


@torch.no_grad()
def set_flat_params(params: Sequence[Tensor], flat: Tensor) -> None:
    """Copy a flat vector back into ``params`` in place (optimizer state stays attached)."""
    i = 0
    for p in params:
        n = p.numel()
        p.copy_(flat[i : i + n].view_as(p))
        i += n
    if i != flat.numel():
        raise ValueError(f"flat vector has {flat.numel()} entries, parameters need {i}")


def flat_grad(output: Tensor, params: Sequence[Tensor], **kwargs: Any) -> Tensor:
    """Gradient of scalar ``output`` w.r.t. ``params`` as one 1-D tensor (unused -> 0)."""
    grads = torch.autograd.grad(output, list(params), allow_unused=True, **kwargs)
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)]
    )


class FlatAdam:
    """Adam (Kingma & Ba; the arithmetic of ``torch.optim.Adam``) on one flat parameter vector.

    Six tensor ops per step however many layers the network has.  ``state_dict`` holds
    ``m``, ``v`` and ``step``; :meth:`load_state_dict` also takes a ``torch.optim.Adam``
    state dict over the same parameters (checkpoints written before this class existed).
    """

    def __init__(self, numel: int, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, device: torch.device | str = "cpu"):
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m = torch.zeros(numel, device=device)
        self.v = torch.zeros(numel, device=device)
        self.step = 0

    @torch.no_grad()
    def update(self, x: Tensor, grad: Tensor) -> None:
        """One Adam step on ``x`` (in place) with gradient ``grad``."""
        b1, b2 = self.betas
        self.step += 1
        self.m.lerp_(grad, 1.0 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
        denom = (self.v.sqrt() / math.sqrt(1.0 - b2**self.step)).add_(self.eps)
        x.addcdiv_(self.m, denom, value=-self.lr / (1.0 - b1**self.step))

    def state_dict(self) -> dict[str, Any]:
        return {"m": self.m.clone(), "v": self.v.clone(), "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "state" in state:  # a torch.optim.Adam state dict
            per_param = [state["state"][k] for k in sorted(state["state"])]
            if not per_param:
                self.m.zero_()
                self.v.zero_()
                self.step = 0
                return
            state = {
                "m": torch.cat([p["exp_avg"].reshape(-1) for p in per_param]),
                "v": torch.cat([p["exp_avg_sq"].reshape(-1) for p in per_param]),
                "step": int(per_param[0]["step"]),
            }
        if state["m"].numel() != self.m.numel():
            raise ValueError(
                f"value optimizer state has {state['m'].numel()} entries, the value net "
                f"has {self.m.numel()} parameters"
            )
        self.m.copy_(state["m"])
        self.v.copy_(state["v"])
        self.step = int(state["step"])


def conjugate_gradient(
    fvp: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, residual_tol: float = 1e-10
) -> Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given as ``fvp(v) = A v``.

    Starts from ``x = 0``; stops after ``iters`` iterations, when the squared residual
    norm drops below ``residual_tol``, or when a direction of non-positive (or
    non-finite) curvature ``p . A p`` appears -- then the iterate so far is returned.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = torch.dot(r, r)
    for _ in range(iters):
        if float(rr) < residual_tol:
            break
        Ap = fvp(p)
        pAp = torch.dot(p, Ap)
        pAp_f = float(pAp)
        if not math.isfinite(pAp_f) or pAp_f <= 0.0:
            break
        alpha = rr / pAp
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def fisher_vector_product(
    kl_grad: Tensor, params: Sequence[Tensor], v: Tensor, damping: float
) -> Tensor:
    """``(H + damping * I) v`` with ``H`` the Hessian of the mean KL, by double backprop.

    ``kl_grad`` is the flat gradient of the mean KL w.r.t. ``params`` computed with
    ``create_graph=True`` (see :func:`make_fisher_vector_product`); its graph is kept, so
    this can be called once per CG iteration without rebuilding it.
    """
    hv = flat_grad(torch.dot(kl_grad, v.detach()), params, retain_graph=True)
    return hv + damping * v


def make_fisher_vector_product(
    mean_kl: Tensor, params: Sequence[Tensor], damping: float
) -> Callable[[Tensor], Tensor]:
    """Build the KL gradient graph once and return ``v -> (H + damping I) v``.

    ``mean_kl`` must be ``KL(pi_fixed || pi_params)`` averaged over states, with
    ``pi_fixed`` detached and equal to ``pi_params`` at the current parameters: its
    Hessian there is the Fisher information matrix of the policy.
    """
    params = list(params)
    kl_grad = flat_grad(mean_kl, params, create_graph=True)
    return lambda v: fisher_vector_product(kl_grad, params, v, damping)


@dataclass(frozen=True)
class LineSearchResult:
    """Outcome of :func:`line_search`."""

    # a step was accepted (else the parameters were restored)
    accepted: bool
    # fraction of the full step that was accepted; 0.0 when none was
    step_fraction: float
    # mean KL of the accepted step, or of the last (rejected) trial (nats)
    kl: float
    # surrogate(new) - surrogate(old) of the accepted step, or of the last trial
    improvement: float
    # trials rejected before the accepted one (all trials when none was accepted)
    backtracks: int


def line_search(
    set_params: Callable[[Tensor], None],
    evaluate: Callable[[], tuple[float, float]],
    x0: Tensor,
    full_step: Tensor,
    surrogate_old: float,
    max_kl: float,
    max_steps: int = 10,
    backtrack: float = 0.5,
) -> LineSearchResult:
    """Backtracking line search along ``full_step`` from ``x0``.

    Trial ``k`` (``k = 0 .. max_steps-1``) sets the parameters to
    ``x0 + backtrack**k * full_step`` and calls ``evaluate() -> (surrogate, mean_kl)``.
    A trial is accepted only if both numbers are finite, the surrogate does not get worse
    (``surrogate - surrogate_old >= 0``) and ``mean_kl <= max_kl`` (the TRPO lecture's rule).
    If no trial is accepted the parameters are set back to ``x0``.
    """
    frac, kl, improvement = 1.0, float("nan"), float("nan")
    for k in range(max_steps):
        set_params(x0 + frac * full_step)
        surrogate, kl = evaluate()
        improvement = surrogate - surrogate_old
        if math.isfinite(surrogate) and math.isfinite(kl) and improvement >= 0.0 and kl <= max_kl:
            return LineSearchResult(True, frac, kl, improvement, k)
        frac *= backtrack
    set_params(x0)
    return LineSearchResult(False, 0.0, kl, improvement, max_steps)


def adapt_kl_beta(beta: float, kl: float, kl_target: float) -> float:
    """Adaptive KL penalty rule: double ``beta`` if ``kl >= 1.5 target``, halve if ``kl <= target / 1.5``."""
    if kl >= 1.5 * kl_target:
        return beta * 2.0
    if kl <= kl_target / 1.5:
        return beta / 2.0
    return beta


def explained_variance(values: Tensor, returns: Tensor) -> float:
    """``1 - Var(returns - values) / Var(returns)`` (nan when the returns are constant)."""
    var = returns.var(unbiased=False)
    if float(var) == 0.0:
        return float("nan")
    return float(1.0 - (returns - values).var(unbiased=False) / var)


def _normalized(adv: Tensor) -> Tensor:
    if adv.numel() < 2:
        return adv
    return (adv - adv.mean()) / (adv.std() + 1e-8)


# ----------------------------------------------------------------------------- algorithms


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


class TRPO(OnPolicyAlgorithm):
    """Trust-region policy optimization (Schulman et al. 2015).

    Maximize ``L = E[ratio * A]`` subject to ``mean KL(old || new) <= max_kl``: CG on
    damped Fisher-vector products gives ``s ~ (F + lambda I)^-1 g``; the full step is
    ``sqrt(2 max_kl / s^T (F + lambda I) s) * s`` (damped curvature, as sb3-contrib: see
    the module docstring); a backtracking line search keeps it only if ``L`` does not
    decrease and the KL bound holds.  Guards skip the update (parameters untouched, reason
    logged) on a non-finite or huge gradient, a non-finite direction or non-positive
    curvature ``s^T F s``.
    """

    name = "trpo"
    use_line_search = True

    def _skip(self, reason: str, **extra: float) -> Stats:
        return {
            "skipped": 1.0,
            "skip_reason": reason,
            "accepted": 0.0,
            "step_size": 0.0,
            "step_norm": 0.0,
            "backtracks": 0.0,
            "kl": 0.0,
            **extra,
        }

    def update_policy(self, batch: Batch, advantages: Tensor) -> Stats:
        cfg = self.cfg
        params = self.policy.actor_parameters()
        x0 = flat_params(params)

        surr, _ = self.surrogate(batch, advantages)
        g = flat_grad(surr, params)
        surr_old = float(surr.detach())
        grad_norm = float(g.norm())
        if not math.isfinite(grad_norm):
            return self._skip("non_finite_gradient", grad_norm=grad_norm)
        if grad_norm > cfg.max_grad_norm:
            return self._skip("gradient_norm_too_large", grad_norm=grad_norm)

        obs = batch.obs
        if cfg.fvp_subsample < 1.0:
            n = max(1, int(round(cfg.fvp_subsample * obs.shape[0])))
            obs = obs[torch.randperm(obs.shape[0], device=obs.device)[:n]]
        mean = self.policy.actor(obs)
        std = self.policy.action_std().expand_as(mean)
        kl = gaussian_kl(mean.detach(), std.detach(), mean, std).mean()
        fvp = make_fisher_vector_product(kl, params, cfg.cg_damping)

        direction = conjugate_gradient(fvp, g, cfg.cg_iters, cfg.cg_residual_tol)
        if not bool(torch.isfinite(direction).all()):
            return self._skip("non_finite_direction", grad_norm=grad_norm)
        # s^T (H + damping I) s: the *damped* curvature.  The TRPO lecture scales the step by
        # s^T H s; we follow sb3-contrib and use the damped one, so 1/2 step^T (H + damping I)
        # step = max_kl and the undamped quadratic KL model is max_kl - damping/2 |step|^2
        # (deliberate; identical at cg_damping = 0; tests/rl/test_rl_natural_step.py).
        shs = float(torch.dot(direction, fvp(direction)))
        if not math.isfinite(shs) or shs <= 0.0:
            return self._skip("non_positive_curvature", grad_norm=grad_norm, shs=shs)
        scale = math.sqrt(2.0 * cfg.max_kl / shs)
        full_step = scale * direction
        if not bool(torch.isfinite(full_step).all()):
            return self._skip("non_finite_step", grad_norm=grad_norm, shs=shs)
        expected = float(torch.dot(g, full_step))
        full_norm = float(full_step.norm())

        def evaluate() -> tuple[float, float]:
            with torch.no_grad():
                s, m = self.surrogate(batch, advantages)
                return float(s), float(self.mean_kl(batch, m))

        if self.use_line_search:
            res = line_search(
                lambda x: set_flat_params(params, x),
                evaluate,
                x0,
                full_step,
                surr_old,
                cfg.max_kl,
                cfg.line_search_steps,
                cfg.backtrack,
            )
        else:  # NPG: take the natural step as it is
            set_flat_params(params, x0 + full_step)
            s_new, kl_new = evaluate()
            if not (math.isfinite(s_new) and math.isfinite(kl_new)):
                set_flat_params(params, x0)
                return self._skip("non_finite_step", grad_norm=grad_norm, shs=shs)
            res = LineSearchResult(True, 1.0, kl_new, s_new - surr_old, 0)
        if res.accepted and not bool(torch.isfinite(flat_params(params)).all()):
            set_flat_params(params, x0)  # belt and braces: never keep non-finite weights
            return self._skip("non_finite_step", grad_norm=grad_norm, shs=shs)
        return {
            "kl": res.kl if res.accepted else 0.0,
            "step_size": scale * res.step_fraction,
            "step_norm": full_norm * res.step_fraction,
            "accepted": float(res.accepted),
            "backtracks": float(res.backtracks),
            "surrogate_improvement": res.improvement if res.accepted else 0.0,
            "expected_improvement": expected,
            "grad_norm": grad_norm,
            "shs": shs,
        }


class NPG(TRPO):
    """Natural policy gradient: TRPO's full natural step (see :class:`TRPO`), no line search."""

    name = "npg"
    use_line_search = False


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


#: Algorithm classes by :attr:`AlgoConfig.name` (an explicit table, no import side effects).
ALGORITHM_CLASSES: dict[str, type[OnPolicyAlgorithm]] = {
    "trpo": TRPO,
    "npg": NPG,
    "ppo_clip": PPOClip,
    "ppo_kl": PPOAdaptiveKL,
}


def make_algorithm(
    cfg: AlgoConfig, policy: ActorCritic, device: torch.device | str = "cpu"
) -> OnPolicyAlgorithm:
    """Instantiate the algorithm named by ``cfg.name``."""
    return ALGORITHM_CLASSES[cfg.name](policy, cfg, device)
