"""The numerics under the on-policy algorithms, pure functions tested on their own.

* flat parameter vectors: :func:`flat_params`, :func:`set_flat_params`, :func:`flat_grad`;
* :class:`FlatAdam`, Adam on one flat vector (the value fit of
  :class:`~robot_rl.rl.base.OnPolicyAlgorithm`);
* the natural-gradient step of :mod:`robot_rl.rl.trpo`: :func:`conjugate_gradient`,
  :func:`fisher_vector_product` (and :func:`make_fisher_vector_product`, which builds
  the KL gradient graph once per update) and the backtracking :func:`line_search`;
* :func:`adapt_kl_beta`, the penalty rule of :class:`~robot_rl.rl.ppo.PPOAdaptiveKL`;
* :func:`explained_variance`, logged by every update.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


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
