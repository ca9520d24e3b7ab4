"""Reward terms after Hwangbo et al. 2019: small functions, each returning one (N,) array.

:func:`compute` evaluates every term with a non-zero scale, multiplies by its scale, the
control period and (for costs) the curriculum factor, and returns them by name so each
is logged on its own as ``reward/<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.config import RewardConfig


@dataclass
class StepState:
    """What the reward terms read, all batched over N envs."""

    command: np.ndarray  # (N, 3) vx, vy, yaw rate
    base_linvel_b: np.ndarray  # (N, 3) m/s
    base_angvel_b: np.ndarray  # (N, 3) rad/s
    gravity_b: np.ndarray  # (N, 3)
    tau: np.ndarray  # (N, J) N m, mean over the control step
    qd: np.ndarray  # (N, J) rad/s
    action: np.ndarray  # (N, J)
    prev_action: np.ndarray  # (N, J)
    foot_height: np.ndarray  # (N, F) m
    foot_vel: np.ndarray  # (N, F, 3) m/s world
    foot_contact: np.ndarray  # (N, F) bool
    foot_air_time: np.ndarray  # (N, F) s in the air before this step's touchdown (0 if none)
    # (N, F) m above the highest ground under or just ahead of each foot (on terrain;
    # None: foot_height)
    foot_clearance_height: np.ndarray | None = None
    torque_unit: float = 1.0  # N m: the torque cost counts tau / torque_unit (the weight moment)


def _norm(x: np.ndarray, axis: int) -> np.ndarray:
    """Euclidean norm along ``axis`` (np.linalg.norm's numbers, less overhead on small arrays)."""
    return np.sqrt(np.sum(x * x, axis=axis))


def logistic_kernel(x: np.ndarray, width: float) -> np.ndarray:
    """K(x) = 4 / (exp(x/w) + 2 + exp(-x/w)): 1 at x = 0, falling smoothly to 0."""
    z = np.clip(x / width, -30, 30)
    return 4.0 / (np.exp(z) + 2.0 + np.exp(-z))


def _planar_error(s: StepState) -> np.ndarray:
    """|commanded - measured| planar base velocity (N,) m/s."""
    return _norm(s.command[:, :2] - s.base_linvel_b[:, :2], axis=1)


def _yaw_error(s: StepState) -> np.ndarray:
    """|commanded - measured| yaw rate (N,) rad/s."""
    return np.abs(s.command[:, 2] - s.base_angvel_b[:, 2])


def lin_vel(s: StepState, c: RewardConfig) -> np.ndarray:
    return logistic_kernel(_planar_error(s), c.kernel_width)


def ang_vel(s: StepState, c: RewardConfig) -> np.ndarray:
    return logistic_kernel(_yaw_error(s), c.kernel_width)


def lin_vel_fine(s: StepState, c: RewardConfig) -> np.ndarray:
    return logistic_kernel(_planar_error(s), c.fine_kernel_width)


def ang_vel_fine(s: StepState, c: RewardConfig) -> np.ndarray:
    return logistic_kernel(_yaw_error(s), c.fine_kernel_width)


def tracking_kernels(s: StepState, width: float) -> tuple[np.ndarray, np.ndarray]:
    """The planar-velocity and yaw-rate tracking kernels (N,), (N,) at ``width``: the
    ``lin_vel`` and ``ang_vel`` terms before their scales."""
    return logistic_kernel(_planar_error(s), width), logistic_kernel(_yaw_error(s), width)


def torque(s: StepState, c: RewardConfig) -> np.ndarray:
    return np.sum(s.tau ** 2, axis=1) * (1.0 / s.torque_unit ** 2)


def joint_speed(s: StepState, c: RewardConfig) -> np.ndarray:
    return np.sum(s.qd ** 2, axis=1)


def foot_slip(s: StepState, c: RewardConfig) -> np.ndarray:
    return np.sum(s.foot_contact * np.sum(s.foot_vel[..., :2] ** 2, axis=2), axis=1)


def foot_clearance(s: StepState, c: RewardConfig) -> np.ndarray:
    swing = ~s.foot_contact & (_norm(s.foot_vel[..., :2], axis=2) > 0.1)
    height = s.foot_height if s.foot_clearance_height is None else s.foot_clearance_height
    return np.sum(swing * np.clip(c.clearance_height - height, 0.0, None), axis=1)


def orientation(s: StepState, c: RewardConfig) -> np.ndarray:
    return np.sum(s.gravity_b[:, :2] ** 2, axis=1)


def smoothness(s: StepState, c: RewardConfig) -> np.ndarray:
    return np.sum((s.action - s.prev_action) ** 2, axis=1)


def base_vertical(s: StepState, c: RewardConfig) -> np.ndarray:
    return s.base_linvel_b[:, 2] ** 2


def base_roll_pitch(s: StepState, c: RewardConfig) -> np.ndarray:
    return np.sum(s.base_angvel_b[:, :2] ** 2, axis=1)


def feet_air_time(s: StepState, c: RewardConfig) -> np.ndarray:
    # rewards steps longer than air_time_target at touchdown, only while commanded to move
    moving = _norm(s.command[:, :2], axis=1) > 0.1
    touchdown = s.foot_air_time > 0
    return moving * np.sum(touchdown * (s.foot_air_time - c.air_time_target), axis=1)


def alive(s: StepState, c: RewardConfig) -> np.ndarray:
    return np.ones(s.command.shape[0])


TRACKING = {"lin_vel": lin_vel, "ang_vel": ang_vel, "lin_vel_fine": lin_vel_fine,
            "ang_vel_fine": ang_vel_fine, "alive": alive, "feet_air_time": feet_air_time}
COSTS = {"torque": torque, "joint_speed": joint_speed, "foot_slip": foot_slip,
         "foot_clearance": foot_clearance, "orientation": orientation, "smoothness": smoothness,
         "base_vertical": base_vertical, "base_roll_pitch": base_roll_pitch}


def compute(s: StepState, cfg: RewardConfig, dt: float, curriculum: float) -> dict[str, np.ndarray]:
    """Scaled reward terms by name (costs multiplied by the curriculum factor)."""
    out = {}
    for name, fn in TRACKING.items():
        scale = getattr(cfg, name)
        if scale:
            out[name] = scale * dt * fn(s, cfg)
    for name, fn in COSTS.items():
        scale = getattr(cfg, name)
        if scale:
            out[name] = curriculum * scale * dt * fn(s, cfg)
    return out
