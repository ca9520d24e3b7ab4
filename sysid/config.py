"""Configuration of stage 1 (system identification): one frozen dataclass per piece."""

from __future__ import annotations

from dataclasses import dataclass, field

from robot_rl.config import ConfigError


def _check_range(name: str, r: tuple[float, float]) -> None:
    if not (r[0] <= r[1]):
        raise ConfigError(f"{name}: low {r[0]} above high {r[1]}")


@dataclass(frozen=True)
class BoundsConfig:
    """Physical bounds of each parameter kind: ranges are clipped to them, and a
    parameter the data cannot determine gets the whole interval as its range."""

    # reflected rotor inertia (kg m^2)
    armature: tuple[float, float] = (0.0, 0.02)
    # viscous joint damping (N m s/rad)
    damping: tuple[float, float] = (0.0, 2.0)
    # Coulomb joint friction (N m): a worn or cold gearbox holds several N m (15 % of the
    # A1's 33.5 N m is 5)
    coulomb: tuple[float, float] = (0.0, 5.0)
    # encoder zero offset (rad): a joint calibrated by eye against a jig is off by a degree
    # or two; 0.2 rad (11 degrees) is a motor mounted one spline tooth off
    encoder_offset: tuple[float, float] = (-0.2, 0.2)
    # scale of all link masses and inertias of one leg (-)
    leg_mass_scale: tuple[float, float] = (0.5, 1.5)
    # trunk mass (incl. payload) as a multiple of the nominal trunk mass (-): up to a payload
    # of 1.5x the trunk (quadrupeds are rated for about their trunk's mass: A1 5 kg on a
    # 4.7 kg trunk); a tighter bound marked heavier robots not identifiable
    trunk_mass_factor: tuple[float, float] = (0.6, 2.5)
    # trunk centre of mass, offset from the nominal one along each axis (m): a payload as
    # heavy as the trunk 16 cm off its centre moves it 8 cm
    trunk_com_offset: tuple[float, float] = (-0.08, 0.08)
    # foot-floor Coulomb friction coefficient (-): from ice-like 0.1 (wet tiles ~0.2) to
    # rubber on rough concrete
    foot_friction: tuple[float, float] = (0.1, 1.5)

    def __post_init__(self) -> None:
        for f in self.__dataclass_fields__:
            _check_range(f"bounds.{f}", getattr(self, f))


@dataclass(frozen=True)
class StdFloorConfig:
    """Type-B (model adequacy) std per kind, as (relative to |value|, absolute); the larger
    one joins the data-derived std in quadrature.  It covers what no resampling of the data
    can see: MuJoCo differs from the robot in ways the fit does not model (torque sampled
    once per control period, smoothed vs hard Coulomb friction, delayed rotor inertia,
    integrator, inertia balancing).  Sized from identifications against the stand-in's
    known truth (a1 and aliengo, several seeds: the errors seen there)."""

    # rotor inertia: (-, kg m^2)
    armature: tuple[float, float] = (0.05, 2e-5)
    # damping: (-, N m s/rad)
    damping: tuple[float, float] = (0.02, 2e-3)
    # Coulomb friction: (-, N m)
    coulomb: tuple[float, float] = (0.02, 2e-3)
    # encoder offset: (-, rad)
    encoder_offset: tuple[float, float] = (0.0, 3e-3)
    # leg mass scale: (-, -)
    leg_mass_scale: tuple[float, float] = (0.002, 0.0)
    # trunk mass: (-, kg)
    trunk_mass: tuple[float, float] = (0.002, 0.0)
    # trunk COM: (-, m)
    trunk_com: tuple[float, float] = (0.0, 3e-4)
    # foot friction: (-, -)
    foot_friction: tuple[float, float] = (0.003, 0.0)

    def floor(self, kind: str, value: float) -> float:
        rel, absolute = getattr(self, kind)
        return max(rel * abs(value), absolute)


@dataclass(frozen=True)
class JointFitConfig:
    """Joint-level fit on suspended (fixed-base) logs: inverse-dynamics least squares."""

    # cut-off of the zero-phase low-pass applied alike to torques and regressors (Hz)
    filter_hz: float = 10.0
    # velocity scale of the Coulomb regressor f_c tanh(qd / v) (rad/s)
    coulomb_velocity: float = 0.02
    # estimate a torque/encoder time offset per leg (a nuisance parameter)
    time_shift: bool = True
    # analysis variants whose spread is the systematic std: other cut-offs (Hz)
    variant_filter_hz: tuple[float, ...] = (5.0, 20.0)
    # ... other Coulomb velocity scales (rad/s)
    variant_coulomb_velocity: tuple[float, ...] = (0.01, 0.05)
    # ... and the fit without the time offset
    variant_no_time_shift: bool = True
    # a joint whose filtered speed has a smaller RMS is "not excited" (rad/s)
    min_speed_rms: float = 0.1
    # equations of a joint this close to a position limit are left out (rad)
    limit_margin: float = 0.02
    # seconds trimmed at each end of every contiguous stretch of data (filter transients)
    trim_s: float = 0.1

    def __post_init__(self) -> None:
        if self.filter_hz <= 0 or self.coulomb_velocity <= 0:
            raise ConfigError("joints.filter_hz and joints.coulomb_velocity must be > 0")


@dataclass(frozen=True)
class GroundFitConfig:
    """Trunk mass/COM and foot friction from ground (floating-base) logs."""

    # cut-off of the zero-phase low-pass on the base-wrench balance (Hz)
    filter_hz: float = 2.0
    # variant cut-offs for the systematic std (Hz)
    variant_filter_hz: tuple[float, ...] = (1.0, 3.0)
    # samples whose non-foot geometry comes closer to the floor than this are dropped (m)
    clearance: float = 0.01
    # a loaded foot must be this close to the floor, else the sample is dropped (m)
    foot_height_tol: float = 0.01
    # valid stretches shorter than this are dropped (s)
    min_segment_s: float = 0.6
    # seconds at the start of a ground log that are never used (drop and settle)
    skip_start_s: float = 1.0
    # trunk parameters need at least this many seconds of valid standing data (s)
    min_valid_s: float = 4.0
    # a foot is loaded when its normal force exceeds this fraction of weight / feet (-)
    load_fraction: float = 0.25
    # a loaded foot slips when its contact point moves faster than this (m/s)
    slip_speed: float = 0.05
    # variant slip speeds for the systematic std (m/s)
    variant_slip_speed: tuple[float, ...] = (0.03, 0.1)
    # a loaded foot sticks when its contact point moves slower than this (m/s)
    stick_speed: float = 0.01
    # foot friction needs at least this many slipping samples (-)
    min_slip_samples: int = 20
    # the floor's compliance needs at least this many loaded foot samples (-)
    min_floor_samples: int = 200
    # and at least this many bootstrap blocks (block_s each) holding them (-)
    min_floor_blocks: int = 5
    # a floor whose feet sink less than this under their median load, with 2 std, is rigid (m)
    rigid_sink: float = 0.001

    def __post_init__(self) -> None:
        if self.filter_hz <= 0 or self.clearance < 0:
            raise ConfigError("ground.filter_hz must be > 0 and ground.clearance >= 0")
        if self.min_floor_samples < 1 or self.min_floor_blocks < 2 or not self.rigid_sink > 0:
            raise ConfigError("ground.min_floor_samples must be >= 1, ground.min_floor_blocks "
                              ">= 2 and ground.rigid_sink > 0")


@dataclass(frozen=True)
class ValidationConfig:
    """Held-out replay: the MuJoCo model driven open loop by the logged torques."""

    # fraction of each suspended log held out (interleaved blocks) when no --holdout log
    holdout_fraction: float = 0.2
    # length of the held-out blocks (s)
    holdout_block_s: float = 2.0
    # replay window: each starts from the logged state (s)
    window_s: float = 0.25
    # MuJoCo time step of the replay (s); the logged torque is interpolated linearly
    timestep: float = 0.001

    def __post_init__(self) -> None:
        if not (0.0 <= self.holdout_fraction < 1.0):
            raise ConfigError("validation.holdout_fraction must be in [0, 1)")
        if self.window_s <= 0 or self.timestep <= 0:
            raise ConfigError("validation.window_s and validation.timestep must be > 0")


@dataclass(frozen=True)
class SysidConfig:
    """Everything stage 1 needs besides the logs and the robot."""

    # seed of the bootstrap
    seed: int = 0
    # bootstrap replicates for the statistical std (-)
    bootstrap: int = 200
    # bootstrap block length: residuals are correlated over time (s)
    block_s: float = 0.5
    # randomization range = fitted +- this many total std, clipped to the bounds (-)
    range_std: float = 2.0
    # a parameter is identifiable when std <= this fraction of max(|fitted|, its kind's scale)
    max_relative_std: float = 0.5
    # logs shorter than this (suspended) cannot identify anything (s)
    min_log_s: float = 2.0
    bounds: BoundsConfig = field(default_factory=BoundsConfig)
    std_floor: StdFloorConfig = field(default_factory=StdFloorConfig)
    joints: JointFitConfig = field(default_factory=JointFitConfig)
    ground: GroundFitConfig = field(default_factory=GroundFitConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def __post_init__(self) -> None:
        if self.bootstrap < 10:
            raise ConfigError("bootstrap must be >= 10 replicates")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.block_s <= 0 or self.range_std <= 0 or self.max_relative_std <= 0:
            raise ConfigError("block_s, range_std and max_relative_std must be > 0")
