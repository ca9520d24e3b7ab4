"""The stand-in measures like a robot: encoders, torque estimates, an IMU with its errors,
optional foot switches; ground truth only through a separate channel."""

import dataclasses
import math

import numpy as np
import pybullet as pb
import pytest

from deploy.testing import FakeRobot
from robot_rl.collect import run_experiment
from robot_rl.robot import load_robot
from robot_rl.sensors import GRAVITY, SensorConfig, SensorModel, quat_from_rpy, quat_to_matrix
from robot_rl.standin import PyBulletStandIn
from robot_rl.standin_model import StandInConfig, load_standin_config

A1 = load_robot("a1")
IDEAL = SensorConfig(encoder_resolution=0.0, gyro_noise=0.0, gyro_bias=0.0, accel_noise=0.0,
                     accel_bias=0.0, scale_error=0.0, tilt_error_deg=0.0,
                     orientation_noise_deg=0.0, yaw_drift_deg_s=0.0)


def rpy(quat):
    """Roll, pitch, yaw of a quaternion (w, x, y, z)."""
    r = quat_to_matrix(quat)
    return (math.atan2(r[2, 1], r[2, 2]), -math.asin(r[2, 0]), math.atan2(r[1, 0], r[0, 0]))


def test_controller_state_has_no_base_position_or_velocity_ground_truth_has():
    with PyBulletStandIn(A1, StandInConfig(seed=0)) as s:
        s.reset()
        for _ in range(200):
            st = s.step()
        assert st.base_pos is None and st.base_linvel is None and st.foot_contact is None
        for f in ("q", "qd", "tau", "base_quat", "base_angvel", "base_acc"):
            assert np.all(np.isfinite(getattr(st, f))), f
        gt = s.ground_truth()
        assert gt.stamp == st.stamp == pytest.approx(1.0)
        assert 0.5 * A1.nominal_base_height < gt.base_pos[2] < 0.4
        assert np.abs(gt.base_linvel).max() < 0.05 and gt.up_z > 0.9
        # standing: the accelerometer reads about 1 g, roughly along the base's z
        assert np.linalg.norm(st.base_acc) == pytest.approx(GRAVITY, abs=0.3)
        np.testing.assert_allclose(gt.base_linvel_b, quat_to_matrix(gt.base_quat).T @ gt.base_linvel)


def test_imu_errors_have_the_configured_statistics():
    cfg = SensorConfig(gyro_noise=0.02, gyro_bias=0.01, accel_noise=0.1, accel_bias=0.05,
                       tilt_error_deg=0.5, orientation_noise_deg=0.0, yaw_drift_deg_s=0.5,
                       mount_tilt_deg=1.5)
    models = [SensorModel(cfg, np.random.default_rng(k)) for k in range(400)]
    e = [m.errors for m in models]
    assert np.std([x.gyro_bias for x in e]) == pytest.approx(0.01, rel=0.15)
    assert np.std([x.accel_bias for x in e]) == pytest.approx(0.05, rel=0.15)
    assert np.std([x.accel_scale for x in e]) == pytest.approx(0.01, rel=0.15)
    assert np.mean([x.gyro_scale for x in e]) == pytest.approx(1.0, abs=0.002)
    assert np.std([x.tilt_error for x in e]) == pytest.approx(math.radians(0.5), rel=0.15)
    np.testing.assert_allclose(np.abs([x.yaw_drift_rate for x in e]), math.radians(0.5))
    np.testing.assert_allclose(np.abs([x.mount for x in e]), math.radians(1.5))
    assert len({float(np.sign(x.yaw_drift_rate)) for x in e}) == 2
    # white noise per read around the bias, with the configured standard deviation
    m = models[0]
    up = np.array([0.0, 0.0, GRAVITY])
    reads = [m.imu(0.0, np.array([1.0, 0, 0, 0]), np.zeros(3), up) for _ in range(3000)]
    gyro, acc = np.array([r[1] for r in reads]), np.array([r[2] for r in reads])
    np.testing.assert_allclose(gyro.mean(0), m.errors.gyro_bias, atol=0.002)
    np.testing.assert_allclose(gyro.std(0), 0.02, rtol=0.1)
    np.testing.assert_allclose(acc.std(0), 0.1, rtol=0.1)
    # the mounting tilt turns gravity in the accelerometer, consistently with the orientation
    mount = quat_to_matrix(quat_from_rpy(*m.errors.mount, 0.0))
    np.testing.assert_allclose(acc.mean(0), m.errors.accel_scale * (mount.T @ up)
                               + m.errors.accel_bias, atol=0.01)
    # the filter's orientation is the mounted IMU's, off by the filter's own tilt error E:
    # E (R_meas^T g_up) = M^T g_up, what the accelerometer reads without its bias
    r_meas = quat_to_matrix(reads[0][0])
    e = quat_to_matrix(quat_from_rpy(*m.errors.tilt_error, 0.0))
    np.testing.assert_allclose(e @ r_meas.T @ up,
                               (acc.mean(0) - m.errors.accel_bias) / m.errors.accel_scale,
                               atol=0.01)


def test_standin_imu_on_the_rig_bias_tilt_and_yaw_drift():
    cfg = dataclasses.replace(StandInConfig(seed=5), sensors=SensorConfig(
        gyro_bias=0.02, tilt_error_deg=0.0, yaw_drift_deg_s=1.0, mount_tilt_deg=2.0))
    with PyBulletStandIn(A1, cfg, suspended=True) as s:
        s.reset()
        err = s.sensor_errors()
        reads = [s.read_state() for _ in range(500)]  # same instant, fresh noise each read
        gyro = np.array([r.base_angvel for r in reads])
        np.testing.assert_allclose(gyro.mean(0), err.gyro_bias, atol=0.003)
        roll, pitch, _ = rpy(reads[0].base_quat)  # the rig holds the base level
        np.testing.assert_allclose([roll, pitch], err.mount, atol=math.radians(0.3))
        for _ in range(400):  # 2 s
            st = s.step()
        assert rpy(st.base_quat)[2] == pytest.approx(err.yaw_drift_rate * 2.0, abs=math.radians(0.5))
        assert abs(err.yaw_drift_rate) == pytest.approx(math.radians(1.0))


def test_accelerometer_reads_the_specific_force_of_the_base():
    """With ideal sensors, sum (R f - g) dt over the run is the true change of velocity,
    pushes included."""
    with PyBulletStandIn(A1, dataclasses.replace(StandInConfig(seed=1), sensors=IDEAL)) as s:
        s.reset()
        v0 = s.ground_truth().base_linvel
        dv = np.zeros(3)
        for k in range(300):
            if k == 150:
                s.push(np.array([0.4, -0.3, 0.0]))
            st = s.step()
            dv += (quat_to_matrix(st.base_quat) @ st.base_acc - [0, 0, GRAVITY]) * s.control_dt
        np.testing.assert_allclose(dv, s.ground_truth().base_linvel - v0, atol=1e-6)


def test_encoder_quantization_and_foot_switches():
    sensors = SensorConfig(foot_contact=True)
    cfg = dataclasses.replace(StandInConfig(seed=2), sensors=sensors)
    with PyBulletStandIn(A1, cfg) as s:
        s.reset()
        for _ in range(200):
            st = s.step()
        counts = st.q / sensors.encoder_resolution
        np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)
        assert st.foot_contact.dtype == bool and st.foot_contact.all()  # standing
        client, body = s.pybullet
        pos, orn = pb.getBasePositionAndOrientation(body, physicsClientId=client)
        pb.resetBasePositionAndOrientation(body, [pos[0], pos[1], 1.0], orn,
                                           physicsClientId=client)
        s.send_targets(A1.array("nominal_pose"))
        assert not s.step().foot_contact.any()  # lifted into the air
    with PyBulletStandIn(A1, StandInConfig(seed=2), suspended=True) as s:
        s.reset()
        assert s.step().foot_contact is None  # no foot switches configured


def test_collect_logs_the_base_from_ground_truth_or_the_imu():
    with PyBulletStandIn(A1, StandInConfig(seed=0)) as s:
        log = run_experiment(s, "ground", 1.2, progress=False)
        gt = s.ground_truth()
    assert log.base_pos is not None and log.base_linvel is not None  # the lab's motion capture
    assert gt.stamp == pytest.approx(log.time[-1] + 0.005)
    # true positions and velocities: the one is the other's integral
    fd = np.diff(log.base_pos, axis=0) / 0.005
    np.testing.assert_allclose(fd, 0.5 * (log.base_linvel[1:] + log.base_linvel[:-1]), atol=0.02)
    assert np.abs(log.base_linvel).max() > 0.1  # the robot dropped and moved

    class NoMocap(FakeRobot):
        def ground_truth(self):
            raise NotImplementedError

        def set_gains(self, kp, kd):
            pass

    log = run_experiment(NoMocap(A1), "ground", 1.2, progress=False)
    assert log.base_pos is None and log.base_linvel is None
    np.testing.assert_allclose(log.base_quat, np.tile([1.0, 0, 0, 0], (len(log.time), 1)))


def test_realities_carry_sensors_and_imu_noisy_is_worse():
    default = load_standin_config("default").sensors
    assert default == SensorConfig()
    noisy = load_standin_config("imu_noisy").sensors
    for f in ("gyro_bias", "accel_bias", "tilt_error_deg", "yaw_drift_deg_s", "mount_tilt_deg"):
        assert getattr(noisy, f) > getattr(default, f), f
    assert 1.0 <= noisy.mount_tilt_deg <= 2.0
