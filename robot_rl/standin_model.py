"""The hardware stand-in's hidden physics: configuration, realities, perturbations.

Nothing outside the stand-in (and tests that grade identification against it) may read
the values drawn here: stages see only logs.

The hidden physical truth (:class:`HiddenParams`) is drawn from :class:`PerturbationRanges`.
The reference actuator that drives the joints (latency, I2t, torque-speed limit, series
elasticity, backlash) is :mod:`robot_rl.standin_actuator`.  Link masses, payload and foot friction are written into a perturbed copy of the URDF that
PyBullet loads.
"""

from __future__ import annotations

import json
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot_rl.config import ConfigError, from_dict
from robot_rl.robot import RobotDescription, absolute_mesh_paths, set_urdf_inertia, urdf_inertia
from robot_rl.sensors import SensorConfig
from robot_rl.standin_actuator import ReferenceActuatorConfig

STANDIN_DIR = Path(__file__).parent / "standin"


@dataclass(frozen=True)
class PerturbationRanges:
    """Uniform ranges [low, high] from which the hidden parameters are drawn."""

    # payload added to the trunk, as a fraction of the trunk's URDF mass (-)
    trunk_payload_fraction: tuple[float, float] = (0.05, 0.3)
    # payload position in the trunk frame, each axis (m)
    trunk_payload_offset: tuple[float, float] = (-0.05, 0.05)
    # scale of every link mass and inertia of one leg, drawn per leg (-)
    leg_mass_scale: tuple[float, float] = (0.8, 1.2)
    # joint viscous damping (N m s / rad), per joint
    joint_damping: tuple[float, float] = (0.02, 0.3)
    # joint Coulomb friction (N m), per joint
    joint_coulomb: tuple[float, float] = (0.05, 0.6)
    # reflected rotor inertia (kg m^2), per joint
    rotor_inertia: tuple[float, float] = (0.0005, 0.002)
    # foot-floor friction coefficient (-)
    foot_friction: tuple[float, float] = (0.5, 1.1)
    # joint encoder zero offset, per joint (rad): the joint's absolute encoder reads
    # q_true + offset, for the driver's PD and for the state alike (a calibration error,
    # e.g. after a motor swap); none by default
    encoder_offset: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        for f in self.__dataclass_fields__:
            lo, hi = getattr(self, f)
            if lo > hi:
                raise ConfigError(f"ranges.{f}: low {lo} above high {hi}")


@dataclass(frozen=True)
class StandInConfig:
    """Everything the stand-in needs; load from a JSON file with :func:`load_standin_config`."""

    # what this reality is and which real effect it stands for (free text)
    description: str = ""
    # seed of the hidden parameter draw and the measurement noise
    seed: int = 0
    # physics time step (s)
    physics_dt: float = 0.001
    # control (and logging) period (s)
    control_dt: float = 0.005
    # the reference actuator
    actuator: ReferenceActuatorConfig = field(default_factory=ReferenceActuatorConfig)
    # ranges of the hidden physical perturbations
    ranges: PerturbationRanges = field(default_factory=PerturbationRanges)
    # encoders, IMU and foot switches: what the controller is told (robot_rl.sensors)
    sensors: SensorConfig = field(default_factory=SensorConfig)
    # standard deviation of joint position measurement noise (rad)
    noise_q: float = 1e-4
    # standard deviation of joint velocity measurement noise (rad/s)
    noise_qd: float = 5e-3
    # standard deviation of joint torque measurement noise (N m)
    noise_tau: float = 0.02
    # height of the base on the suspended rig (m)
    rig_height: float = 0.7
    # a compliant floor (grass, a gym mat, foam): contact stiffness of the ground, normal
    # direction (N/m; 0 = PyBullet's rigid contact, as on concrete)
    floor_stiffness: float = 0.0
    # a compliant floor: contact damping of the ground (N s/m; used with floor_stiffness)
    floor_damping: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        for f in ("noise_q", "noise_qd", "noise_tau", "floor_stiffness", "floor_damping"):
            if not getattr(self, f) >= 0:
                raise ConfigError(f"{f} must be >= 0, got {getattr(self, f)!r}")
        if self.physics_dt <= 0 or self.control_dt <= 0:
            raise ConfigError("physics_dt and control_dt must be > 0 s")
        ratio = self.control_dt / self.physics_dt
        if abs(ratio - round(ratio)) > 1e-6:
            raise ConfigError(f"control_dt {self.control_dt} must be a multiple of physics_dt "
                              f"{self.physics_dt}")

    @property
    def decimation(self) -> int:
        return int(round(self.control_dt / self.physics_dt))


def load_standin_config(path: str | Path | None = None, **overrides) -> StandInConfig:
    """Load a stand-in config JSON (default: ``robot_rl/standin/default.json``).

    ``path`` may also name a shipped reality (``"driver_mismatch"``, see :func:`realities`).
    Errors name the file and the field."""
    path = resolve_standin_path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object of stand-in settings")
    data.update(overrides)
    return from_dict(StandInConfig, data, where=str(path))


def resolve_standin_path(path: str | Path | None) -> Path:
    """A stand-in config file: ``None`` = the default, a shipped reality's name, or a path."""
    if path is None or str(path) == "":
        return STANDIN_DIR / "default.json"
    p = Path(path)
    if not p.exists() and p.suffix == "" and (STANDIN_DIR / f"{p.name}.json").exists():
        return STANDIN_DIR / f"{p.name}.json"
    if not p.exists():
        raise ConfigError(f"{p}: no such stand-in config (shipped realities: "
                          f"{', '.join(realities())})")
    return p


def realities() -> list[str]:
    """Names of the shipped stand-in configs (``robot_rl/standin/*.json``), default first."""
    names = sorted(p.stem for p in STANDIN_DIR.glob("*.json"))
    return sorted(names, key=lambda n: n != "default")


@dataclass
class HiddenParams:
    """The stand-in's drawn physical truth.  Stages must never read this."""

    trunk_payload: float  # kg
    trunk_payload_offset: np.ndarray  # (3,) m, trunk frame
    leg_mass_scale: np.ndarray  # (legs,)
    joint_damping: np.ndarray  # (J,) N m s/rad
    joint_coulomb: np.ndarray  # (J,) N m
    rotor_inertia: np.ndarray  # (J,) kg m^2
    foot_friction: float
    encoder_offset: np.ndarray | float = 0.0  # (J,) rad: encoders read q_true + this

    def as_dict(self) -> dict[str, float | list[float]]:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else float(v)) for k, v in vars(self).items()}


def draw_hidden(cfg: StandInConfig, robot: RobotDescription, trunk_mass: float,
                rng: np.random.Generator) -> HiddenParams:
    """Draw the hidden parameters from ``cfg.ranges``.  The encoder offsets are drawn
    last, and only where their range is not a single value, so configs without them draw
    the same physics as before they existed."""
    r, nj, nl = cfg.ranges, robot.num_joints, len(robot.foot_links)
    u = rng.uniform
    hidden = HiddenParams(
        trunk_payload=float(u(*r.trunk_payload_fraction)) * trunk_mass,
        trunk_payload_offset=u(*r.trunk_payload_offset, size=3),
        leg_mass_scale=u(*r.leg_mass_scale, size=nl),
        joint_damping=u(*r.joint_damping, size=nj),
        joint_coulomb=u(*r.joint_coulomb, size=nj),
        rotor_inertia=u(*r.rotor_inertia, size=nj),
        foot_friction=float(u(*r.foot_friction)),
        encoder_offset=np.full(nj, float(r.encoder_offset[0])),
    )
    if r.encoder_offset[1] > r.encoder_offset[0]:
        hidden.encoder_offset = u(*r.encoder_offset, size=nj)
    return hidden


def _vec(text: str | None) -> np.ndarray:
    return np.array([float(x) for x in (text or "0 0 0").split()])


def leg_links(robot: RobotDescription, urdf_root: ET.Element) -> list[list[str]]:
    """Names of the links of each leg: descendants of the leg's first joint."""
    children: dict[str, list[tuple[str, str]]] = {}
    for j in urdf_root.findall("joint"):
        children.setdefault(j.find("parent").get("link"), []).append((j.get("name"), j.find("child").get("link")))
    joint_child = {j.get("name"): j.find("child").get("link") for j in urdf_root.findall("joint")}
    per_leg = len(robot.joint_names) // len(robot.foot_links)
    legs = []
    for i in range(len(robot.foot_links)):
        first = joint_child[robot.joint_names[i * per_leg]]
        stack, names = [first], []
        while stack:
            link = stack.pop()
            names.append(link)
            stack.extend(c for _, c in children.get(link, []))
        legs.append(names)
    return legs


def perturbed_urdf(robot: RobotDescription, hidden: HiddenParams, out_dir: Path) -> Path:
    """Write a copy of the robot's URDF with the hidden mass perturbations applied."""
    src = robot.urdf_path
    tree = ET.parse(src)
    root = tree.getroot()
    links = {ln.get("name"): ln for ln in root.findall("link")}

    def scale_link(link: ET.Element, s: float) -> None:
        inertial = link.find("inertial")
        if inertial is None:
            return
        m = inertial.find("mass")
        m.set("value", repr(float(m.get("value")) * s))
        ine = inertial.find("inertia")
        set_urdf_inertia(ine, urdf_inertia(ine) * s)

    for s, names in zip(hidden.leg_mass_scale, leg_links(robot, root)):
        for n in names:
            scale_link(links[n], float(s))

    trunk = links[robot.base_link].find("inertial")
    origin = trunk.find("origin")
    if origin is not None and np.any(_vec(origin.get("rpy")) != 0):
        raise ConfigError(f"{src}: trunk inertial frame is rotated; payload merging needs rpy=0")
    m0 = float(trunk.find("mass").get("value"))
    c0 = _vec(origin.get("xyz") if origin is not None else None)
    mp, p = hidden.trunk_payload, hidden.trunk_payload_offset
    m1 = m0 + mp
    c1 = (m0 * c0 + mp * p) / m1
    ine = trunk.find("inertia")
    inertia = urdf_inertia(ine)
    for mass, c in ((m0, c0), (mp, p)):
        d = c - c1
        inertia = inertia + mass * (d @ d * np.eye(3) - np.outer(d, d))
    trunk.find("mass").set("value", repr(m1))
    if origin is None:
        origin = ET.SubElement(trunk, "origin")
    origin.set("xyz", " ".join(repr(float(x)) for x in c1))
    origin.set("rpy", "0 0 0")
    set_urdf_inertia(ine, inertia)
    absolute_mesh_paths(root, src)
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{robot.name}_standin_", suffix=".urdf", dir=out_dir)
    with open(fd, "wb") as f:
        tree.write(f)
    return Path(name)
