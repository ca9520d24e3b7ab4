"""The ideal PD law of a joint controller, written once.

    tau = kp (q* - q) - kd qd,   clipped to +-tau_max when a limit is given

Every model that applies it calls :func:`pd_torque`: the MuJoCo robot
(:mod:`robot_rl.mujoco_robot`), the stand-in's motor driver before its own speed-dependent
limit (:mod:`robot_rl.standin_actuator`), the training env's actuation (ideal, randomized,
and the torch path of :mod:`policies.actuation`), the synthetic actuator logs and the
ideal-PD baseline of stage 2.  The one place it is computed elsewhere is inside MuJoCo's
step: ``MujocoModelConfig.pd_actuators`` (:mod:`robot_rl.sim_mujoco`) hands the same gains to
MuJoCo's ``mujoco.pid`` plugin, in C, so the PD is applied within the physics step
(tests/policies/test_env.py checks it against this law).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

#: numpy arrays (or floats) or torch tensors: the law uses only ``*`` and ``-``
Array = TypeVar("Array")


def pd_torque(kp, kd, pos_error: Array, qd: Array, tau_max=None) -> Array:
    """``kp * pos_error - kd * qd`` (N m) with ``pos_error = q* - q`` (rad) and ``qd``
    (rad/s), broadcasting over leading axes; clipped to ``[-tau_max, tau_max]`` when
    ``tau_max`` is given.

    Without ``tau_max`` it runs on torch tensors as well (operators only); with it, numpy
    only (``np.clip``): torch callers clamp with ``torch.clamp`` themselves.
    """
    tau = kp * pos_error - kd * qd
    return tau if tau_max is None else np.clip(tau, -tau_max, tau_max)
