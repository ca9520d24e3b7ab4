"""The CPU fast paths agree with the plain torch code they replace: the hand-written MLP
gradient with autograd, FlatAdam with torch.optim.Adam, the numpy rollout actor with the
torch policy, and the numpy and torch actors with each other inside the runner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_rl.config import from_dict
from robot_rl.rl import ActorCritic, OnPolicyRunner, PolicyConfig, TrainConfig
from robot_rl.rl.models import MLP, FlatMLP
from robot_rl.rl.numerics import FlatAdam, flat_params
from robot_rl.rl.rollout import NumpyActor, TorchActor


@pytest.mark.parametrize("activation", ["tanh", "elu", "relu"])
def test_flat_mlp_gradient_equals_autograd(activation):
    torch.manual_seed(0)
    mlp = MLP(7, (16, 8), 1, activation).double()
    for m in mlp.layers:  # non-zero biases, so their gradients are exercised
        torch.nn.init.normal_(m.bias)
    x, y = torch.randn(33, 7, dtype=torch.float64), torch.randn(33, dtype=torch.float64)
    loss = (mlp(x).squeeze(-1) - y).pow(2).mean()
    grads = torch.autograd.grad(loss, list(mlp.parameters()))
    flat = FlatMLP(mlp, flat_params(mlp.parameters()))
    got = flat.mse_and_grad(x, y)
    torch.testing.assert_close(got, loss.detach())
    torch.testing.assert_close(flat.grad, torch.cat([g.reshape(-1) for g in grads]))


def test_flat_mlp_refuses_a_vector_of_the_wrong_size():
    mlp = MLP(3, (4,), 1, "tanh")
    with pytest.raises(ValueError, match="flat vector has 5 entries"):
        FlatMLP(mlp, torch.zeros(5))


def test_flat_adam_matches_torch_adam_and_loads_its_state():
    torch.manual_seed(0)
    params = [torch.randn(4, 3, requires_grad=True), torch.randn(3, requires_grad=True)]
    ref = torch.optim.Adam(params, lr=1e-2)
    x = flat_params(params)
    ours = FlatAdam(x.numel(), lr=1e-2)
    for _ in range(25):
        g = [torch.randn_like(p) for p in params]
        for p, gi in zip(params, g):
            p.grad = gi
        ref.step()
        ours.update(x, torch.cat([gi.reshape(-1) for gi in g]))
    torch.testing.assert_close(x, flat_params(params))
    converted = FlatAdam(x.numel(), lr=1e-2)
    converted.load_state_dict(ref.state_dict())  # a checkpoint from torch.optim.Adam
    assert converted.step == ours.step == 25
    torch.testing.assert_close(converted.m, ours.m)
    torch.testing.assert_close(converted.v, ours.v)
    with pytest.raises(ValueError, match="value net has 3 parameters"):
        FlatAdam(3, lr=1e-2).load_state_dict(ours.state_dict())


@pytest.mark.parametrize("activation", ["tanh", "elu"])
def test_numpy_actor_matches_the_torch_policy(activation):
    torch.manual_seed(0)
    policy = ActorCritic(5, 2, PolicyConfig(actor_hidden=(16, 16), activation=activation,
                                            init_log_std=-0.7))
    for m in policy.actor.layers:
        torch.nn.init.normal_(m.weight, std=0.5)
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, (8, 5)).astype(np.float32) for _ in range(4)]
    actor = NumpyActor(policy, seed=0)
    for b in batches:
        actor.update_normalizer(b)
        policy.obs_normalizer.update(torch.from_numpy(b))
    norm = policy.obs_normalizer
    np.testing.assert_allclose(actor.mean, norm.mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(actor.var, norm.var.numpy(), rtol=1e-5)
    assert actor.count == float(norm.count) == 32
    obs = rng.normal(3.0, 2.0, (8, 5)).astype(np.float32)
    obs[0, 0] = 1e6  # clipped to obs_clip standard deviations
    on = actor.normalize(obs)
    with torch.no_grad():
        ref = norm(torch.from_numpy(obs))
        np.testing.assert_allclose(on, ref.numpy(), rtol=1e-5, atol=1e-6)
        mean = policy.actor(ref).numpy()
    # samples: mean + std * noise, with the std of the policy
    draws = np.stack([actor.sample(on) for _ in range(4000)])
    np.testing.assert_allclose(draws.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(draws.std(0), np.exp(-0.7), rtol=0.05)
    # writing the statistics back and reloading gives the same normalization
    other = ActorCritic(5, 2, policy.cfg)
    actor.store_normalizer(other)
    torch.testing.assert_close(other.obs_normalizer.mean, norm.mean)


def test_torch_actor_has_the_numpy_interface():
    torch.manual_seed(0)
    policy = ActorCritic(3, 2, PolicyConfig(actor_hidden=(8,)))
    actor = TorchActor(policy)
    obs = np.ones((4, 3), np.float32)
    actor.update_normalizer(obs * 2)
    assert float(policy.obs_normalizer.count) == 4
    a = actor.sample(actor.normalize(obs))
    assert isinstance(a, np.ndarray) and a.shape == (4, 2) and a.dtype == np.float32


def test_runner_learns_the_same_with_numpy_and_torch_actors(point_env):
    """Different samplers (numpy vs torch RNG), same algorithm, on PointEnv's steering
    task (where an untrained policy earns about -13 and a trained one about +9): both
    learn, and the return after a few iterations agrees within the spread of two seeds
    of one sampler."""
    reach = {"num_envs": 16, "horizon": 10, "start": 2.0, "gain": 0.5, "pos_coef": 1.0}

    def returns(actor, seed):
        cfg = from_dict(TrainConfig, {
            "algo": {"max_kl": 0.02, "gamma": 0.95},
            "policy": {"actor_hidden": [16], "critic_hidden": [16]},
            "runner": {"num_steps_per_env": 20, "iterations": 8, "device": "cpu",
                       "progress": False, "seed": seed, "rollout_actor": actor,
                       "episode_window": 32}})
        out = []
        r = OnPolicyRunner.from_config(point_env(**reach), cfg,
                                       callback=lambda it, log: out.append(
                                           log["episode/return_mean"]))
        r.learn()
        return out

    runs = {(a, s): returns(a, s) for a, s in [("numpy", 0), ("numpy", 1), ("torch", 0)]}
    target = point_env(**reach).steering_return(seed=0, episodes=64)
    for key, curve in runs.items():  # each learns: most of the way from untrained to target
        assert curve[-1] - curve[0] >= 0.6 * (target - curve[0]), (key, curve)
    np0, np1, th0 = (runs[k][-1] for k in [("numpy", 0), ("numpy", 1), ("torch", 0)])
    assert abs(th0 - np0) <= 3 * abs(np1 - np0) + 0.05 * abs(target - runs["numpy", 0][0])
