"""The onboard controller's safety limits and the per-period check of the robot's state.

:class:`SafetyConfig` holds the start sequence and the fault thresholds;
:class:`StateCheck` finds the first fault in a :class:`~robot_rl.interface.RobotState`:
a stamp that is not finite or lags the controller clock by more than ``state_timeout``
(e.g. a frozen driver), a missing or non-finite joint or IMU field, a joint beyond its
limits by more than ``joint_limit_margin``, a joint faster than ``qd_limit_factor *
qd_max``, a base quaternion that is not of unit norm, and a base tilt above ``max_tilt``.
:class:`deploy.runtime.OnboardController` runs it every control period and enters
DAMPING on the reason it returns.  Imports numpy only (the robot's computer stays small).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robot_rl.interface import RobotState
from robot_rl.obs_state import ACTION_CLIP
from robot_rl.robot import RobotDescription


@dataclass(frozen=True)
class SafetyConfig:
    """Start sequence and fault thresholds of the onboard controller."""

    # time spent holding the joint positions measured at start (s)
    hold_s: float = 0.5
    # duration of the cosine ramp from the start position to the nominal pose (s)
    ramp_s: float = 1.5
    # tolerated excursion of a measured joint position beyond its limits (rad)
    joint_limit_margin: float = 0.1
    # tolerated joint speed as a multiple of the robot's qd_max (-)
    qd_limit_factor: float = 1.2
    # largest tolerated angle between the base z axis and world up (rad)
    max_tilt: float = 1.0
    # a state whose stamp lags the controller clock by more than this is stale (s)
    state_timeout: float = 0.05
    # policy actions are clipped to +-action_clip before use (-; training clips to
    # robot_rl.obs_state.ACTION_CLIP)
    action_clip: float = ACTION_CLIP
    # largest change per second of the velocity command the policy is given: forward and
    # lateral (m/s^2), yaw rate (rad/s^2). The command set by set_command() is approached at
    # this rate, from zero at the handover to the policy, as a joystick's rate filter does;
    # 0 applies every command at once
    command_accel: float = 0.0
    command_yaw_accel: float = 0.0
    # keep commands inside the ranges the policy was trained on (the ONNX metadata's
    # ``commands``), per axis; False passes any finite command to the policy
    clip_commands: bool = True

    def __post_init__(self) -> None:
        for name in ("hold_s", "ramp_s", "joint_limit_margin", "command_accel",
                     "command_yaw_accel"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"SafetyConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("qd_limit_factor", "max_tilt", "state_timeout", "action_clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SafetyConfig.{name} must be > 0, got {getattr(self, name)}")


class StateCheck:
    """The fault check of one robot's state under a :class:`SafetyConfig`.

    ``StateCheck(robot, safety, base_acc)`` precomputes the thresholds; ``base_acc``
    adds the accelerometer to the checked fields (when an estimator reads it).
    ``check(state, clock)`` returns the first fault as a readable reason, or None.
    """

    def __init__(self, robot: RobotDescription, safety: SafetyConfig, base_acc: bool = False):
        self.robot = robot
        self.safety = safety
        self.base_acc = base_acc
        # state fields checked for presence and finiteness every period
        self.fields = ("q", "qd", "base_quat", "base_angvel") + (
            ("base_acc",) if base_acc else ())
        # fault thresholds on measured joint positions and speeds
        self.q_lo = robot.array("q_min") - safety.joint_limit_margin
        self.q_hi = robot.array("q_max") + safety.joint_limit_margin
        self.qd_max = safety.qd_limit_factor * robot.array("qd_max")
        # the fast path of check: q, qd, gyro (and accelerometer) within these bounds
        # in one comparison (the gyro's and accelerometer's: any finite value)
        big = np.full(3 * (len(self.fields) - 3), 1e300)  # gyro (, accelerometer)
        self._ok_lo = np.concatenate([self.q_lo, -self.qd_max, -big])
        self._ok_hi = np.concatenate([self.q_hi, self.qd_max, big])
        self._ok = np.empty(len(self._ok_lo), dtype=bool)
        self._cos_tilt = math.cos(safety.max_tilt)

    def check(self, state: RobotState, clock: float) -> str | None:
        """The first fault found in ``state`` at controller time ``clock`` (s), or None.

        A fast path answers "no fault" in a few numpy calls (one bounds comparison of all
        the measured values, the quaternion in Python floats); the slower search for the
        offending field and joint runs only when it does not.
        """
        stamp = state.stamp
        if stamp is None or not math.isfinite(stamp):
            return f"state stamp is {stamp!r}"
        if clock - stamp > self.safety.state_timeout:
            return (f"stale state: stamp {stamp:.3f} s lags the controller clock {clock:.3f} s "
                    f"by {1e3 * (clock - stamp):.0f} ms (timeout "
                    f"{1e3 * self.safety.state_timeout:.0f} ms)")
        q, qd, quat, gyro = state.q, state.qd, state.base_quat, state.base_angvel
        acc = state.base_acc if self.base_acc else gyro
        if q is not None and qd is not None and quat is not None and gyro is not None \
                and acc is not None:
            w, x, y, z = np.asarray(quat, dtype=np.float64).tolist()
            n2 = w * w + x * x + y * y + z * z  # NaN and inf fail the comparisons below
            if 0.25 < n2 < 2.25 and 1.0 - 2.0 * (x * x + y * y) / n2 >= self._cos_tilt:
                values = np.concatenate((q, qd, gyro, acc) if self.base_acc
                                        else (q, qd, gyro))
                ok = np.greater_equal(values, self._ok_lo, out=self._ok)
                ok &= values <= self._ok_hi
                if np.count_nonzero(ok) == len(ok):
                    return None
        fields = [getattr(state, f) for f in self.fields]
        if any(v is None for v in fields) or not np.isfinite(np.concatenate(fields)).all():
            return self.non_finite_reason(state)
        q, qd = state.q, state.qd
        if ((q < self.q_lo) | (q > self.q_hi)).any():
            i = int(np.where((q < self.q_lo) | (q > self.q_hi))[0][0])
            return (f"joint {self.robot.joint_names[i]} at {q[i]:.3f} rad is beyond its limits "
                    f"[{self.robot.q_min[i]:.3f}, {self.robot.q_max[i]:.3f}] by more than "
                    f"{self.safety.joint_limit_margin} rad")
        if (np.abs(qd) > self.qd_max).any():
            i = int(np.where(np.abs(qd) > self.qd_max)[0][0])
            return (f"joint {self.robot.joint_names[i]} speed {qd[i]:.1f} rad/s exceeds "
                    f"{self.safety.qd_limit_factor:g} x qd_max = {self.qd_max[i]:.1f} rad/s")
        w, x, y, z = (float(c) for c in state.base_quat)
        n2 = w * w + x * x + y * y + z * z
        if not 0.25 < n2 < 2.25:
            return f"base_quat {state.base_quat} is not a unit quaternion (norm {math.sqrt(n2):.3f})"
        up_z = 1.0 - 2.0 * (x * x + y * y) / n2  # world z of the base's z axis
        if up_z < self._cos_tilt:
            tilt = math.degrees(math.acos(max(-1.0, min(1.0, up_z))))
            return f"base tilt {tilt:.0f} deg exceeds {math.degrees(self.safety.max_tilt):.0f} deg"
        return None

    def non_finite_reason(self, state: RobotState) -> str:
        """Why ``state`` failed the presence and finiteness check: the first missing or
        non-finite field, and the joint or index."""
        names = self.robot.joint_names
        for fname in self.fields:
            v = getattr(state, fname)
            if v is None:
                return f"state has no {fname} (the policy needs it; see docs/bridge.md)"
            v = np.asarray(v, dtype=np.float64)
            if not np.all(np.isfinite(v)):
                i = int(np.where(~np.isfinite(v))[0][0])
                where = f" of joint {names[i]}" if fname in ("q", "qd") else f"[{i}]"
                return f"non-finite {fname}{where}: {v[i]}"
        return "non-finite state"
