"""Vectorised locomotion task (gymnasium vector API, same-step autoreset) over batched physics.

The env is task logic: commands, observations (:mod:`robot_rl.obs_spec`; their running
state, the action clip and the joint targets in :class:`robot_rl.obs_state.ObsActionState`,
the class the robot runs too), rewards (:mod:`policies.rewards`), termination and
randomization, over a batched physics backend (:class:`policies.physics.BatchedPhysics`:
``step(q_target, n)``, the state on the host, sensors looked up by name) that applies the
actuation (:mod:`policies.actuation`) at every physics step: MuJoCo's C library over CPU
threads (:mod:`policies.physics_cpu`), or MuJoCo Warp on a GPU
(``EnvConfig.physics = "warp"``, :mod:`policies.physics_warp`).

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

import gymnasium as gym
import mujoco
import numpy as np

from policies import rewards
from policies.actuation import IdealPD
from policies.commands import CommandSampler
from policies.config import EnvConfig
from policies.physics import make_actuation, make_physics
from policies.randomization import SysidParams, randomize
from policies.terrain_curriculum import EnvTerrain
from robot_rl.obs_spec import ObservationSpec, projected_gravity
from robot_rl.obs_state import ObsActionState
from robot_rl.robot import RobotDescription, load_robot
from robot_rl.sim_mujoco import MujocoModelConfig, add_base_contact_sensor, build_spec, stride_feet
from sysid.model import weight_moment

FOOT_CONTACT_HEIGHT = 0.035  # m: a foot site lower than this touches the ground
# sensors of the robot's model read by name (robot_rl.sim_mujoco.build_spec, and the base
# contact sensor the env adds); the foot sensors are foot_pos_<link>, foot_vel_<link>
QUAT, GYRO, LINVEL, BASE_CONTACT = "base_quat", "base_gyro", "base_linvel_local", "base_contact"


class EnvNaNError(RuntimeError):
    """The simulation produced NaN/Inf; the message says where."""


def observation_spec(cfg: EnvConfig, robot: RobotDescription) -> ObservationSpec:
    """The observation layout and action convention a training config gives ``robot``."""
    stride = cfg.gait_stride
    return ObservationSpec(
        num_joints=robot.num_joints, action_scale=cfg.action_scale,
        history=cfg.obs_history, base_linvel=cfg.obs_base_linvel,
        gait_frequency=cfg.gait_frequency, gait_amplitude=cfg.gait_amplitude,
        gait_lift_plateau=cfg.gait_lift_plateau,
        gait_leg_length=robot.nominal_base_height if stride else 0.0,
        gait_feet=stride_feet(robot) if stride and cfg.gait_stride_turn else ())


class LeggedEnv(gym.vector.VectorEnv):
    """Command-following locomotion for one robot, N envs in parallel."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, cfg: EnvConfig, sysid: SysidParams | None = None,
                 actuator_dir: str | None = None, spec: ObservationSpec | None = None,
                 seed: int = 0):
        self.cfg = cfg
        self.robot = load_robot(cfg.robot)
        self.spec = spec or observation_spec(cfg, self.robot)
        self.num_envs = cfg.num_envs
        self.sysid = sysid
        self.actuation = make_actuation(cfg, self.robot, actuator_dir, seed)
        self.ground = EnvTerrain(cfg, np.random.default_rng([seed, 2]))
        #: the compliant floor stage 1 measured (None: MuJoCo's rigid contact)
        self.floor = sysid.floor if sysid is not None and cfg.sysid_floor else None
        model_spec = build_spec(self.robot, MujocoModelConfig(
            timestep=cfg.physics_dt,
            pd_actuators=isinstance(self.actuation, IdealPD) and self.actuation.in_model,
            floor=self.floor), terrain=self.ground.field)
        if self.actuation.in_model and hasattr(self.actuation, "add_to_spec"):
            self.actuation.add_to_spec(model_spec)  # e.g. the actuator network plugin
        if cfg.terminate_on_base_contact:
            add_base_contact_sensor(model_spec, self.robot, BASE_CONTACT)
        self.base_model = model_spec.compile()
        # the robot's weight moment m g h (N m), nominal (before any identified payload):
        # the unit of the torque cost, so reward scales carry across robots
        self.torque_unit = weight_moment(self.robot)
        # the encoders' zero offsets (rad, per env): the robot measures q + o and its driver's
        # PD tracks the target on that reading (stage 1 identifies them; 0 without it)
        self.encoder_offset = np.zeros((cfg.num_envs, self.robot.num_joints))
        if sysid is not None:
            from sysid.apply import apply_params, encoder_offsets  # stage 1's mapping

            self._apply, self._offsets = apply_params, encoder_offsets
            self._apply(self.base_model, sysid.values, self.robot)
            self.encoder_offset[:] = encoder_offsets(sysid.values, self.robot)
        self._scratch = mujoco.MjData(self.base_model)  # for apply_params' mj_setConst
        self.physics = make_physics(
            cfg, self.base_model, self.robot, self.actuation,
            any_step=(BASE_CONTACT,) if cfg.terminate_on_base_contact else (),
            variants=self._randomization_variants)
        self.q0 = self.robot.array("nominal_pose")
        self.q_lo, self.q_hi = self.robot.array("q_min"), self.robot.array("q_max")
        nj, nf = self.robot.num_joints, len(self.robot.foot_links)
        # history, last action (observed), gait clock, action clip and joint targets: the
        # state machine the onboard controller runs too
        self.obs_state = ObsActionState(self.spec, self.num_envs, self.q0, self.q_lo, self.q_hi,
                                        cfg.control_dt)
        self.command = np.zeros((self.num_envs, 3))
        # the commands' draw (uniform, or where tracking falls short) and each episode's
        # summed tracking shortfall so far (the adaptive draw's feedback)
        self.commands = CommandSampler(cfg.commands)
        self._shortfall = np.zeros(self.num_envs)
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
        self._foot_pos = tuple(f"foot_pos_{f}" for f in self.robot.foot_links)
        self._foot_vel = tuple(f"foot_vel_{f}" for f in self.robot.foot_links)
        obs_space = gym.spaces.Box(-np.inf, np.inf, (self.spec.size,), np.float32)
        act_space = gym.spaces.Box(-np.inf, np.inf, (nj,), np.float32)
        self.single_observation_space, self.single_action_space = obs_space, act_space
        self.observation_space = gym.vector.utils.batch_space(obs_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(act_space, self.num_envs)
        self.randomized: list[dict[str, float]] = [{} for _ in range(self.num_envs)]
        # whether the base touched the ground at any physics step of the last control step
        self.base_contact = np.zeros(self.num_envs, dtype=bool)
        # height of each foot above the ground under it (m, N x F), at the last step
        self.foot_height = np.zeros((self.num_envs, len(self.robot.foot_links)))

    # -- the physics state, on the host -------------------------------------------------
    @property
    def state(self) -> np.ndarray:
        """MuJoCo's full physics state of every env (N, nstate), editable between steps."""
        return self.physics.state

    @property
    def models(self) -> list[mujoco.MjModel]:
        return self.physics.models

    @property
    def qpos(self) -> np.ndarray:
        return self.physics.qpos

    @property
    def qvel(self) -> np.ndarray:
        return self.physics.qvel

    def joint_q(self) -> np.ndarray:
        """The true joint angles (N, J)."""
        return self.physics.joint_q()

    def measured_q(self) -> np.ndarray:
        """The joint angles as the robot's encoders read them: true angle + zero offset."""
        return self.physics.joint_q() + self.encoder_offset

    def joint_qd(self) -> np.ndarray:
        return self.physics.joint_qd()

    def _randomization_variants(self) -> list[mujoco.MjModel]:
        """Two models as randomization draws them (for a backend that asks which fields vary)."""
        if not (self.cfg.randomize and self.sysid is not None):
            return []
        return [self._apply(copy.copy(self.base_model), randomize(
            self.sysid.ranges, np.random.default_rng(k)), self.robot) for k in range(2)]

    # -- episode management -----------------------------------------------------------------
    def _sample_commands(self, ids: np.ndarray) -> None:
        self.command[ids] = self.commands.sample(len(ids), self.rng)
        self._shortfall[ids] = 0.0  # the new episode's tracking so far

    def _track_shortfall(self, st: rewards.StepState) -> None:
        """Add this step's tracking shortfall, 1 - the tracking kernels' mean (weighted as
        the reward weighs them), to each env's episode sum (adaptive commands only)."""
        r = self.cfg.rewards
        lin, ang = rewards.tracking_kernels(st, r.kernel_width)
        wl, wa = (abs(r.lin_vel), abs(r.ang_vel)) if (r.lin_vel or r.ang_vel) else (1.0, 1.0)
        self._shortfall += 1.0 - (wl * lin + wa * ang) / (wl + wa)

    def _episodes_ended(self, ids: np.ndarray, terminated: np.ndarray) -> None:
        """Feed the adaptive command draw the ended episodes' shortfall: the mean over the
        episode's full length, a fall counting every step it did not live as untracked."""
        lost = np.where(terminated, self.cfg.max_episode_steps - self.steps[ids], 0)
        shortfall = (self._shortfall[ids] + lost) / self.cfg.max_episode_steps
        self.commands.update(self.command[ids], np.clip(shortfall, 0.0, 1.0))

    def _reset_envs(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        if self.cfg.randomize and self.sysid is not None:
            for i in ids:
                # an env's own model, re-parameterized in place (apply_params sets every
                # field it touches from the URDF values)
                values = randomize(self.sysid.ranges, self.rng)
                self._apply(self.physics.env_model(i), values, self.robot, self._scratch)
                # offsets without a range keep their fitted value, as model fields do
                self.encoder_offset[i] = self._offsets({**self.sysid.values, **values}, self.robot)
                self.randomized[i] = values
            self.physics.models_changed(ids)
        qpos = np.tile(self.physics.init_qpos, (len(ids), 1))
        qpos[:, self.physics.idx.qpos] += self.rng.normal(0, 0.05, (len(ids), len(self.q0)))
        yaw = self.rng.uniform(-np.pi, np.pi, len(ids))
        qpos[:, 3:7] = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], axis=1)
        qpos[:, 0:3] += self.ground.spawn[ids]  # on the env's tile, above the ground there
        # at rest: the base sensors the first observation reads, for the new state (the IMU
        # site sits at the base origin), not the last values of the ended episode
        self.physics.reset(ids, qpos, sensors={QUAT: qpos[:, 3:7], LINVEL: 0.0, GYRO: 0.0})
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
        self.obs_state.reset(ids, self.measured_q()[ids], self.joint_qd()[ids], phase)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
            self._imu_rng = np.random.default_rng([seed, 1])
        self._reset_envs(np.arange(self.num_envs))
        self.physics.step(self.q0 - self.encoder_offset, 1)  # fills the sensors
        return self._observe(), {}

    def _observe(self, ids: np.ndarray | None = None, noise: bool = True,
                 gravity: np.ndarray | None = None) -> np.ndarray:
        """Observations of all envs, or of the envs ``ids`` only, with the configured noise:
        The joint angles are the encoders' (``measured_q``: with stage 1's zero offsets).
        Noise: uniform, zero mean, standard deviation ``obs_noise`` (uniform noise as in legged_gym;
        float32 uniforms cost a fifth of Gaussians, 30 us against 150 us per step at 128 envs),
        and each env's IMU bias on the gravity and angular velocity blocks.  The base
        velocity block (``spec.base_linvel``) is the simulator's, as a perfect estimate."""
        r = slice(None) if ids is None else ids
        sensor = self.physics.sensor
        if gravity is None:
            gravity = projected_gravity(sensor(QUAT)[r])
        obs = self.obs_state.observe(
            q=self.measured_q()[r], qd=self.joint_qd()[r], gravity=gravity + self.gravity_bias[r],
            base_linvel_b=sensor(LINVEL)[r], base_angvel_b=sensor(GYRO)[r] + self.gyro_bias[r],
            command=self.command[r], ids=ids)
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
        # the driver's PD on the encoder: kp (q* - (q + o)) = kp ((q* - o) - q)
        out = self.physics.step(q_target - self.encoder_offset, self.cfg.decimation)
        self.base_contact = out.any_step.get(BASE_CONTACT, self.base_contact)
        self._maybe_push()
        self.steps += 1
        qd = self.joint_qd()
        if not np.isfinite(self.state.sum()) and not np.isfinite(self.state).all():
            bad = np.where(~np.isfinite(self.state).all(1))[0]
            raise EnvNaNError(f"MuJoCo state is NaN/Inf in envs {bad.tolist()} at step "
                              f"{self.steps[bad].tolist()} (randomized params: "
                              f"{[self.randomized[i] for i in bad[:1]]})")
        sensor = self.physics.sensor
        gravity = projected_gravity(sensor(QUAT))
        foot_pos = sensor(self._foot_pos).reshape(self.num_envs, self._nf, 3)
        foot_vel = sensor(self._foot_vel).reshape(self.num_envs, self._nf, 3)
        foot_height = foot_pos[..., 2] - self.ground.ground(foot_pos[..., 0], foot_pos[..., 1])
        contact = foot_height < FOOT_CONTACT_HEIGHT
        clearance = self._clearance_height(foot_pos, foot_vel, foot_height)
        self.foot_height = foot_height
        self.air_time += self.cfg.control_dt
        touchdown_air = np.where(contact, self.air_time, 0.0) * (self.air_time > self.cfg.control_dt)
        self.air_time[contact] = 0.0
        st = rewards.StepState(
            command=self.command, base_linvel_b=sensor(LINVEL), base_angvel_b=sensor(GYRO),
            gravity_b=gravity, tau=out.tau, qd=qd, action=self.obs_state.action, prev_action=self.prev_action,
            foot_height=foot_height, foot_vel=foot_vel,
            foot_contact=contact, foot_air_time=touchdown_air, torque_unit=self.torque_unit,
            foot_clearance_height=clearance)
        terms = rewards.compute(st, self.cfg.rewards, self.cfg.control_dt, self.curriculum)
        reward = sum(terms.values())
        if self.cfg.commands.adaptive > 0:
            self._track_shortfall(st)
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
            if self.cfg.commands.adaptive > 0:
                self._episodes_ended(ids, terminated[ids])
            self._reset_envs(ids)
            obs[ids] = self._observe(ids)
        return obs, reward.astype(np.float32), terminated, truncated, info

    def _clearance_height(self, foot_pos: np.ndarray, foot_vel: np.ndarray,
                          foot_height: np.ndarray) -> np.ndarray | None:
        """Feet's height (N, F) above the highest ground under them or at half and all of
        ``rewards.clearance_lookahead`` ahead along their horizontal motion; None on flat
        ground (the foot clearance then reads ``foot_height``)."""
        look = self.cfg.rewards.clearance_lookahead
        if self.ground.field is None or look <= 0:
            return None
        v = foot_vel[..., :2]
        speed = np.sqrt(np.sum(v * v, axis=-1, keepdims=True))
        step = look * v / np.maximum(speed, 1e-6)  # 0 for a foot at rest
        out = foot_height
        for f in (0.5, 1.0):
            ahead = self.ground.ground(foot_pos[..., 0] + f * step[..., 0],
                                       foot_pos[..., 1] + f * step[..., 1])
            out = np.minimum(out, foot_pos[..., 2] - ahead)
        return out

    def _maybe_push(self) -> None:
        c = self.cfg
        if c.push_interval <= 0 or c.push_velocity <= 0:
            return
        every = int(round(c.push_interval / c.control_dt))
        push = (self.steps > 0) & (self.steps % every == 0)
        if push.any():
            ids = np.where(push)[0]
            self.qvel[ids, 0:2] += self.rng.uniform(-c.push_velocity, c.push_velocity,
                                                    (len(ids), 2))

    def set_curriculum(self, factor: float) -> None:
        """Set the cost curriculum factor k_c in (0, 1]."""
        self.curriculum = float(np.clip(factor, 0.0, 1.0))

    def close_extras(self, **kwargs) -> None:
        self.physics.close()
