"""Build a PyBullet body of a robot from its description.

The same URDF as MuJoCo's model, loaded with the inertia from the file, default
velocity motors switched off (joints are torque-driven), joint limits taken from the
description (so both simulators enforce the same ranges) and foot friction set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as pb

from robot_rl.robot import RobotDescription
from robot_rl.terrain import Terrain


@dataclass
class PyBulletRobot:
    """A robot body in one PyBullet client, with its joints in canonical order."""

    client: int
    body: int
    robot: RobotDescription
    joint_ids: np.ndarray  # PyBullet joint index of each actuated joint, canonical order
    foot_ids: np.ndarray  # PyBullet link index of each foot
    link_ids: dict[str, int]  # link name -> link index (-1 is the base)

    def set_joint_state(self, q: np.ndarray, qd: np.ndarray | None = None) -> None:
        """Teleport the joints to positions ``q`` (and velocities ``qd``)."""
        qd = np.zeros_like(q) if qd is None else qd
        for j, qi, vi in zip(self.joint_ids, q, qd):
            pb.resetJointState(self.body, int(j), float(qi), float(vi), physicsClientId=self.client)

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Joint positions (rad) and velocities (rad/s), canonical order."""
        states = pb.getJointStates(self.body, self.joint_ids.tolist(), physicsClientId=self.client)
        return (np.array([s[0] for s in states]), np.array([s[1] for s in states]))

    def apply_torques(self, tau: np.ndarray) -> None:
        """Apply joint torques (N m) for the next simulation step."""
        pb.setJointMotorControlArray(
            self.body, self.joint_ids.tolist(), pb.TORQUE_CONTROL, forces=tau.tolist(),
            physicsClientId=self.client,
        )

    def foot_positions(self) -> np.ndarray:
        """World positions of the foot link frames (4 x 3, m)."""
        states = pb.getLinkStates(self.body, self.foot_ids.tolist(), computeForwardKinematics=True,
                                  physicsClientId=self.client)
        return np.array([s[4] for s in states])


def load_pybullet_robot(client: int, robot: RobotDescription, fixed_base: bool = False,
                        base_height: float | None = None) -> PyBulletRobot:
    """Load ``robot`` into PyBullet client ``client`` at its nominal pose."""
    height = robot.base_init_height if base_height is None else base_height
    body = pb.loadURDF(
        str(robot.urdf_path), [0, 0, height], pb.getQuaternionFromEuler(robot.base_rpy),
        useFixedBase=fixed_base, flags=pb.URDF_USE_INERTIA_FROM_FILE, physicsClientId=client,
    )
    names: dict[str, int] = {}
    links: dict[str, int] = {pb.getBodyInfo(body, physicsClientId=client)[0].decode(): -1}
    for j in range(pb.getNumJoints(body, physicsClientId=client)):
        info = pb.getJointInfo(body, j, physicsClientId=client)
        names[info[1].decode()] = j
        links[info[12].decode()] = j
    missing = [n for n in robot.joint_names if n not in names]
    if missing:
        raise ValueError(f"{robot.urdf}: joints {missing} of robot {robot.name!r} not in the URDF")
    missing = [n for n in robot.foot_links if n not in links]
    if missing:
        raise ValueError(f"{robot.urdf}: foot links {missing} of robot {robot.name!r} not in the URDF")
    joint_ids = np.array([names[n] for n in robot.joint_names])
    foot_ids = np.array([links[n] for n in robot.foot_links])
    # torque control: switch off the default velocity motors
    pb.setJointMotorControlArray(body, joint_ids.tolist(), pb.VELOCITY_CONTROL,
                                 forces=[0.0] * len(joint_ids), physicsClientId=client)
    for j, lo, hi in zip(joint_ids, robot.q_min, robot.q_max):
        pb.changeDynamics(body, int(j), jointLowerLimit=lo, jointUpperLimit=hi,
                          linearDamping=0.0, angularDamping=0.0, jointDamping=0.0,
                          physicsClientId=client)
    pb.changeDynamics(body, -1, linearDamping=0.0, angularDamping=0.0, physicsClientId=client)
    for f in foot_ids:
        pb.changeDynamics(body, int(f), lateralFriction=robot.foot_friction, physicsClientId=client)
    r = PyBulletRobot(client, body, robot, joint_ids, foot_ids, links)
    r.set_joint_state(robot.array("nominal_pose"))
    return r


def add_terrain(client: int, terrain: Terrain, friction: float = 1.0) -> int:
    """Add ``terrain``'s height field as a static body (the layout comes from
    :meth:`Terrain.pybullet_heightfield`); returns its body id."""
    f = terrain.pybullet_heightfield()
    shape = pb.createCollisionShape(pb.GEOM_HEIGHTFIELD, physicsClientId=client, **f["shape"])
    body = pb.createMultiBody(0, shape, basePosition=f["position"], physicsClientId=client)
    pb.changeDynamics(body, -1, lateralFriction=friction, physicsClientId=client)
    return body


def new_world(timestep: float = 0.005, gui: bool = False, terrain: Terrain | None = None,
              floor_stiffness: float = 0.0, floor_damping: float = 0.0) -> int:
    """A PyBullet client with gravity, a floor plane (and ``terrain``'s height field on it,
    when it has relief) and the given time step (s).  ``floor_stiffness`` > 0 (N/m, with
    ``floor_damping``, N s/m) makes the ground's contact compliant, as grass or a mat."""
    import pybullet_data

    client = pb.connect(pb.GUI if gui else pb.DIRECT)
    pb.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
    pb.setGravity(0, 0, -9.81, physicsClientId=client)
    pb.setTimeStep(timestep, physicsClientId=client)
    pb.setPhysicsEngineParameter(numSubSteps=0, physicsClientId=client)
    plane = pb.loadURDF("plane.urdf", physicsClientId=client)
    pb.changeDynamics(plane, -1, lateralFriction=1.0, physicsClientId=client)
    grounds = [plane]
    if terrain is not None and not terrain.is_flat:
        grounds.append(add_terrain(client, terrain))
    if floor_stiffness > 0:
        for body in grounds:
            pb.changeDynamics(body, -1, contactStiffness=floor_stiffness,
                              contactDamping=floor_damping, physicsClientId=client)
    return client
