"""The observation layout, defined once: training, ONNX export and the onboard runtime
all build observations with :func:`build_observation` from an :class:`ObservationSpec`.

Observation blocks (after Hwangbo et al. 2019), in order, each multiplied by its scale:

==================  ====  =========================================================
block               size  content
==================  ====  =========================================================
gravity             3     unit gravity vector in the base frame
base_linvel         3     base linear velocity, base frame (m/s; only when ``base_linvel``)
base_angvel         3     base angular velocity, base frame (rad/s)
command             3     forward (m/s), lateral (m/s), yaw rate (rad/s)
gait_phase          2     sin, cos of the gait clock (only when gait_frequency > 0)
joint_pos           J     joint position minus nominal pose (rad)
joint_vel           J     joint velocity (rad/s)
prev_action         J     previous policy action (unitless)
joint_err_hist      H*J   joint target minus position at t-1..t-H control steps (rad)
joint_vel_hist      H*J   joint velocity at t-1..t-H control steps (rad/s)
==================  ====  =========================================================

A real robot does not measure its base linear velocity: with ``base_linvel=True`` the
onboard runtime feeds the estimate of :mod:`deploy.estimator`; with ``False`` the policy
does without, from its joint-state history.  :meth:`ObservationSpec.signals` lists the
robot's measured signals the observation is built from (:data:`robot_rl.interface.SIGNALS`),
plus ``base_linear_velocity_estimate`` when the block is there; the ONNX metadata carries it.

Actions are joint position targets around the nominal pose plus an optional trotting
reference (a gait clock lifting diagonal leg pairs in turn, as in policies modulating
trajectory generators): ``q_target = q0 + reference(phase) + action_scale * a``; see
:func:`action_to_target`.  With ``gait_frequency = 0`` there is no reference and no phase.
"""

from __future__ import annotations

import functools
import math
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
    # observe the base linear velocity (an onboard estimate on a robot; training configs
    # choose, policies.config.EnvConfig.obs_base_linvel; layouts without the key have it)
    base_linvel: bool = True
    # action scale: q_target = nominal + action_scale * action (rad per unit action)
    action_scale: float = 0.25
    # gait clock frequency (Hz); 0 disables the trotting reference and the phase block
    gait_frequency: float = 0.0
    # trotting reference: thigh lift at the top of a swing (rad; the knee folds twice as much)
    gait_amplitude: float = 0.0
    # trotting reference: the lift's plateau k >= 1, lift = amplitude min(1, k max(sin, 0)):
    # the foot reaches full height at 1/k of the sine and holds it while the stride carries
    # it forward, then comes down near the front of its step (1 = a sine: the foot travels
    # the front half of its swing on the way down, and meets a step's riser low)
    gait_lift_plateau: float = 1.0
    # trotting reference: leg length used to turn commanded speed into a thigh stride (m);
    # 0 = stepping in place only
    gait_leg_length: float = 0.0
    # trotting reference: each leg's foot at the nominal pose, (x, y) in the base frame (m),
    # and the foot's sideways motion per radian of its hip (m/rad, signed); with them the
    # stride follows all three commands (the stance feet sweep backwards at the leg's own
    # velocity v + w x r, sideways through the hip); empty = forward command only (layouts
    # written before these existed)
    gait_feet: tuple[tuple[float, float, float], ...] = ()
    # per-block multipliers applied when building the observation
    scales: dict[str, float] = field(default_factory=lambda: {
        "gravity": 1.0, "base_linvel": 2.0, "base_angvel": 0.25, "command": 1.0,
        "joint_pos": 1.0, "joint_vel": 0.05, "prev_action": 1.0, "joint_err_hist": 1.0,
        "joint_vel_hist": 0.05})

    def blocks(self) -> list[tuple[str, int]]:
        """(name, size) of each block, in order."""
        j, h = self.num_joints, self.history
        gait = [("gait_phase", 2)] if self.gait_frequency > 0 else []
        linvel = [("base_linvel", 3)] if self.base_linvel else []
        return [("gravity", 3), *linvel, ("base_angvel", 3), ("command", 3), *gait,
                ("joint_pos", j), ("joint_vel", j), ("prev_action", j),
                ("joint_err_hist", h * j), ("joint_vel_hist", h * j)]

    @property
    def size(self) -> int:
        return sum(n for _, n in self.blocks())

    def signals(self) -> list[str]:
        """What the robot must provide to build this observation (see the module docstring)."""
        need = ["imu_orientation", "imu_angular_velocity", "joint_position", "joint_velocity"]
        return need + (["base_linear_velocity_estimate"] if self.base_linvel else [])

    def __post_init__(self) -> None:
        if not self.gait_lift_plateau >= 1.0:
            raise ValueError(f"gait_lift_plateau must be >= 1 (1 = a sine lift), got "
                             f"{self.gait_lift_plateau!r}")
        if self.gait_feet:
            legs = self.num_joints // 3
            if len(self.gait_feet) != legs or any(len(f) != 3 for f in self.gait_feet):
                raise ValueError(f"gait_feet must hold (x, y, hip_gain) for each of the "
                                 f"{legs} legs, got {self.gait_feet!r}")
            if any(abs(f[2]) < 1e-3 for f in self.gait_feet):
                raise ValueError(f"gait_feet hip_gain must be nonzero (a hip moves its foot "
                                 f"sideways), got {self.gait_feet!r}")
            if self.gait_leg_length <= 0:
                raise ValueError("gait_feet needs gait_leg_length > 0 (a stride)")

    def layout(self) -> dict:
        """JSON-ready description (for ONNX metadata and runtime checks)."""
        return {"format_version": FORMAT_VERSION, "num_joints": self.num_joints,
                "history": self.history, "base_linvel": self.base_linvel,
                "action_scale": self.action_scale,
                "gait_frequency": self.gait_frequency, "gait_amplitude": self.gait_amplitude,
                "gait_leg_length": self.gait_leg_length,
                "gait_feet": [list(f) for f in self.gait_feet],
                # written only when not a sine: a default policy's layout stays as it was
                **({"gait_lift_plateau": self.gait_lift_plateau}
                   if self.gait_lift_plateau != 1.0 else {}),
                "scales": dict(self.scales), "blocks": self.blocks(), "size": self.size}

    @classmethod
    def from_layout(cls, layout: dict) -> ObservationSpec:
        """The spec of a :meth:`layout`; layouts written before ``base_linvel`` existed say
        by their blocks whether they have the base velocity block."""
        has_linvel = any(b[0] == "base_linvel" for b in layout["blocks"])
        if "base_linvel" in layout and bool(layout["base_linvel"]) != has_linvel:
            raise ValueError(f"observation layout says base_linvel={layout['base_linvel']} but "
                             f"its blocks {'have' if has_linvel else 'lack'} that block")
        spec = cls(num_joints=int(layout["num_joints"]), history=int(layout["history"]),
                   base_linvel=has_linvel,
                   action_scale=float(layout["action_scale"]), scales=dict(layout["scales"]),
                   gait_frequency=float(layout.get("gait_frequency", 0.0)),
                   gait_amplitude=float(layout.get("gait_amplitude", 0.0)),
                   gait_lift_plateau=float(layout.get("gait_lift_plateau", 1.0)),
                   gait_leg_length=float(layout.get("gait_leg_length", 0.0)),
                   gait_feet=tuple(tuple(float(v) for v in f)
                                   for f in layout.get("gait_feet", [])))
        if spec.layout()["blocks"] != [tuple(b) for b in layout["blocks"]] and \
                spec.blocks() != [tuple(b) for b in layout["blocks"]]:
            raise ValueError(f"observation layout blocks {layout['blocks']} do not match "
                             f"format version {FORMAT_VERSION}")
        return spec


class JointHistory:
    """Per-env ring of past (joint error, joint velocity), newest first, N x H x J."""

    def __init__(self, num_envs: int, spec: ObservationSpec):
        self._use(np.zeros((num_envs, spec.history, spec.num_joints)),
                  np.zeros((num_envs, spec.history, spec.num_joints)))

    def _use(self, err: np.ndarray, vel: np.ndarray) -> None:
        self.err, self.vel = err, vel
        # push's views, made once: (older steps, newer steps, newest step) of each ring
        self._shift = [(a[:, 1:], a[:, :-1], a[:, 0]) for a in (err, vel)]

    def reset(self, env_ids: np.ndarray, err: np.ndarray | None = None,
              vel: np.ndarray | None = None) -> None:
        self.err[env_ids] = 0.0 if err is None else err[:, None, :]
        self.vel[env_ids] = 0.0 if vel is None else vel[:, None, :]

    def rows(self, env_ids: np.ndarray) -> JointHistory:
        """A copy holding only the envs ``env_ids``."""
        sub = object.__new__(JointHistory)
        sub._use(self.err[env_ids], self.vel[env_ids])
        return sub

    def push(self, err: np.ndarray, vel: np.ndarray, env_ids: np.ndarray | None = None) -> None:
        """Shift every env's ring one step older and put (``err``, ``vel``) newest; with
        ``env_ids``, only those envs (``err``, ``vel`` hold their rows)."""
        if env_ids is None:
            for (older, newer, newest), value in zip(self._shift, (err, vel)):
                np.copyto(older, newer)  # overlapping: numpy copies as if through a buffer
                np.copyto(newest, value)
            return
        self.err[env_ids, 1:] = self.err[env_ids, :-1]
        self.vel[env_ids, 1:] = self.vel[env_ids, :-1]
        self.err[env_ids, 0] = err
        self.vel[env_ids, 0] = vel


def quat_rotate_inverse(quat_wxyz: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate world vectors ``v`` (N,3, or (1,3) for all) into the frames given by
    quaternions (N,4, w first)."""
    if quat_wxyz.shape[0] == 1 and v.shape[0] == 1:
        # one frame (the robot): the same expressions in Python floats, which are IEEE
        # doubles as numpy's are, so the result is the same to the bit, ~10x sooner
        (w, x, y, z), (vx, vy, vz) = quat_wxyz[0].tolist(), v[0].tolist()
    else:
        w, x, y, z = quat_wxyz[:, 0:1], quat_wxyz[:, 1:2], quat_wxyz[:, 2:3], quat_wxyz[:, 3:4]
        vx, vy, vz = v[:, 0:1], v[:, 1:2], v[:, 2:3]
    # t = 2 (xyz x v); result = v - w t + xyz x t   (written out: np.cross is slow on tiny arrays)
    tx, ty, tz = 2.0 * (y * vz - z * vy), 2.0 * (z * vx - x * vz), 2.0 * (x * vy - y * vx)
    cols = (vx - w * tx + (y * tz - z * ty), vy - w * ty + (z * tx - x * tz),
            vz - w * tz + (x * ty - y * tx))
    if isinstance(w, float):
        return np.array([cols])
    return np.concatenate(cols, axis=1)


_DOWN = np.array([[0.0, 0.0, -1.0]])  # world gravity direction, broadcast over envs


def projected_gravity(quat_wxyz: np.ndarray) -> np.ndarray:
    """Unit gravity vector in the frames given by quaternions (N,4, w first), (N,3)."""
    return quat_rotate_inverse(quat_wxyz, _DOWN)


class ObservationWriter:
    """Builds observations of one spec with the column layout and scales computed once.

    The blocks' raw values are concatenated into a float64 buffer (reused for ``num_rows``
    rows), then one multiply by the per-column scales writes the float32 observation: the
    same arithmetic as scaling block by block and casting (a product in float64, then one
    rounding to float32), in a dozen numpy calls instead of some thirty.
    """

    def __init__(self, spec: ObservationSpec, num_rows: int = 1):
        self.spec = spec
        #: per-column scale (the gait clock is unscaled)
        self.scale = np.concatenate([np.full(size, spec.scales.get(name, 1.0))
                                     for name, size in spec.blocks()])
        self.size = spec.size
        self._raw = np.zeros((num_rows, self.size))

    def __call__(self, *, gravity: np.ndarray, base_linvel_b: np.ndarray | None,
                 base_angvel_b: np.ndarray, command: np.ndarray, q: np.ndarray,
                 qd: np.ndarray, nominal: np.ndarray, prev_action: np.ndarray,
                 history: JointHistory, phase: np.ndarray | None) -> np.ndarray:
        """Observation batch (N, size), float32; the arguments as :func:`build_observation`'s."""
        spec = self.spec
        n = q.shape[0]
        parts = [gravity]
        if spec.base_linvel:
            if base_linvel_b is None:
                raise ValueError("observation spec has base_linvel: build_observation needs "
                                 "base_linvel_b (an estimate on a robot)")
            parts.append(base_linvel_b)
        parts += [base_angvel_b, command]
        if spec.gait_frequency > 0:
            if phase is None:
                raise ValueError("observation spec has a gait clock: build_observation needs "
                                 "phase")
            column = phase[:, None]  # contiguous, as sin/cos of N rows and of one row must be
            parts += [np.sin(column), np.cos(column)]  # the same (numpy's loop may go by stride)
        parts += [q - nominal, qd, prev_action, history.err.reshape(n, -1),
                  history.vel.reshape(n, -1)]
        raw = self._raw if self._raw.shape[0] == n else None
        raw = np.concatenate(parts, axis=1, out=raw)
        out = np.empty((n, self.size), np.float32)
        np.multiply(raw, self.scale, out=out)
        return out


def build_observation(spec: ObservationSpec, *, base_quat: np.ndarray,
                      base_linvel_b: np.ndarray | None,
                      base_angvel_b: np.ndarray, command: np.ndarray, q: np.ndarray,
                      qd: np.ndarray, nominal: np.ndarray, prev_action: np.ndarray,
                      history: JointHistory, phase: np.ndarray | None = None,
                      gravity: np.ndarray | None = None) -> np.ndarray:
    """Observation batch (N, spec.size), float32.  All inputs are (N, .) arrays;
    ``phase`` (N,) is the gait clock (rad), needed when ``spec.gait_frequency > 0``;
    ``gravity`` (N, 3), if the caller has it, is ``projected_gravity(base_quat)``;
    ``base_linvel_b`` may be None when the spec has no base velocity block.

    Callers building many observations of one spec keep an :class:`ObservationWriter`
    (as :class:`robot_rl.obs_state.ObsActionState` does); this builds one each call."""
    if gravity is None:
        gravity = projected_gravity(base_quat)
    return ObservationWriter(spec, q.shape[0])(
        gravity=gravity, base_linvel_b=base_linvel_b, base_angvel_b=base_angvel_b,
        command=command, q=q, qd=qd, nominal=nominal, prev_action=prev_action,
        history=history, phase=phase)


@functools.lru_cache(maxsize=8)
def _leg_offsets(legs: int) -> np.ndarray:
    """Gait clock offset of each leg (rad): FR and RL at 0, FL and RR at pi."""
    out = np.array([0.0 if leg in (0, 3) else np.pi for leg in range(legs)])
    out.flags.writeable = False
    return out


def gait_reference(spec: ObservationSpec, phase: np.ndarray, num_joints: int,
                   command: np.ndarray | None = None) -> np.ndarray:
    """Trotting reference offsets (N, J) at gait clock ``phase`` (N,), legs of 3 joints
    (hip, thigh, knee) in the order FR, FL, RR, RL: FR+RL swing while FL+RR stand.

    With ``gait_leg_length`` L > 0 and a forward command v (``command[:, 0]``, m/s), each
    foot also sweeps a stride: foot x = -A cos(leg phase), A = v / (4 f L) in thigh angle,
    so the stance feet move backward at about v (a Raibert-style open-loop trot).  With
    ``gait_feet`` the stride follows the leg's own velocity v + w x r (command (vx, vy, w),
    foot at r = (x, y)): the thigh sweeps vx - w y, the hip sweeps the foot sideways by
    -(vy + w x) / (4 f) cos(leg phase) through its gain g (m/rad), so the robot steps
    sideways and turns by stepping rather than by twisting its feet on the ground."""
    out = np.zeros((phase.shape[0], num_joints))
    if spec.gait_frequency <= 0 or spec.gait_amplitude == 0:
        return out
    legs = num_joints // 3
    hip, thigh, knee = _reference_legs(spec, phase, legs, command)
    if hip is not None:
        out[:, 0:3 * legs:3] = hip
    out[:, 1:3 * legs:3] = thigh
    out[:, 2:3 * legs:3] = knee
    return out


@functools.lru_cache(maxsize=8)
def _feet_arrays(feet: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, hip gain) of ``gait_feet`` as read-only (legs,) arrays."""
    out = tuple(np.array(col, dtype=float) for col in zip(*feet))
    for a in out:
        a.flags.writeable = False
    return out


def _reference_legs(spec: ObservationSpec, phase: np.ndarray, legs: int,
                    command: np.ndarray | None
                    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """The hip (None without ``gait_feet``), thigh and knee offsets (N, legs) of
    :func:`gait_reference`."""
    leg_phase = phase[:, None] + _leg_offsets(legs)  # (N, legs)
    up = np.maximum(np.sin(leg_phase), 0.0)
    if spec.gait_lift_plateau != 1.0:
        up = np.minimum(spec.gait_lift_plateau * up, 1.0)
    lift = spec.gait_amplitude * up
    thigh, hip = lift, None
    if spec.gait_leg_length > 0 and command is not None and spec.gait_feet:
        x, y, gain = _feet_arrays(spec.gait_feet)
        quarter = 4.0 * spec.gait_frequency
        sweep = np.cos(leg_phase)
        thigh = lift + (command[:, 0:1] - command[:, 2:3] * y) / (quarter * spec.gait_leg_length) * sweep
        hip = -((command[:, 1:2] + command[:, 2:3] * x) / (quarter * gain)) * sweep
    elif spec.gait_leg_length > 0 and command is not None:
        amp = command[:, 0] / (4.0 * spec.gait_frequency * spec.gait_leg_length)
        thigh = lift + amp[:, None] * np.cos(leg_phase)
    return hip, thigh, -2.0 * lift


def _reference_row(spec: ObservationSpec, phase: float, num_joints: int,
                   command: tuple[float, float, float] | None) -> list[float]:
    """:func:`gait_reference` of one row (gait clock ``phase``, ``command`` (vx, vy, w)) as
    J Python floats: the expressions of :func:`_reference_legs`, leg by leg, in IEEE
    doubles as numpy's (``max(s, 0.0)`` keeps NaN and -0.0 as ``np.maximum`` does).
    For the robot's one row, where a dozen numpy calls on 4-element arrays cost ~5 us."""
    out = [0.0] * num_joints
    amplitude, plateau = spec.gait_amplitude, spec.gait_lift_plateau
    stride = spec.gait_leg_length > 0 and command is not None
    feet = spec.gait_feet if stride else ()
    quarter = 4.0 * spec.gait_frequency
    amp = command[0] / (quarter * spec.gait_leg_length) if stride and not feet else 0.0
    for leg, offset in enumerate(_leg_offsets(num_joints // 3).tolist()):
        leg_phase = phase + offset
        up = max(math.sin(leg_phase), 0.0)
        if plateau != 1.0:
            up = min(plateau * up, 1.0)
        lift = amplitude * up
        thigh = lift
        if feet:
            x, y, gain = feet[leg]
            sweep = math.cos(leg_phase)
            thigh = lift + (command[0] - command[2] * y) / (quarter * spec.gait_leg_length) * sweep
            out[3 * leg] = -((command[1] + command[2] * x) / (quarter * gain)) * sweep
        elif stride:
            thigh = lift + amp * math.cos(leg_phase)
        out[3 * leg + 1] = thigh
        out[3 * leg + 2] = -2.0 * lift
    return out


def advance_phase(spec: ObservationSpec, phase: np.ndarray, dt: float) -> np.ndarray:
    """Gait clock after one control period ``dt`` (s), wrapped to [0, 2 pi)."""
    if phase.shape == (1,):  # one row: Python's float % is numpy's mod (floored), sooner
        return np.array([(phase.item() + 2.0 * np.pi * spec.gait_frequency * dt) % (2.0 * np.pi)])
    return np.mod(phase + 2.0 * np.pi * spec.gait_frequency * dt, 2.0 * np.pi)


def action_to_target(spec: ObservationSpec, action: np.ndarray, nominal: np.ndarray,
                     phase: np.ndarray | None = None, command: np.ndarray | None = None) -> np.ndarray:
    """Joint targets (N, J): nominal + gait reference + action_scale * action (unclipped).
    ``command`` (N, 3) is needed when the spec has a stride (``gait_leg_length > 0``)."""
    target = nominal + spec.action_scale * action
    if spec.gait_frequency > 0:
        if phase is None:
            raise ValueError("observation spec has a gait clock: action_to_target needs phase")
        if spec.gait_leg_length > 0 and command is None:
            raise ValueError("observation spec has a stride: action_to_target needs command")
        if spec.gait_amplitude != 0 and action.shape[0] == 1:  # the robot: Python floats
            row = None if command is None else tuple(command.reshape(-1)[:3].tolist())
            target += np.array([_reference_row(spec, phase.item(0), action.shape[1], row)])
        elif spec.gait_amplitude != 0:  # add the reference's nonzero entries only
            legs = action.shape[1] // 3
            hip, thigh, knee = _reference_legs(spec, phase, legs, command)
            if hip is not None:
                hips = target[:, 0:3 * legs:3]
                np.add(hips, hip, out=hips)
            thighs, knees = target[:, 1:3 * legs:3], target[:, 2:3 * legs:3]
            np.add(thighs, thigh, out=thighs)
            np.add(knees, knee, out=knees)
    return target


def command_ranges(value) -> tuple[tuple[float, float], ...]:
    """Training command ranges as ((low, high) forward, lateral, yaw rate) floats, from a
    config's or a policy file's nested sequence (checked by :func:`interface_problem`)."""
    return tuple((float(lo), float(hi)) for lo, hi in value)


def interface_problem(meta, spec) -> tuple[str, str] | None:
    """The first inconsistency of a policy's interface, as ``(field, message)``, or None.

    ``meta`` has the fields both policy files carry (``joint_names``, ``obs_dim``,
    ``action_dim``, ``nominal_pose``, ``q_min``, ``q_max``, ``control_dt``, ``action_scale``,
    ``commands`` (None where the file predates it);
    stage 3's ``policy.pt`` and stage 4's ONNX metadata); ``spec()`` returns its
    :class:`ObservationSpec` (raising the caller's own error on a bad layout).  Each file's
    reader names the field its own way."""
    n = len(meta.joint_names)
    if meta.action_dim != n:
        return "action_dim", f"{meta.action_dim} actions but {n} joint_names"
    for fname in ("nominal_pose", "q_min", "q_max"):
        v = getattr(meta, fname)
        if len(v) != n:
            return fname, f"has {len(v)} values, expected {n} (one per joint)"
        if not all(math.isfinite(x) for x in v):
            return fname, "contains NaN/Inf"
    if any(lo >= hi for lo, hi in zip(meta.q_min, meta.q_max)):
        return "q_min", "must be below q_max for every joint"
    if not (math.isfinite(meta.control_dt) and meta.control_dt > 0):
        return "control_dt", f"must be > 0 s, got {meta.control_dt!r}"
    if not (math.isfinite(meta.action_scale) and meta.action_scale > 0):
        return "action_scale", f"must be > 0, got {meta.action_scale!r}"
    if meta.commands is not None:
        c = meta.commands
        if len(c) != 3 or any(len(r) != 2 for r in c) or \
                not all(math.isfinite(x) for r in c for x in r) or any(lo > hi for lo, hi in c):
            return "commands", ("expected three finite [low, high] ranges (forward m/s, lateral "
                                f"m/s, yaw rate rad/s), got {c!r}")
    s = spec()
    if s.size != meta.obs_dim:
        return "obs_dim", f"{meta.obs_dim}, but the observation layout has size {s.size}"
    if s.num_joints != n:
        return "observation", f"layout is for {s.num_joints} joints, joint_names has {n}"
    if abs(s.action_scale - meta.action_scale) > 1e-12:
        return "action_scale", (f"{meta.action_scale} differs from the observation layout's "
                                f"action_scale {s.action_scale}")
    return None
