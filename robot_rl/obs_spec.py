"""The observation layout, defined once: training, ONNX export and the onboard runtime
all build observations with :func:`build_observation` from an :class:`ObservationSpec`.

Observation blocks (after Hwangbo et al. 2019), in order, each multiplied by its scale:

==================  ====  =========================================================
block               size  content
==================  ====  =========================================================
gravity             3     unit gravity vector in the base frame
base_linvel         3     base linear velocity, base frame (m/s)
base_angvel         3     base angular velocity, base frame (rad/s)
command             3     forward (m/s), lateral (m/s), yaw rate (rad/s)
joint_pos           J     joint position minus nominal pose (rad)
joint_vel           J     joint velocity (rad/s)
prev_action         J     previous policy action (unitless)
joint_err_hist      H*J   joint target minus position at t-1..t-H control steps (rad)
joint_vel_hist      H*J   joint velocity at t-1..t-H control steps (rad/s)
==================  ====  =========================================================

Actions are joint position targets around the nominal pose: ``q_target = q0 + scale * a``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ObservationSpec:
    """Observation layout and scales, plus the action convention."""

    # number of actuated joints
    num_joints: int = 12
    # joint-state history length, in control steps
    history: int = 2
    # action scale: q_target = nominal + action_scale * action (rad per unit action)
    action_scale: float = 0.25
    # per-block multipliers applied when building the observation
    scales: dict[str, float] = field(default_factory=lambda: {
        "gravity": 1.0, "base_linvel": 2.0, "base_angvel": 0.25, "command": 1.0,
        "joint_pos": 1.0, "joint_vel": 0.05, "prev_action": 1.0, "joint_err_hist": 1.0,
        "joint_vel_hist": 0.05})

    def blocks(self) -> list[tuple[str, int]]:
        """(name, size) of each block, in order."""
        j, h = self.num_joints, self.history
        return [("gravity", 3), ("base_linvel", 3), ("base_angvel", 3), ("command", 3),
                ("joint_pos", j), ("joint_vel", j), ("prev_action", j),
                ("joint_err_hist", h * j), ("joint_vel_hist", h * j)]

    @property
    def size(self) -> int:
        return sum(n for _, n in self.blocks())

    def layout(self) -> dict:
        """JSON-ready description (for ONNX metadata and runtime checks)."""
        return {"format_version": FORMAT_VERSION, "num_joints": self.num_joints,
                "history": self.history, "action_scale": self.action_scale,
                "scales": dict(self.scales), "blocks": self.blocks(), "size": self.size}

    @classmethod
    def from_layout(cls, layout: dict) -> ObservationSpec:
        spec = cls(num_joints=int(layout["num_joints"]), history=int(layout["history"]),
                   action_scale=float(layout["action_scale"]), scales=dict(layout["scales"]))
        if spec.layout()["blocks"] != [tuple(b) for b in layout["blocks"]] and \
                spec.blocks() != [tuple(b) for b in layout["blocks"]]:
            raise ValueError(f"observation layout blocks {layout['blocks']} do not match "
                             f"format version {FORMAT_VERSION}")
        return spec


class JointHistory:
    """Per-env ring of past (joint error, joint velocity), newest first, N x H x J."""

    def __init__(self, num_envs: int, spec: ObservationSpec):
        self.err = np.zeros((num_envs, spec.history, spec.num_joints))
        self.vel = np.zeros((num_envs, spec.history, spec.num_joints))

    def reset(self, env_ids: np.ndarray, err: np.ndarray | None = None,
              vel: np.ndarray | None = None) -> None:
        self.err[env_ids] = 0.0 if err is None else err[:, None, :]
        self.vel[env_ids] = 0.0 if vel is None else vel[:, None, :]

    def push(self, err: np.ndarray, vel: np.ndarray) -> None:
        self.err[:, 1:] = self.err[:, :-1]
        self.vel[:, 1:] = self.vel[:, :-1]
        self.err[:, 0] = err
        self.vel[:, 0] = vel


def quat_rotate_inverse(quat_wxyz: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate world vectors ``v`` (N,3) into the frames given by quaternions (N,4, w first)."""
    w, xyz = quat_wxyz[:, :1], quat_wxyz[:, 1:]
    t = 2.0 * np.cross(xyz, v)
    return v - w * t + np.cross(xyz, t)


def build_observation(spec: ObservationSpec, *, base_quat: np.ndarray, base_linvel_b: np.ndarray,
                      base_angvel_b: np.ndarray, command: np.ndarray, q: np.ndarray,
                      qd: np.ndarray, nominal: np.ndarray, prev_action: np.ndarray,
                      history: JointHistory) -> np.ndarray:
    """Observation batch (N, spec.size), float32.  All inputs are (N, .) arrays."""
    n = q.shape[0]
    gravity = quat_rotate_inverse(base_quat, np.tile([0.0, 0.0, -1.0], (n, 1)))
    s = spec.scales
    parts = [gravity * s["gravity"], base_linvel_b * s["base_linvel"],
             base_angvel_b * s["base_angvel"], command * s["command"],
             (q - nominal) * s["joint_pos"], qd * s["joint_vel"], prev_action * s["prev_action"],
             history.err.reshape(n, -1) * s["joint_err_hist"],
             history.vel.reshape(n, -1) * s["joint_vel_hist"]]
    return np.concatenate(parts, axis=1).astype(np.float32)
