"""The MuJoCo robot behind :class:`~robot_rl.interface.RobotInterface` (ideal PD actuation).

One MuJoCo model built by :func:`robot_rl.sim_mujoco.build_model`; joint targets are
tracked by an ideal PD with the robot description's gains, evaluated at every physics
step (``tau = clip(kp (q* - q) - kd qd, +-tau_max)``).  It measures like a robot with
ideal sensors: ``read_state()`` gives the joints, the torques, and an IMU at the base
(orientation from the free joint's quaternion (w, x, y, z), angular velocity in the base
frame from ``qvel[3:6]``, the accelerometer sensor's specific force), but no base position
or linear velocity; those come from :meth:`MujocoRobot.ground_truth` (the free joint:
position from ``qpos``, world-frame linear velocity from ``qvel[0:3]``), for metrics.
``model_hook(model)`` may edit the compiled model first (e.g. to apply identified
parameters); ``encoder_offset`` (J,) rad are the encoders' zero offsets: the robot reports
q + offset and its PD acts on that reading, as on a robot whose encoders are miscalibrated
(stage 1 identifies them).  On a ``terrain`` (:mod:`robot_rl.terrain`) the robot spawns at the tile's
spawn point, its base ``base_init_height`` above the ground there.  A controller, the
evaluation, or a test drives it like a real robot.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np

from robot_rl.interface import GroundTruth, RobotInterface, RobotState
from robot_rl.pd import pd_torque
from robot_rl.robot import RobotDescription
from robot_rl.sensors import quat_to_matrix
from robot_rl.sim_mujoco import MujocoModelConfig, build_model, footprint, index, set_nominal
from robot_rl.terrain import Terrain


class MujocoRobot(RobotInterface):
    """A floating-base MuJoCo robot with ideal PD joints; ``control_dt = physics_dt * decimation``."""

    def __init__(self, robot: RobotDescription, physics_dt: float = 0.005, decimation: int = 1,
                 model_hook: Callable[[mujoco.MjModel], None] | None = None,
                 model_config: MujocoModelConfig | None = None, terrain: Terrain | None = None,
                 encoder_offset: np.ndarray | None = None):
        if decimation < 1:
            raise ValueError(f"decimation must be >= 1, got {decimation}")
        self.robot = robot
        cfg = model_config or MujocoModelConfig(timestep=physics_dt)
        if abs(cfg.timestep - physics_dt) > 1e-12:
            raise ValueError(f"model_config.timestep {cfg.timestep} != physics_dt {physics_dt}")
        if terrain is not None:
            terrain.check_spawn_area(footprint(robot), robot.name)
        self.terrain = terrain
        self.model = build_model(robot, cfg, terrain)
        if model_hook is not None:
            model_hook(self.model)
        self.data = mujoco.MjData(self.model)
        self.idx = index(self.model, robot)
        if not self.idx.floating:
            raise ValueError("MujocoRobot needs a floating base (model_config.fixed_base=False)")
        self.physics_dt = physics_dt
        self.decimation = int(decimation)
        self.control_dt = physics_dt * self.decimation
        self.kp, self.kd = robot.array("kp"), robot.array("kd")
        self.tau_max = robot.array("tau_max")
        self._target = robot.array("nominal_pose")
        self._tau = np.zeros(robot.num_joints)
        self.encoder_offset = (np.zeros(robot.num_joints) if encoder_offset is None
                               else np.asarray(encoder_offset, dtype=np.float64).copy())
        if self.encoder_offset.shape != (robot.num_joints,):
            raise ValueError(f"encoder_offset: expected {robot.num_joints} values (rad), got "
                             f"shape {self.encoder_offset.shape}")
        acc = self.model.sensor("base_acc")
        self._acc = slice(int(acc.adr[0]), int(acc.adr[0]) + 3)
        self.reset()

    def reset(self) -> RobotState:
        if self.terrain is None:
            set_nominal(self.model, self.data, self.robot)
        else:
            set_nominal(self.model, self.data, self.robot,
                        height=self.robot.base_init_height + self.terrain.spawn_height)
            self.data.qpos[0:2] = self.terrain.spawn
            mujoco.mj_forward(self.model, self.data)
        self._target = self.robot.array("nominal_pose")
        self._tau = np.zeros(self.robot.num_joints)
        return self.read_state()

    def read_state(self) -> RobotState:
        """Joints, torques and the IMU (orientation, gyro, accelerometer): no base position
        or linear velocity, as on a robot."""
        d, idx = self.data, self.idx
        return RobotState(
            stamp=float(d.time), q=d.qpos[idx.qpos] + self.encoder_offset, qd=d.qvel[idx.qvel].copy(),
            tau=self._tau.copy(), base_quat=d.qpos[3:7].copy(), base_angvel=d.qvel[3:6].copy(),
            base_acc=d.sensordata[self._acc].copy())

    def ground_truth(self) -> GroundTruth:
        """The free joint's state, for evaluation metrics."""
        d = self.data
        return GroundTruth(stamp=float(d.time), base_pos=d.qpos[0:3].copy(),
                           base_quat=d.qpos[3:7].copy(), base_linvel=d.qvel[0:3].copy(),
                           base_angvel=d.qvel[3:6].copy())

    def push(self, delta_v: np.ndarray) -> None:
        """Kick the base: add ``delta_v`` (m/s, world frame) to its linear velocity."""
        self.data.qvel[0:3] += np.asarray(delta_v, dtype=np.float64)

    def send_targets(self, q_target: np.ndarray) -> None:
        q_target = np.asarray(q_target, dtype=np.float64)
        if q_target.shape != (self.robot.num_joints,) or not np.all(np.isfinite(q_target)):
            raise ValueError(f"send_targets: expected {self.robot.num_joints} finite targets "
                             f"(rad), got {q_target!r}")
        self._target = q_target.copy()

    def step(self) -> RobotState:
        m, d, idx = self.model, self.data, self.idx
        target = self._target - self.encoder_offset  # the PD acts on the encoder's reading
        for _ in range(self.decimation):
            q, qd = d.qpos[idx.qpos], d.qvel[idx.qvel]
            self._tau = pd_torque(self.kp, self.kd, target - q, qd, self.tau_max)
            d.ctrl[idx.actuator] = self._tau
            mujoco.mj_step(m, d)
        return self.read_state()


def stance_tilt(robot: RobotDescription, seconds: float = 2.0) -> dict[str, float]:
    """How the robot stands on its own gains: dropped at its nominal pose on flat ground,
    the nominal targets held by the ideal PD for ``seconds``; the base's roll, pitch and
    tilt then (deg), its height (m) and the largest joint error (rad).  Printed by ``robot-rl robots
    --check``.  laikago's first stance (every thigh at 0.14 rad, kp 80) settled at 8-12
    deg pitch and 6-7 deg roll on its rear legs here and on the stand-in, and tipped over
    in MuJoCo with the identified 1 cm trunk COM offset; the A1 (every thigh 0.9, knee -1.8
    rad) kneels at 9.6 deg nose-up pitch, its base at 0.20 m for a nominal 0.27, and is kept
    so: a level stance made its policies fall under kicks (bench/RESULTS.md, "laikago's
    identified+PD falls", "The A1's stance")."""
    sim = MujocoRobot(robot)
    try:
        sim.reset()
        target = robot.array("nominal_pose")
        for _ in range(int(round(seconds / sim.control_dt))):
            sim.send_targets(target)
            state = sim.step()
        truth = sim.ground_truth()
        up = quat_to_matrix(truth.base_quat)[2]  # world z in base axes
    finally:
        sim.close()
    roll = np.degrees(np.arctan2(up[1], up[2]))
    pitch = np.degrees(-np.arcsin(np.clip(up[0], -1.0, 1.0)))
    tilt = np.degrees(np.arccos(np.clip(up[2], -1.0, 1.0)))
    return {"roll_deg": float(roll), "pitch_deg": float(pitch), "tilt_deg": float(tilt),
            "base_height_m": float(truth.base_pos[2]),
            "max_sag_rad": float(np.max(np.abs(state.q - target)))}
