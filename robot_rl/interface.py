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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from robot_rl.robot import RobotDescription


@dataclass
class RobotState:
    """A measured robot state.  Base fields are None where the robot does not know them."""

    # time of the measurement on the robot's clock (s)
    stamp: float
    # joint positions (rad)
    q: np.ndarray
    # joint velocities (rad/s)
    qd: np.ndarray
    # measured joint torques (N m)
    tau: np.ndarray
    # base position, world frame (m)
    base_pos: np.ndarray | None = None
    # base orientation quaternion (w, x, y, z)
    base_quat: np.ndarray | None = None
    # base linear velocity, world frame (m/s)
    base_linvel: np.ndarray | None = None
    # base angular velocity, base frame (rad/s)
    base_angvel: np.ndarray | None = None


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
