"""Onboard base velocity estimator: leg kinematics, the filter, the runtime's use of it, and
signals a policy needs (refusal to start, old ONNX layouts)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pybullet as pb
import pytest

from deploy.estimator import EstimatorConfig, KinematicInertialEstimator, LegKinematics
from deploy.export import export_policy, read_metadata
from deploy.metadata import MetadataError
from deploy.runtime import MissingSignalError, Mode, OnboardController
from deploy.safety import SafetyConfig
from deploy.testing import FakeRobot, rewrite_onnx_metadata, with_state, write_random_policy
from robot_rl.interface import RobotState
from robot_rl.obs_spec import ObservationSpec
from robot_rl.robot import load_robot
from robot_rl.sensors import GRAVITY, quat_from_rpy, quat_to_matrix
from robot_rl.standin import PyBulletStandIn
from robot_rl.standin_model import StandInConfig

A1 = load_robot("a1")
# the synthetic states below hold the base level over fixed feet: every leg at the front legs'
# nominal angles keeps the four feet in one plane whatever the robot's stance (with rear thighs
# 0.2 rad further back, as legged_gym's, the rear feet sit 8 mm higher in the base frame)
Q0 = np.tile(A1.array("nominal_pose")[:3], 4)
COMMITTED = "policies/trained/a1/policy.onnx"
FAST = SafetyConfig(hold_s=0.1, ramp_s=0.2)
STANCE_TAU = np.tile([0.5, 2.0, -8.0], 4)  # knee torques of a loaded leg


@pytest.fixture(scope="module")
def onnx_pair(tmp_path_factory):
    """A random policy with the base velocity block and one without."""
    root = tmp_path_factory.mktemp("est")
    write_random_policy(root / "with", "a1", seed=1)
    write_random_policy(root / "without", "a1", seed=1, spec=ObservationSpec(base_linvel=False))
    return (export_policy(root / "with", root / "with.onnx").path,
            export_policy(root / "without", root / "without.onnx").path)


# -- leg kinematics ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a1", "aliengo", "laikago", "mini_cheetah"])
def test_leg_kinematics_match_pybullet(name):
    robot = load_robot(name)
    kin = LegKinematics(robot)  # (against a plain joint chain: test_estimator_reference.py)
    rng = np.random.default_rng(0)
    with PyBulletStandIn(robot, StandInConfig(seed=0)) as s:
        s.reset()
        client, body = s.pybullet
        for _ in range(3):
            q = robot.array("nominal_pose") + rng.normal(0, 0.3, robot.num_joints)
            qd = rng.normal(0, 3.0, robot.num_joints)
            s._body.set_joint_state(q, qd)
            pb.resetBaseVelocity(body, rng.normal(size=3).tolist(), rng.normal(size=3).tolist(),
                                 physicsClientId=client)
            gt = s.ground_truth()
            rot = quat_to_matrix(gt.base_quat)
            foot, foot_vel, w_leg = kin.compute(q, qd)
            for i, link in enumerate(s._body.foot_ids):
                st = pb.getLinkState(body, int(link), computeLinkVelocity=1,
                                     computeForwardKinematics=1, physicsClientId=client)
                p_b = rot.T @ (np.array(st[4]) - gt.base_pos)
                v_b = rot.T @ (np.array(st[6]) - gt.base_linvel) - np.cross(gt.base_angvel, p_b)
                w_b = rot.T @ np.array(st[7]) - gt.base_angvel  # the foot link's, relative
                np.testing.assert_allclose(foot[i], p_b, atol=1e-6)
                np.testing.assert_allclose(foot_vel[i], v_b, atol=1e-6)
                np.testing.assert_allclose(w_leg[i], w_b, atol=1e-6)
    assert np.all(kin.radius > 0.01)  # the feet are spheres in these URDFs


# -- the filter on synthetic motion -----------------------------------------------------------------
def jacobians(kin: LegKinematics, q: np.ndarray) -> np.ndarray:
    """(L, 3, 3) foot velocity per joint velocity, from the kinematics itself."""
    cols = [kin.compute(q, np.eye(12)[k])[1] for k in range(12)]
    return np.stack([np.stack([cols[3 * leg + j][leg] for j in range(3)], axis=1)
                     for leg in range(4)])


def standing_state(t: float, v: np.ndarray, omega: np.ndarray, kin: LegKinematics, quat=None,
                   acc=None, slip: np.ndarray | None = None, tau=STANCE_TAU) -> RobotState:
    """The base moving at ``v`` (base frame) and turning at ``omega`` over feet fixed on the
    ground (``slip``: extra foot velocities), legs at the nominal pose, point feet."""
    quat = np.array([1.0, 0, 0, 0]) if quat is None else quat
    foot = kin.compute(Q0, np.zeros(12))[0]
    rel = -v - np.cross(omega, foot) + (0 if slip is None else slip)  # foot velocity vs base
    qd = np.concatenate([np.linalg.solve(j, r) for j, r in zip(jacobians(kin, Q0), rel)])
    # constant velocity in a turning base frame: the world acceleration is omega x v
    f = quat_to_matrix(quat).T @ np.array([0, 0, GRAVITY]) + np.cross(omega, v) \
        if acc is None else acc
    return RobotState(stamp=t, q=Q0.copy(), qd=qd, tau=tau.copy(), base_quat=quat,
                      base_angvel=omega.copy(), base_acc=f)


def test_legs_in_contact_give_the_base_velocity_and_slipping_legs_are_ignored():
    est = KinematicInertialEstimator(A1)
    est.kin.radius[:] = 0.0  # point feet: no rolling in this synthetic motion
    v, omega = np.array([0.6, -0.2, 0.05]), np.array([0.1, -0.05, 0.5])
    for k in range(100):
        est.update(standing_state(0.005 * k, v, omega, est.kin))
    np.testing.assert_allclose(est.velocity, v, atol=1e-3)
    assert np.all(est.contact > 0.99)
    slip = np.zeros((4, 3))
    slip[0] = [0.6, 0.2, 0.0]  # the front right foot slides
    for k in range(100, 600):
        est.update(standing_state(0.005 * k, v, omega, est.kin, slip=slip))
    np.testing.assert_allclose(est.velocity, v, atol=0.01)  # unweighted mean: 0.15 off
    assert est.contact[0] < 0.1 < est.contact[1:].min()


def test_without_contact_the_accelerometer_is_integrated_with_gravity_removed():
    est = KinematicInertialEstimator(A1)
    quat = quat_from_rpy(0.2, -0.3, 1.0)  # tilted: gravity must come out through the IMU
    acc_world = np.array([1.0, -0.5, 0.0])
    f = quat_to_matrix(quat).T @ (acc_world + [0, 0, GRAVITY])
    air = np.zeros(12)  # no knee torque: no leg carries the robot
    for k in range(201):
        est.update(standing_state(0.005 * k, np.zeros(3), np.zeros(3), est.kin, quat=quat,
                                  acc=f, tau=air))
    np.testing.assert_allclose(est.velocity, quat_to_matrix(quat).T @ acc_world, atol=1e-9)


def test_accelerometer_bias_and_tilt_are_absorbed_without_drift_over_60_s():
    est = KinematicInertialEstimator(A1)
    est.kin.radius[:] = 0.0
    bias = np.array([0.3, -0.2, 0.1])
    tilt = quat_from_rpy(math.radians(2.0), math.radians(-1.5), 0.0)  # orientation 2 deg off
    rng = np.random.default_rng(0)
    worst = 0.0
    state = standing_state(0.0, np.zeros(3), np.zeros(3), est.kin)
    for k in range(12000):  # 60 s at 200 Hz, standing still
        f = bias + rng.normal(0, 0.05, 3) + np.array([0, 0, GRAVITY])
        est.update(dataclasses.replace(state, stamp=0.005 * k, base_quat=tilt, base_acc=f))
        worst = max(worst, float(np.abs(est.velocity).max())) if k > 200 else worst
    assert worst < 0.02
    leak = quat_to_matrix(tilt).T @ np.array([0, 0, GRAVITY]) - np.array([0, 0, GRAVITY])
    np.testing.assert_allclose(est.bias, bias - leak, atol=0.02)


def test_foot_switches_replace_torque_contact():
    est = KinematicInertialEstimator(A1)
    est.kin.radius[:] = 0.0
    v = np.array([0.4, 0.0, 0.0])
    s = standing_state(0.0, v, np.zeros(3), est.kin, tau=np.zeros(12))
    s = dataclasses.replace(s, foot_contact=np.array([True, False, False, True]))
    assert "foot_contact" in est.signals(s) and "joint_torque" not in est.signals(s)
    for k in range(50):
        est.update(dataclasses.replace(s, stamp=0.005 * k))
    np.testing.assert_allclose(est.contact, [1, 0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(est.velocity, v, atol=1e-3)
    assert "joint_torque" in est.signals(dataclasses.replace(s, foot_contact=None))
    with pytest.raises(ValueError, match="contact_torque"):
        EstimatorConfig(contact_torque=(5.0, 1.0))


# -- closed loop on the stand-in ---------------------------------------------------------------------
class _EstimatingInterface:
    """The stand-in with an onboard estimator fed every robot step (as the runtime does for
    a policy that observes base velocity)."""

    def __init__(self, inner, est):
        self.inner, self.est = inner, est

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def step(self):
        state = self.inner.step()
        self.est.update(state)
        return state


def test_estimator_tracks_ground_truth_while_the_committed_policy_walks():
    est = KinematicInertialEstimator(A1)
    with PyBulletStandIn(A1, StandInConfig(seed=0)) as standin:
        iface = _EstimatingInterface(standin, est)
        ctl = OnboardController(COMMITTED, A1, standin, FAST, command=(0.8, 0.0, 0.0))
        ctl.interface = iface
        standin.reset()
        ctl.start()
        err, true = [], []
        for k in range(15 + 300):  # 6 s of policy control
            step = ctl.step()
            truth = standin.ground_truth()
            assert step.state.base_linvel is None
            if k >= 15 + 100:
                err.append(est.velocity - truth.base_linvel_b)
                true.append(truth.base_linvel_b)
        assert ctl.fault is None and truth.base_pos[2] > 0.5 * A1.nominal_base_height
    err = np.array(err)
    rmse = np.sqrt(np.mean(err ** 2, axis=0))
    assert rmse[0] < 0.1 and rmse[1] < 0.1, rmse
    assert np.mean(true, axis=0)[0] > 0.6  # it walks forward


# -- the runtime: signals ----------------------------------------------------------------------------
def test_runtime_refuses_to_start_naming_the_missing_signal(onnx_pair):
    with_block, without = onnx_pair
    for field, signal in (("base_acc", "imu_linear_acceleration"),
                          ("base_quat", "imu_orientation"), ("tau", "joint_torque")):
        robot = FakeRobot(A1)
        robot.state_override = lambda s, f=field: with_state(s, **{f: None})
        ctl = OnboardController(with_block, A1, robot, FAST)
        robot.reset()
        with pytest.raises(MissingSignalError, match=f"'{signal}'.*RobotState.{field}"):
            ctl.start()
    # a policy without the velocity block needs no estimator, hence no accelerometer
    robot = FakeRobot(A1)
    robot.state_override = lambda s: with_state(s, base_acc=None, tau=None)
    ctl = OnboardController(without, A1, robot, FAST)
    assert ctl.estimator is None and ctl.signals(robot.reset()) == [
        "imu_orientation", "imu_angular_velocity", "joint_position", "joint_velocity"]
    ctl.start()
    steps = [ctl.step() for _ in range(20)]
    assert steps[-1].mode is Mode.POLICY and steps[-1].obs.shape == (1, 93)
    robot.state_override = lambda s: with_state(s, base_quat=None, base_acc=None, tau=None)
    with pytest.raises(MissingSignalError, match="imu_orientation"):
        ctl.start()


def test_estimator_losing_track_is_a_fault(onnx_pair):
    robot = FakeRobot(A1)
    ctl = OnboardController(onnx_pair[0], A1, robot, FAST)
    robot.reset()
    ctl.start()
    for _ in range(20):
        ctl.step()
    assert ctl.mode is Mode.POLICY
    ctl.estimator.velocity = np.array([9.0, 0.0, 0.0])  # nothing corrects it: no foot loaded
    ctl.step()
    assert ctl.mode is Mode.DAMPING and "lost track" in ctl.fault


def test_old_layouts_with_the_velocity_block_still_load(onnx_pair, tmp_path):
    with_block, without = onnx_pair
    # a file exported before 'signals' and the base_linvel key existed
    layout_old = json.loads(json.dumps(read_metadata(with_block).observation))
    layout_old.pop("base_linvel", None)
    old_file = rewrite_onnx_metadata(with_block, tmp_path / "old.onnx", signals=None,
                                     observation=json.dumps(layout_old))
    meta = read_metadata(old_file)
    assert "base_linvel" not in meta.observation and meta.spec().base_linvel
    assert meta.signals[-1] == "base_linear_velocity_estimate" and meta.obs_dim == meta.spec().size
    layout = ObservationSpec(base_linvel=False).layout()
    assert ObservationSpec.from_layout(layout) == ObservationSpec(base_linvel=False)
    assert ObservationSpec.from_layout(json.loads(json.dumps(layout))).size == 93
    with pytest.raises(ValueError, match="base_linvel=True but its blocks lack"):
        ObservationSpec.from_layout({**layout, "base_linvel": True})
    old = ObservationSpec().layout()
    del old["base_linvel"]
    assert ObservationSpec.from_layout(old) == ObservationSpec()
    # new exports list their signals; a list that contradicts the layout is refused
    assert "base_linear_velocity_estimate" not in read_metadata(without).signals
    bad = rewrite_onnx_metadata(without, tmp_path / "bad.onnx",
                                signals=json.dumps(read_metadata(with_block).signals))
    with pytest.raises(MetadataError, match="'signals' lists"):
        read_metadata(bad)


def test_controller_with_estimator_runs_without_torch(onnx_pair):
    with_block = str(onnx_pair[0])  # a policy that observes base velocity: the estimator runs
    code = (
        "import sys, numpy as np\n"
        "from deploy.runtime import OnboardController\n"
        "from deploy.safety import SafetyConfig\n"
        "from robot_rl.interface import RobotState\n"
        "from robot_rl.robot import load_robot\n"
        "a1 = load_robot('a1')\n"
        f"ctl = OnboardController({with_block!r}, a1, safety=SafetyConfig(hold_s=0, ramp_s=0))\n"
        "s = RobotState(0.0, a1.array('nominal_pose'), np.zeros(12), np.zeros(12),\n"
        "               base_quat=np.array([1.0, 0, 0, 0]), base_angvel=np.zeros(3),\n"
        "               base_acc=np.array([0, 0, 9.81]))\n"
        "ctl.start(s)\n"
        "step = ctl.compute(s)\n"
        "assert step.action is not None and ctl.estimator is not None, step\n"
        "print(sorted(m for m in ('torch', 'onnx', 'pybullet') if m in sys.modules))\n")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
