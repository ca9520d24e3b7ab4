"""Batched physics under the locomotion task: N robots stepped together behind one interface.

:class:`BatchedPhysics` is all that :class:`policies.env.LeggedEnv` asks of a simulator:

* ``step(q_target, n) -> PhysicsStep``: advance every env ``n`` physics steps towards the
  joint targets (N, J), the actuation (:mod:`policies.actuation`) applied at every step;
  returns the mean joint torque over those steps and, for each sensor named in
  ``any_step``, whether it read > 0 at any of them (e.g. the base touching the ground).
* the state on the host, read and edited by the task between steps (pushes, resets):
  ``state`` (N, nstate), MuJoCo's full physics state per env (time, qpos, qvel, and
  actuator or plugin state), with the views ``qpos``, ``qvel``, and ``joint_q()``,
  ``joint_qd()`` in the robot's joint order; ``sensor(names)``: the columns of
  ``sensordata`` of one sensor, or of adjacent ones, looked up by name in the model.
* ``reset(ids, qpos, sensors)``: envs ``ids`` at rest at ``qpos``, their actuation
  history cleared.
* per-env models: ``models`` (host ``MjModel``s, the one definition of an env's physical
  parameters), ``env_model(i)`` to edit env ``i``'s in place, ``models_changed(ids)`` after.

Implementations: :class:`policies.physics_cpu.CpuPhysics` (MuJoCo's C library over CPU
threads through ``mujoco.rollout``) and :class:`policies.physics_warp.WarpPhysics` (the
worlds of one MuJoCo Warp model on a GPU).  :func:`make_actuation` builds the actuation a
backend runs and :func:`make_physics` the backend, both from ``EnvConfig.physics``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np
import torch

from policies.actuation import TorchActuation
from policies.actuation import make_actuation as numpy_actuation
from policies.config import EnvConfig
from robot_rl.robot import RobotDescription
from robot_rl.sim_mujoco import index, set_nominal


@dataclass(frozen=True)
class PhysicsStep:
    """What :meth:`BatchedPhysics.step` returns besides the new state."""

    tau: np.ndarray  # (N, J) joint torque applied, mean over the physics steps (N m)
    any_step: dict[str, np.ndarray]  # sensor name -> (N,) bool: > 0 at any physics step


class BatchedPhysics:
    """N envs of ``model`` (the robot's, from :func:`robot_rl.sim_mujoco.build_spec`)
    driven by ``actuation``; subclasses implement :meth:`step`.  Every env starts standing
    at the robot's nominal pose.  ``any_step``: sensors (one value each) that :meth:`step`
    watches at every physics step."""

    def __init__(self, model: mujoco.MjModel, robot: RobotDescription, actuation,
                 num_envs: int, any_step: tuple[str, ...] = ()):
        self.model, self.robot, self.actuation = model, robot, actuation
        self.num_envs = num_envs
        self.idx = index(model, robot)
        # envs share the base model until randomization gives one its own (a physics step
        # over fewer distinct models runs from warmer caches)
        self.models = [model] * num_envs
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        d = mujoco.MjData(model)
        set_nominal(model, d, robot)
        self.init_state = np.zeros(mujoco.mj_stateSize(model, spec))
        mujoco.mj_getState(model, d, self.init_state, spec)
        self.state = np.tile(self.init_state, (num_envs, 1))
        self.sensordata = np.zeros((num_envs, model.nsensordata))
        nq, nv = model.nq, model.nv
        self._qpos, self._qvel = slice(1, 1 + nq), slice(1 + nq, 1 + nq + nv)  # state columns
        self._joint_q, self._joint_qd = 1 + self.idx.qpos, 1 + nq + self.idx.qvel
        self._columns: dict[str | tuple[str, ...], slice] = {}
        self.any_step = tuple(any_step)
        for name in self.any_step:
            cols = self.columns(name)
            if cols.stop - cols.start != 1:
                raise ValueError(f"any_step sensor {name!r}: expected one value")

    # -- state --------------------------------------------------------------------------
    @property
    def qpos(self) -> np.ndarray:
        return self.state[:, self._qpos]

    @property
    def qvel(self) -> np.ndarray:
        return self.state[:, self._qvel]

    @property
    def init_qpos(self) -> np.ndarray:
        """qpos of the nominal standing pose every env starts from (nq,)."""
        return self.init_state[self._qpos]

    def joint_q(self) -> np.ndarray:
        return self.state[:, self._joint_q]

    def joint_qd(self) -> np.ndarray:
        return self.state[:, self._joint_qd]

    def columns(self, names: str | tuple[str, ...]) -> slice:
        """The ``sensordata`` columns of the sensor ``names`` (or of several sensors, in
        that order, adjacent in the model), looked up by name."""
        cols = self._columns.get(names)
        if cols is None:
            adr = []
            for name in (names,) if isinstance(names, str) else names:
                i = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SENSOR, name)
                if i < 0:
                    raise KeyError(f"the model has no sensor {name!r}")
                a = int(self.model.sensor_adr[i])
                adr.extend(range(a, a + int(self.model.sensor_dim[i])))
            if adr != list(range(adr[0], adr[0] + len(adr))):
                raise ValueError(f"sensors {names} are not adjacent in sensordata")
            cols = self._columns[names] = slice(adr[0], adr[0] + len(adr))
        return cols

    def sensor(self, names: str | tuple[str, ...]) -> np.ndarray:
        """The values of sensor ``names`` (see :meth:`columns`) after the last step (N, dim),
        a view of ``sensordata``."""
        return self.sensordata[:, self.columns(names)]

    # -- episodes and models ------------------------------------------------------------
    def reset(self, ids: np.ndarray, qpos: np.ndarray,
              sensors: dict[str, np.ndarray | float] | None = None) -> None:
        """Envs ``ids`` at rest at ``qpos`` (len(ids), nq), the rest of their state as at
        the start, and their actuation history cleared.  ``sensors``: values the named
        sensors show until the next step computes them."""
        st = np.tile(self.init_state, (len(ids), 1))
        st[:, self._qpos] = qpos
        self.state[ids] = st
        for name, value in (sensors or {}).items():
            self.sensordata[ids, self.columns(name)] = value
        self._reset_actuation(ids, self.joint_q()[ids], self.joint_qd()[ids])

    def _reset_actuation(self, ids: np.ndarray, q: np.ndarray, qd: np.ndarray) -> None:
        self.actuation.reset(ids, q, qd)

    def env_model(self, i: int) -> mujoco.MjModel:
        """Env ``i``'s own model, to edit in place (a copy of the base model, made on first
        use); call :meth:`models_changed` after editing."""
        if self.models[i] is self.model:
            self.models[i] = copy.copy(self.model)
        return self.models[i]

    def models_changed(self, ids: np.ndarray) -> None:
        """The models of envs ``ids`` were edited: the next step uses them."""

    def step(self, q_target: np.ndarray, nstep: int) -> PhysicsStep:
        """Advance every env ``nstep`` physics steps towards ``q_target`` (N, J)."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop the backend's threads, if any."""


def thread_groups(num_envs: int, nthread: int) -> list[slice]:
    """The env groups that CPU threads step in parallel with an actuation evaluated in
    Python (contiguous rows, one group per thread)."""
    bounds = np.linspace(0, num_envs, min(nthread, num_envs) + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def make_actuation(cfg: EnvConfig, robot: RobotDescription, actuator_dir: str | Path | None,
                   seed: int = 0):
    """The actuation ``cfg.actuation`` in the form the ``cfg.physics`` backend runs it:
    numpy models (one network evaluator per CPU thread group), or torch beside Warp."""
    if cfg.physics == "warp":
        from robot_rl.sim_warp import resolve_device

        device = torch.device(resolve_device(cfg.physics_device))
        return TorchActuation(cfg.actuation, robot, cfg.num_envs, cfg.physics_dt, actuator_dir,
                              device)
    return numpy_actuation(
        cfg.actuation, robot, cfg.num_envs, cfg.physics_dt, actuator_dir,
        groups=thread_groups(cfg.num_envs, cpu_threads(cfg)), backend=cfg.actuator_backend,
        motor_ranges=cfg.motor_randomization, net_ranges=cfg.net_randomization, seed=seed)


def cpu_threads(cfg: EnvConfig) -> int:
    """Threads of the CPU physics: ``cfg.threads``, or all cores."""
    return cfg.threads or os.cpu_count() or 1


def make_physics(cfg: EnvConfig, model: mujoco.MjModel, robot: RobotDescription, act,
                 any_step: tuple[str, ...] = (),
                 variants: Callable[[], list[mujoco.MjModel]] | None = None) -> BatchedPhysics:
    """The ``cfg.physics`` backend over ``model`` with the actuation ``act``
    (:func:`make_actuation`).  ``variants``: models an env's randomization may produce
    (a backend that keeps the fields that vary per env on a device asks for them)."""
    if cfg.physics == "warp":
        from policies.physics_warp import WarpPhysics

        return WarpPhysics(model, robot, act, cfg.num_envs, cfg.physics_device, any_step,
                           variants=variants() if variants else [],
                           nconmax=cfg.warp_nconmax or None, njmax=cfg.warp_njmax)
    from policies.physics_cpu import CpuPhysics

    return CpuPhysics(model, robot, act, cfg.num_envs, cpu_threads(cfg), any_step,
                      pin=cfg.pin_threads)
