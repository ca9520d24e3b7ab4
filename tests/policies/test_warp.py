"""MuJoCo Warp physics behind the env: the same dynamics as MuJoCo's C library.

Warp runs here on the CPU (the tests never need a GPU); its first use compiles the
kernels (about a minute on a fresh machine, cached afterwards under ~/.cache/warp).
"""

import builtins
import copy

import numpy as np
import pytest

from policies.config import EnvConfig
from policies.env import LeggedEnv
from policies.randomization import SysidParams
from robot_rl.config import ConfigError
from sysid.apply import apply_params

pytest.importorskip("mujoco_warp", reason="MuJoCo Warp not installed: pip install 'robot-rl[warp]'")

SYSID = SysidParams(robot="a1", values={"trunk_mass": 4.714, "damping/FR_hip_joint": 0.0},
                    ranges={"trunk_mass": (4.0, 6.0), "damping/FR_hip_joint": (0.0, 0.5),
                            "foot_friction": (0.4, 1.2), "coulomb/FL_upper_joint": (0.0, 0.5)})


def _twins(actuator_dir=None, **cfg):
    """The same env on MuJoCo Warp (CPU) and on MuJoCo's C library, reset alike."""
    cfg = dict(num_envs=6, episode_seconds=0.4, push_interval=0.2, push_velocity=0.5,
               obs_noise=0.0, **cfg)
    warp = LeggedEnv(EnvConfig(physics="warp", physics_device="cpu", **cfg), sysid=SYSID,
                     actuator_dir=actuator_dir, seed=3)
    mj = LeggedEnv(EnvConfig(**cfg), sysid=SYSID, actuator_dir=actuator_dir, seed=3)
    for env in (warp, mj):
        env.reset(seed=1)
    return warp, mj


def _assert_same_dynamics(warp, mj, steps=40):
    n = 1 + warp.base_model.nq + warp.base_model.nv  # time, qpos, qvel
    actions = np.random.default_rng(0).normal(0, 0.5, (steps, warp.num_envs, 12))
    for a in actions:
        out_w, out_m = warp.step(a), mj.step(a)
        # float32 physics against float64: 1e-5-level differences, grown through contacts
        # over 40 steps; in proportion to the value for fast joints (5.5 rad/s: 5e-4 apart)
        np.testing.assert_allclose(warp.state[:, 1:n], mj.state[:, 1:n], rtol=2e-4, atol=5e-4)
        np.testing.assert_allclose(out_w[0], out_m[0], rtol=0, atol=1e-3)  # observations
        np.testing.assert_allclose(out_w[1], out_m[1], rtol=0, atol=1e-4)  # rewards
        np.testing.assert_array_equal(out_w[2], out_m[2])  # terminations
    assert (warp.steps < steps).all()  # 0.4 s episodes: every env was reset, and re-randomized


def test_warp_env_is_the_mujoco_env_with_pd():
    # randomized models, pushes, resets: each world steps like its env's MuJoCo model
    from policies.physics_cpu import CpuPhysics
    from policies.physics_warp import WarpPhysics

    warp, mj = _twins()
    assert isinstance(warp.physics, WarpPhysics) and isinstance(mj.physics, CpuPhysics)
    assert warp.physics.worlds.device.alias == "cpu"
    assert {"body_mass", "dof_damping", "dof_frictionloss", "geom_friction"} <= set(warp.physics.worlds.per_world)
    _assert_same_dynamics(warp, mj)


def test_warp_worlds_hold_each_envs_randomized_model():
    warp, _ = _twins()
    for _ in range(15):  # through episode ends: worlds re-parameterized at each reset
        warp.step(np.zeros((6, 12)))
    base = copy.copy(warp.base_model)
    for f in ("body_mass", "body_subtreemass", "dof_frictionloss", "dof_invweight0"):
        rows = getattr(warp.physics.worlds.model, f).numpy()
        for i in range(warp.num_envs):
            want = getattr(apply_params(copy.copy(base), warp.randomized[i], warp.robot), f)
            np.testing.assert_allclose(rows[i], want, rtol=1e-6, err_msg=f"{f}, world {i}")
        assert len({rows[i].tobytes() for i in range(warp.num_envs)}) > 1, f


def test_warp_env_is_the_mujoco_env_with_the_actuator_network(actuator_dir):
    # the torch evaluator beside Warp against the numpy evaluator between C physics steps
    warp, mj = _twins(actuator_dir=actuator_dir, actuation="net", actuator_backend="numpy")
    _assert_same_dynamics(warp, mj)


def test_unknown_physics_fails():
    with pytest.raises(ConfigError, match="env.physics must be 'mujoco' or 'warp'"):
        EnvConfig(physics="isaac")


def test_missing_warp_says_how_to_install(monkeypatch):
    from robot_rl import sim_warp

    real_import = builtins.__import__

    def no_warp(name, *args, **kwargs):
        if name in ("mujoco_warp", "warp"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_warp)
    with pytest.raises(sim_warp.WarpUnavailable, match=r"pip install 'robot-rl\[warp\]'"):
        LeggedEnv(EnvConfig(num_envs=2, physics="warp"))


def test_train_cli_on_warp(tmp_path):
    import json

    from policies.cli import main

    out = tmp_path / "p"
    assert main(["--out", str(out), "--budget", "smoke", "--quiet", "--physics", "warp",
                 "--physics-device", "cpu", "--device", "cpu"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["env"]["physics"] == "warp" and (out / "policy.pt").exists()


def test_too_few_constraint_rows_fail_loudly():
    # a world whose constraints overflow its rows would step wrong physics: the env stops
    from robot_rl.sim_warp import WarpOverflowError

    env = LeggedEnv(EnvConfig(num_envs=2, physics="warp", physics_device="cpu", warp_njmax=8))
    env.reset(seed=0)
    with pytest.raises(WarpOverflowError, match=r"'NEFC'.*raise env.warp_njmax, now 8"):
        for _ in range(20):  # feet on the ground: 4 contacts x 4 pyramid rows > 8
            env.step(np.zeros((2, 12)))


def test_asking_for_a_gpu_without_one_says_so():
    import warp

    from robot_rl.sim_warp import WarpUnavailable

    if warp.get_cuda_device_count() > 0:
        pytest.skip("this machine has a GPU")
    with pytest.raises(WarpUnavailable, match=r"physics device 'cuda:0': Warp sees no CUDA device"):
        LeggedEnv(EnvConfig(num_envs=2, physics="warp", physics_device="cuda:0"))


def test_bad_warp_settings_are_named():
    with pytest.raises(ValueError, match=r"physics device 'gpu': expected auto, cpu, cuda or cuda:N"):
        LeggedEnv(EnvConfig(num_envs=2, physics="warp", physics_device="gpu"))
    with pytest.raises(ConfigError, match=r"env.warp_njmax must be >= 1"):
        EnvConfig(physics="warp", warp_njmax=0)
