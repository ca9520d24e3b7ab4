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
``encoder_offset/<joint>``  no model field: the robot's encoder reads q_true + value, and its
                            driver's PD acts on that reading.  :func:`encoder_offsets` gives
                            the per-joint array; a simulated robot adds it to the measured
                            angles and subtracts it from the joint targets it tracks
                            (kp (q* - (q + o)) = kp ((q* - o) - q))
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

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import mujoco
import numpy as np

from robot_rl.logs import RobotLog
from robot_rl.robot import RobotDescription
from robot_rl.sim_mujoco import has_pads
from sysid.model import AXES, Nominal, kind_of, nominal, parameter_names

MAPPING = {
    "armature": "model.dof_armature[dof of <joint>] = value",
    "damping": "model.dof_damping[dof of <joint>] = value",
    "coulomb": "model.dof_frictionloss[dof of <joint>] = value",
    "encoder_offset": "no model field: measured angle = q + value, tracked target = target - "
                      "value (sysid.apply.encoder_offsets)",
    "leg_mass_scale": "model.body_mass[b], model.body_inertia[b] = URDF value * value, for every "
                      "body b in the subtree of the leg's first joint",
    "trunk_mass": "model.body_mass[trunk] = value; model.body_inertia[trunk] = URDF inertia * "
                  "value / URDF trunk mass",
    "trunk_com": "model.body_ipos[trunk][axis] = value (trunk frame)",
    "foot_friction": "model.geom_friction[g, 0] = value for every geom with contype or "
                     "conaffinity (robot and floor)",
}


#: kinds that may be negative
SIGNED = ("trunk_com", "encoder_offset")


def _values(params: Mapping) -> dict[str, float]:
    """Accept a flat ``{name: value}`` dict or a whole params.json dict (fitted values)."""
    if "parameters" in params and isinstance(params["parameters"], Mapping):
        return {k: float(v["fitted"]) for k, v in params["parameters"].items()}
    return {k: float(v) for k, v in params.items()}


@dataclass(frozen=True)
class _Plan:
    """Where each parameter goes in models of one robot and one structure (looked up once:
    the env applies parameters at every episode start)."""

    known: frozenset[str]
    nominal: Nominal
    dof: dict[str, int]  # joint name -> dof address
    legs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # foot -> body ids, URDF masses, inertias
    trunk: int
    collide: np.ndarray  # geoms that can collide (robot and floor)


_PLANS: dict[tuple, _Plan] = {}


def _plan(model: mujoco.MjModel, robot: RobotDescription) -> _Plan:
    key = (robot, model.nbody, model.njnt, model.ngeom, model.names)
    plan = _PLANS.get(key)
    if plan is None:
        # a model with floor pads has its feet as bodies of their own (sim_mujoco.FloorPad)
        nom = nominal(robot, pads=has_pads(model, robot))
        legs = {}
        for foot, bodies in zip(robot.foot_links, nom.legs):
            ids = np.array([model.body(b).id for b in bodies], dtype=np.intp)
            legs[foot] = (ids, np.array([nom.body_mass[b] for b in bodies]),
                          np.array([nom.body_inertia[b] for b in bodies]))
        plan = _Plan(
            known=frozenset(parameter_names(robot)), nominal=nom,
            dof={j: int(model.jnt_dofadr[model.joint(j).id]) for j in robot.joint_names},
            legs=legs, trunk=model.body(nom.trunk).id,
            collide=(model.geom_contype != 0) | (model.geom_conaffinity != 0))
        if len(_PLANS) >= 32:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def apply_params(model: mujoco.MjModel, params: Mapping, robot: RobotDescription,
                 data: mujoco.MjData | None = None) -> mujoco.MjModel:
    """Set ``params`` (flat ``{name: value}`` or a loaded params.json) on ``model``, in place.

    ``data``: scratch for ``mj_setConst``, an MjData of a model with the same structure
    (its contents are overwritten).  Without it one is created, which runs the init of the
    model's plugins (1 ms with the actuator network plugin, which parses its weights):
    a caller applying at every episode start passes one.

    Raises ``ValueError`` for an unknown parameter name or a non-finite / non-physical
    value (negative inertia, damping, friction or mass).  Returns ``model``.
    """
    values = _values(params)
    plan = _plan(model, robot)
    unknown = sorted(set(values) - plan.known)
    if unknown:
        raise ValueError(f"apply_params: unknown parameter(s) {unknown} for robot {robot.name!r}")
    for k, v in values.items():
        if not np.isfinite(v):
            raise ValueError(f"apply_params: {k} = {v} is not finite")
        if v < 0 and kind_of(k) not in SIGNED:
            raise ValueError(f"apply_params: {k} = {v} must be >= 0")
    nom = plan.nominal
    fields = {"armature": model.dof_armature, "damping": model.dof_damping,
              "coulomb": model.dof_frictionloss}
    for k, v in values.items():
        kind, _, target = k.partition("/")
        if kind in fields:
            fields[kind][plan.dof[target]] = v
    for foot, (bodies, mass, inertia) in plan.legs.items():
        s = values.get(f"leg_mass_scale/{foot}")
        if s is not None:
            model.body_mass[bodies] = mass * s
            model.body_inertia[bodies] = inertia * s
    if "trunk_mass" in values or any(f"trunk_com/{a}" in values for a in AXES):
        mass = values.get("trunk_mass", nom.trunk_mass)
        if mass <= 0:
            raise ValueError(f"apply_params: trunk_mass = {mass} must be > 0")
        model.body_mass[plan.trunk] = mass
        model.body_inertia[plan.trunk] = nom.body_inertia[nom.trunk] * (mass / nom.trunk_mass)
        model.body_ipos[plan.trunk] = [values.get(f"trunk_com/{a}", nom.trunk_com[i])
                                       for i, a in enumerate(AXES)]
    if "foot_friction" in values:
        model.geom_friction[plan.collide, 0] = values["foot_friction"]
    mujoco.mj_setConst(model, mujoco.MjData(model) if data is None else data)
    return model


def encoder_offsets(params: Mapping, robot: RobotDescription) -> np.ndarray:
    """(J,) rad: each joint's ``encoder_offset/<joint>`` in ``params`` (flat or a loaded
    params.json), 0 where absent (a params.json written before the kind existed).  A
    simulated robot reports ``q + offsets`` and drives its joints towards ``target - offsets``,
    as the robot's driver does on its own encoder."""
    values = _values(params)
    out = np.array([values.get(f"encoder_offset/{j}", 0.0) for j in robot.joint_names])
    if not np.all(np.isfinite(out)):
        raise ValueError(f"encoder_offsets: non-finite offsets {out.tolist()}")
    return out


def true_angles(log: RobotLog, offsets: np.ndarray) -> RobotLog:
    """``log`` with the encoder offsets taken off its joint angles (q_true = q - offset)."""
    return dataclasses.replace(log, q=log.q - offsets)
