"""TRPO / NPG / PPO updates on synthetic rollouts: trust region, guards, adaptive KL, configs."""

import math

import pytest
import torch

import robot_rl.rl.trpo as trpo
from robot_rl.config import ConfigError, from_dict
from robot_rl.rl import (
    NPG,
    TRPO,
    ActorCritic,
    AlgoConfig,
    PolicyConfig,
    PPOAdaptiveKL,
    PPOClip,
    TrainConfig,
    adapt_kl_beta,
    make_algorithm,
)
from robot_rl.rl.numerics import flat_params

N_ENVS, N_STEPS, OBS, ACT = 8, 16, 4, 2


def make_algo(name="trpo", **cfg):
    """An algorithm whose storage holds one synthetic rollout (reward: match obs[:2])."""
    torch.manual_seed(0)
    policy = ActorCritic(OBS, ACT, PolicyConfig(actor_hidden=(16,), critic_hidden=(16,)))
    algo = make_algorithm(AlgoConfig(name=name, **cfg), policy)
    algo.init_storage(N_ENVS, N_STEPS, OBS, ACT)
    g = torch.Generator().manual_seed(1)
    no = torch.zeros(N_ENVS, dtype=torch.bool)
    for _ in range(N_STEPS):
        obs = torch.randn(N_ENVS, OBS, generator=g)
        actions = algo.act(obs)
        algo.process_env_step(-(actions - obs[:, :ACT]).pow(2).sum(-1), no, no)
    algo.compute_returns(torch.randn(N_ENVS, OBS, generator=g))
    return algo


def actor_state(algo):
    return flat_params(algo.policy.actor_parameters())


def critic_state(algo):
    return flat_params(algo.policy.critic_parameters())


def test_make_algorithm_maps_names_to_classes():
    for name, cls in [
        ("trpo", TRPO),
        ("npg", NPG),
        ("ppo_clip", PPOClip),
        ("ppo_kl", PPOAdaptiveKL),
    ]:
        assert type(make_algo(name)) is cls


def test_per_step_api_refuses_misuse():
    """``process_env_step`` needs a pending ``act`` and, for truncated envs, ``final_obs``
    (tests/rl/test_rl_runner.py checks what it stores against the runner's batch path)."""
    torch.manual_seed(0)
    policy = ActorCritic(OBS, ACT, PolicyConfig(actor_hidden=(16,), critic_hidden=(16,)))
    algo = make_algorithm(AlgoConfig(), policy)
    algo.init_storage(N_ENVS, N_STEPS, OBS, ACT)
    no = torch.zeros(N_ENVS, dtype=torch.bool)
    with pytest.raises(RuntimeError, match="act"):
        algo.process_env_step(torch.zeros(N_ENVS), no, no)
    algo.act(torch.zeros(N_ENVS, OBS))
    with pytest.raises(ValueError, match="final_obs"):
        algo.process_env_step(torch.zeros(N_ENVS), no, torch.ones(N_ENVS, dtype=torch.bool))
    algo.process_env_step(torch.zeros(N_ENVS), no, no)  # no truncation: final_obs optional
    assert algo.storage.step == 1


def test_trpo_step_respects_trust_region_and_improves_surrogate():
    algo = make_algo("trpo", max_kl=0.01)
    before = actor_state(algo)
    stats = algo.update()
    assert stats["skipped"] == 0 and stats["skip_reason"] == ""
    assert stats["accepted"] == 1.0
    assert 0 < stats["kl"] <= 0.01
    assert stats["surrogate_improvement"] > 0
    assert stats["step_size"] > 0 and stats["step_norm"] > 0
    assert not torch.equal(actor_state(algo), before)
    for key in (
        "kl",
        "step_size",
        "backtracks",
        "explained_variance",
        "value_loss",
        "entropy",
        "surrogate_improvement",
        "expected_improvement",
        "grad_norm",
    ):
        assert math.isfinite(stats[key]), key
    assert algo.storage.step == 0  # cleared for the next rollout


def test_trpo_with_fvp_subsample():
    stats = make_algo("trpo", fvp_subsample=0.25).update()
    assert stats["accepted"] == 1.0 and stats["kl"] <= 0.01


def test_npg_takes_the_full_natural_step():
    stats = make_algo("npg", max_kl=0.01).update()
    assert stats["accepted"] == 1.0 and stats["backtracks"] == 0
    # the step is sized so that the (damped) quadratic KL model equals max_kl; the true KL
    # is near it (a loose sanity check: test_rl_natural_step.py pins the step exactly)
    assert 0.002 < stats["kl"] < 0.05


@pytest.mark.parametrize("name", ["ppo_clip", "ppo_kl"])
def test_ppo_updates_run_and_stay_finite(name):
    algo = make_algo(name, ppo_epochs=3, ppo_minibatches=4)
    before = actor_state(algo)
    stats = algo.update()
    after = actor_state(algo)
    assert not torch.equal(after, before) and torch.isfinite(after).all()
    assert stats["surrogate_improvement"] > 0 and stats["kl"] > 0
    if name == "ppo_clip":
        assert 0.0 <= stats["clip_fraction"] <= 1.0


@pytest.mark.parametrize("target", [0.01, 0.0625])
def test_adaptive_kl_rule(target):
    """The lecture's rule: double beta when KL >= 1.5 target, halve when KL <= target / 1.5."""
    hi, lo = 1.5 * target, target / 1.5  # the boundaries, computed as the rule computes them
    assert adapt_kl_beta(1.0, hi * 1.01, target) == 2.0  # above 1.5 target: double
    assert adapt_kl_beta(1.0, lo * 0.99, target) == 0.5  # below target / 1.5: halve
    assert adapt_kl_beta(3.0, target, target) == 3.0  # in between: keep
    # the boundaries themselves belong to the doubling / halving branches (>= and <=)
    assert adapt_kl_beta(1.0, hi, target) == 2.0
    assert adapt_kl_beta(1.0, lo, target) == 0.5
    # the nearest floats inside the band keep beta
    assert adapt_kl_beta(1.0, math.nextafter(hi, 0.0), target) == 1.0
    assert adapt_kl_beta(1.0, math.nextafter(lo, 1.0), target) == 1.0


@pytest.mark.parametrize("kl_target", [1e-6, 10.0])
def test_ppo_kl_adapts_beta_after_update(kl_target):
    algo = make_algo("ppo_kl", kl_target=kl_target, kl_beta_init=1.0)
    stats = algo.update()
    assert algo.beta == stats["beta"] == adapt_kl_beta(1.0, stats["kl"], kl_target)
    assert algo.beta == (2.0 if kl_target == 1e-6 else 0.5)
    assert algo.state_dict()["beta"] == algo.beta


@pytest.mark.parametrize("name", ["ppo_clip", "ppo_kl"])
def test_ppo_logs_not_accepted_when_every_minibatch_is_skipped(name):
    algo = make_algo(name, ppo_epochs=2, ppo_minibatches=4)
    algo.storage.advantages.fill_(float("nan"))  # every minibatch loss is non-finite
    before = actor_state(algo)
    stats = algo.update()
    assert stats["accepted"] == 0.0
    assert stats["skipped"] == 1.0 and stats["skip_reason"] == "non_finite_loss"
    assert torch.equal(actor_state(algo), before)


@pytest.mark.parametrize("name", ["ppo_clip", "ppo_kl"])
def test_ppo_logs_accepted_when_some_minibatches_step(name):
    algo = make_algo(name, ppo_epochs=2, ppo_minibatches=4, normalize_advantages=False)
    algo.storage.advantages[0, 0] = float("nan")  # one sample: one minibatch per epoch skipped
    before = actor_state(algo)
    stats = algo.update()
    assert stats["accepted"] == 1.0 and stats["skipped"] == 1.0
    assert not torch.equal(actor_state(algo), before)


def _assert_skipped(algo, reason):
    before = actor_state(algo)
    stats = algo.update()
    assert stats["skipped"] == 1.0 and stats["skip_reason"] == reason
    assert stats["accepted"] == 0.0
    assert torch.equal(actor_state(algo), before)
    return stats


@pytest.mark.parametrize("name", ["trpo", "npg"])
def test_guard_nan_advantages(name):
    algo = make_algo(name)
    algo.storage.advantages[3, 2] = float("nan")
    _assert_skipped(algo, "non_finite_gradient")


def test_guard_huge_gradient():
    _assert_skipped(make_algo("trpo", max_grad_norm=1e-9), "gradient_norm_too_large")


@pytest.mark.parametrize("name", ["trpo", "npg"])
def test_guard_non_positive_curvature(name, monkeypatch):
    def negative_fvp(mean_kl, params, damping):
        return lambda v: -v

    monkeypatch.setattr(trpo, "make_fisher_vector_product", negative_fvp)
    _assert_skipped(make_algo(name), "non_positive_curvature")


def test_guard_nan_direction(monkeypatch):
    monkeypatch.setattr(
        trpo,
        "conjugate_gradient",
        lambda fvp, b, iters, tol: torch.full_like(b, float("nan")),
    )
    _assert_skipped(make_algo("trpo"), "non_finite_direction")


def test_guard_non_finite_returns_skip_value_fit():
    algo = make_algo("trpo")
    algo.storage.returns[0, 0] = float("inf")
    before = critic_state(algo)
    stats = algo.update()
    assert stats["value_skip_reason"] == "non_finite_returns"
    assert torch.equal(critic_state(algo), before)


def test_configs_validate_and_reject_unknown_keys():
    cfg = from_dict(TrainConfig, {"algo": {"name": "npg", "cg_iters": 5}, "runner": {"seed": 3}})
    assert cfg.algo.name == "npg" and cfg.algo.cg_iters == 5 and cfg.runner.seed == 3
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(TrainConfig, {"algo": {"max_kll": 0.01}})
    with pytest.raises(ConfigError, match="name"):
        AlgoConfig(name="sac")
    with pytest.raises(ConfigError, match="fvp_subsample"):
        AlgoConfig(fvp_subsample=0.0)
    with pytest.raises(ConfigError, match="backtrack"):
        AlgoConfig(backtrack=1.0)
    with pytest.raises(ConfigError, match="activation"):
        PolicyConfig(activation="gelu")
    with pytest.raises(ConfigError, match="device"):
        from_dict(TrainConfig, {"runner": {"device": "tpu"}})
