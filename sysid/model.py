"""MuJoCo pieces stage 1 shares between fitting, replay and :func:`sysid.apply.apply_params`.

Parameter names (one place, used by every other module of the stage)::

    armature/<joint>        reflected rotor inertia           kg m^2   dof_armature
    damping/<joint>         viscous joint damping             N m s/rad dof_damping
    coulomb/<joint>         Coulomb joint friction            N m      dof_frictionloss
    encoder_offset/<joint>  encoder zero offset: the encoder  rad      (no model field: the
                            reads q_true + value                        measured angle and
                                                                        the driver's PD)
    leg_mass_scale/<foot>   scale of a leg's masses/inertias  -        body_mass, body_inertia
    trunk_mass              trunk + payload mass              kg       body_mass, body_inertia
    trunk_com/x|y|z         trunk + payload COM, trunk frame  m        body_ipos
    foot_friction           foot-floor friction coefficient   -        geom_friction[:, 0]
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import mujoco
import numpy as np

from robot_rl.robot import RobotDescription
from robot_rl.sensors import GRAVITY
from robot_rl.sim_mujoco import FloorPad, MujocoModelConfig, build_model, index

UNITS = {
    "armature": "kg m^2",
    "damping": "N m s/rad",
    "coulomb": "N m",
    "encoder_offset": "rad",
    "leg_mass_scale": "-",
    "trunk_mass": "kg",
    "trunk_com": "m",
    "foot_friction": "-",
}
AXES = ("x", "y", "z")
#: the per-joint kinds, in the order of the joint fit's unknowns
JOINT_KINDS = ("armature", "damping", "coulomb", "encoder_offset")


def kind_of(name: str) -> str:
    """``"damping/FR_hip_joint"`` -> ``"damping"``."""
    return name.split("/", 1)[0]


def leg_joints(robot: RobotDescription) -> list[np.ndarray]:
    """Canonical joint indices of each leg (legs own consecutive joints, in foot order)."""
    nl = len(robot.foot_links)
    per = robot.num_joints // nl
    if per * nl != robot.num_joints:
        raise ValueError(f"robot {robot.name!r}: {robot.num_joints} joints do not split evenly "
                         f"over {nl} legs")
    return [np.arange(i * per, (i + 1) * per) for i in range(nl)]


def leg_bodies(model: mujoco.MjModel, robot: RobotDescription) -> list[list[int]]:
    """Body ids of each leg: the subtree of the body moved by the leg's first joint."""
    out = []
    for joints in leg_joints(robot):
        root = int(model.jnt_bodyid[model.joint(robot.joint_names[joints[0]]).id])
        bodies = []
        for b in range(model.nbody):
            a = b
            while a not in (0, root):
                a = int(model.body_parentid[a])
            if a == root:
                bodies.append(b)
        out.append(bodies)
    return out


def parameter_names(robot: RobotDescription) -> list[str]:
    """Every parameter stage 1 identifies, in params.json order."""
    names = [f"{k}/{j}" for k in JOINT_KINDS for j in robot.joint_names]
    names += [f"leg_mass_scale/{f}" for f in robot.foot_links]
    names += ["trunk_mass"] + [f"trunk_com/{a}" for a in AXES] + ["foot_friction"]
    return names


@dataclass(frozen=True)
class Nominal:
    """Inertial data of the robot's nominal MuJoCo model (URDF values), by body name."""

    body_mass: dict[str, float]
    body_inertia: dict[str, np.ndarray]
    legs: list[list[str]]  # body names of each leg
    trunk: str
    trunk_mass: float
    trunk_com: np.ndarray  # (3,) trunk frame (m)
    foot_radius: np.ndarray  # (F,) radius of each foot's sphere (m), 0 if none


@functools.lru_cache(maxsize=8)
def _nominal(name: str, urdf: str, robot: RobotDescription, pads: bool) -> Nominal:
    # with pads the feet are bodies of their own (the values of the pad do not matter here)
    m = build_model(robot, MujocoModelConfig(floor=FloorPad(1.0, 1.0)) if pads else None)
    legs = [[m.body(b).name for b in bodies] for bodies in leg_bodies(m, robot)]
    tb = m.body(robot.base_link).id
    return Nominal(
        body_mass={m.body(b).name: float(m.body_mass[b]) for b in range(m.nbody)},
        body_inertia={m.body(b).name: m.body_inertia[b].copy() for b in range(m.nbody)},
        legs=legs, trunk=robot.base_link, trunk_mass=float(m.body_mass[tb]),
        trunk_com=m.body_ipos[tb].copy(), foot_radius=foot_radius(m, robot),
    )


def nominal(robot: RobotDescription, pads: bool = False) -> Nominal:
    """The nominal inertial data of ``robot`` (cached per robot).  ``pads``: of the model
    with a compliant floor's pads (:class:`~robot_rl.sim_mujoco.FloorPad`), whose feet are
    bodies of their own instead of fused into the lower legs."""
    return _nominal(robot.name, str(robot.urdf_path), robot, pads)


def weight_moment(robot: RobotDescription) -> float:
    """m g h (N m): the robot's total nominal mass times gravity times its nominal base
    height.  A leg holding the robot up needs torques of this order, so it is the unit in
    which size-dependent defaults (the torque cost, the hand-set friction ranges) carry
    across robots."""
    return sum(nominal(robot).body_mass.values()) * GRAVITY * robot.nominal_base_height


def foot_radius(model: mujoco.MjModel, robot: RobotDescription) -> np.ndarray:
    """Radius of the sphere geom on each foot's body (the contact point is its bottom)."""
    idx = index(model, robot)
    out = []
    for s in idx.foot_site:
        b = model.site_bodyid[s]
        spheres = [g for g in range(model.ngeom) if model.geom_bodyid[g] == b
                   and model.geom_type[g] == mujoco.mjtGeom.mjGEOM_SPHERE]
        if spheres:  # the sphere nearest the foot site
            d = [np.linalg.norm(model.geom_pos[g] - model.site_pos[s]) for g in spheres]
            out.append(float(model.geom_size[spheres[int(np.argmin(d))]][0]))
        else:
            out.append(0.0)
    return np.array(out)


def fixed_base_model(robot: RobotDescription, timestep: float = 0.005) -> mujoco.MjModel:
    """The suspended-rig model (base held by a mocap body), nominal parameters."""
    return build_model(robot, MujocoModelConfig(timestep=timestep, fixed_base=True))


def inverse_dynamics(model: mujoco.MjModel, qpos: np.ndarray, qvel: np.ndarray,
                     qacc: np.ndarray) -> np.ndarray:
    """``qfrc_inverse`` (T, nv) for each sample, with every constraint switched off."""
    saved = model.opt.disableflags
    model.opt.disableflags = saved | mujoco.mjtDisableBit.mjDSBL_CONSTRAINT
    try:
        d = mujoco.MjData(model)
        out = np.zeros((len(qpos), model.nv))
        for k in range(len(qpos)):
            d.qpos[:] = qpos[k]
            d.qvel[:] = qvel[k]
            d.qacc[:] = qacc[k]
            mujoco.mj_inverse(model, d)
            out[k] = d.qfrc_inverse
        return out
    finally:
        model.opt.disableflags = saved
