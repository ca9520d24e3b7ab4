"""The hardware stand-in: hidden physics drawn from the config, reference actuator behaviour."""

import numpy as np
import pybullet as pb
import pytest

from robot_rl.config import ConfigError
from robot_rl.robot import load_robot
from robot_rl.standin import PyBulletStandIn
from robot_rl.standin_actuator import ReferenceActuator, ReferenceActuatorConfig
from robot_rl.standin_model import PerturbationRanges, StandInConfig, load_standin_config


def total_mass(standin):
    client, body = standin.pybullet
    return sum(pb.getDynamicsInfo(body, j, physicsClientId=client)[0]
               for j in range(-1, pb.getNumJoints(body, physicsClientId=client)))


@pytest.mark.parametrize("name", ["a1", "aliengo"])
def test_hidden_mass_perturbation_applied(name):
    robot = load_robot(name)
    with PyBulletStandIn(robot, StandInConfig(seed=3)) as s:
        h = s.hidden_truth()
        assert 0.0 < h.trunk_payload
        leg_nominal = {"a1": 12.458 - 4.713 - 0.001, "aliengo": 20.638 - 9.041 - 0.001}[name] / 4
        expected = total_mass(s)
        base = {"a1": 4.713 + 0.001, "aliengo": 9.041 + 0.001}[name]
        assert expected == pytest.approx(base + h.trunk_payload + leg_nominal * h.leg_mass_scale.sum(),
                                         rel=1e-6)


def test_seeds_draw_different_physics():
    robot = load_robot("a1")
    with PyBulletStandIn(robot, StandInConfig(seed=1)) as a, PyBulletStandIn(robot, StandInConfig(seed=2)) as b:
        assert not np.allclose(a.hidden_truth().joint_damping, b.hidden_truth().joint_damping)
    with PyBulletStandIn(robot, StandInConfig(seed=1)) as c:
        np.testing.assert_array_equal(c.hidden_truth().joint_coulomb,
                                      PyBulletStandIn(robot, StandInConfig(seed=1)).hidden_truth().joint_coulomb)


def test_default_config_file_and_unknown_keys(tmp_path):
    cfg = load_standin_config()
    assert cfg.control_dt == 0.005 and cfg.decimation == 5
    bad = tmp_path / "bad.json"
    bad.write_text('{"seed": 1, "latencyy": 0.1}')
    with pytest.raises(ConfigError, match="latencyy"):
        load_standin_config(bad)


def test_reference_actuator_latency_lag_and_saturation():
    robot = load_robot("a1")
    dt = 0.001
    hidden = PyBulletStandIn.__new__(PyBulletStandIn)  # only need a HiddenParams shape
    from robot_rl.standin_model import HiddenParams

    z = np.zeros(12)
    hidden = HiddenParams(0.0, np.zeros(3), np.ones(4), z, z, z, 0.8)
    act = ReferenceActuator(ReferenceActuatorConfig(latency=0.01, torque_time_constant=0.004),
                            robot, dt, hidden)
    q0 = robot.array("nominal_pose")
    act.reset(q0)
    act.push_target(q0 + 0.1)
    taus = [act.step(q0, z)[0] for _ in range(40)]
    # nothing happens during the 10 ms latency, then a first-order rise towards kp * 0.1
    assert np.allclose(taus[9], 0.0)
    assert 0 < taus[11][0] < taus[20][0] < 20 * 0.1
    assert taus[39][0] == pytest.approx(20 * 0.1, rel=0.01)
    # torque-speed limit: at the no-load speed a motoring torque is impossible
    act.reset(q0)
    act.push_target(q0 + 10.0)
    qd = robot.array("qd_max")
    for _ in range(30):
        tau, _ = act.step(q0, qd)
    assert np.all(np.abs(tau) < 1e-6 + 0.05 * robot.array("tau_max"))
    # braking is allowed up to the stall torque
    act.reset(q0)
    act.push_target(q0 - 10.0)
    for _ in range(60):
        tau, _ = act.step(q0, qd * 0.5)
    np.testing.assert_allclose(tau, -robot.array("tau_max"), rtol=1e-3)


def test_stand_in_rejects_bad_targets():
    with PyBulletStandIn(load_robot("a1"), suspended=True) as s:
        s.reset()
        with pytest.raises(ValueError, match="12 finite targets"):
            s.send_targets(np.full(12, np.nan))
        with pytest.raises(ValueError):
            s.send_targets(np.zeros(3))


def test_encoder_zero_offsets_shift_the_held_pose_and_the_reading_alike():
    """A miscalibrated encoder: the driver holds its target in the encoder's frame, so the
    joint settles at target - offset, and the state reads that joint as target again.  The
    offsets are drawn last: the rest of the hidden physics is the same as without them."""
    robot = load_robot("a1")
    off = StandInConfig(seed=5, ranges=PerturbationRanges(encoder_offset=(-0.08, 0.08)))
    with PyBulletStandIn(robot, StandInConfig(seed=5), suspended=True) as plain, \
            PyBulletStandIn(robot, off, suspended=True) as shifted:
        o = shifted.hidden_truth().encoder_offset
        assert np.all(np.abs(o) <= 0.08) and np.ptp(o) > 0.05 and np.all(
            plain.hidden_truth().encoder_offset == 0.0)
        np.testing.assert_array_equal(plain.hidden_truth().joint_coulomb,
                                      shifted.hidden_truth().joint_coulomb)
        target = robot.array("nominal_pose")
        for s in (plain, shifted):
            s.reset()
            for _ in range(200):  # 1 s on the rig: the legs settle under the PD
                s.send_targets(target)
                s.step()
        read_plain, read_shifted = plain.read_state().q, shifted.read_state().q
        true_plain = plain._body.joint_state()[0]
        true_shifted = shifted._body.joint_state()[0]
    # the encoders read the same settled pose (the PD's error is the same), 5 mrad for
    # the joints' friction and sag ...
    np.testing.assert_allclose(read_shifted, read_plain, atol=5e-3)
    # ... where the joints really are offset by the calibration error
    np.testing.assert_allclose(true_shifted - true_plain, -o, atol=5e-3)
    np.testing.assert_allclose(read_shifted - true_shifted, o, atol=1e-3)


def test_a_compliant_floor_lets_the_standing_robot_sink_by_weight_over_stiffness():
    """floor_stiffness makes the ground's contact a spring: the robot standing on four feet
    sinks by about its weight / (4 k) more than on the rigid floor."""
    robot = load_robot("a1")
    k = 5000.0
    z = {}
    for name, cfg in (("rigid", StandInConfig(seed=2)),
                      ("soft", StandInConfig(seed=2, floor_stiffness=k, floor_damping=300.0))):
        with PyBulletStandIn(robot, cfg) as s:
            s.reset()
            for _ in range(300):
                s.send_targets(robot.array("nominal_pose"))
                s.step()
            z[name] = s.ground_truth().base_pos[2]
            mass = total_mass(s)
    sink = z["rigid"] - z["soft"]
    expected = mass * 9.81 / (4 * k)
    assert 0.6 * expected < sink < 1.5 * expected, (sink, expected)
    with pytest.raises(ConfigError, match="floor_stiffness"):
        StandInConfig(floor_stiffness=-1.0)
