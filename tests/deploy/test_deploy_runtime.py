"""Onboard runtime: start sequence, faults -> DAMPING, target clipping, model refusal.

Driven with a fake robot (a RobotInterface test double) and with the PyBullet stand-in.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pybullet as pb
import pytest

from deploy.export import export_policy
from deploy.metadata import MetadataError
from deploy.runtime import (
    Mode,
    ModelMismatchError,
    OnboardController,
    world_to_base,
)
from deploy.safety import SafetyConfig
from deploy.testing import FakeRobot, rewrite_onnx_metadata, with_state, write_random_policy
from robot_rl.interface import RobotInterface
from robot_rl.obs_spec import ObservationSpec, gait_reference, quat_rotate_inverse
from robot_rl.obs_state import ObsActionState
from robot_rl.robot import load_robot
from robot_rl.standin import PyBulletStandIn
from robot_rl.standin_model import StandInConfig

A1 = load_robot("a1")
Q0 = A1.array("nominal_pose")
FAST = SafetyConfig(hold_s=0.1, ramp_s=0.2)  # 5 HOLD + 10 RAMP periods of 0.02 s


@pytest.fixture(scope="module")
def onnx_a1(tmp_path_factory):
    root = tmp_path_factory.mktemp("rt")
    write_random_policy(root / "policy", "a1", seed=1)
    return export_policy(root / "policy", root / "a1.onnx").path


def controller(onnx_a1, robot=None, safety=FAST, **kw):
    robot = robot or FakeRobot(A1)
    ctl = OnboardController(onnx_a1, A1, robot, safety=safety, **kw)
    robot.reset()
    ctl.start()
    return ctl, robot


def run(ctl, n):
    return [ctl.step() for _ in range(n)]


# -- start sequence ----------------------------------------------------------------------------
def test_start_sequence_hold_ramp_policy_with_smooth_targets(onnx_a1):
    q_start = Q0 + np.linspace(-0.3, 0.3, 12)
    ctl, robot = controller(onnx_a1, FakeRobot(A1, q_start=q_start), command=(0.3, 0.0, 0.2))
    assert ctl.decimation == 4  # 0.02 s policy period over a 0.005 s interface
    steps = run(ctl, 25)
    modes = [s.mode for s in steps]
    assert modes == [Mode.HOLD] * 5 + [Mode.RAMP] * 10 + [Mode.POLICY] * 10
    assert ctl.fault is None and robot.steps == 25 * 4
    targets = np.array([s.target for s in steps])
    np.testing.assert_allclose(targets[:5], np.tile(q_start, (5, 1)))  # hold the start pose
    ramp = targets[4:15]  # from the last held target to the nominal pose
    step_bound = math.pi / 2 * np.abs(Q0 - q_start) / 10 + 1e-9  # max slope of the cosine
    assert np.all(np.abs(np.diff(ramp, axis=0)) <= step_bound)
    assert np.all(np.diff(ramp - Q0, axis=0) * np.sign(q_start - Q0) <= 1e-12)  # monotone
    np.testing.assert_allclose(ramp[-1], Q0, atol=1e-12)  # the ramp ends at the nominal pose
    # the fake robot received exactly these targets, each held for 4 interface steps
    np.testing.assert_allclose(np.array(robot.sent), targets)
    # POLICY: q_target = nominal + action_scale * action, the action from the ONNX model
    for s in steps[15:]:
        np.testing.assert_allclose(s.target, np.clip(Q0 + 0.25 * s.action, A1.q_min, A1.q_max))
        np.testing.assert_allclose(s.action, ctl.policy(s.obs)[0], atol=1e-6)
    assert [e.mode for e in ctl.events] == [Mode.HOLD, Mode.RAMP, Mode.POLICY]


def test_observation_is_built_with_the_shared_spec(onnx_a1):
    ctl, robot = controller(onnx_a1, command=(0.5, -0.1, 0.3))
    robot.base_quat = np.array([math.cos(0.1), math.sin(0.1), 0.0, 0.0])
    robot.base_linvel = np.array([0.4, 0.1, 0.0])  # ground truth: the runtime never sees it
    robot.base_angvel = np.array([0.0, 0.1, 0.2])
    estimate = np.array([0.25, -0.05, 0.01])  # what the onboard estimator says
    ctl.estimator.update = lambda state: estimate
    ctl.estimator.velocity = estimate
    steps = run(ctl, 18)
    first, second = steps[15], steps[16]
    spec = ObservationSpec(num_joints=12)
    assert ctl.spec == spec
    # replay the first two policy periods in the shared state machine (the training env's):
    # handover from the last ramp target, then the controller's own action
    sm = ObsActionState(spec, 1, Q0, ctl.q_lo, ctl.q_hi, ctl.control_dt)
    st1, st2 = first.state, second.state
    assert st2.base_linvel is None and st2.base_pos is None  # not measured by a robot
    cmd = np.array([[0.5, -0.1, 0.3]])
    sm.reset(np.array([0]), st1.q[None], st1.qd[None], target=steps[14].target[None])
    for st, step in ((st1, first), (st2, second)):
        obs = sm.observe(q=st.q[None], qd=st.qd[None], base_quat=st.base_quat[None],
                         base_angvel_b=st.base_angvel[None], base_linvel_b=estimate[None],
                         command=cmd)
        np.testing.assert_array_equal(step.obs, obs)
        np.testing.assert_array_equal(sm.act(step.action[None], cmd)[0], step.target)
    # and the second observation's blocks by hand: the history pushed (target - q, qd)
    sl = {name: slice(a, a + n) for (name, n), a in
          zip(spec.blocks(), np.cumsum([0] + [n for _, n in spec.blocks()]))}
    np.testing.assert_array_equal(second.obs[0, sl["prev_action"]], np.float32(first.action))
    np.testing.assert_array_equal(second.obs[0, sl["joint_err_hist"]], np.float32(np.concatenate(
        [first.target - st2.q, steps[14].target - st1.q])))
    np.testing.assert_array_equal(second.obs[0, sl["joint_vel_hist"]],
                                  np.float32(0.05 * np.concatenate([st2.qd, st1.qd])))
    ctl.set_command(0.0, 0.0, -0.4)
    assert np.allclose(ctl.step().obs[0, 9:12], [0.0, 0.0, -0.4])


def test_command_rate_limit_from_the_handover(onnx_a1):
    safety = dataclasses.replace(FAST, command_accel=1.0, command_yaw_accel=2.0)
    ctl, _ = controller(onnx_a1, safety=safety, command=(0.5, -0.1, -0.3))
    steps = run(ctl, 15 + 30)
    seen = np.array([s.obs[0, 9:12] for s in steps[15:]])  # the policy's command block
    k = np.arange(1, 31)[:, None]  # policy periods since the handover
    expect = np.clip(k * 0.02 * np.array([1.0, 1.0, 2.0]), 0, [0.5, 0.1, 0.3]) * [1, -1, -1]
    np.testing.assert_allclose(seen, expect, atol=1e-6)  # float32 observation
    np.testing.assert_allclose(ctl.applied_command, [0.5, -0.1, -0.3])
    ctl.set_command(0.0, 0.0, 0.3)  # a new command is approached at the same rate
    np.testing.assert_allclose(ctl.step().obs[0, 9:12], [0.48, -0.08, -0.26], atol=1e-6)
    # without the limit the first policy period already sees the whole command
    ctl, _ = controller(onnx_a1, command=(0.5, -0.1, -0.3))
    np.testing.assert_allclose(run(ctl, 16)[15].obs[0, 9:12], [0.5, -0.1, -0.3], atol=1e-6)
    with pytest.raises(ValueError, match="command_accel"):
        SafetyConfig(command_accel=-1.0)


def test_command_kept_inside_the_training_ranges(tmp_path, onnx_a1, caplog):
    """A command beyond the ranges in the metadata reaches the policy at their edge, per
    axis, with a logged event; clip_commands=False, or a model without ranges, passes it."""
    write_random_policy(tmp_path / "p", "a1", seed=1,
                        commands=((-0.8, 0.8), (-0.3, 0.3), (-0.6, 0.6)))
    boxed = export_policy(tmp_path / "p", tmp_path / "boxed.onnx").path
    with caplog.at_level("WARNING", logger="deploy.runtime"):
        ctl, _ = controller(boxed, command=(1.5, -0.5, 0.2))
    np.testing.assert_array_equal(ctl.command, [0.8, -0.3, 0.2])
    assert "outside the ranges the policy was trained on" in caplog.text
    assert any("kept at (0.8, -0.3, 0.2)" in line for line in ctl.event_log)
    np.testing.assert_allclose(run(ctl, 16)[15].obs[0, 9:12], [0.8, -0.3, 0.2], atol=1e-6)
    ctl.set_command(-0.5, 0.1, -2.0)  # later commands too
    np.testing.assert_array_equal(ctl.command, [-0.5, 0.1, -0.6])
    off = dataclasses.replace(FAST, clip_commands=False)
    ctl, _ = controller(boxed, safety=off, command=(1.5, -0.5, 0.2))
    np.testing.assert_array_equal(ctl.command, [1.5, -0.5, 0.2])
    ctl, _ = controller(onnx_a1, command=(1.5, -0.5, 0.2))  # metadata without ranges
    np.testing.assert_array_equal(ctl.command, [1.5, -0.5, 0.2])
    assert not any("outside the ranges" in line for line in ctl.event_log)


GAIT = ObservationSpec(num_joints=12, gait_frequency=2.0, gait_amplitude=0.25)


def test_gait_clock_and_trotting_reference(tmp_path):
    write_random_policy(tmp_path / "p", "a1", spec=GAIT)
    path = export_policy(tmp_path / "p", tmp_path / "gait.onnx").path
    ctl, robot = controller(path)
    assert ctl.spec == GAIT and ctl.meta.obs_dim == 98
    steps = run(ctl, 25)[15:]
    dphi = 2 * math.pi * 2.0 * 0.02
    for k, s in enumerate(steps):
        phi = (k * dphi) % (2 * math.pi)
        np.testing.assert_allclose(s.obs[0, 12:14], [math.sin(phi), math.cos(phi)], atol=1e-6)
        ref = gait_reference(GAIT, np.array([phi]), 12)[0]
        np.testing.assert_allclose(s.target, np.clip(Q0 + ref + 0.25 * s.action, A1.q_min,
                                                     A1.q_max), atol=1e-9)
    assert np.abs(gait_reference(GAIT, np.zeros(1), 12)).max() < 1e-12  # smooth handover
    assert ctl.phase == pytest.approx((10 * dphi) % (2 * math.pi))
    ctl.start()  # a restart begins the clock again at the handover
    assert ctl.phase == 0.0


def test_world_to_base_is_the_shared_rotation():
    rng = np.random.default_rng(0)
    quats = rng.normal(size=(50, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    vecs = rng.normal(size=(50, 3))
    want = quat_rotate_inverse(quats, vecs)
    got = np.array([world_to_base(q, v) for q, v in zip(quats, vecs)])
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_one_intra_op_thread(onnx_a1):
    ctl, _ = controller(onnx_a1)
    opts = ctl.policy.session.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1


# -- faults -> DAMPING -------------------------------------------------------------------------
def _nan_q(s):
    q = s.q.copy()
    q[4] = np.nan
    return with_state(s, q=q)


def _nan_quat(s):
    return with_state(s, base_quat=np.array([np.nan, 0.0, 0.0, 0.0]))


def _inf_acc(s):
    return with_state(s, base_acc=np.array([np.inf, 0.0, 0.0]))


def _beyond_limit(s):
    q = s.q.copy()
    q[2] = A1.q_max[2] + 0.3
    return with_state(s, q=q)


def _too_fast(s):
    qd = s.qd.copy()
    qd[7] = 2.0 * A1.qd_max[7]
    return with_state(s, qd=qd)


def _tilted(s):
    a = math.radians(80)
    return with_state(s, base_quat=np.array([math.cos(a / 2), math.sin(a / 2), 0.0, 0.0]))


def _no_gyro(s):
    return with_state(s, base_angvel=None)


@pytest.mark.parametrize("inject,reason", [
    (_nan_q, "non-finite q of joint FL_upper_joint"),
    (_nan_quat, "non-finite base_quat"),
    (_inf_acc, "non-finite base_acc"),
    (_beyond_limit, "joint FR_lower_joint at"),
    (_too_fast, "joint RR_upper_joint speed"),
    (_tilted, "base tilt 80 deg"),
    (_no_gyro, "state has no base_angvel"),
])
@pytest.mark.parametrize("when", [3, 20])  # during HOLD and during POLICY
def test_bad_state_switches_to_damping_with_reason(onnx_a1, inject, reason, when):
    ctl, robot = controller(onnx_a1)
    run(ctl, when)
    assert ctl.mode is not Mode.DAMPING
    robot.state_override = inject
    s = ctl.step()
    assert s.mode is Mode.DAMPING and ctl.mode is Mode.DAMPING
    assert reason in ctl.fault, ctl.fault
    assert ctl.events[-1].mode is Mode.DAMPING and ctl.events[-1].message == ctl.fault
    # damping targets: the measured position (finite entries), clipped to the limits
    q = np.asarray(s.state.q, dtype=float)
    expect = np.clip(np.where(np.isfinite(q), q, s.target), A1.q_min, A1.q_max)
    np.testing.assert_allclose(s.target, expect)
    assert np.all(np.isfinite(s.target))
    # latched: a good state does not bring the policy back; start() re-arms
    robot.state_override = None
    assert ctl.step().mode is Mode.DAMPING
    ctl.start()
    assert ctl.mode is Mode.HOLD and ctl.fault is None


def test_stale_state_switches_to_damping(onnx_a1):
    ctl, robot = controller(onnx_a1)
    run(ctl, 20)
    robot.freeze_stamp = True  # the driver stops updating: stamps stop advancing
    modes = [s.mode for s in run(ctl, 5)]
    # stamps lag 0, 20, 40, 60 ms: the 60 ms one exceeds the 50 ms timeout
    assert modes == [Mode.POLICY] * 3 + [Mode.DAMPING] * 2
    assert ctl.fault.startswith("stale state") and "timeout 50 ms" in ctl.fault


def test_state_from_the_past_is_stale(onnx_a1):
    ctl, robot = controller(onnx_a1)
    run(ctl, 3)
    robot.stamp_offset = -0.5  # a state 0.5 s old (e.g. a delayed message)
    ctl.step()
    assert ctl.mode is Mode.DAMPING and "lags the controller clock" in ctl.fault
    ctl2, robot2 = controller(onnx_a1)
    robot2.state_override = lambda s: with_state(s, stamp=float("nan"))
    ctl2.step()
    assert ctl2.mode is Mode.DAMPING and "stamp" in ctl2.fault


def test_non_finite_policy_output_switches_to_damping(onnx_a1):
    ctl, robot = controller(onnx_a1)
    run(ctl, 16)
    ctl._infer = lambda obs: np.full((1, 12), np.nan, np.float32)
    s = ctl.step()
    assert s.mode is Mode.DAMPING and "policy output is not finite" in ctl.fault
    assert np.all(np.isfinite(robot.sent[-1]))


# -- clipping ----------------------------------------------------------------------------------
def test_targets_clipped_to_joint_limits(onnx_a1):
    ctl, robot = controller(onnx_a1, FakeRobot(A1, tau_lag=1.0))  # slow joints: no speed fault
    run(ctl, 15)
    lo, hi = A1.array("q_min"), A1.array("q_max")
    for sign in (+1.0, -1.0):
        ctl._infer = lambda obs, sign=sign: np.full((1, 12), sign * 1e3, np.float32)
        s = ctl.step()
        assert s.mode is Mode.POLICY
        assert np.all(s.target >= lo) and np.all(s.target <= hi)
        assert np.all(s.action == sign * ctl.safety.action_clip)  # actions clipped as in training
        np.testing.assert_allclose(robot.sent[-1], np.clip(Q0 + 0.25 * s.action, lo, hi))
        assert np.sum(np.isclose(robot.sent[-1], hi if sign > 0 else lo)) >= 8  # at the limit
    # a start pose slightly beyond the limits (within the fault margin) is held clipped
    q_start = Q0.copy()
    q_start[2] = A1.q_max[2] + 0.05
    ctl, robot = controller(onnx_a1, FakeRobot(A1, q_start=q_start))
    s = ctl.step()
    assert s.mode is Mode.HOLD and s.target[2] == pytest.approx(A1.q_max[2])


# -- refusal at load ---------------------------------------------------------------------------
def test_refuses_model_for_another_robot(tmp_path):
    write_random_policy(tmp_path / "p", "aliengo")
    path = export_policy(tmp_path / "p", tmp_path / "aliengo.onnx").path
    with pytest.raises(ModelMismatchError,
                       match="model was exported for robot 'aliengo', this robot is 'a1'"):
        OnboardController(path, A1, FakeRobot(A1))


def test_refuses_other_joint_order(onnx_a1):
    names = list(A1.joint_names)
    names[0], names[3] = names[3], names[0]
    swapped = dataclasses.replace(A1, joint_names=tuple(names))
    with pytest.raises(ModelMismatchError, match="joint order mismatch at index 0: model has "
                                                 "'FR_hip_joint', robot 'a1' has 'FL_hip_joint'"):
        OnboardController(onnx_a1, swapped)


def test_refuses_other_observation_spec(onnx_a1, tmp_path):
    with pytest.raises(ModelMismatchError, match="observation spec mismatch in .*history"):
        OnboardController(onnx_a1, A1, expected_spec=ObservationSpec(num_joints=12, history=3))
    layout = ObservationSpec(num_joints=12).layout()
    bad_version = dict(layout, format_version=99)
    p = rewrite_onnx_metadata(onnx_a1, tmp_path / "v.onnx", observation=json.dumps(bad_version))
    with pytest.raises(MetadataError, match="'observation': observation format version 99"):
        OnboardController(p, A1)
    other_blocks = dict(layout, blocks=[["gravity", 3], ["joint_pos", 12]])
    p = rewrite_onnx_metadata(onnx_a1, tmp_path / "b.onnx", observation=json.dumps(other_blocks))
    with pytest.raises(MetadataError, match="'observation'"):
        OnboardController(p, A1)
    # a layout of another size than the graph's input
    p = rewrite_onnx_metadata(onnx_a1, tmp_path / "h.onnx",
                              observation=json.dumps(ObservationSpec(12, history=3).layout()))
    with pytest.raises(MetadataError, match="obs_dim"):
        OnboardController(p, A1)
    p = rewrite_onnx_metadata(onnx_a1, tmp_path / "s.onnx", obs_dim="120",
                              observation=json.dumps(ObservationSpec(12, history=3).layout()))
    with pytest.raises(MetadataError, match="input 'obs' has width 96"):
        OnboardController(p, A1)


def test_refuses_other_format_version_and_missing_metadata(onnx_a1, tmp_path):
    p = rewrite_onnx_metadata(onnx_a1, tmp_path / "f.onnx", format_version="2")
    with pytest.raises(MetadataError, match="format version 2, this runtime reads version 1"):
        OnboardController(p, A1)
    p = rewrite_onnx_metadata(onnx_a1, tmp_path / "m.onnx", q_max=None)
    with pytest.raises(MetadataError, match="'q_max' is missing"):
        OnboardController(p, A1)
    p = rewrite_onnx_metadata(onnx_a1, tmp_path / "n.onnx", format=None)
    with pytest.raises(MetadataError, match="robot-rl export"):
        OnboardController(p, A1)


def test_refuses_interface_period_that_does_not_divide(onnx_a1):
    with pytest.raises(ValueError, match="not an integer multiple"):
        OnboardController(onnx_a1, A1, FakeRobot(A1, control_dt=0.003))
    with pytest.raises(ModelMismatchError, match="interface drives robot 'aliengo'"):
        OnboardController(onnx_a1, A1, FakeRobot("aliengo"))


# -- with the PyBullet stand-in ------------------------------------------------------------------
class _Tamper(RobotInterface):
    """Wraps the stand-in; ``freeze`` makes read_state return the last state again."""

    def __init__(self, inner):
        self.inner, self.robot, self.control_dt = inner, inner.robot, inner.control_dt
        self.freeze, self._last = False, None

    def reset(self):
        return self.inner.reset()

    def read_state(self):
        if not (self.freeze and self._last is not None):
            self._last = self.inner.read_state()
        return self._last

    def send_targets(self, q_target):
        self.inner.send_targets(q_target)

    def step(self):
        return self.inner.step()


def test_runtime_on_the_pybullet_standin(onnx_a1):
    with PyBulletStandIn(A1, StandInConfig(seed=0)) as standin:
        iface = _Tamper(standin)
        ctl = OnboardController(onnx_a1, A1, iface, safety=SafetyConfig(hold_s=0.2, ramp_s=0.4))
        assert ctl.decimation == 4
        iface.reset()
        ctl.start()
        steps = run(ctl, 60)
        assert [s.mode for s in steps] == [Mode.HOLD] * 10 + [Mode.RAMP] * 20 + [Mode.POLICY] * 30
        assert ctl.fault is None
        assert abs(steps[-1].state.stamp - 59 * 0.02) < 1e-9  # stamps advance with the period
        ramp = np.array([s.target for s in steps[9:30]])
        assert np.abs(np.diff(ramp, axis=0)).max() < 0.05  # smooth
        # stale: the bridge keeps delivering the same state
        iface.freeze = True
        run(ctl, 4)
        assert ctl.mode is Mode.DAMPING and ctl.fault.startswith("stale state")
        # tilt: knock the robot onto its side in the physics engine
        iface.freeze = False
        iface.reset()
        ctl.start()
        run(ctl, 35)
        assert ctl.mode is Mode.POLICY
        client, body = standin.pybullet
        pos, _ = pb.getBasePositionAndOrientation(body, physicsClientId=client)
        pb.resetBasePositionAndOrientation(body, pos, pb.getQuaternionFromEuler([1.4, 0, 0]),
                                           physicsClientId=client)
        s = ctl.step()
        assert s.mode is Mode.DAMPING and "base tilt" in ctl.fault
        q = s.state.q
        np.testing.assert_allclose(s.target, np.clip(q, A1.q_min, A1.q_max))
