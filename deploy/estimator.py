"""The onboard state estimator: base linear velocity from the legs and the IMU (numpy only).

A real robot measures no base velocity; policies that observe it get this estimate.  It
runs on the robot's computer at the rate of the robot's state (every interface period,
e.g. 200 Hz), inside the controller's period, and imports only numpy (no torch, no
simulator): the leg kinematics are read from the robot description's URDF once.

Kinematic-inertial fusion (after Bloesch et al. 2013, reduced to velocity), in the base
frame ``B`` of the IMU:

* **Leg kinematics.**  Per leg, forward kinematics of the joint chain gives the foot
  position ``p_i(q)`` and the joint axes; the foot's velocity relative to the base is
  ``J_i(q) qd_i``.  A foot in contact does not move over the ground (its sphere rolls:
  the contact point is still), so the base velocity it implies is::

      v_i = -(J_i qd_i + w x p_i) + r (w_calf,i x n_up)

  with ``w`` the gyro, ``r`` the foot sphere's radius, ``w_calf,i = w + sum_k qd_k a_k``
  the angular velocity of the last link and ``n_up`` world up in ``B``.
* **Contact.**  From the robot's foot switches when it has them; otherwise from the knee
  torque (a loaded leg bends its knee against the motor: weight ramps from 0 to 1
  between ``contact_torque``) times foot height (a foot more than ``contact_height``
  above the lowest foot is in the air).  Legs disagreeing with the prediction are
  down-weighted (slip): weight ``x exp(-(|v_i - v| / gate)^2)``, unless that removes most
  of the contact weight (then the prediction is wrong, e.g. after a push, and the legs
  are trusted).
* **Fusion.**  Per axis a Kalman filter with state (velocity, accelerometer bias): the
  prediction integrates the accelerometer's specific force with gravity from the IMU
  orientation, ``v += dt (f - b + R^T g - w x v)``; the update is the contact-weighted
  mean of ``v_i``, with variance ``kin_noise^2 / sum(weights)``.  The bias state absorbs
  the accelerometer's bias and the gravity leak of a roll/pitch error.

Defaults were tuned on the stand-in's recorded walks (``bench/bench_estimator.py`` measures
the error closed loop, and the cost per update: tens of microseconds).
"""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from robot_rl.interface import RobotState
from robot_rl.robot import RobotDescription

GRAVITY = 9.81  # m/s^2


@dataclass(frozen=True)
class EstimatorConfig:
    """Noise levels and contact thresholds of :class:`KinematicInertialEstimator`."""

    # velocity process noise: unmodelled acceleration (impacts, vibration), density (m/s^1.5)
    accel_noise: float = 0.5
    # accelerometer bias random walk, density (m/s^2.5)
    bias_walk: float = 0.1
    # noise of one leg's kinematic velocity, per state (m/s; per-state errors are correlated
    # over a stance, hence larger than the encoders alone would give)
    kin_noise: float = 0.4
    # contact from torque: |knee torque| where a foot starts to count, and fully counts (N m)
    contact_torque: tuple[float, float] = (1.0, 4.0)
    # contact from kinematics: a foot this much above the lowest foot counts as in the air (m)
    contact_height: float = 0.04
    # use the robot's foot contact switches when its state has them
    use_contact_sensors: bool = True
    # slip gate: a leg whose velocity differs from the prediction by this is down-weighted (m/s)
    gate: float = 0.3
    # an estimate faster than this means the estimator lost track (m/s)
    max_speed: float = 5.0

    def __post_init__(self) -> None:
        for f in ("accel_noise", "bias_walk", "kin_noise", "contact_height", "gate", "max_speed"):
            if not getattr(self, f) > 0:
                raise ValueError(f"EstimatorConfig.{f} must be > 0, got {getattr(self, f)!r}")
        lo, hi = self.contact_torque
        if not 0 <= lo < hi:
            raise ValueError(f"EstimatorConfig.contact_torque must be 0 <= low < high, got "
                             f"{self.contact_torque}")


# -- leg kinematics ----------------------------------------------------------------------------
def _rpy_matrix(rpy: np.ndarray) -> np.ndarray:
    r, p, y = rpy
    rx = np.array([[1, 0, 0], [0, math.cos(r), -math.sin(r)], [0, math.sin(r), math.cos(r)]])
    ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
    rz = np.array([[math.cos(y), -math.sin(y), 0], [math.sin(y), math.cos(y), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _vec(text: str | None, default: str = "0 0 0") -> np.ndarray:
    return np.array([float(x) for x in (text or default).split()])


def _skew(a: np.ndarray) -> np.ndarray:
    out = np.zeros(a.shape[:-1] + (3, 3))
    out[..., 0, 1], out[..., 0, 2], out[..., 1, 2] = -a[..., 2], a[..., 1], -a[..., 0]
    out[..., 1, 0], out[..., 2, 0], out[..., 2, 1] = a[..., 2], -a[..., 1], a[..., 0]
    return out


class LegKinematics:
    """Forward kinematics of every leg, vectorised over legs (base frame, numpy).

    Built from the URDF: each foot link's chain of joints back to the base link, with
    consecutive fixed joints folded into the revolute joints' origins.  Every leg must
    have the same number of revolute joints, ``K = J / legs``, in the canonical joint order.

    **One product per update.**  A joint's rotation about its unit axis ``a`` (Rodrigues),
    after the joint's fixed frame ``F`` (the URDF origin's rpy), is affine in its cosine and
    sine::

        F R(q) = F a a^T + cos q F (I - a a^T) + sin q F [a]x  =  B_0 + c B_1 + s B_2

    so every product along a leg's chain is a sum over the 3^K monomials ``t_0 t_1 ...
    t_{K-1}`` (``t_k`` one of 1, ``c_k``, ``s_k``), each with a constant coefficient.  The
    foot position, the foot velocity ``J qd`` and the last link's angular velocity are
    such products (the velocities linear in ``qd``), so the three of them are one constant
    matrix (built here, :meth:`_coefficients`) times the features ``[m, qd_0 m, ...,
    qd_{K-1} m]`` of the monomials ``m``: per update, a cosine, a sine, K+1 gathers, K
    products and one matrix product on 1-D arrays, where the chain of 3 x 3 rotations took
    some fifteen numpy calls (~1 us each at this size).  The plain joint chain is kept as
    the reference in ``tests/deploy/test_estimator_reference.py``.
    """

    def __init__(self, robot: RobotDescription, urdf_path=None):
        root = ET.parse(urdf_path or robot.urdf_path).getroot()
        by_child = {j.find("child").get("link"): j for j in root.findall("joint")}
        legs, per_leg = len(robot.foot_links), robot.num_joints // len(robot.foot_links)
        self.num_legs, self.per_leg = legs, per_leg
        origins = np.zeros((legs, per_leg, 3))
        frames = np.tile(np.eye(3), (legs, per_leg, 1, 1))
        axes = np.zeros((legs, per_leg, 3))
        foot = np.zeros((legs, 3))
        radius = np.zeros(legs)
        for i, foot_link in enumerate(robot.foot_links):
            chain, link = [], foot_link
            while link != robot.base_link:
                if link not in by_child:
                    raise ValueError(f"{robot.urdf}: no joint chain from {robot.base_link!r} to "
                                     f"foot {foot_link!r}")
                chain.append(by_child[link])
                link = by_child[link].find("parent").get("link")
            chain.reverse()
            # (position, rotation) of the current frame in the last revolute joint's frame
            pos, rot, k = np.zeros(3), np.eye(3), 0
            for j in chain:
                o = j.find("origin")
                jp = _vec(o.get("xyz") if o is not None else None)
                jr = _rpy_matrix(_vec(o.get("rpy") if o is not None else None))
                pos, rot = pos + rot @ jp, rot @ jr
                if j.get("type") == "fixed":
                    continue
                if j.get("type") not in ("revolute", "continuous"):
                    raise ValueError(f"{robot.urdf}: joint {j.get('name')!r} of type "
                                     f"{j.get('type')!r} in a leg (revolute joints only)")
                name = robot.joint_names[i * per_leg + k] if k < per_leg else None
                if name != j.get("name"):
                    raise ValueError(f"{robot.urdf}: leg {foot_link!r} joint {k} is "
                                     f"{j.get('name')!r}, the description says {name!r}")
                origins[i, k], frames[i, k] = pos, rot
                axis = j.find("axis")
                axes[i, k] = _vec(axis.get("xyz") if axis is not None else None, "1 0 0")
                axes[i, k] /= np.linalg.norm(axes[i, k])
                pos, rot, k = np.zeros(3), np.eye(3), k + 1
            if k != per_leg:
                raise ValueError(f"{robot.urdf}: leg {foot_link!r} has {k} joints, expected "
                                 f"{per_leg}")
            foot[i] = pos
            radius[i] = _sphere_radius(root, foot_link)
        #: first joint's position (L, 3), joint frames' rotations in their parents' (L, K, 3,
        #: 3), joint axes in their frames (L, K, 3), foot offset in the last joint's frame
        #: (L, 3), foot sphere radius (L,), all in metres
        self.origin0, self.frames, self.axes, self.foot = origins[:, 0], frames, axes, foot
        self.radius = radius
        #: offset from each joint to the next joint (or the foot), in its frame (L, K, 3)
        self.offsets = np.concatenate([origins[:, 1:], foot[:, None]], axis=1)
        matrix = self._coefficients()  # (K+1) * L * 3^K features -> L * 9 outputs
        # The features as products of entries of one vector, [1, cos q (J), sin q (J), qd
        # (J)], gathered by index: feature (c, leg, t) = prod_k factor(t_k of joint k) * (1 for
        # c = 0, else qd of joint c - 1).  Flat gathers and products on 1-D arrays are the
        # cheapest numpy calls (~0.3-0.5 us; broadcasting over 3-D shapes costs ~2 us).
        nj = legs * per_leg
        self._src = np.ones(1 + 3 * nj)
        self._cos, self._sin = self._src[1:1 + nj], self._src[1 + nj:1 + 2 * nj]
        self._qd = self._src[1 + 2 * nj:]
        index = np.zeros((per_leg + 1, per_leg + 1, legs, 3 ** per_leg), dtype=np.intp)
        for col, t in enumerate(itertools.product(range(3), repeat=per_leg)):
            for leg in range(legs):
                for k, tk in enumerate(t):  # 1, cos, sin of joint k
                    joint = leg * per_leg + k
                    index[k, :, leg, col] = (0, 1 + joint, 1 + nj + joint)[tk]
                for c in range(1, per_leg + 1):  # times qd of joint c - 1
                    index[per_leg, c, leg, col] = 1 + 2 * nj + leg * per_leg + c - 1
        # most features have no part in any output (joints about coordinate axes zero most
        # coefficients: 160 of 432 remain for the A1): keep only the others
        used = np.flatnonzero(np.any(matrix != 0.0, axis=1))
        # stored transposed: (L * 9, features) @ features is numpy's cheapest product here
        self._matrix_t = np.ascontiguousarray(matrix[used].T)
        self._gather = [ix.reshape(-1)[used] for ix in index]  # K + 1 index arrays

    def _coefficients(self) -> np.ndarray:
        """The constant matrix of :meth:`compute`: features ``(K+1, L, 3^K)`` flattened ->
        ``(L, 9)`` flattened (foot position, foot velocity, last link's angular velocity).

        For monomial ``t`` (``t_k`` = 0, 1, 2 for 1, cos, sin of joint k), a product of the
        chain's first n+1 joint rotations has coefficient ``B_0[t_0] ... B_n[t_n]`` when
        ``t_k = 0`` for every later joint (which the product does not involve), else 0; with
        ``G_k`` the rotation of joint k's frame (after its motion) in the base and ``d_k`` the
        offset from joint k to the next (or to the foot), in its frame:

        * foot position = origin0 + sum_n G_n d_n,
        * foot velocity = sum_k qd_k (G_k a_k) x (foot - joint k)
          = sum_k qd_k sum_{n >= k} G_k [a_k]x (G_k^-1 G_n) d_n (a rotation keeps cross
          products),
        * angular velocity of the last link = sum_k qd_k G_k a_k.
        """
        legs, per_leg = self.num_legs, self.per_leg
        monomials = list(itertools.product(range(3), repeat=per_leg))
        out = np.zeros((per_leg + 1, legs, len(monomials), legs, 9))
        eye = np.eye(3)

        def chain(terms, skews, t, last: int, cross: int | None = None) -> np.ndarray | None:
            """Coefficient of monomial t in the product of the rotations of joints 0..last
            (with ``[a_cross]x`` after joint ``cross``'s), None if it has none."""
            if any(t[j] != 0 for j in range(last + 1, per_leg)):
                return None  # t has the cos or sin of a joint beyond the product
            g = eye
            for j in range(last + 1):
                g = g @ terms[j][t[j]]
                if j == cross:
                    g = g @ skews[j]
            return g

        for i in range(legs):
            terms = []  # per joint: (B_0, B_1, B_2) of F R(q) = B_0 + c B_1 + s B_2
            for frame, a in zip(self.frames[i], self.axes[i]):
                aa = np.outer(a, a)
                terms.append((frame @ aa, frame @ (eye - aa), frame @ _skew(a)))
            skews = [_skew(a) for a in self.axes[i]]
            axes, offsets = self.axes[i], self.offsets[i]
            for col, t in enumerate(monomials):
                if not any(t):
                    out[0, i, col, i, 0:3] = self.origin0[i]
                for n in range(per_leg):
                    g = chain(terms, skews, t, n)
                    if g is not None:
                        out[0, i, col, i, 0:3] += g @ offsets[n]
                for k in range(per_leg):
                    g = chain(terms, skews, t, k)
                    if g is not None:
                        out[1 + k, i, col, i, 6:9] = g @ axes[k]
                    for n in range(k, per_leg):
                        g = chain(terms, skews, t, n, cross=k)
                        if g is not None:
                            out[1 + k, i, col, i, 3:6] += g @ offsets[n]
        return out.reshape(-1, legs * 9)

    def compute_rows(self, q: np.ndarray, qd: np.ndarray) -> np.ndarray:
        """Per leg (L, 9): foot position, foot velocity relative to the base and angular
        velocity of the last link relative to the base, base frame (a new array)."""
        np.cos(q, out=self._cos)
        np.sin(q, out=self._sin)
        np.copyto(self._qd, qd)
        src, first, *rest = self._src, *self._gather
        features = src[first]
        for index in rest:
            np.multiply(features, src[index], out=features)
        return self._matrix_t.dot(features).reshape(self.num_legs, 9)

    def compute(self, q: np.ndarray, qd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Foot positions (L, 3), foot velocities relative to the base (L, 3) and the
        angular velocity of each leg's last link relative to the base (L, 3), base frame."""
        rows = self.compute_rows(q, qd)
        return rows[:, 0:3], rows[:, 3:6], rows[:, 6:9]


def _sphere_radius(root: ET.Element, link: str) -> float:
    """Radius of the foot link's collision sphere (0 if it has none)."""
    for ln in root.findall("link"):
        if ln.get("name") == link:
            sphere = ln.find("collision/geometry/sphere")
            return float(sphere.get("radius")) if sphere is not None else 0.0
    return 0.0


# -- the filter ----------------------------------------------------------------------------------
class KinematicInertialEstimator:
    """Base linear velocity (base frame, m/s) from joint encoders, torques and the IMU.

    ``update(state)`` once per robot state (states with a stamp already seen are skipped);
    :attr:`velocity` is the estimate.  ``reset()`` forgets everything.
    """

    #: the robot signals it reads (robot_rl.interface.SIGNALS); joint_torque is not needed
    #: when the robot has foot contact switches
    SIGNALS = ("joint_position", "joint_velocity", "joint_torque", "imu_orientation",
               "imu_angular_velocity", "imu_linear_acceleration")

    def __init__(self, robot: RobotDescription, cfg: EstimatorConfig | None = None,
                 kinematics: LegKinematics | None = None):
        self.cfg = cfg or EstimatorConfig()
        self.kin = kinematics or LegKinematics(robot)
        self._knee = [leg * self.kin.per_leg + self.kin.per_leg - 1
                      for leg in range(self.kin.num_legs)]
        lo, hi = self.cfg.contact_torque
        self._t_lo, self._t_span = lo, hi - lo
        # the filter's constants (the config is frozen)
        self._kin_var, self._inv_gate2 = self.cfg.kin_noise ** 2, 1.0 / self.cfg.gate ** 2
        self._accel_var, self._bias_var = self.cfg.accel_noise ** 2, self.cfg.bias_walk ** 2
        self.reset()

    def reset(self) -> None:
        """Forget the state: the next update starts from the legs' velocity."""
        self.velocity = np.zeros(3)
        self.bias = np.zeros(3)
        self._p = (0.0, 0.0, 0.0)  # var(v), cov(v, b), var(b): the same for every axis
        self.stamp: float | None = None
        self._weight = [0.0] * self.kin.num_legs
        self._legs = [(0.0, 0.0, 0.0)] * self.kin.num_legs  # leg_velocity, as Python floats

    def signals(self, state: RobotState) -> tuple[str, ...]:
        """The signals this estimator needs from a robot that reports like ``state``."""
        if self.cfg.use_contact_sensors and state.foot_contact is not None:
            return tuple(s for s in self.SIGNALS if s != "joint_torque") + ("foot_contact",)
        return self.SIGNALS

    def _contact(self, state: RobotState, heights: list[float]) -> list[float]:
        """Contact weight of each foot in [0, 1] (switches, or knee torque and foot height
        along world up)."""
        cfg = self.cfg
        if cfg.use_contact_sensors and state.foot_contact is not None:
            return [float(c) for c in state.foot_contact]
        ceiling = min(heights) + cfg.contact_height
        tau = np.asarray(state.tau, dtype=np.float64).tolist()
        lo, span, h = self._t_lo, self._t_span, cfg.contact_height
        weight = []
        for hi, k in zip(heights, self._knee):
            # max(0, min(1, by height, by torque)) written out (the builtins' calls cost more
            # than the arithmetic here), with their NaN handling: a NaN is never chosen
            by_height, by_torque = (ceiling - hi) / h, (abs(tau[k]) - lo) / span
            w = by_height if by_height < 1.0 else 1.0
            w = by_torque if by_torque < w else w
            weight.append(w if w > 0.0 else 0.0)
        return weight

    def update(self, state: RobotState) -> np.ndarray:
        """Fuse one state; returns the base-frame velocity estimate (m/s).

        The leg kinematics run vectorised in numpy (:meth:`LegKinematics.compute_rows`);
        the per-axis filter, the contact weights and the slip gate in Python floats
        (cheaper than numpy calls at this size)."""
        stamp = float(state.stamp)
        if self.stamp is not None and stamp <= self.stamp:
            return self.velocity
        w, x, y, z = np.asarray(state.base_quat, dtype=np.float64).tolist()
        ux, uy, uz = 2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)
        ox, oy, oz = np.asarray(state.base_angvel, dtype=np.float64).tolist()
        rows = self.kin.compute_rows(np.asarray(state.q, dtype=np.float64),
                                     np.asarray(state.qd, dtype=np.float64)).tolist()
        # base velocity implied by each leg if its foot rolls without slipping:
        # r (w_calf x up) - J qd - w x p = r (w_calf x up) + p x w - J qd; and each foot's
        # height along world up
        legs, heights = [], []
        for r, (px, py, pz, fx, fy, fz, wx, wy, wz) in zip(self.kin.radius.tolist(), rows):
            ax, ay, az = r * (ox + wx), r * (oy + wy), r * (oz + wz)
            legs.append((ay * uz - az * uy + (py * oz - pz * oy) - fx,
                         az * ux - ax * uz + (pz * ox - px * oz) - fy,
                         ax * uy - ay * ux + (px * oy - py * ox) - fz))
            heights.append(px * ux + py * uy + pz * uz)
        self._legs = legs
        weight = self._contact(state, heights)
        if self.stamp is None:  # first state: start from the legs (or at rest)
            self.stamp = stamp
            total = sum(weight)
            self.velocity = (np.asarray(weight) @ self.leg_velocity) / total if total > 1e-6 \
                else np.zeros(3)
            self._p = (self._kin_var, 0.0, 0.3 ** 2)
            self._weight = weight
            return self.velocity
        dt = stamp - self.stamp
        self.stamp = stamp
        # prediction: v += dt (f - b - g up - w x v), per axis; covariance of (v, b)
        vx, vy, vz = self.velocity.tolist()
        bx, by, bz = self.bias.tolist()
        fx, fy, fz = np.asarray(state.base_acc, dtype=np.float64).tolist()
        vx, vy, vz = (vx + dt * (fx - bx - GRAVITY * ux - (oy * vz - oz * vy)),
                      vy + dt * (fy - by - GRAVITY * uy - (oz * vx - ox * vz)),
                      vz + dt * (fz - bz - GRAVITY * uz - (ox * vy - oy * vx)))
        p11, p12, p22 = self._p
        p11 = p11 - 2.0 * dt * p12 + dt * dt * p22 + self._accel_var * dt
        p12 = p12 - dt * p22
        p22 = p22 + self._bias_var * dt
        # update: contact-weighted legs, those disagreeing with the prediction (slip)
        # down-weighted
        inv_gate2 = self._inv_gate2
        gated = [w * math.exp(-((lx - vx) ** 2 + (ly - vy) ** 2 + (lz - vz) ** 2) * inv_gate2)
                 if w > 0.0 else 0.0 for w, (lx, ly, lz) in zip(weight, legs)]
        if sum(gated) >= 0.25 * sum(weight):
            weight = gated  # else every leg disagrees: the prediction is off (a push), not the legs
        total = sx = sy = sz = 0.0
        for w, (lx, ly, lz) in zip(weight, legs):
            total, sx, sy, sz = total + w, sx + w * (lx - vx), sy + w * (ly - vy), sz + w * (lz - vz)
        if total > 0.05:
            k1 = p11 / (p11 + self._kin_var / total)
            k2 = p12 / (p11 + self._kin_var / total)
            a, b = k1 / total, k2 / total
            vx, vy, vz = vx + a * sx, vy + a * sy, vz + a * sz
            self.bias = np.array((bx + b * sx, by + b * sy, bz + b * sz))
            p22 = p22 - k2 * p12
            p11, p12 = (1.0 - k1) * p11, (1.0 - k1) * p12
        self._p = (p11, p12, p22)
        self.velocity = np.array((vx, vy, vz))
        self._weight = weight
        return self.velocity

    @property
    def leg_velocity(self) -> np.ndarray:
        """Base velocity implied by each leg in the last update (L, 3; m/s, base frame)."""
        return np.array(self._legs, dtype=np.float64).reshape(self.kin.num_legs, 3)

    @property
    def contact(self) -> np.ndarray:
        """Weight of each leg in the last update (contact, times the slip gate), in [0, 1]."""
        return np.asarray(self._weight, dtype=np.float64)

    def healthy(self) -> str | None:
        """None while the estimate is plausible, else why not (for the runtime's checks)."""
        vx, vy, vz = self.velocity.tolist()
        speed2 = vx * vx + vy * vy + vz * vz
        if speed2 <= self.cfg.max_speed ** 2:  # False for NaN
            return None
        if not math.isfinite(speed2):
            return f"base velocity estimate is not finite: {self.velocity}"
        return (f"base velocity estimate {math.sqrt(speed2):.1f} m/s exceeds "
                f"{self.cfg.max_speed} m/s: the estimator lost track")
