"""The onboard controller: what the robot's computer runs.

:class:`OnboardController` reads the robot's state through a
:class:`~robot_rl.interface.RobotInterface`, builds the observation from the
:class:`ObservationSpec` stored in the ONNX metadata (the one definition of the layout;
nothing is re-declared here) with :class:`robot_rl.obs_state.ObsActionState`, the
observation and action state machine the training env runs (history, previous action, gait
clock, action clip, joint targets), runs the policy with onnxruntime on one thread, and sends joint position targets, once per policy
control period (``control_dt`` in the metadata, e.g. 0.02 s).  The interface's own period
must divide it: each control period the target is sent once and held while the interface
is stepped ``decimation = policy_dt / interface.control_dt`` times (on hardware, ``step()``
waits for the period to elapse, so the loop runs in real time).

Modes, in order::

    HOLD     hold the joint positions measured at start() for ``hold_s``
    RAMP     move to the nominal pose by cosine interpolation over ``ramp_s``
    POLICY   q_target = nominal + reference(phase) + action_scale * policy(obs)
             (:meth:`robot_rl.obs_state.ObsActionState.act`; the gait clock ``phase``
             starts at 0 at the handover, where the trotting reference is zero, and
             advances by one control period per step, as in training); under
             ``SafetyConfig.command_accel`` the command the policy sees starts at zero
             at the handover and moves toward the set command at that rate
    DAMPING  entered on any fault and latched until start() is called again;
             targets = the measured joint positions, so the joint PD only damps

Faults (each sets :attr:`OnboardController.fault` to a readable reason): NaN/Inf in the
state or the policy output, a missing IMU field, the base velocity estimator losing track
(see below), a joint beyond its limits by more than
``joint_limit_margin``, a joint faster than ``qd_limit_factor * qd_max``, a base tilt
above ``max_tilt``, and a stale state (its stamp more than ``state_timeout`` behind the
controller's clock, e.g. a frozen driver); the thresholds (:class:`SafetyConfig`) and the
state checks (:class:`~deploy.safety.StateCheck`) live in :mod:`deploy.safety`.  Targets
are always clipped to the joint limits (the tighter of the robot description's and the
model's).

Observations are built from measured signals only (``signals`` in the ONNX metadata).  A
policy that observes the base linear velocity gets the estimate of the onboard
:class:`~deploy.estimator.KinematicInertialEstimator`, updated with every state the
interface returns (also between policy periods), never ``RobotState.base_linvel``.  A
robot whose state lacks a signal the policy or the estimator needs is refused at
``start()`` (:class:`MissingSignalError`, naming the signal); an estimate that is not
finite or implausibly fast is a fault.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from deploy.estimator import EstimatorConfig, KinematicInertialEstimator
from deploy.onnx_policy import ModelMismatchError, OnnxPolicy, check_compatible
from deploy.safety import SafetyConfig, StateCheck
from robot_rl.interface import SIGNALS, RobotInterface, RobotState, missing_signals
from robot_rl.obs_spec import ObservationSpec
from robot_rl.obs_state import ObsActionState
from robot_rl.robot import RobotDescription

log = logging.getLogger(__name__)


class Mode(str, Enum):
    """Controller mode."""

    HOLD = "HOLD"
    RAMP = "RAMP"
    POLICY = "POLICY"
    DAMPING = "DAMPING"


def world_to_base(quat_wxyz, v) -> np.ndarray:
    """Rotate one world-frame vector into the base frame of the unit quaternion (w, x, y, z).

    The same rotation as :func:`robot_rl.obs_spec.quat_rotate_inverse` (``R^T v``), written
    out for a single vector: the runtime rotates the measured base velocity every period
    and ``np.cross`` costs ~15 us a call on small arrays.
    """
    w, x, y, z = (float(c) for c in quat_wxyz)
    a, b, c = (float(u) for u in v)
    return np.array([
        (1 - 2 * (y * y + z * z)) * a + 2 * (x * y + w * z) * b + 2 * (x * z - w * y) * c,
        2 * (x * y - w * z) * a + (1 - 2 * (x * x + z * z)) * b + 2 * (y * z + w * x) * c,
        2 * (x * z + w * y) * a + 2 * (y * z - w * x) * b + (1 - 2 * (x * x + y * y)) * c])


class MissingSignalError(RuntimeError):
    """The robot does not provide a signal the policy (or its estimator) needs."""


#: the policy signal that the onboard estimator provides, not the robot
ESTIMATED = "base_linear_velocity_estimate"
#: the one row of the observation state machine (the robot)
_ROW = np.zeros(1, dtype=np.intp)


@dataclass
class ControlStep:
    """What one control period did (for logs and evaluation)."""

    state: RobotState
    mode: Mode
    target: np.ndarray
    action: np.ndarray | None = None
    obs: np.ndarray | None = None


@dataclass
class _Event:
    time: float
    mode: Mode
    message: str


class OnboardController:
    """Runs an exported policy on a robot through its :class:`RobotInterface`.

    ``OnboardController(onnx_path, robot, interface)`` loads and checks the model (robot,
    joint order, observation spec, timing).  ``start()`` begins the HOLD -> RAMP ->
    POLICY sequence from the current measured pose; ``step()`` runs one control period;
    ``run(seconds)`` loops.  ``set_command(vx, vy, yaw_rate)`` may be called at any time
    (kept inside the policy's training command ranges).
    ``compute(state)`` is the pure decision of one period (no I/O), used by ``step``.
    """

    def __init__(self, onnx_path: str | Path, robot: RobotDescription,
                 interface: RobotInterface | None = None, safety: SafetyConfig | None = None,
                 command: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 expected_spec: ObservationSpec | None = None, threads: int = 1,
                 estimator: EstimatorConfig | None = None):
        self.policy = OnnxPolicy(onnx_path, threads=threads)
        self.meta = self.policy.meta
        self.robot = robot
        self.safety = safety or SafetyConfig()
        self.spec = check_compatible(self.meta, robot, str(onnx_path), expected_spec)
        self.control_dt = float(self.meta.control_dt)
        # the onboard base velocity estimate, when the policy observes it
        self.estimator = (KinematicInertialEstimator(robot, estimator)
                          if ESTIMATED in self.meta.signals else None)
        self.nominal = np.asarray(self.meta.nominal_pose, dtype=np.float64)
        self.q_lo = np.maximum(robot.array("q_min"), np.asarray(self.meta.q_min))
        self.q_hi = np.minimum(robot.array("q_max"), np.asarray(self.meta.q_max))
        self.qd_max = robot.array("qd_max")
        # the per-period fault check of the measured state
        self.state_check = StateCheck(robot, self.safety, base_acc=self.estimator is not None)
        # start sequence in control periods
        self._hold_steps = int(round(self.safety.hold_s / self.control_dt))
        self._ramp_steps = int(round(self.safety.ramp_s / self.control_dt))
        self._infer: Callable[[np.ndarray], np.ndarray] = self.policy
        # the command's largest change per policy period (forward, lateral, yaw); 0: none
        step = np.array([self.safety.command_accel] * 2 + [self.safety.command_yaw_accel])
        self._command_step = np.where(step > 0, step * self.control_dt, np.inf)
        self._rate_limited = bool(np.any(step > 0))
        self.mode = Mode.HOLD
        self.fault: str | None = None
        self.events: list[_Event] = []
        self._steps = 0
        # the training command ranges (3, 2) the command is kept inside, or None (the
        # metadata predates them, or SafetyConfig.clip_commands is off)
        self.command_ranges = (np.asarray(self.meta.commands, dtype=np.float64)
                               if self.meta.commands is not None and self.safety.clip_commands
                               else None)
        self.command = np.zeros(3)
        # the command the policy is given (1, 3): self.command, or on its way there
        self._applied = np.zeros((1, 3))
        self.set_command(*command)
        self.interface: RobotInterface | None = None
        self.decimation = 1
        if interface is not None:
            self.attach(interface)
        self.last: ControlStep | None = None
        # wall time of the last compute() inside step() (s)
        self.last_compute_s = 0.0
        self._t0: float | None = None
        self._obs_state = self._new_obs_state()
        self._started = False

    # -- configuration ------------------------------------------------------------------
    def attach(self, interface: RobotInterface) -> None:
        """Use ``interface``; its period must divide the policy's control period."""
        if interface.robot.name != self.robot.name or \
                tuple(interface.robot.joint_names) != tuple(self.robot.joint_names):
            raise ModelMismatchError(f"interface drives robot {interface.robot.name!r}, the "
                                     f"controller was built for {self.robot.name!r}")
        ratio = self.control_dt / interface.control_dt
        if not (ratio >= 1 and abs(ratio - round(ratio)) < 1e-6):
            raise ValueError(f"the policy's control period {self.control_dt} s is not an integer "
                             f"multiple of the interface's control_dt {interface.control_dt} s")
        self.interface = interface
        self.decimation = int(round(ratio))

    def set_command(self, vx: float, vy: float = 0.0, yaw_rate: float = 0.0) -> None:
        """Velocity command: forward (m/s), lateral (m/s), yaw rate (rad/s), base frame.

        A command outside the ranges the policy was trained on (``commands`` in the ONNX
        metadata) is kept at their edge, per axis, and the event is logged: a network
        asked for what it never saw extrapolates, and on a robot that means a fall."""
        cmd = np.array([vx, vy, yaw_rate], dtype=np.float64)
        if not np.all(np.isfinite(cmd)):
            raise ValueError(f"command must be finite, got {cmd}")
        if self.command_ranges is not None:
            kept = np.clip(cmd, self.command_ranges[:, 0], self.command_ranges[:, 1])
            if not np.array_equal(kept, cmd):
                self._event(self.mode, (
                    f"command ({cmd[0]:g}, {cmd[1]:g}, {cmd[2]:g}) is outside the ranges the "
                    f"policy was trained on {self.command_ranges.tolist()}; kept at "
                    f"({kept[0]:g}, {kept[1]:g}, {kept[2]:g})"), level=logging.WARNING)
            cmd = kept
        self.command = cmd
        if not self._rate_limited:
            self._applied = cmd[None]  # (1, 3), as the state machine takes it

    @property
    def applied_command(self) -> np.ndarray:
        """The command the policy is given now: :attr:`command`, or, under
        ``SafetyConfig.command_accel``, the rate-limited way there."""
        return self._applied[0].copy()

    @property
    def time(self) -> float:
        """Controller time since start() (s)."""
        return self._steps * self.control_dt

    def signals(self, state: RobotState) -> list[str]:
        """The robot signals this controller reads from a robot that reports like ``state``:
        the policy's (metadata ``signals``) and its estimator's."""
        need = [s for s in self.meta.signals if s != ESTIMATED]
        if self.estimator is not None:
            need += [s for s in self.estimator.signals(state) if s not in need]
        return need

    # -- the start sequence and faults ---------------------------------------------------
    def start(self, state: RobotState | None = None) -> RobotState:
        """Arm the controller: HOLD the measured joint positions, clear any fault.

        Raises :class:`MissingSignalError` if the robot's state lacks a signal the policy
        or the base velocity estimator needs."""
        if state is None:
            if self.interface is None:
                raise RuntimeError("start(): no interface attached and no state given")
            state = self.interface.read_state()
        missing = missing_signals(state, self.signals(state))
        if missing:
            who = self.robot.name if self.interface is None else type(self.interface).__name__
            raise MissingSignalError(
                f"{self.policy.path}: the policy needs signal(s) {missing} (RobotState."
                f"{', RobotState.'.join(SIGNALS[m] for m in missing)}), which {who} does not "
                f"provide (None); refusing to start (see docs/bridge.md)")
        if self.estimator is not None:
            self.estimator.reset()
            self.estimator.update(state)
        self._steps = 0
        self._started = True
        self._t0 = float(state.stamp) if math.isfinite(state.stamp) else 0.0
        self.fault = None
        self.mode = Mode.HOLD
        q = np.asarray(state.q, dtype=np.float64)
        self._q_start = np.clip(np.where(np.isfinite(q), q, self.nominal), self.q_lo, self.q_hi)
        self._target = self._q_start.copy()
        self._obs_state = self._new_obs_state()
        self._event(Mode.HOLD, "start: holding the measured pose")
        return state

    def enter_damping(self, reason: str) -> None:
        """Switch to DAMPING (latched) and record why."""
        if self.mode is not Mode.DAMPING:
            self.fault = reason
            self.mode = Mode.DAMPING
            self._event(Mode.DAMPING, reason)
            log.error("onboard controller: DAMPING at t=%.3f s: %s", self.time, reason)

    def _event(self, mode: Mode, message: str, level: int = logging.INFO) -> None:
        self.events.append(_Event(self.time, mode, message))
        log.log(level, "onboard controller: %s at t=%.3f s: %s", mode.value, self.time, message)

    def check_state(self, state: RobotState) -> str | None:
        """The first fault found in ``state``, as a readable reason, or None
        (:meth:`deploy.safety.StateCheck.check` at the controller's clock)."""
        return self.state_check.check(state, self._t0 + self.time)

    # -- one control period ---------------------------------------------------------------
    def compute(self, state: RobotState) -> ControlStep:
        """Decide this period's joint targets from ``state`` (no I/O); advances the clock."""
        if not self._started:
            raise RuntimeError("call start() before compute()/step()")
        if self.mode is not Mode.DAMPING:
            reason = self.check_state(state)
            if reason is None and self.estimator is not None:
                self.estimator.update(state)  # once per stamp: step() may have fed it
                reason = self.estimator.healthy()
            if reason is not None:
                self.enter_damping(reason)
        k, hold, ramp = self._steps, self._hold_steps, self._ramp_steps
        action = obs = None
        if self.mode is Mode.HOLD and k >= hold:
            self.mode = Mode.RAMP
            self._event(Mode.RAMP, "ramping to the nominal pose")
        if self.mode is Mode.RAMP and k >= hold + ramp:
            self.mode = Mode.POLICY
            self._event(Mode.POLICY, "policy in control")
            # the history starts from the last target sent; the gait clock at 0
            self._obs_state.reset(_ROW, np.asarray(state.q, dtype=np.float64)[None],
                                  np.asarray(state.qd, dtype=np.float64)[None],
                                  target=self._target[None])
            if self._rate_limited:  # the first command is approached from standing
                self._applied = np.zeros((1, 3))
        if self.mode is Mode.HOLD:
            target = self._q_start
        elif self.mode is Mode.RAMP:
            w = 0.5 * (1.0 - math.cos(math.pi * (k - hold + 1) / ramp))  # reaches 1 at the end
            target = self._q_start + w * (self.nominal - self._q_start)
        elif self.mode is Mode.POLICY:  # the policy's targets come clipped to the limits
            target, action, obs = self._policy_target(state)
        if self.mode is Mode.DAMPING:  # also reached when the policy output was not finite
            q = np.asarray(state.q, dtype=np.float64)
            target = np.where(np.isfinite(q), q, self._target)
        if action is None:
            target = np.clip(target, self.q_lo, self.q_hi)
        self._target = target
        self._steps += 1
        self.last = ControlStep(state=state, mode=self.mode, target=target, action=action, obs=obs)
        return self.last

    def _new_obs_state(self) -> ObsActionState:
        """The observation and action state machine of the policy, one row (the robot)."""
        return ObsActionState(self.spec, 1, self.nominal, self.q_lo, self.q_hi,
                              self.control_dt, self.safety.action_clip)

    def _policy_target(self, state: RobotState):
        if self._rate_limited:
            self._applied = self._applied + np.clip(
                self.command - self._applied, -self._command_step, self._command_step)
        q = np.asarray(state.q, dtype=np.float64)[None]
        linvel_b = self.estimator.velocity[None] if self.estimator is not None else None
        obs = self._obs_state.observe(
            q=q, qd=np.asarray(state.qd, dtype=np.float64)[None],
            base_quat=np.asarray(state.base_quat, dtype=np.float64)[None],
            base_angvel_b=np.asarray(state.base_angvel, dtype=np.float64)[None],
            base_linvel_b=linvel_b, command=self._applied)
        action = np.asarray(self._infer(obs), dtype=np.float64)
        if np.count_nonzero(np.isfinite(action)) != action.size:
            self.enter_damping(f"policy output is not finite: {action[0]}")
            return self._target, None, obs
        target = self._obs_state.act(action, self._applied)
        return target[0], self._obs_state.action[0].copy(), obs

    @property
    def phase(self) -> float:
        """Gait clock (rad) used by the next policy step (0 without a gait clock)."""
        return float(self._obs_state.phase[0])

    def step(self) -> ControlStep:
        """One control period on the interface: read, decide, send, advance ``decimation``."""
        if self.interface is None:
            raise RuntimeError("step(): no interface attached")
        state = self.interface.read_state()
        if not self._started:
            self.start(state)
        t0 = time.perf_counter()
        result = self.compute(state)
        self.last_compute_s = time.perf_counter() - t0
        self.interface.send_targets(result.target)
        for _ in range(self.decimation):
            state = self.interface.step()
            if self.estimator is not None and self.mode is not Mode.DAMPING:
                self.estimator.update(state)  # the estimator runs at the robot's rate
        return result

    def run(self, seconds: float,
            callback: Callable[[ControlStep], bool | None] | None = None) -> int:
        """Run ``seconds`` of control periods; ``callback(step)`` returning True stops early.

        Returns the number of periods run.
        """
        n = 0
        while n < int(round(seconds / self.control_dt)):
            result = self.step()
            n += 1
            if callback is not None and callback(result):
                break
        return n

    @property
    def event_log(self) -> list[str]:
        """Mode changes and faults, as readable lines."""
        return [f"t={e.time:7.3f} s {e.mode.value:8s} {e.message}" for e in self.events]


