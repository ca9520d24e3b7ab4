"""Vectorised MuJoCo locomotion environment (gymnasium vector API, same-step autoreset).

N robots are stepped together by ``mujoco.rollout`` over all cores (an env gets its own
MjModel when randomization gives it its own physics).  With ideal PD, and with the
actuator network as a compiled MuJoCo plugin (the default where a C compiler exists), the
MuJoCo model applies the actuation itself, so a control step is one rollout call of
``decimation`` physics steps; an actuation evaluated in Python (the network's numpy
backend) turns joint targets into torques at every physics step, one rollout call each:
then the envs are split into one group per thread,
and each group (its rows of the state, its own network evaluator) is stepped by its own
thread with a single-threaded rollout, so physics and network overlap across groups
(numpy and MuJoCo release the GIL).  Simulation, actuation, observations
(:mod:`robot_rl.obs_spec`; their running state, the action clip and the joint targets in
:class:`robot_rl.obs_state.ObsActionState`, the class the robot runs too), rewards
(:mod:`policies.rewards`), commands and randomization are separate pieces composed here.  With ``EnvConfig.physics = "warp"`` the envs are
instead the worlds of one MuJoCo Warp model on a GPU (:mod:`robot_rl.sim_warp`), the
actuation runs in torch beside it at every physics step (:class:`TorchActuation`), and
the state comes back to the host once per control step for observations and rewards.

Contract with the RL runner: ``reset(seed) -> (obs, info)``; ``step(actions) -> (obs,
reward, terminated, truncated, info)`` where envs that ended are reset in the same call,
``obs`` holds their first new observation and ``info["final_obs"]`` (with the boolean mask
``info["_final_obs"]``) their last one, for bootstrapping at truncation.  A fall (base
too low or too tilted) or a contact of the base with the ground is termination; the time
limit is truncation.  ``info["reward_terms"]`` holds each term.  The ground (a plane,
a terrain tile or the terrain curriculum's grid) is :class:`policies.terrain_curriculum.EnvTerrain`:
envs spawn on it, and fall heights and foot heights are measured from it.
"""

from __future__ import annotations

import copy
import os
from concurrent.futures import ThreadPoolExecutor

import gymnasium as gym
import mujoco
import numpy as np
import torch
from mujoco import rollout

from policies import rewards
from policies.actuation import IdealPD, TorchActuation, make_actuation
from policies.config import EnvConfig
from policies.randomization import SysidParams, randomize
from policies.terrain_curriculum import EnvTerrain
from robot_rl.obs_spec import ObservationSpec, projected_gravity
from robot_rl.obs_state import ObsActionState
from robot_rl.robot import load_robot
from robot_rl.sim_mujoco import (
    MujocoModelConfig,
    add_base_contact_sensor,
    build_spec,
    index,
    rollout_pool,
    set_nominal,
)

FOOT_CONTACT_HEIGHT = 0.035  # m: a foot site lower than this touches the ground


class EnvNaNError(RuntimeError):
    """The simulation produced NaN/Inf; the message says where."""


class LeggedEnv(gym.vector.VectorEnv):
    """Command-following locomotion for one robot, N envs in parallel."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, cfg: EnvConfig, sysid: SysidParams | None = None,
                 actuator_dir: str | None = None, spec: ObservationSpec | None = None,
                 seed: int = 0):
        self.cfg = cfg
        self.robot = load_robot(cfg.robot)
        self.spec = spec or ObservationSpec(
            num_joints=self.robot.num_joints, action_scale=cfg.action_scale,
            history=cfg.obs_history, base_linvel=cfg.obs_base_linvel,
            gait_frequency=cfg.gait_frequency, gait_amplitude=cfg.gait_amplitude,
            gait_leg_length=self.robot.nominal_base_height if cfg.gait_stride else 0.0)
        self.num_envs = cfg.num_envs
        self.sysid = sysid
        nthread = cfg.threads or os.cpu_count() or 1
        # env groups stepped in parallel threads when the actuation runs in Python at every
        # physics step (each group: its own single-threaded rollout and network evaluator)
        bounds = np.linspace(0, self.num_envs, min(nthread, self.num_envs) + 1).astype(int)
        self._groups = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        self._warp = None  # the MuJoCo Warp worlds, with physics "warp"
        if cfg.physics == "warp":
            from robot_rl.sim_warp import resolve_device

            device = resolve_device(cfg.physics_device)
            self.actuation = TorchActuation(cfg.actuation, self.robot, self.num_envs,
                                            cfg.physics_dt, actuator_dir, torch.device(device))
        else:
            self.actuation = make_actuation(cfg.actuation, self.robot, self.num_envs,
                                            cfg.physics_dt, actuator_dir, groups=self._groups,
                                            backend=cfg.actuator_backend,
                                            motor_ranges=cfg.motor_randomization, seed=seed)
        self.ground = EnvTerrain(cfg, np.random.default_rng([seed, 2]))
        model_spec = build_spec(self.robot, MujocoModelConfig(
            timestep=cfg.physics_dt,
            pd_actuators=isinstance(self.actuation, IdealPD) and self.actuation.in_model),
            terrain=self.ground.field)
        if self.actuation.in_model and hasattr(self.actuation, "add_to_spec"):
            self.actuation.add_to_spec(model_spec)  # e.g. the actuator network plugin
        if cfg.terminate_on_base_contact:
            add_base_contact_sensor(model_spec, self.robot)  # the last sensor
        self.base_model = model_spec.compile()
        if sysid is not None:
            from sysid.apply import apply_params  # stage 1's single definition of the mapping

            self._apply = apply_params
            self._apply(self.base_model, sysid.values, self.robot)
        # envs share the base model until randomization gives one its own (a physics step
        # over fewer distinct models runs from warmer caches)
        self.models = [self.base_model] * self.num_envs
        self.idx = index(self.base_model, self.robot)
        if cfg.physics == "warp":
            self._init_warp(device)
        self._scratch = mujoco.MjData(self.base_model)  # for apply_params' mj_setConst
        on_cpu = self._warp is None  # MuJoCo's C library steps the envs in CPU threads
        self._datas = [mujoco.MjData(self.base_model) for _ in range(nthread)] if on_cpu else []
        self._rollout = rollout_pool(nthread, pin=cfg.pin_threads) if on_cpu else None
        self._pool = (ThreadPoolExecutor(len(self._groups) - 1, thread_name_prefix="env-group")
                      if on_cpu and not self.actuation.in_model and len(self._groups) > 1 else None)
        # one chunk of envs per thread for single physics steps (short: fewer hand-offs win);
        # calls of several steps are long enough that four chunks per thread, balancing the
        # threads' load, win
        self._chunk = max(1, -(-self.num_envs // nthread))
        self._chunk_multistep = max(1, -(-self.num_envs // (4 * nthread)))
        self._state_spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        d = mujoco.MjData(self.base_model)
        set_nominal(self.base_model, d, self.robot)
        nstate = mujoco.mj_stateSize(self.base_model, self._state_spec)
        self._init_state = np.zeros(nstate)
        mujoco.mj_getState(self.base_model, d, self._init_state, self._state_spec)
        self.state = np.tile(self._init_state, (self.num_envs, 1))
        self.sensordata = np.zeros((self.num_envs, self.base_model.nsensordata))
        # per env group, with a Python actuation only: a single-threaded rollout, its MjData
        # and the ctrl/state/sensor buffers of one physics step
        m = self.base_model
        self._group_sims = [] if self.actuation.in_model or not on_cpu else [
            (rollout.Rollout(nthread=0), mujoco.MjData(m), np.zeros((g.stop - g.start, 1, m.nu)),
             np.zeros((g.stop - g.start, 1, nstate)),
             np.zeros((g.stop - g.start, 1, m.nsensordata))) for g in self._groups]
        self._buffers: dict[int, tuple[np.ndarray, ...]] = {}  # rollout ctrl/state/sensors by nstep
        nq, nv = self.base_model.nq, self.base_model.nv
        self._qpos = slice(1, 1 + nq)
        self._qvel = slice(1 + nq, 1 + nq + nv)
        self._joint_q, self._joint_qd = 1 + self.idx.qpos, 1 + nq + self.idx.qvel  # state columns
        self.q0 = self.robot.array("nominal_pose")
        self.q_lo, self.q_hi = self.robot.array("q_min"), self.robot.array("q_max")
        nj, nf = self.robot.num_joints, len(self.robot.foot_links)
        # history, last action (observed), gait clock, action clip and joint targets: the
        # state machine the onboard controller runs too
        self.obs_state = ObsActionState(self.spec, self.num_envs, self.q0, self.q_lo, self.q_hi,
                                        cfg.control_dt)
        self.command = np.zeros((self.num_envs, 3))
        # the action before the last one (for the action-rate cost)
        self.prev_action = np.zeros((self.num_envs, nj))
        self._pending = [np.zeros((self.num_envs, nj)) for _ in range(cfg.action_latency)]
        self.steps = np.zeros(self.num_envs, dtype=np.int64)
        self.air_time = np.zeros((self.num_envs, len(self.robot.foot_links)))
        self.curriculum = cfg.rewards.curriculum_start
        self.rng = np.random.default_rng(seed)
        # IMU errors seen in the observation, per env, drawn at episode start (own stream)
        self._imu_rng = np.random.default_rng([seed, 1])
        self.gyro_bias = np.zeros((self.num_envs, 3))
        self.gravity_bias = np.zeros((self.num_envs, 3))
        self._nf = nf
        sd = 0
        self._sens = {}
        torque = (("torque", nj),) if self.actuation.in_model else ()
        contact = (("base_contact", 1),) if cfg.terminate_on_base_contact else ()
        for name, width in (("quat", 4), ("gyro", 3), ("linvel", 3), ("acc", 3),
                            ("foot_pos", 3 * nf), ("foot_vel", 3 * nf), *torque, *contact):
            self._sens[name] = slice(sd, sd + width)
            sd += width
        assert sd == self.base_model.nsensordata
        obs_space = gym.spaces.Box(-np.inf, np.inf, (self.spec.size,), np.float32)
        act_space = gym.spaces.Box(-np.inf, np.inf, (nj,), np.float32)
        self.single_observation_space, self.single_action_space = obs_space, act_space
        self.observation_space = gym.vector.utils.batch_space(obs_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(act_space, self.num_envs)
        self.randomized: list[dict[str, float]] = [{} for _ in range(self.num_envs)]
        # whether the base touched the ground at any physics step of the last control step
        self.base_contact = np.zeros(self.num_envs, dtype=bool)

    # -- state accessors ------------------------------------------------------------------
    @property
    def qpos(self) -> np.ndarray:
        return self.state[:, self._qpos]

    @property
    def qvel(self) -> np.ndarray:
        return self.state[:, self._qvel]

    def joint_q(self) -> np.ndarray:
        return self.state[:, self._joint_q]

    def joint_qd(self) -> np.ndarray:
        return self.state[:, self._joint_qd]

    # -- episode management -----------------------------------------------------------------
    def _sample_commands(self, ids: np.ndarray) -> None:
        c = self.cfg.commands
        n = len(ids)
        cmd = np.stack([self.rng.uniform(*c.vx, n), self.rng.uniform(*c.vy, n),
                        self.rng.uniform(*c.yaw, n)], axis=1)
        cmd[self.rng.random(n) < c.zero_fraction] = 0.0
        self.command[ids] = cmd

    def _reset_envs(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        nq = self.base_model.nq
        if self.cfg.randomize and self.sysid is not None:
            for i in ids:
                # an env's own model, copied once and then re-parameterized in place
                # (apply_params sets every field it touches from the URDF values)
                if self.models[i] is self.base_model:
                    self.models[i] = copy.copy(self.base_model)
                values = randomize(self.sysid.ranges, self.rng)
                self._apply(self.models[i], values, self.robot, self._scratch)
                self.randomized[i] = values
            if self._warp is not None:
                self._warp.set_models(ids, [self.models[i] for i in ids])
        st = np.tile(self._init_state, (len(ids), 1))
        qpos = st[:, 1:1 + nq]
        qpos[:, 1 + self.idx.qpos - 1] += self.rng.normal(0, 0.05, (len(ids), len(self.q0)))
        yaw = self.rng.uniform(-np.pi, np.pi, len(ids))
        qpos[:, 3:7] = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], axis=1)
        qpos[:, 0:3] += self.ground.spawn[ids]  # on the env's tile, above the ground there
        self.state[ids] = st
        self._sample_commands(ids)
        self.prev_action[ids] = 0.0
        for p in self._pending:
            p[ids] = 0.0
        self.steps[ids] = 0
        self.air_time[ids] = 0.0
        phase = self.rng.uniform(0, 2 * np.pi, len(ids))
        # a roll/pitch error (d_r, d_p) tilts the measured gravity by about (d_p, -d_r, 0)
        self.gyro_bias[ids] = self._imu_rng.normal(0.0, self.cfg.imu_gyro_bias, (len(ids), 3))
        self.gravity_bias[ids, :2] = self._imu_rng.normal(0.0, self.cfg.imu_tilt_bias, (len(ids), 2))
        # the base sensors the first observation reads, for the new state (at rest; the IMU
        # site sits at the base origin): not the last values of the ended episode
        self.sensordata[ids, self._sens["quat"]] = qpos[:, 3:7]
        self.sensordata[ids, self._sens["linvel"]] = 0.0
        self.sensordata[ids, self._sens["gyro"]] = 0.0
        q, qd = self.joint_q()[ids], self.joint_qd()[ids]
        self.obs_state.reset(ids, q, qd, phase)
        if self._warp is None:
            self.actuation.reset(ids, q, qd)
        else:  # on the stream the actuation runs on (a GPU's kernels are ordered per stream)
            with self._warp.scope():
                self.actuation.reset(ids, q, qd)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
            self._imu_rng = np.random.default_rng([seed, 1])
        self._reset_envs(np.arange(self.num_envs))
        self._simulate(np.tile(self.q0, (self.num_envs, 1)), 1)  # fills sensordata
        return self._observe(), {}

    # -- stepping ----------------------------------------------------------------------------
    def _simulate(self, q_target: np.ndarray, nstep: int) -> np.ndarray:
        """Advance every env ``nstep`` physics steps towards ``q_target`` (N, J); returns the
        mean joint torque over those steps (N, J)."""
        if self._warp is not None:
            return self._simulate_warp(q_target, nstep)
        if not self.actuation.in_model:
            if self._pool is None:
                return self._simulate_group(0, q_target, nstep)
            futures = [self._pool.submit(self._simulate_group, g, q_target, nstep)
                       for g in range(1, len(self._groups))]
            first = self._simulate_group(0, q_target, nstep)
            return np.concatenate([first, *(f.result() for f in futures)])
        # the model applies the PD law: the targets are the controls of all nstep steps, and
        # its torque sensors say what it applied
        sensors = self._rollout_steps(np.broadcast_to(q_target[:, None], (self.num_envs, nstep,
                                                                           q_target.shape[1])))
        if self.cfg.terminate_on_base_contact:
            self.base_contact = sensors[:, :, self._sens["base_contact"].start].max(axis=1) > 0
        return sensors[:, :, self._sens["torque"]].mean(axis=1)

    def _simulate_group(self, g: int, q_target: np.ndarray, nstep: int) -> np.ndarray:
        """Advance the envs of group ``g`` ``nstep`` physics steps with the actuation
        evaluated in Python at every step (one single-threaded rollout call per step, run
        by the calling thread: the groups run in parallel threads, physics and numpy
        release the GIL); returns the group's mean joint torque (n, J)."""
        rows = self._groups[g]
        ro, data, ctrl, out_state, out_sens = self._group_sims[g]
        state, models, targets = self.state[rows], self.models[rows], q_target[rows]
        tau_sum = np.zeros_like(targets)
        touch = np.zeros(len(targets), dtype=bool)
        for _ in range(nstep):
            tau = self.actuation(targets, state[:, self._joint_q], state[:, self._joint_qd],
                                 envs=rows)
            ctrl[:, 0, self.idx.actuator] = tau
            ro.rollout(models, [data], state, ctrl, nstep=1, skip_checks=True,
                       state=out_state, sensordata=out_sens)
            state[:] = out_state[:, 0]  # a view of self.state's rows
            tau_sum += tau
            if self.cfg.terminate_on_base_contact:
                touch |= out_sens[:, 0, self._sens["base_contact"].start] > 0
        self.sensordata[rows] = out_sens[:, 0]
        self.base_contact[rows] = touch
        return tau_sum / nstep

    def _init_warp(self, device: str) -> None:
        """The envs as the worlds of one MuJoCo Warp model on ``device``: with
        randomization, the model fields a draw changes get one row per world."""
        from robot_rl.sim_warp import WarpWorlds, varying_fields

        m = self.base_model
        if mujoco.mj_stateSize(m, mujoco.mjtState.mjSTATE_FULLPHYSICS) != 1 + m.nq + m.nv:
            raise ValueError("physics 'warp': the model must hold no state besides time, qpos "
                             "and qvel (no actuator or plugin state)")
        per_world = []
        if self.cfg.randomize and self.sysid is not None:
            probes = [self._apply(copy.copy(m), randomize(self.sysid.ranges, np.random.default_rng(k)),
                                  self.robot) for k in range(2)]
            per_world = varying_fields(m, probes)
        standing = mujoco.MjData(m)  # the worlds start standing (qpos0 sinks into the floor)
        set_nominal(m, standing, self.robot)
        self._warp = WarpWorlds(m, self.num_envs, device, per_world, data=standing,
                                nconmax=self.cfg.warp_nconmax or None, njmax=self.cfg.warp_njmax)
        dev = self._warp.torch_device
        self._warp_q, self._warp_qd, self._warp_act = (torch.as_tensor(a, device=dev) for a in (
            self.idx.qpos, self.idx.qvel, self.idx.actuator))

    def _simulate_warp(self, q_target: np.ndarray, nstep: int) -> np.ndarray:
        """:meth:`_simulate` on the MuJoCo Warp worlds: the host state (edited by resets
        and pushes) goes to the device, ``nstep`` physics steps run there with the torch
        actuation at every step, and the state and sensors come back."""
        w, dev = self._warp, self._warp.torch_device
        contact = self._sens.get("base_contact")
        with w.scope(), torch.inference_mode():
            w.set_state(self.state[:, 0], self.state[:, self._qpos], self.state[:, self._qvel])
            w.clear_overflows()
            target = torch.as_tensor(q_target, dtype=torch.float32, device=dev)
            tau_sum = torch.zeros_like(target)
            touch = torch.zeros(self.num_envs, dtype=torch.bool, device=dev)
            for _ in range(nstep):
                tau = self.actuation(target, w.qpos[:, self._warp_q], w.qvel[:, self._warp_qd])
                w.ctrl[:, self._warp_act] = tau
                w.step()
                tau_sum += tau
                if contact is not None:
                    touch |= w.sensordata[:, contact.start] > 0
            overflows = w.overflows()
            if overflows:
                from robot_rl.sim_warp import WarpOverflowError

                raise WarpOverflowError(
                    f"MuJoCo Warp ran out of room in envs {sorted(overflows)[:8]} at step "
                    f"{self.steps[sorted(overflows)[:8]].tolist()}: {overflows} (NEFC: raise "
                    f"env.warp_njmax, now {w.njmax}; contacts: raise env.warp_nconmax, now "
                    f"{w.nconmax})")
            self.state[:, 0] = w.time.cpu().numpy()
            self.state[:, self._qpos] = w.qpos.cpu().numpy()
            self.state[:, self._qvel] = w.qvel.cpu().numpy()
            self.sensordata = w.sensordata.cpu().numpy().astype(np.float64)
            self.base_contact = touch.cpu().numpy()
            return (tau_sum / nstep).cpu().numpy().astype(np.float64)

    def _rollout_steps(self, controls: np.ndarray) -> np.ndarray:
        """One ``mujoco.rollout`` call over all envs with ``controls`` (N, nstep, J) for the
        actuators; returns the sensor values of each step (N, nstep, nsensordata)."""
        nstep = controls.shape[1]
        if nstep not in self._buffers:
            m = self.base_model
            self._buffers[nstep] = (np.zeros((self.num_envs, nstep, m.nu)),
                                    np.zeros((self.num_envs, nstep, len(self._init_state))),
                                    np.zeros((self.num_envs, nstep, m.nsensordata)))
        ctrl, state, sens = self._buffers[nstep]
        ctrl[:, :, self.idx.actuator] = controls
        self._rollout.rollout(self.models, self._datas, np.ascontiguousarray(self.state), ctrl,
                              nstep=nstep, skip_checks=True, state=state, sensordata=sens,
                              chunk_size=self._chunk if nstep == 1 else self._chunk_multistep)
        self.state = state[:, -1].copy()
        self.sensordata = sens[:, -1]
        return sens

    def _observe(self, ids: np.ndarray | None = None, noise: bool = True,
                 gravity: np.ndarray | None = None) -> np.ndarray:
        """Observations of all envs, or of the envs ``ids`` only, with the configured noise:
        uniform, zero mean, standard deviation ``obs_noise`` (uniform noise as in legged_gym;
        float32 uniforms cost a fifth of Gaussians, 30 us against 150 us per step at 128 envs),
        and each env's IMU bias on the gravity and angular velocity blocks.  The base
        velocity block (``spec.base_linvel``) is the simulator's, as a perfect estimate."""
        r = slice(None) if ids is None else ids
        s = self.sensordata[r]
        if gravity is None:
            gravity = projected_gravity(s[:, self._sens["quat"]])
        obs = self.obs_state.observe(
            q=self.joint_q()[r], qd=self.joint_qd()[r], gravity=gravity + self.gravity_bias[r],
            base_linvel_b=s[:, self._sens["linvel"]],
            base_angvel_b=s[:, self._sens["gyro"]] + self.gyro_bias[r], command=self.command[r],
            ids=ids)
        if noise and self.cfg.obs_noise > 0:
            u = self.rng.random(obs.shape, dtype=np.float32)
            obs += (u - np.float32(0.5)) * np.float32(2.0 * np.sqrt(3.0) * self.cfg.obs_noise)
        return obs

    def step(self, actions):
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (self.num_envs, self.robot.num_joints):
            raise ValueError(f"actions: expected shape {(self.num_envs, self.robot.num_joints)}, "
                             f"got {actions.shape}")
        # NaN/Inf propagate into a sum: one cheap reduction, the rows only on failure
        if not np.isfinite(actions.sum()) and not np.isfinite(actions).all():
            raise EnvNaNError(f"actions contain NaN/Inf in envs {np.where(~np.isfinite(actions).all(1))[0]}")
        self.prev_action = self.obs_state.action
        applied = None  # with a latency, the action of action_latency steps ago
        if self._pending:
            self._pending.append(actions)
            applied = self._pending.pop(0)
        q_target = self.obs_state.act(actions, self.command, applied)
        tau = self._simulate(q_target, self.cfg.decimation)
        self._maybe_push()
        self.steps += 1
        qd = self.joint_qd()
        if not np.isfinite(self.state.sum()) and not np.isfinite(self.state).all():
            bad = np.where(~np.isfinite(self.state).all(1))[0]
            raise EnvNaNError(f"MuJoCo state is NaN/Inf in envs {bad.tolist()} at step "
                              f"{self.steps[bad].tolist()} (randomized params: "
                              f"{[self.randomized[i] for i in bad[:1]]})")
        s = self.sensordata
        quat = s[:, self._sens["quat"]]
        gravity = projected_gravity(quat)
        foot_pos = s[:, self._sens["foot_pos"]].reshape(self.num_envs, self._nf, 3)
        foot_vel = s[:, self._sens["foot_vel"]].reshape(self.num_envs, self._nf, 3)
        foot_height = foot_pos[..., 2] - self.ground.ground(foot_pos[..., 0], foot_pos[..., 1])
        contact = foot_height < FOOT_CONTACT_HEIGHT
        self.air_time += self.cfg.control_dt
        touchdown_air = np.where(contact, self.air_time, 0.0) * (self.air_time > self.cfg.control_dt)
        self.air_time[contact] = 0.0
        st = rewards.StepState(
            command=self.command, base_linvel_b=s[:, self._sens["linvel"]],
            base_angvel_b=s[:, self._sens["gyro"]], gravity_b=gravity,
            tau=tau, qd=qd, action=self.obs_state.action, prev_action=self.prev_action,
            foot_height=foot_height, foot_vel=foot_vel,
            foot_contact=contact, foot_air_time=touchdown_air)
        terms = rewards.compute(st, self.cfg.rewards, self.cfg.control_dt, self.curriculum)
        reward = sum(terms.values())
        height = self.qpos[:, 2] - self.ground.ground(self.qpos[:, 0], self.qpos[:, 1])
        terminated = (height < self.cfg.fall_height_fraction * self.robot.nominal_base_height) | \
                     (-gravity[:, 2] < self.cfg.fall_up_z) | self.base_contact
        truncated = (self.steps >= self.cfg.max_episode_steps) & ~terminated
        done = terminated | truncated
        obs = self._observe(gravity=gravity)
        info: dict = {"reward_terms": terms}
        if done.any():
            ids = np.where(done)[0]
            final = np.zeros_like(obs)
            final[ids] = obs[ids]
            info["final_obs"], info["_final_obs"] = final, done.copy()
            self.ground.episode_end(ids, self.qpos[ids, 0:2], self.command[ids],
                                    self.steps[ids] * self.cfg.control_dt, terminated[ids])
            self._reset_envs(ids)
            obs[ids] = self._observe(ids)
        return obs, reward.astype(np.float32), terminated, truncated, info

    def _maybe_push(self) -> None:
        c = self.cfg
        if c.push_interval <= 0 or c.push_velocity <= 0:
            return
        every = int(round(c.push_interval / c.control_dt))
        push = (self.steps > 0) & (self.steps % every == 0)
        if push.any():
            ids = np.where(push)[0]
            self.state[ids, self._qvel.start:self._qvel.start + 2] += \
                self.rng.uniform(-c.push_velocity, c.push_velocity, (len(ids), 2))

    def set_curriculum(self, factor: float) -> None:
        """Set the cost curriculum factor k_c in (0, 1]."""
        self.curriculum = float(np.clip(factor, 0.0, 1.0))

    def close_extras(self, **kwargs) -> None:
        if self._rollout is not None:
            self._rollout.close()
        for ro, *_ in self._group_sims:
            ro.close()
        if self._pool is not None:
            self._pool.shutdown()
