"""The hardware stand-in: a PyBullet robot with hidden physics, behind :class:`RobotInterface`.

No real robot is attached to these machines, so stages 1 and 2 read logs produced here.
The stand-in draws hidden perturbations of the robot's physics (link masses, a trunk
payload with an offset centre of mass, joint damping and Coulomb friction, rotor inertia,
foot friction, optionally the joint encoders' zero offsets) from its config's seed, stands
on a rigid or (``floor_stiffness``) compliant floor, and drives the joints through a reference actuator
richer than an ideal PD (latency, torque-speed saturation, first-order torque response);
see :mod:`robot_rl.standin_actuator` for the equations.  Real users replace this class with a
bridge to their robot; everything downstream sees only the logs.

It measures like a robot (:mod:`robot_rl.sensors`): ``read_state()`` gives quantized,
noisy encoder readings, torque estimates and an IMU (its filter's orientation with a
roll/pitch error and yaw drift, a biased gyro and accelerometer), foot contact flags if
configured, and no base position or velocity.  The true base state is available only
through :meth:`PyBulletStandIn.ground_truth`, for evaluation metrics and for the lab's
"motion capture" during data collection.  On a ``terrain`` (:mod:`robot_rl.terrain`, the
same height field MuJoCo loads) the robot spawns at the tile's spawn point.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pybullet as pb

from robot_rl.interface import GroundTruth, RobotInterface, RobotState
from robot_rl.robot import RobotDescription
from robot_rl.sensors import GRAVITY, SensorErrors, SensorModel, quantize, quat_to_matrix
from robot_rl.sim_pybullet import PyBulletRobot, load_pybullet_robot, new_world
from robot_rl.standin_actuator import ReferenceActuator
from robot_rl.standin_model import HiddenParams, StandInConfig, draw_hidden, perturbed_urdf
from robot_rl.terrain import Terrain


class PyBulletStandIn(RobotInterface):
    """PyBullet robot with hidden physics; ``suspended=True`` fixes the base on a rig."""

    def __init__(self, robot: RobotDescription, cfg: StandInConfig | None = None,
                 suspended: bool = False, gui: bool = False, terrain: Terrain | None = None):
        self.robot = robot
        self.cfg = cfg or StandInConfig()
        self.control_dt = self.cfg.control_dt
        self.suspended = suspended
        self._rng = np.random.default_rng(self.cfg.seed)
        import xml.etree.ElementTree as ET

        trunk_mass = float(ET.parse(robot.urdf_path).getroot().find(
            f"link[@name='{robot.base_link}']/inertial/mass").get("value"))
        self._hidden = draw_hidden(self.cfg, robot, trunk_mass, self._rng)
        self._noise_rng = np.random.default_rng(self.cfg.seed + 1)
        self._tmp = Path(tempfile.mkdtemp(prefix="robot_rl_standin_"))
        if terrain is not None:
            from robot_rl.sim_mujoco import footprint

            terrain.check_spawn_area(footprint(robot), robot.name)
        self.terrain = terrain
        self._client = new_world(self.cfg.physics_dt, gui=gui, terrain=terrain,
                                 floor_stiffness=self.cfg.floor_stiffness,
                                 floor_damping=self.cfg.floor_damping)
        urdf = perturbed_urdf(robot, self._hidden, self._tmp)
        desc = _with_urdf(robot, urdf)
        height = self.cfg.rig_height if suspended else robot.base_init_height
        self._spawn_xy = (0.0, 0.0) if terrain is None else terrain.spawn
        if terrain is not None:
            height += terrain.spawn_height
        self._body: PyBulletRobot = load_pybullet_robot(self._client, desc, fixed_base=suspended,
                                                        base_height=height)
        for f in self._body.foot_ids:
            pb.changeDynamics(self._body.body, int(f), lateralFriction=self._hidden.foot_friction,
                              physicsClientId=self._client)
        self._act = ReferenceActuator(self.cfg.actuator, robot, self.cfg.physics_dt, self._hidden,
                                      rng=np.random.default_rng(self.cfg.seed + 2))
        self._time = 0.0
        self._tau_meas = np.zeros(robot.num_joints)
        self._height = height
        # PyBullet reports and resets the base's inertial frame (COM, principal axes, which
        # the payload rotates); the log and the interface speak of the trunk link frame.
        dyn = pb.getDynamicsInfo(self._body.body, -1, physicsClientId=self._client)
        self._inertial = (dyn[3], dyn[4])
        self._sensors = SensorModel(self.cfg.sensors, np.random.default_rng(self.cfg.seed + 3))
        # world acceleration of the trunk origin, mean over the last control period (m/s^2)
        self._acc_w = np.zeros(3)
        self._vel_end = np.zeros(3)  # trunk origin velocity at the end of the last period

    # -- RobotInterface ---------------------------------------------------------------
    def reset(self) -> RobotState:
        q0 = self.robot.array("nominal_pose")
        # PyBullet places the base's inertial (principal-axes) frame; put the trunk link there
        pos, orn = pb.multiplyTransforms([*self._spawn_xy, self._height],
                                         pb.getQuaternionFromEuler(self.robot.base_rpy),
                                         *self._inertial, physicsClientId=self._client)
        pb.resetBasePositionAndOrientation(self._body.body, pos, orn, physicsClientId=self._client)
        pb.resetBaseVelocity(self._body.body, [0, 0, 0], [0, 0, 0], physicsClientId=self._client)
        self._body.set_joint_state(q0)
        self._act.reset(q0)
        self._act.push_target(q0)
        self._time = 0.0
        self._tau_meas = np.zeros(self.robot.num_joints)
        self._acc_w = np.zeros(3)
        self._vel_end = np.zeros(3)
        return self.read_state()

    def ground_truth(self) -> GroundTruth:
        """The true base state (trunk link frame): for metrics and motion capture only."""
        com, orn_i = pb.getBasePositionAndOrientation(self._body.body, physicsClientId=self._client)
        pos, orn = pb.multiplyTransforms(com, orn_i, *pb.invertTransform(*self._inertial),
                                         physicsClientId=self._client)
        lin, ang = pb.getBaseVelocity(self._body.body, physicsClientId=self._client)
        lin = np.array(lin) + np.cross(ang, np.array(pos) - np.array(com))  # link origin velocity
        quat = np.array([orn[3], orn[0], orn[1], orn[2]])
        return GroundTruth(stamp=self._time, base_pos=np.array(pos), base_quat=quat,
                           base_linvel=lin, base_angvel=quat_to_matrix(quat).T @ np.array(ang))

    def read_state(self) -> RobotState:
        """What the robot measures: encoders, torque estimates, IMU (see robot_rl.sensors)."""
        q, qd = self._body.joint_state()
        n = self._noise_rng.normal
        nj = self.robot.num_joints
        truth = self.ground_truth()
        rot = quat_to_matrix(truth.base_quat)
        specific_force = rot.T @ (self._acc_w + np.array([0.0, 0.0, GRAVITY]))
        quat, gyro, acc = self._sensors.imu(self._time, truth.base_quat, truth.base_angvel,
                                            specific_force)
        return RobotState(
            stamp=self._time,
            q=quantize(q + self._hidden.encoder_offset + n(0, self.cfg.noise_q, nj),
                       self.cfg.sensors.encoder_resolution),
            qd=qd + n(0, self.cfg.noise_qd, nj),
            tau=self._tau_meas + n(0, self.cfg.noise_tau, nj),
            base_quat=quat, base_angvel=gyro, base_acc=acc,
            foot_contact=self._foot_contact() if self.cfg.sensors.foot_contact else None,
        )

    def _foot_contact(self) -> np.ndarray:
        """Foot switches: the normal force on each foot above the configured threshold."""
        out = np.zeros(len(self._body.foot_ids), dtype=bool)
        for i, f in enumerate(self._body.foot_ids):
            pts = pb.getContactPoints(bodyA=self._body.body, linkIndexA=int(f),
                                      physicsClientId=self._client)
            out[i] = sum(p[9] for p in pts) > self.cfg.sensors.contact_force_threshold
        return out

    def send_targets(self, q_target: np.ndarray) -> None:
        q_target = np.asarray(q_target, dtype=np.float64)
        if q_target.shape != (self.robot.num_joints,) or not np.all(np.isfinite(q_target)):
            raise ValueError(f"send_targets: expected {self.robot.num_joints} finite targets "
                             f"(rad), got {q_target!r}")
        self._act.push_target(q_target)

    def set_gains(self, kp: np.ndarray, kd: np.ndarray) -> None:
        kp, kd = np.asarray(kp, dtype=np.float64), np.asarray(kd, dtype=np.float64)
        n = self.robot.num_joints
        if kp.shape != (n,) or kd.shape != (n,) or np.any(kp < 0) or np.any(kd < 0) \
                or not (np.all(np.isfinite(kp)) and np.all(np.isfinite(kd))):
            raise ValueError(f"set_gains: expected {n} finite non-negative kp and kd values")
        self._act.set_gains(kp, kd)

    def step(self) -> RobotState:
        for _ in range(self.cfg.decimation):
            q, qd = self._body.joint_state()
            self._tau_meas, tau_joint = self._act.step(q, qd)
            self._body.apply_torques(tau_joint)
            pb.stepSimulation(physicsClientId=self._client)
            self._time += self.cfg.physics_dt
        # the accelerometer's sample: the mean acceleration over the period (its
        # anti-aliasing filter), pushes included
        vel = self.ground_truth().base_linvel
        self._acc_w = (vel - self._vel_end) / self.control_dt
        self._vel_end = vel
        return self.read_state()

    def close(self) -> None:
        if self._client is not None and pb.isConnected(self._client):
            pb.disconnect(self._client)
        self._client = None
        shutil.rmtree(self._tmp, ignore_errors=True)

    # -- the world acting on the robot (evaluation) ------------------------------------
    def push(self, delta_v: np.ndarray) -> None:
        """Kick the base: add ``delta_v`` (m/s, world frame) to its linear velocity."""
        lin, ang = pb.getBaseVelocity(self._body.body, physicsClientId=self._client)
        pb.resetBaseVelocity(self._body.body, (np.asarray(lin) + np.asarray(delta_v)).tolist(),
                             ang, physicsClientId=self._client)

    # -- for grading only ---------------------------------------------------------------
    def hidden_truth(self) -> HiddenParams:
        """The drawn physics.  For tests that grade identification; never for stages."""
        return self._hidden

    def sensor_errors(self) -> SensorErrors:
        """The drawn IMU biases and offsets.  For tests that grade sensing; never for stages."""
        return self._sensors.errors

    @property
    def pybullet(self) -> tuple[int, int]:
        """(client, body) for evaluation tools that need to look (rendering, contacts)."""
        return self._client, self._body.body


def _with_urdf(robot: RobotDescription, urdf: Path) -> RobotDescription:
    import dataclasses

    class _Desc(type(robot)):  # a description whose urdf_path points at the perturbed copy
        @property
        def urdf_path(self) -> Path:  # type: ignore[override]
            return urdf

    fields = {f.name: getattr(robot, f.name) for f in dataclasses.fields(robot)}
    return _Desc(**fields)
