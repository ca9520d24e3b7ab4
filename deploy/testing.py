"""Test helpers for the deploy stage: a random ``policy.pt`` and a fake robot.

:func:`write_random_policy` writes a ``policy.pt`` in the policy stage's format from a
randomly initialised :class:`~robot_rl.rl.models.ActorCritic` (with non-trivial
normalization statistics, so an export that dropped them would be caught).
:class:`FakeRobot` is a :class:`~robot_rl.interface.RobotInterface` test double: joints
follow their targets with a first-order lag, the base state is whatever the test sets,
and faults (NaN, frozen stamps, ...) are injected by editing its attributes.  Like a
robot it reports the IMU (orientation, gyro, accelerometer) but not the base position or
linear velocity, which only its ground truth holds.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policies.artifact import POLICY_FILE, PolicyMeta, policy_state, write_state
from robot_rl.interface import GroundTruth, RobotInterface, RobotState
from robot_rl.obs_spec import ObservationSpec
from robot_rl.rl.config import PolicyConfig
from robot_rl.rl.models import ActorCritic
from robot_rl.robot import RobotDescription, load_robot
from robot_rl.sensors import GRAVITY, quat_to_matrix


def random_policy_state(robot: str | RobotDescription = "a1", spec: ObservationSpec | None = None,
                        cfg: PolicyConfig | None = None, seed: int = 0, iteration: int = 0,
                        control_dt: float = 0.02,
                        commands: tuple[tuple[float, float], ...] | None = None) -> dict[str, Any]:
    """The dict ``policy.pt`` holds (:func:`policies.artifact.policy_state`), for a randomly
    initialised policy (``commands``: its training command ranges, None: not recorded)."""
    r = load_robot(robot) if isinstance(robot, str) else robot
    spec = spec or ObservationSpec(num_joints=r.num_joints)
    cfg = cfg or PolicyConfig(actor_hidden=(128, 128), critic_hidden=(128, 128), activation="elu")
    torch.manual_seed(seed)
    model = ActorCritic(spec.size, r.num_joints, cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # non-trivial normalizer and a head large enough to matter
        model.obs_normalizer.mean.copy_(0.1 * torch.randn(spec.size, generator=gen))
        model.obs_normalizer.var.copy_(0.5 + torch.rand(spec.size, generator=gen))
        model.obs_normalizer.count.fill_(1000.0)
        head = [m for m in model.actor.modules() if isinstance(m, torch.nn.Linear)][-1]
        head.weight.mul_(30.0)
    meta = PolicyMeta(robot=r.name, joint_names=tuple(r.joint_names), observation=spec.layout(),
                      obs_dim=spec.size, action_dim=r.num_joints, control_dt=control_dt,
                      nominal_pose=tuple(r.nominal_pose), action_scale=spec.action_scale,
                      q_min=tuple(r.q_min), q_max=tuple(r.q_max), iteration=iteration,
                      commands=commands)
    return policy_state(model, meta)


def write_random_policy(folder: str | Path, robot: str | RobotDescription = "a1",
                        spec: ObservationSpec | None = None, cfg: PolicyConfig | None = None,
                        seed: int = 0, edit=None, **kwargs) -> Path:
    """Write ``<folder>/policy.pt`` for a random policy; ``edit(state)`` may corrupt it first."""
    state = random_policy_state(robot, spec, cfg, seed, **kwargs)
    if edit is not None:
        edit(state)
    return write_state(Path(folder) / POLICY_FILE, state)


class FakeRobot(RobotInterface):
    """A kinematic robot for tests: ``q`` moves towards the target with a first-order lag.

    Faults are injected by setting attributes between steps: ``q``/``qd`` arrays, the base
    fields, ``freeze_stamp`` (the stamp stops advancing), ``stamp_offset`` (added to every
    stamp), ``state_override`` (a function ``RobotState -> RobotState`` applied on read).
    Every target sent is recorded in ``sent``.  ``base_acc`` None (the default) makes the
    accelerometer read gravity alone, as at rest (R^T (0, 0, 9.81)); ``base_pos`` and
    ``base_linvel`` appear only in :meth:`ground_truth`.
    """

    def __init__(self, robot: str | RobotDescription = "a1", control_dt: float = 0.005,
                 q_start: np.ndarray | None = None, tau_lag: float = 0.02):
        self.robot = load_robot(robot) if isinstance(robot, str) else robot
        self.control_dt = control_dt
        self.tau_lag = tau_lag
        n = self.robot.num_joints
        self.q_start = self.robot.array("nominal_pose") if q_start is None else np.asarray(q_start, float)
        self.q = self.q_start.copy()
        self.qd = np.zeros(n)
        self.target = self.q.copy()
        self.time = 0.0
        self.base_pos = np.array([0.0, 0.0, self.robot.nominal_base_height])
        self.base_quat = np.array([1.0, 0.0, 0.0, 0.0])
        self.base_linvel = np.zeros(3)
        self.base_angvel = np.zeros(3)
        self.base_acc: np.ndarray | None = None
        self.freeze_stamp = False
        self.stamp_offset = 0.0
        self.state_override = None
        self.sent: list[np.ndarray] = []
        self.steps = 0
        self._stamp = 0.0

    def reset(self) -> RobotState:
        self.q = self.q_start.copy()
        self.qd[:] = 0.0
        self.target = self.q.copy()
        self.time = self._stamp = 0.0
        self.sent.clear()
        self.steps = 0
        return self.read_state()

    def read_state(self) -> RobotState:
        if not self.freeze_stamp:
            self._stamp = self.time
        acc = self.base_acc
        if acc is None:  # at rest: the accelerometer reads gravity alone
            acc = quat_to_matrix(self.base_quat).T @ np.array([0.0, 0.0, GRAVITY])
        state = RobotState(stamp=self._stamp + self.stamp_offset, q=self.q.copy(),
                           qd=self.qd.copy(), tau=np.zeros_like(self.q),
                           base_quat=self.base_quat.copy(), base_angvel=self.base_angvel.copy(),
                           base_acc=np.array(acc, dtype=np.float64))
        if self.state_override is not None:
            state = self.state_override(state)
        return state

    def ground_truth(self) -> GroundTruth:
        """The base fields as the test set them."""
        return GroundTruth(stamp=self.time, base_pos=self.base_pos.copy(),
                           base_quat=self.base_quat.copy(), base_linvel=self.base_linvel.copy(),
                           base_angvel=self.base_angvel.copy())

    def send_targets(self, q_target: np.ndarray) -> None:
        q_target = np.asarray(q_target, dtype=np.float64)
        if q_target.shape != self.q.shape:
            raise ValueError(f"expected {self.q.shape} targets, got {q_target.shape}")
        self.target = q_target.copy()
        self.sent.append(self.target)

    def step(self) -> RobotState:
        a = 1.0 - np.exp(-self.control_dt / self.tau_lag)
        q_new = self.q + a * (self.target - self.q)
        self.qd = (q_new - self.q) / self.control_dt
        self.q = q_new
        self.time += self.control_dt
        self.steps += 1
        return self.read_state()


def with_state(state: RobotState, **changes: Any) -> RobotState:
    """A copy of ``state`` with fields replaced (for ``FakeRobot.state_override``)."""
    return replace(state, **changes)


def rewrite_onnx_metadata(src: str | Path, dst: str | Path, **changes: str | None) -> Path:
    """Copy an exported model with metadata keys replaced (value None deletes the key)."""
    import onnx

    proto = onnx.load(str(src))
    props = {p.key: p.value for p in proto.metadata_props}
    for k, v in changes.items():
        if v is None:
            props.pop(k, None)
        else:
            props[k] = v
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(dst))
    return Path(dst)
