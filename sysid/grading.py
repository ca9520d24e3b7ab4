"""The stand-in's hidden truth in stage 1's parameterisation, for grading only.

Stage 1 never reads this: identification works from logs.  Tests grade the fitted values
against it, and ``robot-rl fidelity`` (:mod:`deploy.fidelity`) runs the training
simulator with it and the stand-in's own actuator equations as the reference for what
identification can give.  A real robot has no such truth.
"""

from __future__ import annotations

import numpy as np

from robot_rl.robot import RobotDescription
from robot_rl.standin import PyBulletStandIn
from robot_rl.standin_model import HiddenParams, StandInConfig
from sysid.model import nominal


def hidden_params(robot: RobotDescription, cfg: StandInConfig) -> HiddenParams:
    """The physics the stand-in of ``cfg`` draws for ``robot``."""
    with PyBulletStandIn(robot, cfg, suspended=True) as s:
        return s.hidden_truth()


def truth_values(robot: RobotDescription, cfg: StandInConfig,
                 hidden: HiddenParams | None = None) -> dict[str, float]:
    """The stand-in's hidden parameters (``hidden``, else drawn as the stand-in of ``cfg``
    draws them) as stage 1's named values (``params.json``'s keys): joint armature, damping
    and Coulomb friction, encoder offsets, leg mass scales, the trunk's mass and COM (MuJoCo's trunk body
    with the payload fused in) and the foot friction."""
    h = hidden_params(robot, cfg) if hidden is None else hidden
    nom = nominal(robot)
    out: dict[str, float] = {}
    for i, j in enumerate(robot.joint_names):
        out[f"armature/{j}"] = float(h.rotor_inertia[i])
        out[f"damping/{j}"] = float(h.joint_damping[i])
        out[f"coulomb/{j}"] = float(h.joint_coulomb[i])
        out[f"encoder_offset/{j}"] = float(np.broadcast_to(h.encoder_offset, (len(robot.joint_names),))[i])
    for i, f in enumerate(robot.foot_links):
        out[f"leg_mass_scale/{f}"] = float(h.leg_mass_scale[i])
    mass = nom.trunk_mass + h.trunk_payload
    com = (nom.trunk_mass * nom.trunk_com + h.trunk_payload * h.trunk_payload_offset) / mass
    out["trunk_mass"] = float(mass)
    out.update({f"trunk_com/{a}": float(c) for a, c in zip("xyz", com)})
    out["foot_friction"] = float(h.foot_friction)
    return out
