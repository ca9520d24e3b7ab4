"""TRPO and NPG: the natural-gradient step, with and without the line search.

CG solves ``(H + lambda I) s = g`` (``g`` the surrogate gradient, ``H`` the Hessian of the
mean KL, i.e. the Fisher matrix, ``lambda = cg_damping``) and the full step is
``sqrt(2 delta / s^T (H + lambda I) s) * s``, so that ``1/2 step^T (H + lambda I) step =
delta`` exactly.  :class:`TRPO` then backtracks along it
(:func:`~robot_rl.rl.numerics.line_search`); :class:`NPG` takes it as it is.

Where this departs on purpose from the TRPO lecture (and the paper's appendix C,
Schulman et al. 2015).  The lecture scales by the undamped curvature ``s^T H s``
(``1/2 step^T H step = delta``); like sb3-contrib's TRPO we scale by the damped one, so
with ``lambda > 0`` the quadratic KL model of the full step is
``delta - lambda/2 |step|^2``, below ``delta`` by an amount that grows with ``lambda``
relative to the Fisher's eigenvalues along the step.  The two agree at
``cg_damping = 0``.  TRPO's line search checks the true mean KL against ``delta``
(docs/rl.md lists these rules and the tests that pin them).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robot_rl.rl.base import OnPolicyAlgorithm, Stats
from robot_rl.rl.models import gaussian_kl
from robot_rl.rl.numerics import (
    LineSearchResult,
    conjugate_gradient,
    flat_grad,
    flat_params,
    line_search,
    make_fisher_vector_product,
    set_flat_params,
)
from robot_rl.rl.storage import Batch


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
