"""What a legged robot's sensors report: encoder quantization and an IMU with noise and bias.

The hardware stand-in turns its true state into measurements with :class:`SensorModel`;
the controller only sees those.  Quaternions are (w, x, y, z), base frame -> world frame.

IMU model (per read; errors drawn once per seed are marked *)::

    M          = Rot(mount roll*, mount pitch*)     the IMU sits tilted by its mounting
    gyro       = S_g* M^T w_b + b_g* + n_g          angular velocity (rad/s), IMU frame
    acc        = S_a* M^T f_b + b_a* + n_a          specific force (m/s^2), IMU frame:
                 f_b = R^T (a - g), (0, 0, +9.81) at rest
    quat       = Rz(r_yaw* t) R M E* N               the IMU's own orientation filter:
                 E  = Rot(roll error*, pitch error*)  roll/pitch good to tilt_error_deg,
                 N  = Rot(white noise), r_yaw         yaw drifting at yaw_drift_deg_s
    S_g, S_a   = diag(1 + scale errors*)            scale factor errors per axis

The bridge reports the IMU's readings as the base's (it assumes the nominal mounting), so a
mounting tilt appears consistently in orientation, gyro and accelerometer, as on a robot.

Default values are those of an A1-class MEMS IMU with its vendor's filter (BMI088-like
gyro/accelerometer; noise per 200 Hz sample, biases after power-on calibration): gyro
noise 0.01 rad/s, bias 0.01 rad/s; accelerometer noise 0.05 m/s^2, bias 0.05 m/s^2; scale
factors within 1 %; roll and pitch within 0.5 deg; yaw drifting at 0.5 deg/s without a
magnetometer.  Joint
encoders: a 15-bit motor encoder behind a 9.1:1 gearbox, 2*pi / (2^15 * 9.1) = 2.1e-5 rad
per count at the joint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robot_rl.config import ConfigError

GRAVITY = 9.81  # m/s^2, along world -z


@dataclass(frozen=True)
class SensorConfig:
    """Encoders, IMU and foot contact switches of the stand-in (see the module docstring)."""

    # joint encoder resolution at the joint, 0 = continuous (rad per count)
    encoder_resolution: float = 2.1e-5
    # gyro white noise, standard deviation per sample (rad/s)
    gyro_noise: float = 0.01
    # gyro bias, standard deviation of the per-axis constant drawn per seed (rad/s)
    gyro_bias: float = 0.01
    # accelerometer white noise, standard deviation per sample (m/s^2)
    accel_noise: float = 0.05
    # accelerometer bias, standard deviation of the per-axis constant drawn per seed (m/s^2)
    accel_bias: float = 0.05
    # gyro and accelerometer scale factor error, standard deviation per axis per seed (-)
    scale_error: float = 0.01
    # orientation filter: roll/pitch error, standard deviation of the constant per seed (deg)
    tilt_error_deg: float = 0.5
    # orientation filter: white noise on each axis, standard deviation (deg)
    orientation_noise_deg: float = 0.05
    # orientation filter: yaw drift rate, sign drawn per seed (deg/s)
    yaw_drift_deg_s: float = 0.5
    # IMU mounting: roll and pitch of the IMU on the base, each +-this (sign per seed) (deg)
    mount_tilt_deg: float = 0.0
    # foot contact switches: report RobotState.foot_contact (A1 and Go1 have foot sensors)
    foot_contact: bool = False
    # foot contact switches: normal force above which a foot reads as in contact (N)
    contact_force_threshold: float = 5.0

    def __post_init__(self) -> None:
        for f in ("encoder_resolution", "gyro_noise", "gyro_bias", "accel_noise", "accel_bias",
                  "scale_error", "tilt_error_deg", "orientation_noise_deg", "yaw_drift_deg_s", "mount_tilt_deg",
                  "contact_force_threshold"):
            if not getattr(self, f) >= 0:
                raise ConfigError(f"sensors.{f} must be >= 0, got {getattr(self, f)!r}")


@dataclass
class SensorErrors:
    """The per-seed errors of one sensor set.  For tests that grade sensing; never for stages."""

    gyro_bias: np.ndarray  # (3,) rad/s, IMU frame
    accel_bias: np.ndarray  # (3,) m/s^2, IMU frame
    tilt_error: np.ndarray  # (2,) rad: roll, pitch of the filter's error
    mount: np.ndarray  # (2,) rad: roll, pitch of the IMU on the base
    yaw_drift_rate: float  # rad/s
    gyro_scale: np.ndarray  # (3,) multiplier of each gyro axis
    accel_scale: np.ndarray  # (3,) multiplier of each accelerometer axis


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of quaternions (w, x, y, z)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw])


def quat_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Quaternion (w, x, y, z) of R = Rz(yaw) Ry(pitch) Rx(roll)."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return np.array([cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy,
                     cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy])


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a unit quaternion (w, x, y, z)."""
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def quantize(x: np.ndarray, resolution: float) -> np.ndarray:
    """``x`` rounded to multiples of ``resolution`` (unchanged when it is 0)."""
    return np.round(x / resolution) * resolution if resolution > 0 else x


class SensorModel:
    """Turns a true state into what the robot's encoders and IMU report."""

    def __init__(self, cfg: SensorConfig, rng: np.random.Generator):
        self.cfg = cfg
        self.rng = rng
        d = math.radians
        sign = rng.choice([-1.0, 1.0], size=3)
        self.errors = SensorErrors(
            gyro_bias=rng.normal(0.0, cfg.gyro_bias, 3),
            accel_bias=rng.normal(0.0, cfg.accel_bias, 3),
            tilt_error=rng.normal(0.0, d(cfg.tilt_error_deg), 2),
            mount=sign[:2] * d(cfg.mount_tilt_deg),
            yaw_drift_rate=float(sign[2] * d(cfg.yaw_drift_deg_s)),
            gyro_scale=1.0 + rng.normal(0.0, cfg.scale_error, 3),
            accel_scale=1.0 + rng.normal(0.0, cfg.scale_error, 3))
        e = self.errors
        self._mount_q = quat_from_rpy(e.mount[0], e.mount[1], 0.0)
        self._mount_rt = quat_to_matrix(self._mount_q).T  # base frame -> IMU frame
        self._filter_q = quat_mul(self._mount_q, quat_from_rpy(e.tilt_error[0], e.tilt_error[1], 0.0))

    def joints(self, q: np.ndarray, noise_q: float) -> np.ndarray:
        """Encoder readings of joint positions ``q`` (rad): noise, then quantization."""
        return quantize(q + self.rng.normal(0.0, noise_q, q.shape), self.cfg.encoder_resolution)

    def imu(self, t: float, quat: np.ndarray, omega_b: np.ndarray,
            specific_force_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(orientation quaternion, gyro, accelerometer) at time ``t`` (s) for the true base
        orientation ``quat``, angular velocity ``omega_b`` and specific force (both base frame)."""
        c, e, n = self.cfg, self.errors, self.rng.normal
        gyro = e.gyro_scale * (self._mount_rt @ omega_b) + e.gyro_bias + n(0.0, c.gyro_noise, 3)
        acc = e.accel_scale * (self._mount_rt @ specific_force_b) + e.accel_bias \
            + n(0.0, c.accel_noise, 3)
        w = n(0.0, math.radians(c.orientation_noise_deg), 3)
        drift = quat_from_rpy(0.0, 0.0, e.yaw_drift_rate * t)
        q = quat_mul(drift, quat_mul(quat, quat_mul(self._filter_q, quat_from_rpy(*w))))
        return q / np.linalg.norm(q), gyro, acc
