"""What MuJoCo and PyBullet each see of a robot, in one comparable form.

Both simulators are put at the nominal pose with the base upright at the same height;
each reports, per movable body (a link plus the fixed-joint links fused into it), the
mass, centre of mass and inertia tensor in the world frame, and per actuated joint the
world axis and position limits, and the foot positions.  The consistency tests and
``robot-rl robots --check`` compare the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
import pybullet as pb

from robot_rl.robot import RobotDescription
from robot_rl.sim_mujoco import build_model, index, set_nominal
from robot_rl.sim_pybullet import load_pybullet_robot


@dataclass
class RobotView:
    """One simulator's view of a robot at its nominal pose (SI units, world frame)."""

    body_mass: dict[str, float]
    body_com: dict[str, np.ndarray]
    body_inertia: dict[str, np.ndarray]  # 3x3 about the body's COM, world axes
    joint_names: list[str]
    joint_axis: np.ndarray  # (J, 3) unit vectors
    joint_range: np.ndarray  # (J, 2)
    foot_pos: np.ndarray  # (F, 3)

    @property
    def total_mass(self) -> float:
        return float(sum(self.body_mass.values()))


def _combine(parts: list[tuple[float, np.ndarray, np.ndarray]]) -> tuple[float, np.ndarray, np.ndarray]:
    """Mass, COM and inertia about the COM of rigidly joined parts (parallel-axis theorem)."""
    mass = sum(p[0] for p in parts)
    com = sum(p[0] * p[1] for p in parts) / mass
    inertia = np.zeros((3, 3))
    for m, c, i in parts:
        r = c - com
        inertia += i + m * (r @ r * np.eye(3) - np.outer(r, r))
    return mass, com, inertia


def mujoco_view(robot: RobotDescription, height: float = 1.0) -> RobotView:
    """The MuJoCo model's view of ``robot`` at its nominal pose."""
    model = build_model(robot)
    data = mujoco.MjData(model)
    set_nominal(model, data, robot, height=height)
    idx = index(model, robot)
    mass, com, inertia = {}, {}, {}
    for b in range(1, model.nbody):
        name = model.body(b).name
        rot = data.ximat[b].reshape(3, 3)
        mass[name] = float(model.body_mass[b])
        com[name] = data.xipos[b].copy()
        inertia[name] = rot @ np.diag(model.body_inertia[b]) @ rot.T
    jids = [model.joint(n).id for n in robot.joint_names]
    return RobotView(
        body_mass=mass, body_com=com, body_inertia=inertia,
        joint_names=[model.joint(j).name for j in jids],
        joint_axis=np.array([data.xaxis[j] for j in jids]),
        joint_range=np.array([model.jnt_range[j] for j in jids]),
        foot_pos=data.site_xpos[idx.foot_site].copy(),
    )


def _pybullet_limits(info: tuple, lo: float, hi: float) -> tuple[float, float]:
    # PyBullet reports the URDF's limits; joints without them (lower > upper) get the
    # description's limits through changeDynamics, which getJointInfo does not echo.
    # tests/test_robots.py checks those are enforced by driving a joint into them.
    return (info[8], info[9]) if info[8] <= info[9] else (lo, hi)


def pybullet_view(robot: RobotDescription, height: float = 1.0) -> RobotView:
    """The PyBullet body's view of ``robot`` at its nominal pose."""
    client = pb.connect(pb.DIRECT)
    try:
        r = load_pybullet_robot(client, robot, fixed_base=False, base_height=height)
        body = r.body
        n = pb.getNumJoints(body, physicsClientId=client)
        infos = [pb.getJointInfo(body, j, physicsClientId=client) for j in range(n)]

        def owner(link: int) -> int:
            # movable ancestor: climb while the joint into this link is fixed
            while link >= 0 and infos[link][2] == pb.JOINT_FIXED:
                link = infos[link][16]
            return link

        def name_of(link: int) -> str:
            if link < 0:
                return pb.getBodyInfo(body, physicsClientId=client)[0].decode()
            return infos[link][12].decode()

        groups: dict[int, list] = {}
        for link in range(-1, n):
            dyn = pb.getDynamicsInfo(body, link, physicsClientId=client)
            if link < 0:
                pos, orn = pb.getBasePositionAndOrientation(body, physicsClientId=client)
            else:
                st = pb.getLinkState(body, link, computeForwardKinematics=True, physicsClientId=client)
                pos, orn = st[0], st[1]
            rot = np.array(pb.getMatrixFromQuaternion(orn)).reshape(3, 3)
            part = (dyn[0], np.array(pos), rot @ np.diag(dyn[2]) @ rot.T)
            groups.setdefault(owner(link), []).append(part)
        mass, com, inertia = {}, {}, {}
        for link, parts in groups.items():
            m, c, i = _combine(parts)
            mass[name_of(link)], com[name_of(link)], inertia[name_of(link)] = m, c, i
        axes = []
        for j in r.joint_ids:
            st = pb.getLinkState(body, int(j), computeForwardKinematics=True, physicsClientId=client)
            rot = np.array(pb.getMatrixFromQuaternion(st[1])).reshape(3, 3)
            axes.append(rot @ np.array(infos[j][13]))
        return RobotView(
            body_mass=mass, body_com=com, body_inertia=inertia,
            joint_names=[infos[j][1].decode() for j in r.joint_ids],
            joint_axis=np.array(axes),
            joint_range=np.array([_pybullet_limits(infos[j], lo, hi)
                                  for j, lo, hi in zip(r.joint_ids, robot.q_min, robot.q_max)]),
            foot_pos=r.foot_positions(),
        )
    finally:
        pb.disconnect(client)
