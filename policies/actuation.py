"""The one actuation seam: joint targets in, joint torques out, at every physics step.

Every model has the same contract, batched over N envs x J joints (numpy float64):
``reset(env_ids, q, qd)`` clears per-env history at episode start, and
``__call__(q_target, q, qd, envs=slice(None)) -> tau`` returns torques (N m), clipped to
the torque limits, for the env rows ``envs`` (the simulator steps groups of envs in
parallel threads, each group asking for its own rows; a model with history keeps one
evaluator per group, so the groups never share state).
``in_model`` says whether the MuJoCo model applies the law itself, with the joint targets
as controls (ideal PD: ``MujocoModelConfig.pd_actuators``; the actuator network: the
``robot_rl.actuator_net`` plugin that ``add_to_spec`` attaches), so that a whole control
step is one ``mujoco.rollout`` call; ``__call__`` is then the reference the model must match.
Ideal PD uses the robot's gains; the actuator network (stage 2) is loaded from its
``actuator.pt`` through the stage's documented runtime loader.  The identified joint
physics of stage 1 (rotor inertia, damping, friction) live in the MuJoCo model itself.
:class:`TorchActuation` is the same two laws on torch tensors, for a simulator whose
state lives on a torch device (MuJoCo Warp): the network through stage 2's torch evaluator.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import mujoco
import numpy as np
import torch

from policies.config import ACTUATIONS
from robot_rl.pd import pd_torque
from robot_rl.robot import RobotDescription


def actuator_checkpoint(actuator_dir: str | Path | None) -> Path:
    """The ``actuator.pt`` of stage 2's output folder (or the file itself), or a clear error."""
    from actuator_net.artifacts import actuator_path  # stage 2's artifact, one definition

    if actuator_dir is None:
        raise ValueError("actuation 'net' needs --actuator <run>/actuator/")
    path = actuator_path(actuator_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no actuator model (run `robot-rl actuator train`)")
    return path


class IdealPD:
    """tau = kp (q_target - q) - kd qd, clipped to +-tau_max."""

    in_model = True

    def __init__(self, robot: RobotDescription):
        self.kp, self.kd, self.tau_max = robot.array("kp"), robot.array("kd"), robot.array("tau_max")

    def reset(self, env_ids: np.ndarray, q: np.ndarray, qd: np.ndarray) -> None:
        """Ideal PD has no history."""

    def __call__(self, q_target: np.ndarray, q: np.ndarray, qd: np.ndarray,
                 envs: slice = slice(None)) -> np.ndarray:
        return pd_torque(self.kp, self.kd, q_target - q, qd, self.tau_max)


class TargetDelay:
    """Per-env delay of the joint targets by whole physics steps, redrawn at every episode
    start from a latency range (s): the bus latency of the randomized actuations.  The first
    call after a reset fills an env's past targets with that call's."""

    def __init__(self, num_envs: int, num_joints: int, physics_dt: float,
                 latency: tuple[float, float]):
        self.latency, self._dt = latency, physics_dt
        self.max_delay = int(round(latency[1] / physics_dt))
        self.delay = np.zeros(num_envs, dtype=int)
        self.targets = np.zeros((num_envs, self.max_delay + 1, num_joints))  # newest first
        self.fresh = np.ones(num_envs, dtype=bool)  # history filled by the next call

    def reset(self, ids: np.ndarray, rng: np.random.Generator) -> None:
        lat = rng.uniform(*self.latency, size=len(ids))
        self.delay[ids] = np.minimum(np.round(lat / self._dt).astype(int), self.max_delay)
        self.fresh[ids] = True

    def __call__(self, q_target: np.ndarray, envs: slice = slice(None)) -> np.ndarray:
        """Push this physics step's targets of the env rows ``envs``; their delayed targets."""
        buf, fresh = self.targets[envs], self.fresh[envs]
        buf[:, 1:] = buf[:, :-1].copy()
        buf[:, 0] = q_target
        if fresh.any():  # an episode's first call: the past targets are this one
            buf[fresh] = q_target[fresh, None]
            self.fresh[envs] = False
        return buf[np.arange(len(buf)), self.delay[envs]]


class RandomizedPD(IdealPD):
    """Ideal PD whose motors differ per env, redrawn at every episode start: gains, strength
    and latency, as legged_gym and walk-these-ways randomize them (no identification)::

        tau = clip(s_p kp (q*(t - d) - q) - s_d kd qd, -s_f tau_max, s_f tau_max)

    with per-env scales s_p, s_d, s_f and a delay d (whole physics steps) drawn uniformly from
    :class:`MotorRandomization`'s ranges.  Evaluated in Python at every physics step."""

    in_model = False

    def __init__(self, robot: RobotDescription, num_envs: int, physics_dt: float,
                 ranges, seed: int = 0):
        super().__init__(robot)
        self.ranges, self.rng = ranges, np.random.default_rng(seed)
        self.scale = np.ones((num_envs, 3))  # s_p, s_d, s_f
        self.lag = TargetDelay(num_envs, len(self.kp), physics_dt, ranges.latency)
        self.delay = self.lag.delay  # per env, physics steps

    def reset(self, env_ids: np.ndarray, q: np.ndarray, qd: np.ndarray) -> None:
        ids = np.asarray(env_ids).reshape(-1)
        r = self.ranges
        lows, highs = zip(r.kp_scale, r.kd_scale, r.strength_scale)
        self.scale[ids] = self.rng.uniform(lows, highs, size=(len(ids), 3))
        self.lag.reset(ids, self.rng)

    def __call__(self, q_target: np.ndarray, q: np.ndarray, qd: np.ndarray,
                 envs: slice = slice(None)) -> np.ndarray:
        delayed = self.lag(q_target, envs)
        s = self.scale[envs]
        lim = s[:, 2:3] * self.tau_max
        return pd_torque(s[:, 0:1] * self.kp, s[:, 1:2] * self.kd, delayed - q, qd, lim)


class NetworkActuation:
    """The learned actuator network of stage 2, evaluated batched with per-env history.

    ``backend`` "plugin": the network runs inside the MuJoCo step
    (:mod:`actuator_net.mujoco_plugin`, compiled C, same arithmetic), attached to the
    model by :meth:`add_to_spec`, with its history in the MuJoCo state; ``in_model`` is
    then True.  "numpy": one numpy evaluator (:class:`actuator_net.runtime.NumpyActuatorNet`)
    per env group of the simulator (``groups``: contiguous slices covering the envs), so
    that the groups' threads run the network in parallel (numpy releases the GIL in its
    array loops).  "auto": the plugin if it builds here, else numpy with a warning.  In
    every case ``__call__`` evaluates the numpy twin (the plugin's reference).
    """

    def __init__(self, robot: RobotDescription, actuator_dir: str | Path, num_envs: int,
                 physics_dt: float, groups: list[slice] | None = None, backend: str = "auto"):
        from actuator_net import mujoco_plugin  # stage 2's runtime
        from actuator_net.runtime import ActuatorNetEvaluator, NumpyActuatorNet

        ref = ActuatorNetEvaluator(actuator_checkpoint(actuator_dir), num_envs=1, physics_dt=physics_dt,
                                   joint_names=list(robot.joint_names))
        self.groups = groups or [slice(0, num_envs)]
        self.nets = {(g.start, g.stop): NumpyActuatorNet.from_evaluator(ref, g.stop - g.start)
                     for g in self.groups}
        self.tau_max = robot.array("tau_max")
        self._tau_max32 = self.tau_max.astype(np.float32)
        self._evaluator, self._joint_names = ref, list(robot.joint_names)
        self.in_model = False
        if backend in ("auto", "plugin"):
            try:
                mujoco_plugin.load()
                self.in_model = True
            except mujoco_plugin.PluginBuildError as e:
                if backend == "plugin":
                    raise
                warnings.warn(f"actuator network evaluated in Python at every physics step "
                              f"(slower): the MuJoCo plugin is unavailable: {e}", stacklevel=2)
        elif backend != "numpy":
            raise ValueError(f"unknown actuator backend {backend!r}; expected auto, plugin or numpy")

    @property
    def history_s(self) -> float:
        """How far back the network's input history reaches (s)."""
        return (self._evaluator.num_lags - 1) * self._evaluator.history_spacing

    def add_to_spec(self, spec: mujoco.MjSpec) -> None:
        """Attach the network plugin to the robot's torque-motor actuators in ``spec``
        (controls become joint targets; torque sensors are appended)."""
        from actuator_net import mujoco_plugin

        mujoco_plugin.attach(spec, self._evaluator, self._joint_names)

    def reset(self, env_ids: np.ndarray, q: np.ndarray, qd: np.ndarray) -> None:
        # history filled with the state of the next call (the first target of the episode)
        ids = np.asarray(env_ids).reshape(-1)
        for g in self.groups:
            mine = ids[(ids >= g.start) & (ids < g.stop)]
            if len(mine):
                self.nets[(g.start, g.stop)].reset(mine - g.start)

    def __call__(self, q_target: np.ndarray, q: np.ndarray, qd: np.ndarray,
                 envs: slice = slice(None)) -> np.ndarray:
        g = self.groups[0] if envs == slice(None) else envs
        net = self.nets.get((g.start, g.stop))
        if net is None:
            raise ValueError(f"env rows {envs} are not one of the groups {self.groups}")
        tau = net(q_target, q, qd)  # float32; the history buffer casts the inputs
        return np.clip(tau, -self._tau_max32, self._tau_max32, out=tau)


class RandomizedNetwork(NetworkActuation):
    """The actuator network with the motor differing per env around it, redrawn at every
    episode start: what the network cannot know about the robot it will drive (a torque
    constant that drifts with temperature and from unit to unit, a driver that saturates
    earlier, a bus that adds latency)::

        tau = clip(s_t net(q*(t - d), q, qd), -s_f tau_max, s_f tau_max)

    with per-env scales s_t (torque), s_f (strength) and a delay d (whole physics steps)
    drawn uniformly from :class:`policies.config.NetworkRandomization`'s ranges.  The
    network's own history sees the delayed targets.  Evaluated in Python at every physics
    step (numpy, one evaluator per env group)."""

    def __init__(self, robot: RobotDescription, actuator_dir: str | Path, num_envs: int,
                 physics_dt: float, ranges, groups: list[slice] | None = None, seed: int = 0):
        super().__init__(robot, actuator_dir, num_envs, physics_dt, groups, backend="numpy")
        self.ranges, self.rng = ranges, np.random.default_rng(seed)
        self.scale = np.ones((num_envs, 2), np.float32)  # s_t, s_f
        self.lag = TargetDelay(num_envs, len(self.tau_max), physics_dt, ranges.latency)
        self.delay = self.lag.delay  # per env, physics steps

    def reset(self, env_ids: np.ndarray, q: np.ndarray, qd: np.ndarray) -> None:
        super().reset(env_ids, q, qd)
        ids = np.asarray(env_ids).reshape(-1)
        r = self.ranges
        lows, highs = zip(r.torque_scale, r.strength_scale)
        self.scale[ids] = self.rng.uniform(lows, highs, size=(len(ids), 2))
        self.lag.reset(ids, self.rng)

    def __call__(self, q_target: np.ndarray, q: np.ndarray, qd: np.ndarray,
                 envs: slice = slice(None)) -> np.ndarray:
        tau = super().__call__(self.lag(q_target, envs), q, qd, envs) * self.scale[envs, 0:1]
        lim = self.scale[envs, 1:2] * self._tau_max32
        return np.clip(tau, -lim, lim, out=tau)


class TorchActuation:
    """Ideal PD or the actuator network as torch ops on ``device``, at every physics step of
    a simulator whose state lives there (:mod:`robot_rl.sim_warp`).  Same contract as the
    numpy models on (N, J) float32 tensors, all envs at once; ``reset`` takes host indices.
    The network runs through stage 2's :class:`actuator_net.runtime.ActuatorNetEvaluator`
    (the arithmetic of the numpy twin and of the MuJoCo plugin)."""

    in_model = False

    def __init__(self, kind: str, robot: RobotDescription, num_envs: int, physics_dt: float,
                 actuator_dir: str | Path | None = None, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        f32 = dict(dtype=torch.float32, device=self.device)
        self.kp, self.kd = (torch.tensor(robot.array(k), **f32) for k in ("kp", "kd"))
        self.tau_max = torch.tensor(robot.array("tau_max"), **f32)
        self.net = None
        if kind == "net":
            from actuator_net.runtime import ActuatorNetEvaluator  # stage 2's runtime

            self.net = ActuatorNetEvaluator(actuator_checkpoint(actuator_dir), num_envs=num_envs, physics_dt=physics_dt,
                                            joint_names=list(robot.joint_names), device=self.device)
        elif kind != "pd":
            raise ValueError(f"unknown actuation {kind!r}; expected 'pd' or 'net' on a torch "
                             "device")

    def reset(self, env_ids: np.ndarray, q=None, qd=None) -> None:
        """The network's history of ``env_ids`` is filled with the state of the next call."""
        if self.net is not None:
            self.net.reset(np.asarray(env_ids).reshape(-1))

    def __call__(self, q_target: torch.Tensor, q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if self.net is None:
                tau = pd_torque(self.kp, self.kd, q_target - q, qd)  # clamped below, in torch
            else:
                tau = self.net(q_target, q, qd)
            return torch.clamp(tau, -self.tau_max, self.tau_max)


def make_actuation(kind: str, robot: RobotDescription, num_envs: int, physics_dt: float,
                   actuator_dir: str | Path | None = None, groups: list[slice] | None = None,
                   backend: str = "auto", motor_ranges=None, net_ranges=None, seed: int = 0):
    """Build the actuation model named ``kind`` ("pd", "pd_random", "net" or "net_random")
    for the env ``groups`` (``backend``: where the network runs, see
    :class:`NetworkActuation`; ``motor_ranges``: :class:`policies.config.MotorRandomization`
    for "pd_random"; ``net_ranges``: :class:`policies.config.NetworkRandomization` for
    "net_random")."""
    if kind == "pd":
        return IdealPD(robot)
    if kind == "pd_random":
        return RandomizedPD(robot, num_envs, physics_dt, motor_ranges, seed)
    if kind == "net":
        return NetworkActuation(robot, actuator_dir, num_envs, physics_dt, groups, backend)
    if kind == "net_random":
        return RandomizedNetwork(robot, actuator_dir, num_envs, physics_dt, net_ranges, groups, seed)
    raise ValueError(f"unknown actuation {kind!r}; expected {', '.join(ACTUATIONS)}")
