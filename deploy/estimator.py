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


#: Levi-Civita symbol: sum_jk EPS[i, j, k] a_j b_k = (a x b)_i
EPS = np.zeros((3, 3, 3))
EPS[0, 1, 2] = EPS[1, 2, 0] = EPS[2, 0, 1] = 1.0
EPS[0, 2, 1] = EPS[2, 1, 0] = EPS[1, 0, 2] = -1.0


class LegKinematics:
    """Forward kinematics of every leg, vectorised over legs (base frame, numpy).

    Built from the URDF: each foot link's chain of joints back to the base link, with
    consecutive fixed joints folded into the revolute joints' origins.  Every leg must
    have the same number of revolute joints, ``J / legs``, in the canonical joint order.
    Joints about a coordinate axis (all registered robots) take a fast path: their
    rotation matrices are filled in place from sin and cos, without Rodrigues' formula.
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
        #: first joint's position (L, 3), joint axes in their frames (L, K, 3), foot offset in
        #: the last joint's frame (L, 3), foot sphere radius (L,), all in metres
        self.origin0, self.axes, self.foot, self.radius = origins[:, 0], axes, foot, radius
        self._frames = None if np.allclose(frames, np.eye(3)) else frames
        # per joint, the columns [offset to the next joint (or the foot), axis] in its frame
        nxt = np.concatenate([origins[:, 1:], foot[:, None]], axis=1)
        self._cols = np.stack([nxt, axes], axis=-1)  # (L, K, 3, 2)
        self._rot = np.zeros((legs * per_leg, 3, 3))
        self._cum = np.zeros((legs, per_leg, 3, 3))
        flat_axes = axes.reshape(-1, 3)
        main = np.argmax(np.abs(flat_axes), axis=1)
        self._aligned = bool(np.allclose(np.abs(flat_axes).max(axis=1), 1.0))
        if self._aligned:  # R about coordinate axis a with sign s: fill 4 entries in place
            n = len(main)
            b, c = (main + 1) % 3, (main + 2) % 3
            sign = np.sign(flat_axes[np.arange(n), main])
            j9 = np.arange(n) * 9
            self._rot[np.arange(n), main, main] = 1.0
            self._cpos = np.concatenate([j9 + 4 * b, j9 + 4 * c])
            self._spos = np.concatenate([j9 + 3 * b + c, j9 + 3 * c + b])
            self._src = np.concatenate([np.arange(n), np.arange(n)])
            self._scoef = np.concatenate([-sign, sign])
        k_ = _skew(flat_axes)  # any axis: R = I + sin q K + (1 - cos q) K^2
        self._k, self._k2 = k_, k_ @ k_
        # buffers and their views, made once: compute() is a fixed sequence of numpy calls
        # writing into them (no per-call indexing or allocation but its three results)
        self._rot_flat = self._rot.reshape(-1)
        self._rot_legs = self._rot.reshape(legs, per_leg, 3, 3)
        self._rot_framed = np.zeros((legs, per_leg, 3, 3))  # frames @ rot
        self._colbuf = np.zeros((legs, per_leg, 3, 2))  # cum @ _cols
        self._offsets = self._colbuf[..., 0]  # offset to the next joint (or foot), base frame
        self._axes_b = self._colbuf[..., 1]  # joint axes, base frame
        self._lever = np.zeros((legs, per_leg, 3))  # foot - joint position
        self._upper = np.triu(np.ones((per_leg, per_leg)))  # lever_k = sum_{j >= k} offset_j
        self._wq = np.zeros((legs, per_leg, 3))  # joint axis x joint velocity
        self._wq_flat = self._wq.reshape(legs, per_leg * 3)
        self._outer = np.zeros((legs, per_leg, 3, 3))  # wq_j lever_k per joint
        self._outer_flat = self._outer.reshape(legs, per_leg * 9)
        # sum over joints of wq x lever, as one product with the outer products above:
        # (wq x lever)_i = sum_jk EPS[i, j, k] wq_j lever_k
        self._cross = np.tile(EPS.transpose(1, 2, 0).reshape(9, 3), (per_leg, 1))
        self._sum_joints = np.tile(np.eye(3), (per_leg, 1))  # (K*3, 3): sum over joints
        self._wq_col, self._lever_row = self._wq[..., :, None], self._lever[..., None, :]
        self._foot_lever = self._lever[:, 0]
        # per joint k: (rotation so far, this joint's rotation, rotation after it), the
        # rotations taken from the framed buffer when the URDF has joint frames
        rot = self._rot_legs if self._frames is None else self._rot_framed
        self._chain = [(self._cum[:, k - 1], rot[:, k], self._cum[:, k])
                       for k in range(1, per_leg)]
        self._cum0, self._rot0 = self._cum[:, 0], rot[:, 0]

    def compute(self, q: np.ndarray, qd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Foot positions (L, 3), foot velocities relative to the base (L, 3) and the
        angular velocity of each leg's last link relative to the base (L, 3), base frame."""
        legs, per_leg = self.num_legs, self.per_leg
        rot = self._rot_legs
        if self._aligned:
            qq = q[self._src]
            flat = self._rot_flat
            flat[self._cpos] = np.cos(qq)
            flat[self._spos] = np.sin(qq) * self._scoef
        else:
            s, c = np.sin(q)[:, None, None], np.cos(q)[:, None, None]
            rot[...] = (np.eye(3) + s * self._k + (1.0 - c) * self._k2).reshape(rot.shape)
        if self._frames is not None:
            np.matmul(self._frames, rot, out=self._rot_framed)
        # rotation of each joint's frame (after its motion) in the base
        np.copyto(self._cum0, self._rot0)
        for before, joint, after in self._chain:
            np.matmul(before, joint, out=after)
        np.matmul(self._cum, self._cols, out=self._colbuf)  # offsets to the next joint, axes
        np.matmul(self._upper, self._offsets, out=self._lever)  # foot - joint positions
        np.multiply(self._axes_b, qd.reshape(legs, per_leg, 1), out=self._wq)
        np.multiply(self._wq_col, self._lever_row, out=self._outer)
        foot_vel = self._outer_flat @ self._cross  # sum over joints of wq x lever
        return self._foot_lever + self.origin0, foot_vel, self._wq_flat @ self._sum_joints


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
        self.reset()

    def reset(self) -> None:
        """Forget the state: the next update starts from the legs' velocity."""
        self.velocity = np.zeros(3)
        self.bias = np.zeros(3)
        self._p = (0.0, 0.0, 0.0)  # var(v), cov(v, b), var(b): the same for every axis
        self.stamp: float | None = None
        self._weight = [0.0] * self.kin.num_legs
        self.leg_velocity = np.zeros((self.kin.num_legs, 3))

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
        return [max(0.0, min(1.0, (ceiling - hi) / h, (abs(tau[k]) - lo) / span))
                for hi, k in zip(heights, self._knee)]

    def update(self, state: RobotState) -> np.ndarray:
        """Fuse one state; returns the base-frame velocity estimate (m/s).

        The leg kinematics run vectorised in numpy; the per-axis filter, the contact
        weights and the slip gate in Python floats (cheaper than numpy calls at this size)."""
        stamp = float(state.stamp)
        if self.stamp is not None and stamp <= self.stamp:
            return self.velocity
        cfg = self.cfg
        w, x, y, z = np.asarray(state.base_quat, dtype=np.float64).tolist()
        ux, uy, uz = 2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)
        ox, oy, oz = np.asarray(state.base_angvel, dtype=np.float64).tolist()
        foot, foot_vel, w_leg = self.kin.compute(np.asarray(state.q, dtype=np.float64),
                                                 np.asarray(state.qd, dtype=np.float64))
        # base velocity implied by each leg if its foot rolls without slipping:
        # r (w_calf x up) - J qd - w x p = r (w_calf x up) + p x w - J qd; and each foot's
        # height along world up
        legs, heights = [], []
        for r, (px, py, pz), (fx, fy, fz), (wx, wy, wz) in zip(
                self.kin.radius.tolist(), foot.tolist(), foot_vel.tolist(), w_leg.tolist()):
            ax, ay, az = r * (ox + wx), r * (oy + wy), r * (oz + wz)
            legs.append((ay * uz - az * uy + (py * oz - pz * oy) - fx,
                         az * ux - ax * uz + (pz * ox - px * oz) - fy,
                         ax * uy - ay * ux + (px * oy - py * ox) - fz))
            heights.append(px * ux + py * uy + pz * uz)
        self.leg_velocity = np.array(legs)
        weight = self._contact(state, heights)
        if self.stamp is None:  # first state: start from the legs (or at rest)
            self.stamp = stamp
            total = sum(weight)
            self.velocity = (np.asarray(weight) @ self.leg_velocity) / total if total > 1e-6 \
                else np.zeros(3)
            self._p = (cfg.kin_noise ** 2, 0.0, 0.3 ** 2)
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
        p11 = p11 - 2.0 * dt * p12 + dt * dt * p22 + cfg.accel_noise ** 2 * dt
        p12 = p12 - dt * p22
        p22 = p22 + cfg.bias_walk ** 2 * dt
        # update: contact-weighted legs, those disagreeing with the prediction (slip)
        # down-weighted
        inv_gate2 = 1.0 / cfg.gate ** 2
        gated = [w * math.exp(-((lx - vx) ** 2 + (ly - vy) ** 2 + (lz - vz) ** 2) * inv_gate2)
                 if w > 0.0 else 0.0 for w, (lx, ly, lz) in zip(weight, legs)]
        if sum(gated) >= 0.25 * sum(weight):
            weight = gated  # else every leg disagrees: the prediction is off (a push), not the legs
        total = sx = sy = sz = 0.0
        for w, (lx, ly, lz) in zip(weight, legs):
            total, sx, sy, sz = total + w, sx + w * (lx - vx), sy + w * (ly - vy), sz + w * (lz - vz)
        if total > 0.05:
            k1 = p11 / (p11 + cfg.kin_noise ** 2 / total)
            k2 = p12 / (p11 + cfg.kin_noise ** 2 / total)
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
