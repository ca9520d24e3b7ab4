"""The TRPO / NPG step pinned against explicit linear algebra (float64, small network).

On one fixed batch the surrogate gradient ``g`` and the Fisher matrix ``H`` (the Hessian
of the mean KL at the old parameters, by ``torch.autograd.functional.hessian``) are
computed explicitly; the step the algorithm applies must be

    s* = solve(H + lambda I, g),   step* = sqrt(2 delta / s*^T (H + lambda I) s*) s*

so that ``1/2 step*^T (H + lambda I) step* = delta``.  With ``lambda = cg_damping = 0``
that is the TRPO lecture's step, ``1/2 step^T H step = delta``.  With ``lambda > 0`` it is
sb3-contrib's convention (the step scaled by the *damped* curvature, see
:mod:`robot_rl.rl.trpo`): ``1/2 step^T H step`` is then below ``delta``.

A step of twice or half the right size changes ``1/2 step^T H step`` by 4x or 1/4x and
fails here; TRPO's line search would otherwise backtrack a doubled step to the right
one, so the TRPO test also asserts that the full step is accepted without backtracking
where the explicit computation shows it is feasible.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call

from robot_rl.rl import ActorCritic, AlgoConfig, PolicyConfig, make_algorithm
from robot_rl.rl.models import gaussian_kl, gaussian_log_prob
from robot_rl.rl.numerics import flat_params
from robot_rl.rl.storage import Batch

F64 = torch.float64


def make_problem(hidden=(3,), n=256, seed=0):
    """A float64 policy 3 -> 2 with non-trivial weights and one synthetic batch."""
    torch.manual_seed(seed)
    policy = ActorCritic(
        3, 2, PolicyConfig(actor_hidden=hidden, critic_hidden=(4,), init_log_std=-0.5)
    ).double()
    with torch.no_grad():  # not the 0.01-gain head: every parameter moves the mean
        for m in policy.actor.layers:
            torch.nn.init.normal_(m.weight, std=0.7)
            torch.nn.init.normal_(m.bias, std=0.3)
        policy.log_std.copy_(torch.tensor([-0.3, 0.2], dtype=F64))
    obs = torch.randn(n, 3, dtype=F64)
    with torch.no_grad():
        mean = policy.actor(obs)
        std = policy.action_std().expand_as(mean)
        actions = mean + std * torch.randn_like(mean)
        log_probs = gaussian_log_prob(actions, mean, policy.log_std)
    adv = torch.randn(n, dtype=F64)
    adv = (adv - adv.mean()) / adv.std()
    zeros = torch.zeros(n, dtype=F64)
    batch = Batch(obs=obs, actions=actions, log_probs=log_probs, values=zeros,
                  action_mean=mean, action_std=std, advantages=adv, returns=zeros)
    return policy, batch


class Explicit:
    """Surrogate, mean KL, ``g`` and ``H`` of ``policy`` on ``batch`` as functions of the
    flat actor parameters (``functional_call``: independent of the algorithm's code)."""

    def __init__(self, policy, batch):
        params = policy.actor_parameters()
        names = {id(p): name for name, p in policy.named_parameters()}
        self.shapes = [(names[id(p)], p.shape, p.numel()) for p in params]
        self.policy, self.batch = policy, batch
        self.theta0 = flat_params(params)
        self.g = torch.autograd.functional.jacobian(self.surrogate, self.theta0)
        self.H = torch.autograd.functional.hessian(self.mean_kl, self.theta0)

    def _mean_and_log_std(self, theta):
        tensors, i = {}, 0
        for name, shape, k in self.shapes:
            tensors[name] = theta[i : i + k].view(shape)
            i += k
        actor = {k.removeprefix("actor."): v for k, v in tensors.items() if k != "log_std"}
        return functional_call(self.policy.actor, actor, (self.batch.obs,)), tensors["log_std"]

    def surrogate(self, theta):
        mean, log_std = self._mean_and_log_std(theta)
        log_prob = gaussian_log_prob(self.batch.actions, mean, log_std)
        return (torch.exp(log_prob - self.batch.log_probs) * self.batch.advantages).mean()

    def mean_kl(self, theta):
        mean, log_std = self._mean_and_log_std(theta)
        b = self.batch
        return gaussian_kl(b.action_mean, b.action_std, mean, log_std.exp().expand_as(mean)).mean()

    def step(self, delta, damping):
        """``step*`` of the module docstring."""
        a = self.H + damping * torch.eye(self.theta0.numel(), dtype=F64)
        s = torch.linalg.solve(a, self.g)
        return math.sqrt(2.0 * delta / float(s @ a @ s)) * s


def run_update(name, delta, damping, **problem):
    """Apply one ``update_policy`` with CG run to convergence; return (stats, applied step)."""
    policy, batch = make_problem(**problem)
    x0 = flat_params(policy.actor_parameters())
    cfg = AlgoConfig(name=name, max_kl=delta, cg_damping=damping, cg_iters=10 * x0.numel(),
                     cg_residual_tol=1e-26)
    stats = make_algorithm(cfg, policy).update_policy(batch, batch.advantages)
    return stats, flat_params(policy.actor_parameters()) - x0


@pytest.mark.parametrize("damping", [0.0, 0.1])
@pytest.mark.parametrize("name", ["npg", "trpo"])
def test_full_step_equals_explicit_natural_step(name, damping):
    # delta small enough that the full step is inside the trust region here (checked)
    delta = 1e-4
    ex = Explicit(*make_problem())
    want = ex.step(delta, damping)
    eye = torch.eye(want.numel(), dtype=F64)
    # the expected step itself: 1/2 step^T (H + lambda I) step = delta
    assert 0.5 * float(want @ (ex.H + damping * eye) @ want) == pytest.approx(delta, rel=1e-12)
    if name == "trpo":  # premise: the full step is feasible, so no backtracking is allowed
        assert float(ex.mean_kl(ex.theta0 + want)) <= delta
        assert float(ex.surrogate(ex.theta0 + want) - ex.surrogate(ex.theta0)) >= 0.0

    stats, applied = run_update(name, delta, damping)
    assert stats["accepted"] == 1.0 and not stats.get("skip_reason")
    assert stats["backtracks"] == 0.0  # a doubled step would be backtracked once
    # the applied step is step*, to CG's float64 accuracy (H's condition number here ~7e3)
    torch.testing.assert_close(applied, want, rtol=1e-6, atol=1e-12)
    # asserted exactly (1e-6 relative): the damped quadratic model of the applied step is
    # delta; at damping 0 that is the lecture's 1/2 s^T H s = delta
    half_shs = 0.5 * float(applied @ (ex.H + damping * eye) @ applied)
    assert half_shs == pytest.approx(delta, rel=1e-6)
    half_sHs = 0.5 * float(applied @ ex.H @ applied)
    if damping == 0.0:
        assert half_sHs == pytest.approx(delta, rel=1e-6)
    else:  # sb3's convention: the undamped model is delta - damping/2 |step|^2 < delta
        assert half_sHs == pytest.approx(delta - 0.5 * damping * float(applied @ applied),
                                         rel=1e-6)
        assert half_sHs < 0.9 * delta
    # the logged numbers describe the same step
    assert stats["step_norm"] == pytest.approx(float(want.norm()), rel=1e-6)
    assert stats["expected_improvement"] == pytest.approx(float(ex.g @ want), rel=1e-6)
    assert stats["kl"] == pytest.approx(float(ex.mean_kl(ex.theta0 + applied)), rel=1e-9)


@pytest.mark.parametrize("delta", [1e-4, 1e-5])
def test_npg_kl_is_delta_where_the_quadratic_model_holds(delta):
    """Undamped NPG: the measured mean KL of the step is within 10 % of delta.

    The quadratic model KL ~ 1/2 s^T H s has a relative error O(sqrt(delta)) (the cubic
    term); on this problem it is 1-4 % at these deltas (measured: 0.987 and 0.996 delta).
    """
    stats, _ = run_update("npg", delta, 0.0)
    assert stats["kl"] == pytest.approx(delta, rel=0.1)


def test_damped_npg_kl_matches_the_undamped_quadratic_model():
    """With damping the measured KL follows 1/2 s^T H s (not delta): within 10 %."""
    delta = 1e-3
    ex = Explicit(*make_problem())
    stats, applied = run_update("npg", delta, 0.1)
    model = 0.5 * float(applied @ ex.H @ applied)
    assert model < 0.9 * delta
    assert stats["kl"] == pytest.approx(model, rel=0.1)
