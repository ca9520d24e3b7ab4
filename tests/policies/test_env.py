"""Locomotion env and training: smoke over every robot, truncation vs termination, resume."""

import copy
import dataclasses
import json
import os

import mujoco
import numpy as np
import pytest
import torch

from policies import env as env_module
from policies.actuation import IdealPD
from policies.artifact import read_policy
from policies.config import CommandConfig, EnvConfig
from policies.env import EnvNaNError, LeggedEnv
from policies.randomization import SysidParams, randomize
from policies.train import (
    SOFT_GAINS,
    LocomotionConfig,
    latest_checkpoint,
    read_run_config,
    soft_gains_warning,
    train,
)
from robot_rl.config import ConfigError, apply_overrides, to_dict
from robot_rl.robot import ROBOTS, load_robot
from robot_rl.sim_mujoco import rollout_pool
from sysid.apply import apply_params
from sysid.model import weight_moment


@pytest.mark.parametrize("robot", sorted(ROBOTS))
def test_smoke_every_robot(robot):
    env = LeggedEnv(EnvConfig(robot=robot, num_envs=4))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, env.spec.size) and obs.dtype == np.float32
    for _ in range(10):
        obs, rew, term, trunc, info = env.step(np.zeros((4, 12), np.float32))
        assert obs.shape == (4, env.spec.size) and rew.shape == (4,)
        assert np.all(np.isfinite(obs)) and np.all(np.isfinite(rew))
        assert set(info["reward_terms"]) >= {"lin_vel", "ang_vel", "torque", "foot_slip"}
    # standing at the nominal pose under PD does not fall within 10 steps
    assert not term.any()
    env.close()


@pytest.mark.parametrize("name", sorted(ROBOTS))
def test_registered_robots_have_gains_stiff_enough_for_their_weight(name):
    # a soft robot gets the warning, and only below the stated threshold
    robot = load_robot(name)
    assert soft_gains_warning(robot) is None
    unit = weight_moment(robot)
    kp = np.array(robot.kp)
    soft = dataclasses.replace(robot, kp=tuple(kp * (0.98 * SOFT_GAINS * unit / kp.min())))
    message = soft_gains_warning(soft)
    assert message is not None and "sit on the rear legs" in message
    assert soft_gains_warning(dataclasses.replace(
        robot, kp=tuple(kp * (1.02 * SOFT_GAINS * unit / kp.min())))) is None


def test_the_torque_cost_of_standing_is_alike_on_a_small_and_a_large_robot():
    """Torques count in units of the robot's weight moment m g h: the aliengo (20.6 kg,
    0.38 m) standing costs nearer to what the A1 (12.5 kg, 0.27 m) does than it would per
    N^2 m^2 (measured: 0.47x in robot units, 2.6x per N^2 m^2; 4.1x before aliengo's rear
    thighs stood at 1.0 rad), and within a factor 2.5."""
    cost, unit = {}, {}
    for robot in ("a1", "aliengo"):
        env = LeggedEnv(EnvConfig(robot=robot, num_envs=4, randomize=False, push_interval=0.0,
                                  gait_frequency=0.0, commands=CommandConfig(
                                      vx=(0.0, 0.0), vy=(0.0, 0.0), yaw=(0.0, 0.0))))
        mass = env.base_model.body_mass.sum()
        assert env.torque_unit == pytest.approx(mass * 9.81 * env.robot.nominal_base_height)
        env.reset(seed=0)
        for _ in range(25):  # settle
            env.step(np.zeros((4, 12)))
        _, _, _, _, info = env.step(np.zeros((4, 12)))
        cost[robot] = float(np.mean(info["reward_terms"]["torque"]))
        unit[robot] = env.torque_unit
        env.close()
    assert cost["a1"] < 0 and cost["aliengo"] < 0
    ratio = cost["aliengo"] / cost["a1"]
    per_newton_metre = ratio * (unit["aliengo"] / unit["a1"]) ** 2
    assert abs(np.log(ratio)) < abs(np.log(per_newton_metre)), (ratio, per_newton_metre)
    assert 1 / 2.5 < ratio < 2.5, cost


def test_truncation_is_not_termination():
    env = LeggedEnv(EnvConfig(num_envs=2, episode_seconds=0.2, push_interval=0.0))
    env.reset(seed=0)
    for _ in range(10):
        obs, _, term, trunc, info = env.step(np.zeros((2, 12)))
    assert trunc.all() and not term.any()
    assert info["_final_obs"].all() and info["final_obs"].shape == obs.shape
    assert (env.steps == 0).all()  # reset in the same step


def test_fall_terminates():
    env = LeggedEnv(EnvConfig(num_envs=2, push_interval=0.0))
    env.reset(seed=0)
    # throw the robot over: big roll rate
    env.qvel[:, 3] = 30.0
    terms = []
    for _ in range(50):
        _, _, term, trunc, _ = env.step(np.zeros((2, 12)))
        terms.append(term)
    assert np.any(terms) and not any(t.any() for t in [trunc])


@pytest.mark.parametrize("in_model", [True, False])
def test_base_contact_terminates(in_model, monkeypatch):
    # upside down on the ground, with the fall criteria switched off: only the base's
    # contact sensor can end the episode (PD in the model, or in Python per physics step)
    if not in_model:
        monkeypatch.setattr(env_module, "make_actuation", lambda *a, **k: ExplicitPD(load_robot("a1")))
    ended = {}
    for flag in (True, False):
        env = LeggedEnv(EnvConfig(num_envs=2, push_interval=0.0, fall_height_fraction=0.0,
                                  fall_up_z=-2.0, terminate_on_base_contact=flag))
        assert env.actuation.in_model == in_model
        env.reset(seed=0)
        env.qpos[:, 2] = 0.12
        env.qpos[:, 3:7] = [0.0, 1.0, 0.0, 0.0]
        term = [env.step(np.zeros((2, 12)))[2] for _ in range(10)]
        ended[flag] = np.any(term, axis=0)
    assert ended[True].all() and not ended[False].any()


def test_nan_action_fails_loudly():
    env = LeggedEnv(EnvConfig(num_envs=2))
    env.reset(seed=0)
    with pytest.raises(EnvNaNError, match="actions"):
        env.step(np.full((2, 12), np.nan))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros((3, 12)))


class ExplicitPD(IdealPD):
    """Ideal PD computed in numpy at every physics step, applied as motor torques."""

    in_model = False
    clipped = False

    def __call__(self, q_target, q, qd, envs=slice(None)):
        raw = self.kp * (q_target - q) - self.kd * qd
        self.clipped |= bool(np.any(np.abs(raw) > self.tau_max))
        return super().__call__(q_target, q, qd, envs)


def test_pd_in_model_is_the_explicit_pd(monkeypatch):
    # the MuJoCo model's PD actuators give the dynamics of the PD law applied as torques,
    # through randomized models, clipped torques, pushes and resets
    sysid = SysidParams(robot="a1", values={"trunk_mass": 4.714, "damping/FR_hip_joint": 0.0},
                        ranges={"trunk_mass": (4.0, 6.0), "damping/FR_hip_joint": (0.0, 0.5),
                                "foot_friction": (0.4, 1.2)})
    cfg = EnvConfig(num_envs=6, episode_seconds=0.4, push_interval=0.2, push_velocity=0.5)
    fast = LeggedEnv(cfg, sysid=sysid, seed=3)
    monkeypatch.setattr(env_module, "make_actuation", lambda *a, **k: ExplicitPD(fast.robot))
    slow = LeggedEnv(cfg, sysid=sysid, seed=3)
    assert fast.base_model.actuator_plugin[0] >= 0 and slow.base_model.actuator_plugin[0] < 0
    actions = np.random.default_rng(0).normal(0, 2.0, (50, 6, 12))  # large: torques clip
    for env in (fast, slow):
        env.reset(seed=1)
    # float64 throughout and no BLAS: MuJoCo's pid plugin (its compiled C) against
    # kp (q* - q) - kd qd in numpy differ by rounding only (~1e-15 N m); through 50
    # control steps with contacts that grows to 3e-12 in the state (measured); a PD law
    # that differs moves it by far more (1 % more damping in the numpy PD: 0.18)
    for a in actions:
        out_f, out_s = fast.step(a), slow.step(a)
        np.testing.assert_allclose(fast.state, slow.state, rtol=0, atol=1e-9)
        np.testing.assert_allclose(out_f[0], out_s[0], rtol=0, atol=1e-5)  # obs, float32
        for name, term in out_f[4]["reward_terms"].items():
            np.testing.assert_allclose(term, out_s[4]["reward_terms"][name], rtol=1e-9, atol=1e-12)
    assert slow.actuation.clipped and (fast.steps < 50).all()  # clipped torques, resets


def test_each_episode_sets_its_env_model_from_its_drawn_values():
    # env models are re-parameterized in place at every episode start: each must equal a
    # fresh copy of the base model with that episode's values, and the base stays fitted
    sysid = SysidParams(robot="a1", values={"trunk_mass": 4.714, "foot_friction": 0.8},
                        ranges={"trunk_mass": (4.0, 6.0), "foot_friction": (0.4, 1.2),
                                "damping/FR_hip_joint": (0.0, 0.5)})
    env = LeggedEnv(EnvConfig(num_envs=3, episode_seconds=0.1), sysid=sysid, seed=2)
    base = copy.copy(env.base_model)
    env.reset(seed=0)
    first = [dict(v) for v in env.randomized]
    for _ in range(12):  # 0.1 s episodes: every env starts several new ones
        env.step(np.zeros((3, 12)))
    assert len({id(m) for m in env.models}) == 3 and env.base_model not in env.models
    for i, m in enumerate(env.models):
        assert env.randomized[i] != first[i]
        want = apply_params(copy.copy(base), env.randomized[i], env.robot)
        for f in ("body_mass", "body_inertia", "dof_damping", "geom_friction",
                  "body_subtreemass", "dof_invweight0"):
            np.testing.assert_allclose(getattr(m, f), getattr(want, f), rtol=1e-12, err_msg=f)
    for f in ("body_mass", "dof_damping", "geom_friction", "body_subtreemass"):
        np.testing.assert_array_equal(getattr(env.base_model, f), getattr(base, f), err_msg=f)


def test_encoder_offsets_shift_what_the_env_measures_and_where_the_driver_holds_the_joint():
    """Stage 1's encoder offsets o: the observation reads q_true + o, and the driver's PD
    (acting on the encoder) holds a joint at target - o; drawn offsets follow each env."""
    robot = load_robot("a1")
    o = np.linspace(-0.06, 0.06, robot.num_joints)
    values = {f"encoder_offset/{j}": float(x) for j, x in zip(robot.joint_names, o)}
    cfg = EnvConfig(num_envs=2, obs_noise=0.0, imu_gyro_bias=0.0, imu_tilt_bias=0.0,
                    randomize=False, push_interval=0.0)
    env = LeggedEnv(cfg, sysid=SysidParams(robot="a1", values=values, ranges={}), seed=0)
    obs, _ = env.reset(seed=0)
    start = sum(n for name, n in env.spec.blocks()[:[b[0] for b in env.spec.blocks()].index("joint_pos")])
    joint_pos = lambda ob: ob[:, start:start + robot.num_joints] / env.spec.scales["joint_pos"]  # noqa: E731
    np.testing.assert_allclose(joint_pos(obs), env.joint_q() + o - env.q0, atol=1e-5)
    for _ in range(150):  # zero actions: the target is the nominal pose, 3 s of standing
        obs, *_ = env.step(np.zeros((2, robot.num_joints)))
    np.testing.assert_allclose(joint_pos(obs), env.joint_q() + o - env.q0, atol=1e-5)
    # the driver's PD acts on the encoder, kp (q* - (q + o)) = kp ((q* - o) - q): the
    # physics is handed the targets minus the offsets
    handed = []
    step = env.physics.step
    env.physics.step = lambda target, n: handed.append(np.array(target)) or step(target, n)
    env.step(np.full((2, robot.num_joints), 0.1))
    np.testing.assert_allclose(handed[-1], env.obs_state.target - o, atol=1e-12)
    # randomized: each env draws its own offsets from stage 1's ranges
    ranges = {k: (v - 0.01, v + 0.01) for k, v in values.items()}
    env = LeggedEnv(dataclasses.replace(cfg, randomize=True), seed=1,
                    sysid=SysidParams(robot="a1", values=values, ranges=ranges))
    env.reset(seed=3)
    for i in range(2):
        drawn = [env.randomized[i][f"encoder_offset/{j}"] for j in robot.joint_names]
        np.testing.assert_array_equal(env.encoder_offset[i], drawn)
    assert np.all(np.abs(env.encoder_offset - o) <= 0.01) and not np.allclose(env.encoder_offset, o)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and 2 CPUs")
def test_rollout_pool_pins_each_worker_to_its_own_cpu():
    cpus = sorted(os.sched_getaffinity(0))
    before = {int(t) for t in os.listdir("/proc/self/task")}
    with rollout_pool(2) as pool:
        workers = sorted({int(t) for t in os.listdir("/proc/self/task")} - before)
        assert len(workers) == 2
        assert [os.sched_getaffinity(t) for t in workers] == [{cpus[0]}, {cpus[1]}]
        assert os.sched_getaffinity(0) == set(cpus)  # the calling thread is not pinned
        m = mujoco.MjModel.from_xml_string("<mujoco><worldbody><body><freejoint/>"
                                           "<geom size='.1'/></body></worldbody></mujoco>")
        init = np.zeros((4, mujoco.mj_stateSize(m, mujoco.mjtState.mjSTATE_FULLPHYSICS)))
        init[:, 4] = 1.0  # unit quaternion
        state, _ = pool.rollout([m] * 4, [mujoco.MjData(m) for _ in range(2)], init, nstep=3)
        assert state.shape == (4, 3, init.shape[1]) and np.all(state[:, -1, 3] < 0)  # falling
    with rollout_pool(2, pin=False):
        new = {int(t) for t in os.listdir("/proc/self/task")} - before
        assert all(os.sched_getaffinity(t) == set(cpus) for t in new)


def test_randomize_is_pure():
    ranges = {"a": (0.0, 1.0), "b": (2.0, 3.0)}
    x = randomize(ranges, np.random.default_rng(5))
    y = randomize(ranges, np.random.default_rng(5))
    assert x == y and 0 <= x["a"] <= 1 and 2 <= x["b"] <= 3


def test_unknown_override_fails():
    with pytest.raises(ConfigError, match="env.num_envz: unknown config key .num_envz."):
        apply_overrides(LocomotionConfig(), {"env.num_envz": 3})


@pytest.mark.parametrize("key, value, field", [
    ("env.commands.vy", (0.3, -0.3), "env.commands.vy: need low <= high"),
    ("env.commands.zero_fraction", 1.5, "env.commands.zero_fraction"),
    ("env.rewards.kernel_width", -1.0, "env.rewards.kernel_width: need > 0"),
    ("env.rewards.curriculum_rate", 1.2, "env.rewards.curriculum_start and curriculum_rate"),
])
def test_bad_command_and_reward_settings_name_the_field(key, value, field):
    with pytest.raises(ConfigError, match=field):
        apply_overrides(LocomotionConfig(), {key: value})


def _smoke_cfg(iterations=2):
    return apply_overrides(LocomotionConfig(), {
        "env.num_envs": 4, "train.runner.num_steps_per_env": 8,
        "train.runner.iterations": iterations, "train.runner.save_interval": 1,
        "train.runner.progress": False, "train.runner.device": "cpu"})


def test_train_is_deterministic_and_resumes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train(_smoke_cfg(3), a)
    train(_smoke_cfg(3), b)
    pa, pb = read_policy(a), read_policy(b)  # what training wrote reads back, checked
    for k, v in pa.model.state_dict().items():
        torch.testing.assert_close(v, pb.model.state_dict()[k], rtol=0, atol=0)
    assert pa.meta.robot == "a1" and pa.meta.observation["size"] == pa.meta.obs_dim
    # a run stopped after 2 iterations resumes from its checkpoint and goes on to 3
    # (env episodes restart on resume, so iteration 3 is not bitwise the uninterrupted one)
    c = tmp_path / "c"
    train(_smoke_cfg(2), c)
    ck_c = torch.load(c / "model_2.pt", weights_only=False)
    ck_a = torch.load(a / "model_2.pt", weights_only=False)
    assert ck_c["iteration"] == 2
    for k, v in ck_a["algo"]["policy"].items():
        torch.testing.assert_close(v, ck_c["algo"]["policy"][k], rtol=0, atol=0)
    train(_smoke_cfg(3), c, resume=True)
    assert latest_checkpoint(c).name == "model_3.pt"
    assert read_policy(c).meta.iteration == 3
    cfg = read_run_config(c)  # the resolved config, written once
    assert cfg.env.num_envs == 4 and cfg.train.runner.iterations == 3
    assert not (c / "locomotion_config.json").exists()


def test_train_cli_smoke(tmp_path):
    from policies.cli import main

    assert main(["--out", str(tmp_path / "p"), "--budget", "smoke", "--quiet", "--device", "cpu",
                 "--set", "env.rewards.torque=-0.1", "train.runner.save_interval=2"]) == 0
    assert (tmp_path / "p" / "policy.pt").exists()
    cfg = read_run_config(tmp_path / "p")  # budget, flags and --set, resolved, saved once
    assert cfg.env.rewards.torque == -0.1 and cfg.train.runner.save_interval == 2
    assert cfg.train.runner.iterations == 2 and cfg.env.num_envs == 8
    assert not (tmp_path / "p" / "locomotion_config.json").exists()


def test_read_run_config_of_an_old_run(tmp_path):
    # runs written before config.json held the whole config: the runner's part in
    # config.json, env + training in locomotion_config.json
    full = to_dict(LocomotionConfig())
    (tmp_path / "config.json").write_text(json.dumps(full["train"]))
    full["env"]["num_envs"] = 5
    (tmp_path / "locomotion_config.json").write_text(json.dumps(full))
    assert read_run_config(tmp_path).env.num_envs == 5


def test_read_run_config_reads_fields_a_run_predates_as_they_were_then(tmp_path):
    # the narrow-kernel tracking terms were added off (0) and later turned on: a run whose
    # config.json predates them trained without them; one that names them keeps its values
    full = to_dict(LocomotionConfig())
    assert full["env"]["rewards"]["lin_vel_fine"] > 0  # on by default now
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "config.json").write_text(json.dumps(full))
    del full["env"]["rewards"]["lin_vel_fine"], full["env"]["rewards"]["ang_vel_fine"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(json.dumps(full))
    old, new = (read_run_config(tmp_path / d).env.rewards for d in ("old", "new"))
    assert (old.lin_vel_fine, old.ang_vel_fine) == (0.0, 0.0)
    assert (new.lin_vel_fine, new.ang_vel_fine) == (1.0, 0.5)
    assert old.kernel_width == new.kernel_width == 0.15


def test_network_env_groups_in_threads_match_one_group(actuator_dir):
    # with a Python actuation the envs are stepped in one group per thread; the split
    # must not change the physics: 2 threads (2 groups) = 1 thread (1 group), env by env,
    # through resets of single envs
    cfg = dict(num_envs=6, actuation="net", episode_seconds=0.3, actuator_backend="numpy")
    one = LeggedEnv(EnvConfig(threads=1, **cfg), actuator_dir=actuator_dir, seed=2)
    two = LeggedEnv(EnvConfig(threads=2, **cfg), actuator_dir=actuator_dir, seed=2)
    assert len(one.physics.groups) == 1 and len(two.physics.groups) == 2
    for env in (one, two):
        env.reset(seed=4)
    # Not bitwise: each group's float32 network is one BLAS sgemm over its own rows (72
    # rows in one group, 36 in each of two), and the kernel the BLAS picks (per CPU and row
    # count) sets the order of the 32-term sums: the torques come out a few float32 ulps
    # apart (measured 1 ulp). A trajectory amplifies such differences without bound where
    # the dynamics are chaotic (with a network that drove the legs to 500 rad/s, a 1-ulp
    # torque noise grew to 0.1 rad/s within 25 steps), so each control step starts both
    # envs from the same physics state (the actuator histories stay each env's own) and
    # one step is compared. Over one step a relative torque error r moves the state by
    # ~10 r (measured with random r = 1e-6 and 1e-5 perturbations; up to ~1500 r at 500
    # rad/s), so 1e-4 + 1e-5 |x| covers r ~ 1e-5 (~160 ulps). Measured on an AMD EPYC:
    # 1.5e-6 (0.1 of the tolerance at 500 rad/s). Rewards move by ~0.02 r: to 1e-6.
    # A wrong group, history or reset moves torques by newtons: 1e4 to 1e6 tolerances.
    actions = np.random.default_rng(1).normal(0, 0.5, (25, 6, 12))
    for a in actions:
        o1, o2 = one.step(a), two.step(a)
        np.testing.assert_allclose(two.state, one.state, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(o2[1], o1[1], rtol=0, atol=1e-6)  # rewards
        two.state[:] = one.state
    assert (one.steps < 25).all()  # episodes of 15 control steps: every env was reset
    for env in (one, two):
        env.close()


def test_network_plugin_env_is_the_numpy_env(actuator_dir):
    # the network inside the MuJoCo step (one rollout call per control step) gives the
    # dynamics of the numpy evaluator called between physics steps, through resets
    from actuator_net import mujoco_plugin

    if not mujoco_plugin.available():
        pytest.skip("no C compiler for the MuJoCo plugin")
    cfg = dict(num_envs=4, actuation="net", episode_seconds=0.3, threads=2)
    plugin = LeggedEnv(EnvConfig(actuator_backend="plugin", **cfg), actuator_dir=actuator_dir, seed=2)
    numpy_ = LeggedEnv(EnvConfig(actuator_backend="numpy", **cfg), actuator_dir=actuator_dir, seed=2)
    assert plugin.actuation.in_model and not numpy_.actuation.in_model
    nq = plugin.base_model.nq + plugin.base_model.nv
    for env in (plugin, numpy_):
        env.reset(seed=4)
    actions = np.random.default_rng(1).normal(0, 0.5, (25, 4, 12))
    # float32 network, summed in another order (the plugin's C loops against numpy's
    # BLAS): torques a few ulps apart. As in the test above, each control step starts both
    # from the same qpos and qvel (each keeps its own actuator history: the plugin's in
    # the MuJoCo state, past qvel) and one step is compared, to the same tolerance
    for a in actions:
        out_p, out_n = plugin.step(a), numpy_.step(a)
        np.testing.assert_allclose(plugin.state[:, 1:1 + nq], numpy_.state[:, 1:1 + nq],
                                   rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(out_p[1], out_n[1], rtol=0, atol=1e-6)  # rewards
        np.testing.assert_array_equal(out_p[2], out_n[2])  # terminations
        numpy_.state[:, 1:1 + nq] = plugin.state[:, 1:1 + nq]
    assert (plugin.steps < 25).all()  # every env was reset at least once
    for env in (plugin, numpy_):
        env.close()


def test_network_backend_auto_falls_back_to_numpy_with_a_warning(actuator_dir, monkeypatch):
    from actuator_net import mujoco_plugin

    def no_compiler():
        raise mujoco_plugin.PluginBuildError("no C compiler: 'cc' is not on PATH (set $CC)")
    monkeypatch.setattr(mujoco_plugin, "load", no_compiler)
    with pytest.warns(UserWarning, match="no C compiler"):
        env = LeggedEnv(EnvConfig(num_envs=2, actuation="net"), actuator_dir=actuator_dir)
    assert not env.actuation.in_model
    env.reset(seed=0)
    assert np.isfinite(env.step(np.zeros((2, 12)))[0]).all()
    with pytest.raises(mujoco_plugin.PluginBuildError, match="no C compiler"):
        LeggedEnv(EnvConfig(num_envs=2, actuation="net", actuator_backend="plugin"),
                  actuator_dir=actuator_dir)
