"""Conjugate gradient and the Fisher-vector product, checked against explicit linear algebra."""

import pytest
import torch
from torch.func import functional_call

from robot_rl.rl import ActorCritic, PolicyConfig, conjugate_gradient, make_fisher_vector_product
from robot_rl.rl.models import gaussian_kl
from robot_rl.rl.numerics import flat_params


def test_cg_solves_random_spd_system():
    g = torch.Generator().manual_seed(0)
    n = 12
    m = torch.randn(n, n, generator=g, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=3 * n, residual_tol=1e-24)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-8)


def test_cg_one_iteration_is_the_steepest_descent_step():
    a = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    b = torch.tensor([1.0, 1.0], dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=1)
    # x1 = (b.b / b.Ab) b = (2 / 5) b
    torch.testing.assert_close(x, 0.4 * b)


def test_cg_stops_on_non_positive_curvature():
    b = torch.ones(4, dtype=torch.float64)
    x = conjugate_gradient(lambda v: -v, b, iters=10)
    assert torch.equal(x, torch.zeros_like(b))


def test_cg_zero_rhs_returns_zero():
    x = conjugate_gradient(lambda v: 2 * v, torch.zeros(3), iters=5)
    assert torch.equal(x, torch.zeros(3))


@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_fvp_equals_explicit_hessian_of_mean_kl(damping):
    torch.manual_seed(0)
    cfg = PolicyConfig(actor_hidden=(5,), critic_hidden=(3,), init_log_std=-0.3)
    policy = ActorCritic(3, 2, cfg).double()
    with torch.no_grad():
        policy.log_std.copy_(torch.tensor([-0.2, 0.4], dtype=torch.float64))
    obs = torch.randn(7, 3, dtype=torch.float64)
    params = policy.actor_parameters()
    names = {id(p): n for n, p in policy.named_parameters()}
    shapes = [(names[id(p)], p.shape, p.numel()) for p in params]
    theta0 = flat_params(params)

    mean0 = policy.actor(obs).detach()
    std0 = policy.log_std.exp().detach().expand_as(mean0)

    def mean_kl_of(theta):
        tensors, i = {}, 0
        for name, shape, n in shapes:
            tensors[name] = theta[i : i + n].view(shape)
            i += n
        actor = {k.removeprefix("actor."): v for k, v in tensors.items() if k != "log_std"}
        mean = functional_call(policy.actor, actor, (obs,))
        std = tensors["log_std"].exp().expand_as(mean)
        return gaussian_kl(mean0, std0, mean, std).mean()

    hessian = torch.autograd.functional.hessian(mean_kl_of, theta0)

    mean = policy.actor(obs)
    std = policy.log_std.exp().expand_as(mean)
    kl = gaussian_kl(mean.detach(), std.detach(), mean, std).mean()
    fvp = make_fisher_vector_product(kl, params, damping)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):  # the KL-gradient graph is built once and reused
        v = torch.randn(theta0.numel(), generator=g, dtype=torch.float64)
        torch.testing.assert_close(fvp(v), hessian @ v + damping * v, rtol=1e-9, atol=1e-12)
