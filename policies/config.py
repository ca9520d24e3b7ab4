"""Configuration of the locomotion task (one dataclass per piece, composed)."""

from __future__ import annotations

from dataclasses import dataclass, field

from robot_rl.config import ConfigError
from robot_rl.robot import FALL_HEIGHT_FRACTION, FALL_UP_Z
from robot_rl.terrain import KINDS, TerrainConfig, TerrainError

#: the actuation models, by name (``env.actuation``; built by policies.actuation)
ACTUATIONS = ("pd", "pd_random", "net", "net_random")


@dataclass(frozen=True)
class CommandConfig:
    """Velocity commands, drawn at every episode start (policies/commands.py)."""

    # forward velocity range (m/s)
    vx: tuple[float, float] = (-0.8, 0.8)
    # lateral velocity range (m/s)
    vy: tuple[float, float] = (-0.3, 0.3)
    # yaw rate range (rad/s)
    yaw: tuple[float, float] = (-0.6, 0.6)
    # fraction of episodes commanded to stand still (-)
    zero_fraction: float = 0.1
    # fraction of episodes whose command is drawn where the policy tracks worst: from a
    # cell of the command grid chosen in proportion to its measured tracking shortfall
    # (policies/commands.py); 0 = every command uniform
    adaptive: float = 0.0
    # the adaptive draw's grid: cells along forward, lateral, yaw rate
    adaptive_cells: tuple[int, int, int] = (8, 3, 3)
    # the adaptive draw: weight of a cell's remembered shortfall against a new episode's
    # (exponential average per episode in the cell, in [0, 1))
    adaptive_memory: float = 0.8

    def __post_init__(self) -> None:
        for f in ("vx", "vy", "yaw"):
            lo, hi = getattr(self, f)
            if not lo <= hi:
                raise ConfigError(f"env.commands.{f}: need low <= high, got {(lo, hi)}")
        if not 0 <= self.zero_fraction <= 1:
            raise ConfigError("env.commands.zero_fraction: need a fraction in [0, 1], got "
                              f"{self.zero_fraction!r}")
        if not 0 <= self.adaptive <= 1:
            raise ConfigError("env.commands.adaptive: need a fraction in [0, 1], got "
                              f"{self.adaptive!r}")
        if len(self.adaptive_cells) != 3 or any(int(k) != k or k < 1 for k in self.adaptive_cells):
            raise ConfigError("env.commands.adaptive_cells: need three whole numbers >= 1 "
                              f"(forward, lateral, yaw), got {self.adaptive_cells!r}")
        if not 0 <= self.adaptive_memory < 1:
            raise ConfigError("env.commands.adaptive_memory: need a weight in [0, 1), got "
                              f"{self.adaptive_memory!r}")


@dataclass(frozen=True)
class RewardConfig:
    """Scales of the named reward terms (a zero scale skips the term).

    Tracking terms use the logistic kernel K(x) = 4 / (exp(x/s) + 2 + exp(-x/s)) in (0, 1];
    cost terms are multiplied by the curriculum factor k_c, which grows from
    ``curriculum_start`` towards 1 as k_c <- k_c ** curriculum_rate each iteration.
    """

    # forward/lateral velocity tracking (per second)
    lin_vel: float = 2.0
    # yaw rate tracking (per second)
    ang_vel: float = 1.0
    # kernel width for velocity tracking (m/s, rad/s)
    kernel_width: float = 0.15
    # the same tracking through a narrower kernel, added (per second; 0 = off): the wide
    # kernel pays 0.9 of its peak for a 0.1 m/s shortfall, so the costs of moving win
    # against the last tenth of a command; the narrow one pays for closing it (on since
    # five full-pipeline pairs on the A1: sideways error 0.151 -> 0.092 m/s IQM, forward
    # and yaw indistinguishable; bench/RESULTS.md, "Narrow-kernel tracking terms")
    lin_vel_fine: float = 1.0
    ang_vel_fine: float = 0.5
    # kernel width of the *_fine terms (m/s, rad/s)
    fine_kernel_width: float = 0.05
    # torque cost, sum of squares of the joint torques in units of the robot's weight
    # moment m g h (total mass, gravity, nominal base height; per s): the same share of the
    # reward on a small robot and a large one, where a cost per N^2 m^2 weighs a twice as
    # heavy, taller robot's walking ~5x more (A1: m g h = 33 N m, so -0.22 is the former
    # -2e-4 per N^2 m^2; aliengo: 77 N m)
    torque: float = -0.22
    # joint speed cost, sum of squares (per rad^2/s)
    joint_speed: float = -2e-4
    # foot slip: horizontal speed of feet in contact, sum of squares (per m^2/s)
    foot_slip: float = -0.2
    # foot clearance: swing feet below the target height (per m s)
    foot_clearance: float = -5.0
    # target swing-foot height above the ground (m)
    clearance_height: float = 0.06
    # on terrain, the clearance counts from the highest ground under the foot or up to this
    # far ahead of it along its horizontal motion (m; 0 = under it only): a foot about to
    # meet a riser is too low before it stubs, not after; no effect on flat ground
    clearance_lookahead: float = 0.08
    # orientation: squared xy of gravity in the base frame (per s)
    orientation: float = -2.0
    # action smoothness: squared change of action (per s)
    smoothness: float = -0.01
    # vertical base velocity, squared (per s m^2/s^2)
    base_vertical: float = -1.0
    # roll/pitch rates, squared (per s rad^2/s^2)
    base_roll_pitch: float = -0.05
    # feet air time: (air time - target) summed at each touchdown, while moving (per s of air)
    feet_air_time: float = 1.0
    # target air time of a step (s)
    air_time_target: float = 0.25
    # constant reward for staying alive (per s)
    alive: float = 0.5
    # initial curriculum factor on cost terms (-)
    curriculum_start: float = 0.3
    # curriculum exponent per training iteration (-)
    curriculum_rate: float = 0.997

    def __post_init__(self) -> None:
        if not self.clearance_lookahead >= 0:
            raise ConfigError(f"env.rewards.clearance_lookahead: need >= 0 m, got "
                              f"{self.clearance_lookahead!r}")
        for f in ("kernel_width", "fine_kernel_width", "air_time_target"):
            if not getattr(self, f) > 0:
                raise ConfigError(f"env.rewards.{f}: need > 0, got {getattr(self, f)!r}")
        if not 0 < self.curriculum_start <= 1 or not 0 < self.curriculum_rate <= 1:
            raise ConfigError("env.rewards.curriculum_start and curriculum_rate: need values "
                              f"in (0, 1], got {self.curriculum_start!r} and "
                              f"{self.curriculum_rate!r}")


@dataclass(frozen=True)
class MotorRandomization:
    """Per-env motor ranges of the "pd_random" actuation (hand-set, no identification)."""

    # driver position gain, multiple of the robot's kp (-)
    kp_scale: tuple[float, float] = (0.7, 1.3)
    # driver damping gain, multiple of the robot's kd (-)
    kd_scale: tuple[float, float] = (0.5, 1.5)
    # torque limit, multiple of the robot's tau_max (-)
    strength_scale: tuple[float, float] = (0.7, 1.1)
    # delay of the joint targets (s), rounded to physics steps
    latency: tuple[float, float] = (0.0, 0.02)

    def __post_init__(self) -> None:
        for f in ("kp_scale", "kd_scale", "strength_scale", "latency"):
            lo, hi = getattr(self, f)
            if not 0 <= lo <= hi:
                raise ConfigError(f"env.motor_randomization.{f}: need 0 <= low <= high, got "
                                  f"{(lo, hi)}")


@dataclass(frozen=True)
class NetworkRandomization:
    """Per-env motor ranges around the actuator network ("net_random"): what the network,
    fitted to one robot's logs, cannot know about the motor it will drive on the day."""

    # network torque, multiple (-): torque constant drift with temperature, unit to unit
    torque_scale: tuple[float, float] = (0.8, 1.2)
    # torque limit, multiple of the robot's tau_max (-): a driver that saturates earlier
    strength_scale: tuple[float, float] = (0.8, 1.1)
    # extra delay of the joint targets beyond the network's own (s), rounded to physics steps
    latency: tuple[float, float] = (0.0, 0.01)

    def __post_init__(self) -> None:
        for f in ("torque_scale", "strength_scale", "latency"):
            lo, hi = getattr(self, f)
            if not 0 <= lo <= hi:
                raise ConfigError(f"env.net_randomization.{f}: need 0 <= low <= high, got "
                                  f"{(lo, hi)}")


@dataclass(frozen=True)
class TerrainCurriculumConfig:
    """The terrain curriculum: a grid of tiles (``env.terrain``'s size, spacing and
    platform), one column per kind, one row per difficulty level (policies/terrain_curriculum.py).
    The grid is one height field in the model, copied with every env's own model under
    randomization: with many levels use a coarser ``env.terrain.horizontal_scale`` (0.1 m)."""

    # put the envs on the tile grid and move them between levels
    enabled: bool = False
    # terrain kinds, one column each
    kinds: tuple[str, ...] = KINDS
    # difficulty levels, one row each (difficulty = level / (levels - 1))
    levels: int = 10
    # envs start on a level drawn uniformly from 0 .. this
    max_init_level: int = 4

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if not self.kinds or bad:
            raise TerrainError(f"env.terrain_curriculum.kinds: unknown terrain(s) {bad}; "
                               f"one or more of {', '.join(KINDS)}")
        if self.levels < 1 or not 0 <= self.max_init_level < self.levels:
            raise TerrainError(f"env.terrain_curriculum.levels: need levels >= 1 and 0 <= "
                               f"max_init_level < levels, got {self.levels} and "
                               f"{self.max_init_level}")


@dataclass(frozen=True)
class EnvConfig:
    """The vectorised MuJoCo locomotion environment."""

    # robot description name
    robot: str = "a1"
    # number of parallel robots
    num_envs: int = 128
    # physics time step (s)
    physics_dt: float = 0.005
    # physics steps per control step (-)
    decimation: int = 4
    # episode length before truncation (s)
    episode_seconds: float = 20.0
    # physics engine: "mujoco" (MuJoCo's C library, envs split over CPU threads) or "warp"
    # (MuJoCo Warp: the envs as the worlds of one batched model on ``physics_device``,
    # float32, with the actuation in torch beside it; needs ``robot-rl[warp]``)
    physics: str = "mujoco"
    # device of the "warp" physics: "auto" (the first GPU, else the CPU), "cuda:0", "cpu"
    physics_device: str = "auto"
    # "warp" physics: constraint rows allocated per world (a fallen A1 needs up to ~90; a
    # world that runs out stops the env with an error naming this setting)
    warp_njmax: int = 160
    # "warp" physics: contacts allocated per world, pooled over the worlds (0: MuJoCo Warp's
    # default for the model)
    warp_nconmax: int = 0
    # worker threads for physics (0: all cores)
    threads: int = 0
    # keep each physics thread on its own CPU (Linux): the scheduler otherwise wakes both
    # next to the Python thread after every control step
    pin_threads: bool = True
    # actuation model: "pd" (ideal PD with the robot's gains), "pd_random" (ideal PD with
    # per-env gains, strength and latency drawn from ``motor_randomization``), "net"
    # (actuator network) or "net_random" (the network with per-env torque, strength and
    # extra latency drawn from ``net_randomization``)
    actuation: str = "pd"
    # where the actuator network runs: "plugin" (inside the MuJoCo step, compiled on first
    # use; a control step is one rollout call), "numpy" (in Python at every physics step),
    # "auto" (plugin when a C compiler is found, else numpy with a warning)
    actuator_backend: str = "auto"
    # trotting reference under the policy: gait clock frequency (Hz; 0 = none)
    gait_frequency: float = 2.0
    # trotting reference: thigh lift at the top of a swing (rad)
    gait_amplitude: float = 0.25
    # trotting reference: lift plateau k >= 1 (lift = amplitude min(1, k max(sin, 0)); 1 = a
    # sine; robot_rl.obs_spec.ObservationSpec.gait_lift_plateau)
    gait_lift_plateau: float = 1.0
    # trotting reference: add a stride proportional to the forward command
    gait_stride: bool = True
    # trotting reference: the stride also follows the lateral and yaw-rate commands (hips
    # sweep the feet sideways, each leg's thigh its own forward speed; ObservationSpec.
    # gait_feet); off by default: on the A1 it did not measurably help (bench/RESULTS.md)
    gait_stride_turn: bool = False
    # action scale: q_target = nominal + reference + action_scale * action (rad per unit)
    action_scale: float = 0.25
    # action latency (control steps, 0 or more)
    action_latency: int = 0
    # observation noise, std in units of the scaled observation (-)
    obs_noise: float = 0.02
    # observe the base linear velocity (on a robot: the onboard estimate of
    # deploy/estimator.py); off, the policy does without it, from its joint-state history,
    # and needs only what a robot measures
    obs_base_linvel: bool = False
    # joint-state history in the observation (control steps)
    obs_history: int = 2
    # IMU errors in the observation, drawn per env at every episode start: gyro bias,
    # standard deviation per axis (rad/s)
    imu_gyro_bias: float = 0.01
    # IMU errors: roll/pitch error of the orientation (mounting and filter), standard
    # deviation per axis, seen as an offset of the gravity observation (rad)
    imu_tilt_bias: float = 0.015
    # random push: interval (s, 0 disables) and max horizontal base velocity kick (m/s)
    push_interval: float = 8.0
    push_velocity: float = 0.5
    # apply domain randomization from the sysid ranges at every episode start
    randomize: bool = True
    # stand on the floor stage 1 measured where it found one compliant (``params.json``
    # ``ground.floor``: a sprung pad under each foot, robot_rl.sim_mujoco.FloorPad); off,
    # MuJoCo's nearly rigid contact whatever the floor
    sysid_floor: bool = True
    # base height below which the robot has fallen (fraction of the nominal height)
    fall_height_fraction: float = FALL_HEIGHT_FRACTION
    # base tilt beyond which the robot has fallen: min z of the base up-vector (-)
    fall_up_z: float = FALL_UP_Z
    # a contact between the base (trunk) and the ground at any physics step also ends the
    # episode as terminated, like a fall
    terminate_on_base_contact: bool = True
    # the ground: a terrain tile under every env ("flat": the plane, as without terrain);
    # base height for falls and foot heights are measured from the ground under them
    terrain: TerrainConfig = field(default_factory=TerrainConfig)
    # the tile-grid curriculum over terrain kinds and difficulty levels
    terrain_curriculum: TerrainCurriculumConfig = field(default_factory=TerrainCurriculumConfig)
    commands: CommandConfig = field(default_factory=CommandConfig)
    rewards: RewardConfig = field(default_factory=RewardConfig)
    motor_randomization: MotorRandomization = field(default_factory=MotorRandomization)
    net_randomization: NetworkRandomization = field(default_factory=NetworkRandomization)

    def __post_init__(self) -> None:
        if self.actuation not in ACTUATIONS:
            raise ConfigError(f"env.actuation must be one of {', '.join(ACTUATIONS)}, got "
                              f"{self.actuation!r}")
        if self.actuation in ("pd_random", "net_random") and self.physics == "warp":
            raise ConfigError(f"env.actuation {self.actuation!r} runs on the CPU physics only")
        if self.actuator_backend not in ("auto", "plugin", "numpy"):
            raise ConfigError("env.actuator_backend must be 'auto', 'plugin' or 'numpy', got "
                              f"{self.actuator_backend!r}")
        if self.physics not in ("mujoco", "warp"):
            raise ConfigError(f"env.physics must be 'mujoco' or 'warp', got {self.physics!r}")
        if self.warp_njmax < 1 or self.warp_nconmax < 0:
            raise ConfigError("env.warp_njmax must be >= 1 and env.warp_nconmax >= 0, got "
                              f"{self.warp_njmax} and {self.warp_nconmax}")
        for name, ok, want in (("num_envs", self.num_envs >= 1, ">= 1"),
                               ("decimation", self.decimation >= 1, ">= 1"),
                               ("physics_dt", self.physics_dt > 0, "> 0"),
                               ("action_latency", self.action_latency >= 0, ">= 0"),
                               ("obs_history", self.obs_history >= 1, ">= 1"),
                               ("imu_gyro_bias", self.imu_gyro_bias >= 0, ">= 0"),
                               ("imu_tilt_bias", self.imu_tilt_bias >= 0, ">= 0")):
            if not ok:
                raise ConfigError(f"env.{name} must be {want}, got {getattr(self, name)!r}")

    @property
    def control_dt(self) -> float:
        return self.physics_dt * self.decimation

    @property
    def max_episode_steps(self) -> int:
        return int(round(self.episode_seconds / self.control_dt))
