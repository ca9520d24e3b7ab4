"""Write identified (or randomized) parameters into a compiled MuJoCo model.

:func:`apply_params` is the single definition of how a stage-1 parameter maps onto the
model; the policy stage calls it at every randomization, evaluation calls it once.  It is
a pure function of the robot's *nominal* model and the values: every field it touches is
set from the URDF value, never from the model's current value, so applying twice, or to a
copy of an already-modified model, gives the same model.  Parameters absent from
``params`` leave their fields untouched.

==========================  ==================================================================
parameter                   fields set
==========================  ==================================================================
``armature/<joint>``        ``dof_armature[dof]``  (kg m^2; rotor inertia on the joint's diagonal)
``damping/<joint>``         ``dof_damping[dof]``   (N m s/rad)
``coulomb/<joint>``         ``dof_frictionloss[dof]`` (N m; MuJoCo's dry friction)
``leg_mass_scale/<foot>``   ``body_mass`` and ``body_inertia`` of every body of that leg
                            (subtree of the leg's first joint) = URDF value x scale
``trunk_mass``              ``body_mass[trunk]``; ``body_inertia[trunk]`` = URDF inertia x
                            mass / URDF mass (about the new COM, URDF principal axes)
``trunk_com/x|y|z``         ``body_ipos[trunk]`` (trunk frame, m).  ``trunk_mass`` and
                            ``trunk_com/*`` go together: a missing one takes its URDF value
``foot_friction``           ``geom_friction[g, 0]`` of every geom that can collide (robot and
                            floor: MuJoCo uses the larger of a pair's two coefficients)
==========================  ==================================================================

Afterwards ``mj_setConst`` refreshes the derived constants (subtree masses, inverse
weights) so the constraint solver sees the new inertias.
"""

from __future__ import annotations

from collections.abc import Mapping

import mujoco
import numpy as np

from robot_rl.robot import RobotDescription
from sysid.model import AXES, kind_of, nominal, parameter_names

MAPPING = {
    "armature": "model.dof_armature[dof of <joint>] = value",
    "damping": "model.dof_damping[dof of <joint>] = value",
    "coulomb": "model.dof_frictionloss[dof of <joint>] = value",
    "leg_mass_scale": "model.body_mass[b], model.body_inertia[b] = URDF value * value, for every "
                      "body b in the subtree of the leg's first joint",
    "trunk_mass": "model.body_mass[trunk] = value; model.body_inertia[trunk] = URDF inertia * "
                  "value / URDF trunk mass",
    "trunk_com": "model.body_ipos[trunk][axis] = value (trunk frame)",
    "foot_friction": "model.geom_friction[g, 0] = value for every geom with contype or "
                     "conaffinity (robot and floor)",
}


def _values(params: Mapping) -> dict[str, float]:
    """Accept a flat ``{name: value}`` dict or a whole params.json dict (fitted values)."""
    if "parameters" in params and isinstance(params["parameters"], Mapping):
        return {k: float(v["fitted"]) for k, v in params["parameters"].items()}
    return {k: float(v) for k, v in params.items()}


def apply_params(model: mujoco.MjModel, params: Mapping, robot: RobotDescription) -> mujoco.MjModel:
    """Set ``params`` (flat ``{name: value}`` or a loaded params.json) on ``model``, in place.

    Raises ``ValueError`` for an unknown parameter name or a non-finite / non-physical
    value (negative inertia, damping, friction or mass).  Returns ``model``.
    """
    values = _values(params)
    known = set(parameter_names(robot))
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"apply_params: unknown parameter(s) {unknown} for robot {robot.name!r}")
    for k, v in values.items():
        if not np.isfinite(v):
            raise ValueError(f"apply_params: {k} = {v} is not finite")
        if kind_of(k) != "trunk_com" and v < 0:
            raise ValueError(f"apply_params: {k} = {v} must be >= 0")
    nom = nominal(robot)
    dof = {j: int(model.jnt_dofadr[model.joint(j).id]) for j in robot.joint_names}
    fields = {"armature": model.dof_armature, "damping": model.dof_damping,
              "coulomb": model.dof_frictionloss}
    for k, v in values.items():
        kind = kind_of(k)
        if kind in fields:
            fields[kind][dof[k.split("/", 1)[1]]] = v
    for foot, bodies in zip(robot.foot_links, nom.legs):
        s = values.get(f"leg_mass_scale/{foot}")
        if s is None:
            continue
        for name in bodies:
            b = model.body(name).id
            model.body_mass[b] = nom.body_mass[name] * s
            model.body_inertia[b] = nom.body_inertia[name] * s
    if "trunk_mass" in values or any(f"trunk_com/{a}" in values for a in AXES):
        b = model.body(nom.trunk).id
        mass = values.get("trunk_mass", nom.trunk_mass)
        if mass <= 0:
            raise ValueError(f"apply_params: trunk_mass = {mass} must be > 0")
        model.body_mass[b] = mass
        model.body_inertia[b] = nom.body_inertia[nom.trunk] * (mass / nom.trunk_mass)
        model.body_ipos[b] = [values.get(f"trunk_com/{a}", nom.trunk_com[i])
                              for i, a in enumerate(AXES)]
    if "foot_friction" in values:
        collide = (model.geom_contype != 0) | (model.geom_conaffinity != 0)
        model.geom_friction[collide, 0] = values["foot_friction"]
    mujoco.mj_setConst(model, mujoco.MjData(model))
    return model
