"""The seam between controllers and a robot: :class:`RobotInterface`.

A real robot bridge, the PyBullet hardware stand-in and any test double implement it.
Contract (SI units, radians, canonical joint order of the robot description):

- ``reset()`` puts the robot in its start state and returns the first :class:`RobotState`.
- ``read_state()`` returns the latest measured state; its ``stamp`` is the time (s, on
  the robot's clock) at which it was measured, so a caller can detect stale data.
- ``send_targets(q_target)`` sets joint position targets (rad) that the robot's joint
  controllers track until the next call.
- ``step()`` advances one control period ``control_dt`` (on hardware: waits for it)
  and returns the new state.
- ``ground_truth()`` (simulators and labs with motion capture only) returns the true base
  state, :class:`GroundTruth`, for evaluation metrics and system identification; a
  controller never calls it.

A :class:`RobotState` holds what a robot measures.  A real robot fills the joint fields
(encoders, torque estimates from motor current) and the IMU fields (its own filter's
orientation, gyro, accelerometer), and ``foot_contact`` if it has foot switches; it does
not measure ``base_pos`` or ``base_linvel``: those are None (the onboard controller
estimates base velocity itself, :mod:`deploy.estimator`).  :data:`SIGNALS` names each
measured signal, as a policy's metadata lists the signals it needs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from robot_rl.robot import RobotDescription
from robot_rl.sensors import quat_to_matrix


@dataclass
class RobotState:
    """A measured robot state (what a real robot's bridge fills; None where it has no sensor)."""

    # time of the measurement on the robot's clock (s)
    stamp: float
    # joint positions from the encoders (rad)
    q: np.ndarray
    # joint velocities, differentiated encoders (rad/s)
    qd: np.ndarray
    # joint torques estimated from motor current, or from a torque sensor (N m)
    tau: np.ndarray
    # not measured on a real robot (None): base position, world frame (m)
    base_pos: np.ndarray | None = None
    # IMU: orientation from the IMU's own filter, quaternion (w, x, y, z), base -> world;
    # roll and pitch good to a fraction of a degree, yaw drifting
    base_quat: np.ndarray | None = None
    # not measured on a real robot (None): base linear velocity, world frame (m/s)
    base_linvel: np.ndarray | None = None
    # IMU: gyro, base angular velocity in the base frame, with bias and noise (rad/s)
    base_angvel: np.ndarray | None = None
    # IMU: accelerometer, specific force R^T (a - g) in the base frame, (0, 0, +9.81) at
    # rest, with bias and noise (m/s^2)
    base_acc: np.ndarray | None = None
    # foot contact switches, one flag per foot (None without foot sensors)
    foot_contact: np.ndarray | None = None


#: measured signal name (as policy metadata lists them) -> the RobotState field holding it
SIGNALS: dict[str, str] = {
    "joint_position": "q",
    "joint_velocity": "qd",
    "joint_torque": "tau",
    "imu_orientation": "base_quat",
    "imu_angular_velocity": "base_angvel",
    "imu_linear_acceleration": "base_acc",
    "foot_contact": "foot_contact",
}


def missing_signals(state: RobotState, signals) -> list[str]:
    """The names among ``signals`` (keys of :data:`SIGNALS`) that ``state`` does not hold."""
    return [s for s in signals if getattr(state, SIGNALS[s]) is None]


@dataclass
class GroundTruth:
    """The true base state: evaluation metrics and system identification only, never the
    controller (on hardware: motion capture in a lab, if at all)."""

    # simulation time of the state (s)
    stamp: float
    # base (trunk link origin) position, world frame (m)
    base_pos: np.ndarray
    # base orientation, quaternion (w, x, y, z), base -> world
    base_quat: np.ndarray
    # base linear velocity, world frame (m/s)
    base_linvel: np.ndarray
    # base angular velocity, base frame (rad/s)
    base_angvel: np.ndarray

    @property
    def base_linvel_b(self) -> np.ndarray:
        """Base linear velocity in the base frame (m/s)."""
        return quat_to_matrix(self.base_quat).T @ self.base_linvel

    @property
    def up_z(self) -> float:
        """World z-component of the base's up axis (1 upright, 0 on its side)."""
        _, x, y, _ = self.base_quat
        return float(1.0 - 2.0 * (x * x + y * y))


class RobotInterface(ABC):
    """Read state, send joint position targets, advance one control period."""

    robot: RobotDescription
    control_dt: float

    @abstractmethod
    def reset(self) -> RobotState:
        """Bring the robot to its start state; return the first measurement."""

    @abstractmethod
    def read_state(self) -> RobotState:
        """Latest measured state."""

    @abstractmethod
    def send_targets(self, q_target: np.ndarray) -> None:
        """Joint position targets (rad), canonical order, held until the next call."""

    @abstractmethod
    def step(self) -> RobotState:
        """Advance one control period and return the new state."""

    def ground_truth(self) -> GroundTruth:
        """The true base state, for evaluation and identification (never for control).

        Simulators implement it; a real robot has none unless a motion-capture system is
        wired in, and the default refuses."""
        raise NotImplementedError(f"{type(self).__name__} has no ground truth (a real robot "
                                  "measures its base state only through its IMU)")

    def set_gains(self, kp: np.ndarray, kd: np.ndarray) -> None:
        """Set the joint controllers' PD gains (N m/rad, N m s/rad), canonical order.

        Optional: robots whose drivers take gains with each command implement it; the
        default refuses, and experiments that need other gains then fail clearly."""
        raise NotImplementedError(f"{type(self).__name__} cannot change its joint gains")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the robot (default: nothing to do)."""

    def __enter__(self) -> RobotInterface:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
