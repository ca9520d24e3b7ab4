"""Distributed rollouts on Ray (robot_rl.rl.distributed): storage filled exactly as the
single-process rollout, worker seeding, learning curve, worker failure, Ray stays optional."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

from policies.env import LeggedEnv  # noqa: E402
from policies.train import LocomotionConfig, make_env, train  # noqa: E402
from robot_rl.config import apply_overrides, from_dict  # noqa: E402
from robot_rl.rl import ActorCritic, TrainConfig, make_algorithm  # noqa: E402
from robot_rl.rl.distributed import (  # noqa: E402
    SEED_STRIDE,
    DistributedRunner,
    RayVectorEnv,
    init_ray,
    split_envs,
)
from robot_rl.rl.numerics import flat_params  # noqa: E402
from robot_rl.rl.rollout import NumpyActor, RolloutCollector  # noqa: E402
from robot_rl.rl.runner import OnPolicyRunner  # noqa: E402
from robot_rl.rl.storage import STEP_FIELDS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    init_ray(num_cpus=2)
    yield
    ray.shutdown()


def _cfg(num_envs=4, steps=16, iterations=3, seed=0, **extra):
    return apply_overrides(LocomotionConfig(), {
        "env.num_envs": num_envs, "env.threads": 1, "train.runner.num_steps_per_env": steps,
        "train.runner.iterations": iterations, "train.runner.save_interval": 0,
        "train.runner.progress": False, "train.runner.device": "cpu",
        "train.runner.seed": seed, **extra})


def test_split_envs():
    assert split_envs(8, 2) == [4, 4]
    assert split_envs(7, 3) == [3, 2, 2]
    with pytest.raises(ValueError):
        split_envs(2, 3)


def test_worker_k_is_a_legged_env_seeded_base_plus_k_stride():
    cfg = _cfg()
    env = RayVectorEnv(partial(make_env, cfg.env, None, None), 8, 2, seed=5)
    try:
        obs, _ = env.reset(seed=5)
        assert obs.shape == (8, env.single_observation_space.shape[0])
        actions = np.random.default_rng(0).normal(size=(8, 12)).astype(np.float32)
        got = env.step(actions)
        # The worker is another process (its own thread limits and BLAS state), so the
        # same code and seed need not give the same bits: float64 physics can round
        # differently in the last bit, and MuJoCo's iterative constraint solver, which
        # stops at a relative tolerance of 1e-8, can turn that into differences of that
        # order over the reset and one step.  Observations and rewards leave the env as
        # float32 (1 ulp = 1.2e-7 relative): rtol 1e-5 (~80 ulps), atol 1e-6 for entries
        # near 0.  Reward terms stay float64: rtol 1e-6 (100x the solver tolerance),
        # atol 1e-9 (the smallest terms here are ~1e-7).  A wrong seed or wrong rows
        # differ at O(1e-2) or more.
        f32 = {"rtol": 1e-5, "atol": 1e-6}
        for k in range(2):
            ref = make_env(cfg.env, None, None, 4, 5 + k * SEED_STRIDE)
            ref_obs, _ = ref.reset(seed=5 + k * SEED_STRIDE)
            rows = slice(4 * k, 4 * k + 4)
            np.testing.assert_allclose(obs[rows], ref_obs, **f32)
            want = ref.step(actions[rows])
            np.testing.assert_allclose(got[0][rows], want[0], **f32)
            np.testing.assert_allclose(got[1][rows], want[1], **f32)
            for name, term in want[4]["reward_terms"].items():
                np.testing.assert_allclose(got[4]["reward_terms"][name][rows], term,
                                           rtol=1e-6, atol=1e-9, err_msg=name)
        # and the two workers are not the same env twice (their seeds differ)
        assert not np.allclose(obs[:4], obs[4:], rtol=1e-3, atol=1e-3)
    finally:
        env.close()


def test_one_worker_fills_storage_exactly_as_single_process():
    """Same seed, 1 worker, obs normalization off (the one documented difference): the
    first rollout's storage (incl. truncation bootstrap with V(final_obs)) is the same,
    to float32 tolerances (the worker is another process: see the test above)."""
    cfg = _cfg(num_envs=4, steps=24, **{"env.episode_seconds": 0.2,
                                       "train.policy.normalize_obs": False,
                                       "train.runner.normalize_rewards": True})
    single = OnPolicyRunner.from_config(
        LeggedEnv(cfg.env, seed=cfg.train.runner.seed), cfg.train)
    roll_s = single.collect()
    dist = DistributedRunner.from_factory(
        partial(make_env, cfg.env, None, None), 4, 1, cfg.train)
    try:
        roll_d = dist.collect()
        s, d = single.algo.storage, dist.algo.storage
        assert bool(s.truncated.any()), "the test needs truncated episodes"
        for name in (*STEP_FIELDS, "advantages", "returns"):
            torch.testing.assert_close(getattr(d, name), getattr(s, name), msg=name,
                                       rtol=1e-5, atol=1e-5)
        assert roll_d["completed"] == roll_s["completed"] > 0
        # episode returns: float32 rewards summed in float64 -> rel 1e-5 (float32 level)
        assert list(dist.episode_returns) == pytest.approx(list(single.episode_returns),
                                                           rel=1e-5, abs=1e-6)
        for name, v in roll_s["reward_terms"].items():
            assert roll_d["reward_terms"][name] == pytest.approx(v, rel=1e-5, abs=1e-7)
        # the last raw observations (float32, computed in two processes)
        np.testing.assert_allclose(dist.obs, single.obs, rtol=1e-5, atol=1e-6)
    finally:
        dist.close()


class _InProcessShares:
    """:class:`RayVectorEnv`'s interface to :class:`DistributedRunner` (``shares``,
    ``rollout``, ``restarts``, ``num_workers``) over one in-process env: drives
    :meth:`DistributedRunner.collect` without Ray workers."""

    def __init__(self, env, policy_cfg):
        self.env, self.num_envs, self.metadata = env, env.num_envs, env.metadata
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.shares, self.restarts, self.num_workers = [env.num_envs], 0, 1
        obs_dim, act_dim = env.single_observation_space.shape[0], env.single_action_space.shape[0]
        self.actor = NumpyActor(ActorCritic(obs_dim, act_dim, policy_cfg), seed=0)
        space = env.single_action_space
        self.collector = RolloutCollector(env, space.low, space.high)
        self.obs = None

    def reset(self, *, seed=None, options=None):
        self.obs, info = self.env.reset(seed=seed)
        return self.obs, info

    def step(self, actions):
        return self.env.step(actions)

    def rollout(self, weights, num_steps):
        traj = self.collector.collect(self.actor, self.obs, num_steps, update_normalizer=False)
        self.obs = traj.last_obs
        return [traj]

    def close(self):
        pass


class _OnLearnerDevice:
    """A result living on a non-CPU device: ``.numpy()`` fails as it does for a CUDA
    tensor; ``.cpu()`` / ``.to("cpu")`` bring (zeros of) it to the host."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def cpu(self):
        return torch.zeros(self.shape)

    def to(self, device, *args, **kwargs):
        return self.cpu() if torch.device(device).type == "cpu" else self

    def detach(self):
        return self

    def numpy(self):
        raise TypeError("can't convert meta device type tensor to numpy. Use Tensor.cpu() "
                        "to copy the tensor to host memory first.")


def test_collect_feeds_the_normalizer_on_the_learner_device(point_env):
    """With a CUDA learner (``--device auto`` on a GPU machine) the observation
    normalizer's buffers live on the GPU: :meth:`DistributedRunner.collect` must move the
    numpy observations to the learner's device before normalizing (the last observation)
    and merging statistics (the rollout's raw observations), and hand numpy back to
    ``store_trajectory``.  No GPU here: the learner's device is set to ``meta`` (a torch
    device that is not the CPU) and the normalizer replaced by a stand-in that, like a
    CUDA module, refuses inputs from another device and records where they lived.  Meta
    tensors hold no data, so its output is a stand-in too: like a CUDA tensor it refuses
    ``.numpy()`` and gives CPU zeros through ``.cpu()``."""
    cfg = from_dict(TrainConfig, {"runner": {"num_steps_per_env": 6, "device": "cpu",
                                             "progress": False}})
    env = _InProcessShares(point_env(num_envs=3, horizon=4), cfg.policy)
    runner = DistributedRunner(env, make_algorithm(cfg.algo, ActorCritic(2, 1, cfg.policy)),
                               cfg.runner)
    learner = torch.device("meta")
    runner.device = learner
    seen = []

    class NormalizerOnLearner(torch.nn.Module):
        def _check(self, what, x):
            seen.append((what, x.device, tuple(x.shape)))
            if x.device != learner:
                raise RuntimeError(f"Expected all tensors to be on the same device, but "
                                   f"found {x.device} and {learner}")

        def forward(self, x):
            self._check("forward", x)
            return _OnLearnerDevice(x.shape)

        def update(self, x):
            self._check("update", x)

    runner.policy.obs_normalizer = NormalizerOnLearner()
    stored = {}

    def store_trajectory(traj, last_obs):
        stored["last_obs"] = last_obs
        return {}

    runner.store_trajectory = store_trajectory
    runner.collect()
    assert seen == [("forward", learner, (3, 2)), ("update", learner, (6 * 3, 2))]
    last = stored["last_obs"]
    assert isinstance(last, np.ndarray) and last.dtype == np.float32 and last.shape == (3, 2)


def _curve(runner_fn, iterations):
    curve = []

    def cb(it, log):
        curve.append(sum(v for k, v in log.items() if k.startswith("reward/")))

    runner = runner_fn(cb)
    try:
        runner.initial_actor = flat_params(runner.policy.actor_parameters())
        runner.learn(iterations)
        return np.array(curve), runner
    finally:
        runner.close()


def test_two_workers_learn_like_single_process_within_seed_noise():
    """2 workers x 4 envs vs 8 envs in one process: the per-step reward over the first
    iterations differs from seed 0's by no more than 3x (seed 0 vs seed 1) + slack.

    Four iterations barely train the policy, so this compares rollouts, not learning
    (a no-op policy update would pass the curve check; the last assertion catches it,
    and tests/rl/test_rl_learning.py tests that the update learns)."""
    its = 4
    cfg = _cfg(num_envs=8, steps=16)
    single = {s: _curve(lambda cb, s=s: OnPolicyRunner.from_config(
        LeggedEnv(_cfg(num_envs=8, steps=16, seed=s).env, seed=s),
        _cfg(num_envs=8, steps=16, seed=s).train, callback=cb), its)[0] for s in (0, 1)}
    dist, runner = _curve(lambda cb: DistributedRunner.from_factory(
        partial(make_env, cfg.env, None, None), 8, 2, cfg.train, callback=cb), its)
    noise = np.abs(single[0] - single[1]).mean()
    assert np.abs(dist - single[0]).mean() <= 3 * noise + 0.02 * np.abs(single[0]).mean()
    assert runner.env_steps == its * 16 * 8 and runner.last_log["dist/worker_restarts"] == 0
    # the learner updated the policy it broadcasts
    assert not torch.equal(flat_params(runner.policy.actor_parameters()), runner.initial_actor)


def test_killed_worker_is_replaced_and_its_share_recollected(capsys):
    cfg = _cfg(num_envs=8, steps=16)
    logs = []
    # the default timeout: the death is seen at once, and a 60 s one failed while spawning
    # the workers on a loaded 2-core machine
    runner = DistributedRunner.from_factory(
        partial(make_env, cfg.env, None, None), 8, 2, cfg.train,
        callback=lambda it, log: logs.append(dict(log)))
    try:
        runner.learn(1)
        dead = runner.env.workers[1]
        ray.kill(dead, no_restart=True)
        with pytest.warns(UserWarning, match="rollout worker 1 .* failed"):
            runner.learn(2)
        assert runner.env.workers[1] is not dead
        assert runner.iteration == 3 and runner.env_steps == 3 * 16 * 8
        assert [log["dist/worker_restarts"] for log in logs] == [0, 1, 1]
        assert np.isfinite(logs[-1]["train/value_loss"])
    finally:
        runner.close()


def test_worker_killed_mid_rollout_is_survived():
    """Kill a worker while its rollout runs (long rollout, kill from a timer thread).

    The rollout is long enough (3000 steps, seconds even on an idle machine) that the
    kill 0.5 s in lands mid-rollout.  The death is seen at once (RayActorError); the
    timeout only bounds a stuck rollout, so it is generous: on a 2-core machine shared with
    two training runs one 3000-step rollout took over 120 s."""
    import threading

    cfg = _cfg(num_envs=4, steps=3000)
    runner = DistributedRunner.from_factory(
        partial(make_env, cfg.env, None, None), 4, 2, cfg.train, rollout_timeout_s=600.0)
    try:
        victim = runner.env.workers[0]
        timer = threading.Timer(0.5, lambda: ray.kill(victim, no_restart=True))
        timer.start()
        with pytest.warns(UserWarning, match="rollout worker 0"):
            runner.collect()
        timer.join()
        assert runner.env.restarts == 1
        assert runner.algo.storage.full and bool(torch.isfinite(runner.algo.storage.returns).all())
    finally:
        runner.close()


def test_cli_workers_flag_trains(tmp_path):
    log = train(_cfg(num_envs=4, steps=8, iterations=2), tmp_path, workers=2)
    assert log["dist/workers"] == 2 and (tmp_path / "policy.pt").exists()


def test_single_process_training_never_imports_ray(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import policies.train as t
        assert "ray" not in sys.modules
        from policies.cli import main
        main(["--out", {str(tmp_path)!r}, "--budget", "smoke", "--quiet",
              "--set", "env.num_envs=2", "--set", "train.runner.num_steps_per_env=4",
              "--set", "train.runner.device=\\"cpu\\""])
        assert "ray" not in sys.modules, "single-process training imported ray"
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
