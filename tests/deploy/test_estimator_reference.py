"""The onboard estimator against a straightforward reference, over random trajectories.

:class:`deploy.estimator.KinematicInertialEstimator` is written for speed (the leg
kinematics as one constant matrix times products of cos, sin and qd, the filter in Python
floats).  The reference here is the documented math written plainly: per leg a chain of
rotation matrices (Rodrigues' formula after each joint's fixed frame), cross products for
the foot velocity, and the per-axis Kalman filter on numpy 3-vectors.  Both must agree
within float error: each kinematic output is a sum of at most (K+1) 3^K = 108 products
(K = 3 joints a leg) of magnitude <= ~10 (m/s: qd up to ~20 rad/s times levers <= 0.5 m),
summed in another order, so the two differ by <= 108 * 10 * 2^-52 ~ 2.4e-13; the filter
averages those values and contracts (gains < 1), it does not amplify the difference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from deploy.estimator import GRAVITY, EstimatorConfig, KinematicInertialEstimator, LegKinematics
from robot_rl.interface import RobotState
from robot_rl.robot import load_robot
from robot_rl.sensors import quat_from_rpy

#: float error allowed between the estimator and the reference (see the module docstring)
TOL = 1e-12


def _skew(a: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])


def reference_kinematics(kin: LegKinematics, q: np.ndarray, qd: np.ndarray):
    """Foot positions, foot velocities and last-link angular velocities (L, 3 each), base
    frame, leg by leg along the joint chain."""
    legs, per_leg = kin.num_legs, kin.per_leg
    foot, foot_vel, w_leg = np.zeros((legs, 3)), np.zeros((legs, 3)), np.zeros((legs, 3))
    for i in range(legs):
        rot, pos = np.eye(3), kin.origin0[i].copy()
        joints, axes = [], []  # each joint's position and axis, base frame
        for k in range(per_leg):
            a, angle = kin.axes[i, k], q[i * per_leg + k]
            joint_rot = (math.cos(angle) * np.eye(3) + math.sin(angle) * _skew(a)
                         + (1.0 - math.cos(angle)) * np.outer(a, a))
            rot = rot @ kin.frames[i, k] @ joint_rot
            joints.append(pos.copy())
            axes.append(rot @ a)
            pos = pos + rot @ kin.offsets[i, k]
        foot[i] = pos
        for k in range(per_leg):
            w = axes[k] * qd[i * per_leg + k]
            foot_vel[i] += np.cross(w, pos - joints[k])
            w_leg[i] += w
    return foot, foot_vel, w_leg


class ReferenceEstimator:
    """The estimator's math (deploy/estimator.py's module docstring), plainly."""

    def __init__(self, kin: LegKinematics, cfg: EstimatorConfig):
        self.kin, self.cfg = kin, cfg
        self.velocity, self.bias = np.zeros(3), np.zeros(3)
        self.p = np.zeros(3)  # var(v), cov(v, b), var(b)
        self.stamp = None
        self.weight = np.zeros(kin.num_legs)
        self.legs = np.zeros((kin.num_legs, 3))

    def update(self, s: RobotState) -> None:
        cfg, kin = self.cfg, self.kin
        if self.stamp is not None and s.stamp <= self.stamp:
            return
        w, x, y, z = s.base_quat
        up = np.array([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)])
        omega = s.base_angvel
        foot, foot_vel, w_leg = reference_kinematics(kin, s.q, s.qd)
        r = kin.radius[:, None]
        # a rolling foot's contact point is still: v = r (w_calf x up) - J qd - w x p
        legs = r * np.cross(omega + w_leg, up) - foot_vel - np.cross(omega, foot)
        heights = foot @ up
        if cfg.use_contact_sensors and s.foot_contact is not None:
            weight = np.asarray(s.foot_contact, dtype=np.float64)
        else:
            lo, hi = cfg.contact_torque
            knee = np.abs(s.tau[kin.per_leg - 1::kin.per_leg])
            by_height = (heights.min() + cfg.contact_height - heights) / cfg.contact_height
            weight = np.clip(np.minimum(by_height, (knee - lo) / (hi - lo)), 0.0, 1.0)
        self.legs = legs
        if self.stamp is None:
            self.stamp = s.stamp
            total = weight.sum()
            self.velocity = weight @ legs / total if total > 1e-6 else np.zeros(3)
            self.p = np.array([cfg.kin_noise ** 2, 0.0, 0.3 ** 2])
            self.weight = weight
            return
        dt, self.stamp = s.stamp - self.stamp, s.stamp
        v = self.velocity + dt * (s.base_acc - self.bias - GRAVITY * up
                                  - np.cross(omega, self.velocity))
        p11, p12, p22 = self.p
        p11 = p11 - 2 * dt * p12 + dt * dt * p22 + cfg.accel_noise ** 2 * dt
        p12 = p12 - dt * p22
        p22 = p22 + cfg.bias_walk ** 2 * dt
        miss = np.sum((legs - v) ** 2, axis=1)
        gated = np.where(weight > 0, weight * np.exp(-miss / cfg.gate ** 2), 0.0)
        if gated.sum() >= 0.25 * weight.sum():
            weight = gated
        total = weight.sum()
        if total > 0.05:
            innovation = weight @ (legs - v) / total
            k1 = p11 / (p11 + cfg.kin_noise ** 2 / total)
            k2 = p12 / (p11 + cfg.kin_noise ** 2 / total)
            v = v + k1 * innovation
            self.bias = self.bias + k2 * innovation
            p22 = p22 - k2 * p12
            p11, p12 = (1 - k1) * p11, (1 - k1) * p12
        self.velocity, self.p, self.weight = v, np.array([p11, p12, p22]), weight


@pytest.mark.parametrize("name", ["a1", "laikago", "mini_cheetah"])  # axes +-x, +-y; URDF joint frames
def test_leg_kinematics_match_the_reference_chain(name):
    robot = load_robot(name)
    kin = LegKinematics(robot)
    rng = np.random.default_rng(1)
    for _ in range(50):  # any pose, fast joints
        q = rng.uniform(-math.pi, math.pi, robot.num_joints)
        qd = rng.normal(0, 8.0, robot.num_joints)
        for got, want in zip(kin.compute(q, qd), reference_kinematics(kin, q, qd)):
            np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


def _trajectory(robot, rng, steps: int, switches: bool):
    """Random robot states at 200 Hz: joints around the nominal pose, a tilted and turning
    base, legs now loaded, now in the air or in between, now and then a slip or a push
    (one leg, or the accelerometer, far off), and a repeated stamp (to be skipped)."""
    q0 = robot.array("nominal_pose")
    nj = robot.num_joints
    stamp = 0.0
    for k in range(steps):
        stamp += 0.0 if k == 7 else 0.005
        tau = np.tile([0.5, 2.0, -6.0], nj // 3) * rng.uniform(0.0, 1.2, nj)
        qd = rng.normal(0, 0.5, nj)  # legs roughly agreeing: the slip gate weighs them
        if k % 25 == 0:  # a slip: one leg far off
            qd[:3] += rng.normal(0, 12.0, 3)
        acc = np.array([0, 0, GRAVITY]) + rng.normal(0, 1.0 if k % 40 else 30.0, 3)  # a push
        contact = rng.uniform(size=nj // 3) < 0.7 if switches else None
        yield RobotState(stamp=stamp, q=q0 + rng.normal(0, 0.4, nj), qd=qd, tau=tau,
                         base_quat=np.array(quat_from_rpy(*rng.normal(0, 0.15, 3))),
                         base_angvel=rng.normal(0, 0.8, 3), base_acc=acc, foot_contact=contact)


@pytest.mark.parametrize("switches", [False, True])
def test_estimator_update_matches_the_reference_over_a_random_trajectory(switches):
    robot = load_robot("a1")
    est = KinematicInertialEstimator(robot)
    ref = ReferenceEstimator(est.kin, est.cfg)
    rng = np.random.default_rng(2)
    gated = 0
    for k, s in enumerate(_trajectory(robot, rng, 400, switches)):
        est.update(s)
        ref.update(s)
        where = f"state {k}"
        np.testing.assert_allclose(est.leg_velocity, ref.legs, rtol=0, atol=TOL, err_msg=where)
        np.testing.assert_allclose(est.contact, ref.weight, rtol=0, atol=TOL, err_msg=where)
        scale = 1.0 + np.abs(ref.velocity).max()  # the filter's values: TOL relative
        np.testing.assert_allclose(est.velocity, ref.velocity, rtol=0, atol=TOL * scale,
                                   err_msg=where)
        np.testing.assert_allclose(est.bias, ref.bias, rtol=0, atol=TOL * scale, err_msg=where)
        np.testing.assert_allclose(est._p, ref.p, rtol=TOL, atol=0, err_msg=where)
        gated += int(np.any((ref.weight > 0) & (ref.weight < 0.999)))
    assert est.stamp == ref.stamp and gated > 50  # the slip gate and partial contact ran
