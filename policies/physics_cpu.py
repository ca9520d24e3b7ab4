"""Batched physics on MuJoCo's C library: the envs stepped by ``mujoco.rollout`` over CPU threads.

An env gets its own ``MjModel`` when randomization gives it its own physics.  With ideal PD,
and with the actuator network as a compiled MuJoCo plugin (the default where a C compiler
exists), the model applies the actuation itself (``actuation.in_model``), so a control step
is one rollout call of ``n`` physics steps over all envs, and the torque sensors say what
was applied.  An actuation evaluated in Python (the network's numpy backend, the randomized
PD) turns joint targets into torques at every physics step, one rollout call each: then the
envs are split into one group per thread (:func:`policies.physics.thread_groups`), and each
group (its rows of the state, its own network evaluator) is stepped by its own thread with
a single-threaded rollout, so physics and network overlap across groups (numpy and MuJoCo
release the GIL).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import mujoco
import numpy as np
from mujoco import rollout

from policies.physics import BatchedPhysics, PhysicsStep, thread_groups
from robot_rl.robot import RobotDescription
from robot_rl.sim_mujoco import rollout_pool


class CpuPhysics(BatchedPhysics):
    """:class:`policies.physics.BatchedPhysics` on ``nthread`` CPU threads (``pin``: each
    rollout worker on its own CPU, see :func:`robot_rl.sim_mujoco.rollout_pool`)."""

    def __init__(self, model: mujoco.MjModel, robot: RobotDescription, actuation,
                 num_envs: int, nthread: int, any_step: tuple[str, ...] = (), pin: bool = True):
        super().__init__(model, robot, actuation, num_envs, any_step)
        self.groups = thread_groups(num_envs, nthread)
        self._datas = [mujoco.MjData(model) for _ in range(nthread)]
        self._rollout = rollout_pool(nthread, pin=pin)
        self._pool = (ThreadPoolExecutor(len(self.groups) - 1, thread_name_prefix="env-group")
                      if not actuation.in_model and len(self.groups) > 1 else None)
        # one chunk of envs per thread for single physics steps (short: fewer hand-offs win);
        # calls of several steps are long enough that four chunks per thread, balancing the
        # threads' load, win
        self._chunk = max(1, -(-num_envs // nthread))
        self._chunk_multistep = max(1, -(-num_envs // (4 * nthread)))
        nstate = len(self.init_state)
        # per env group, with a Python actuation only: a single-threaded rollout, its MjData
        # and the ctrl/state/sensor buffers of one physics step
        self._group_sims = [] if actuation.in_model else [
            (rollout.Rollout(nthread=0), mujoco.MjData(model), np.zeros((g.stop - g.start, 1, model.nu)),
             np.zeros((g.stop - g.start, 1, nstate)),
             np.zeros((g.stop - g.start, 1, model.nsensordata))) for g in self.groups]
        self._buffers: dict[int, tuple[np.ndarray, ...]] = {}  # rollout ctrl/state/sensors by nstep
        # an in-model actuation's torque sensors (robot_rl.sim_mujoco, the network plugin)
        self._torque = (self.columns(tuple(f"torque_{j}" for j in robot.joint_names))
                        if actuation.in_model else None)

    def step(self, q_target: np.ndarray, nstep: int) -> PhysicsStep:
        if not self.actuation.in_model:
            if self._pool is None:
                parts = [self._step_group(0, q_target, nstep)]
            else:
                futures = [self._pool.submit(self._step_group, g, q_target, nstep)
                           for g in range(1, len(self.groups))]
                parts = [self._step_group(0, q_target, nstep), *(f.result() for f in futures)]
            return PhysicsStep(np.concatenate([tau for tau, _ in parts]),
                               {name: np.concatenate([touch[name] for _, touch in parts])
                                for name in self.any_step})
        # the model applies the actuation: the targets are the controls of all nstep steps
        sensors = self.rollout_steps(np.broadcast_to(q_target[:, None], (self.num_envs, nstep,
                                                                         q_target.shape[1])))
        return PhysicsStep(sensors[:, :, self._torque].mean(axis=1),
                           {name: sensors[:, :, self.columns(name).start].max(axis=1) > 0
                            for name in self.any_step})

    def _step_group(self, g: int, q_target: np.ndarray,
                    nstep: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Advance the envs of group ``g`` ``nstep`` physics steps with the actuation
        evaluated in Python at every step (one single-threaded rollout call per step, run
        by the calling thread); returns the group's mean joint torque (n, J) and its
        ``any_step`` flags."""
        rows = self.groups[g]
        ro, data, ctrl, out_state, out_sens = self._group_sims[g]
        state, models, targets = self.state[rows], self.models[rows], q_target[rows]
        tau_sum = np.zeros_like(targets)
        touch = {name: np.zeros(len(targets), dtype=bool) for name in self.any_step}
        for _ in range(nstep):
            tau = self.actuation(targets, state[:, self._joint_q], state[:, self._joint_qd],
                                 envs=rows)
            ctrl[:, 0, self.idx.actuator] = tau
            ro.rollout(models, [data], state, ctrl, nstep=1, skip_checks=True,
                       state=out_state, sensordata=out_sens)
            state[:] = out_state[:, 0]  # a view of self.state's rows
            tau_sum += tau
            for name, t in touch.items():
                t |= out_sens[:, 0, self.columns(name).start] > 0
        self.sensordata[rows] = out_sens[:, 0]
        return tau_sum / nstep, touch

    def rollout_steps(self, controls: np.ndarray) -> np.ndarray:
        """One ``mujoco.rollout`` call over all envs with ``controls`` (N, nstep, J) for the
        actuators; returns the sensor values of each step (N, nstep, nsensordata)."""
        nstep = controls.shape[1]
        if nstep not in self._buffers:
            m = self.model
            self._buffers[nstep] = (np.zeros((self.num_envs, nstep, m.nu)),
                                    np.zeros((self.num_envs, nstep, len(self.init_state))),
                                    np.zeros((self.num_envs, nstep, m.nsensordata)))
        ctrl, state, sens = self._buffers[nstep]
        ctrl[:, :, self.idx.actuator] = controls
        self._rollout.rollout(self.models, self._datas, np.ascontiguousarray(self.state), ctrl,
                              nstep=nstep, skip_checks=True, state=state, sensordata=sens,
                              chunk_size=self._chunk if nstep == 1 else self._chunk_multistep)
        self.state = state[:, -1].copy()
        self.sensordata = sens[:, -1]
        return sens

    def close(self) -> None:
        self._rollout.close()
        for ro, *_ in self._group_sims:
            ro.close()
        if self._pool is not None:
            self._pool.shutdown()
