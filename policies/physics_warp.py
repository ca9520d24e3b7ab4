"""Batched physics on MuJoCo Warp: the envs as the worlds of one model on a GPU.

The worlds live on the device (:class:`robot_rl.sim_warp.WarpWorlds`); the actuation runs
in torch beside them at every physics step (:class:`policies.actuation.TorchActuation`).
The host state (edited by the task between steps: resets, pushes) goes to the device at
the start of each :meth:`WarpPhysics.step`, and the state and sensors come back at its
end, once per control step.  With randomization, the model fields an env's draws change
get one row per world, copied from the env's host model when it changes.
"""

from __future__ import annotations

import mujoco
import numpy as np
import torch

from policies.physics import BatchedPhysics, PhysicsStep
from robot_rl.robot import RobotDescription
from robot_rl.sim_mujoco import set_nominal
from robot_rl.sim_warp import WarpOverflowError, WarpWorlds, varying_fields


class WarpPhysics(BatchedPhysics):
    """:class:`policies.physics.BatchedPhysics` on MuJoCo Warp on ``device``.
    ``variants``: models an env's randomization may produce (the fields in which they
    differ from ``model`` get one row per world); ``nconmax`` / ``njmax``: contacts and
    constraint rows allocated per world (:class:`robot_rl.sim_warp.WarpWorlds`)."""

    def __init__(self, model: mujoco.MjModel, robot: RobotDescription, actuation,
                 num_envs: int, device: str = "auto", any_step: tuple[str, ...] = (),
                 variants: list[mujoco.MjModel] = (), nconmax: int | None = None,
                 njmax: int | None = None):
        if mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS) != 1 + model.nq + model.nv:
            raise ValueError("physics 'warp': the model must hold no state besides time, qpos "
                             "and qvel (no actuator or plugin state)")
        super().__init__(model, robot, actuation, num_envs, any_step)
        per_world = varying_fields(model, list(variants)) if len(variants) else []
        standing = mujoco.MjData(model)  # the worlds start standing (qpos0 sinks into the floor)
        set_nominal(model, standing, robot)
        self.worlds = WarpWorlds(model, num_envs, device, per_world, data=standing,
                                 nconmax=nconmax, njmax=njmax)
        dev = self.worlds.torch_device
        self._q, self._qd, self._act = (torch.as_tensor(a, device=dev) for a in (
            self.idx.qpos, self.idx.qvel, self.idx.actuator))

    def _reset_actuation(self, ids: np.ndarray, q: np.ndarray, qd: np.ndarray) -> None:
        # on the stream the actuation runs on (a GPU's kernels are ordered per stream)
        with self.worlds.scope():
            self.actuation.reset(ids, q, qd)

    def models_changed(self, ids: np.ndarray) -> None:
        self.worlds.set_models(ids, [self.models[i] for i in ids])

    def step(self, q_target: np.ndarray, nstep: int) -> PhysicsStep:
        w, dev = self.worlds, self.worlds.torch_device
        watched = {name: self.columns(name).start for name in self.any_step}
        with w.scope(), torch.inference_mode():
            w.set_state(self.state[:, 0], self.qpos, self.qvel)
            w.clear_overflows()
            target = torch.as_tensor(q_target, dtype=torch.float32, device=dev)
            tau_sum = torch.zeros_like(target)
            touch = {name: torch.zeros(self.num_envs, dtype=torch.bool, device=dev)
                     for name in watched}
            for _ in range(nstep):
                tau = self.actuation(target, w.qpos[:, self._q], w.qvel[:, self._qd])
                w.ctrl[:, self._act] = tau
                w.step()
                tau_sum += tau
                for name, col in watched.items():
                    touch[name] |= w.sensordata[:, col] > 0
            overflows = w.overflows()
            if overflows:
                raise WarpOverflowError(
                    f"MuJoCo Warp ran out of room in envs {sorted(overflows)[:8]}: {overflows} "
                    f"(NEFC: raise env.warp_njmax, now {w.njmax}; contacts: raise "
                    f"env.warp_nconmax, now {w.nconmax})")
            self.state[:, 0] = w.time.cpu().numpy()
            self.state[:, self._qpos] = w.qpos.cpu().numpy()
            self.state[:, self._qvel] = w.qvel.cpu().numpy()
            self.sensordata = w.sensordata.cpu().numpy().astype(np.float64)
            return PhysicsStep((tau_sum / nstep).cpu().numpy().astype(np.float64),
                               {name: t.cpu().numpy() for name, t in touch.items()})
