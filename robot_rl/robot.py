"""Robot descriptions: a robot is data, not code.

A :class:`RobotDescription` holds everything both simulators and every stage need to
agree on: the canonical joint order, the nominal standing pose, joint position, velocity
and torque limits, default PD gains, foot links, and the URDF inside ``pybullet_data``.
Descriptions live as JSON files in ``robot_rl/robots/``; :data:`ROBOTS` lists them
explicitly (nothing registers itself on import).  A new robot is a new JSON file and one
line in :data:`ROBOTS`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robot_rl.config import ConfigError, from_dict

ROBOT_DIR = Path(__file__).parent / "robots"
#: Registered robots, by name -> description file.  The first is the default.
ROBOTS: dict[str, Path] = {
    "a1": ROBOT_DIR / "a1.json",
    "aliengo": ROBOT_DIR / "aliengo.json",
    "laikago": ROBOT_DIR / "laikago.json",
    "mini_cheetah": ROBOT_DIR / "mini_cheetah.json",
}
DEFAULT_ROBOT = "a1"
#: fallen: base height below this fraction of the nominal base height (-); the training
#: env's termination (policies.config.EnvConfig) and the evaluation (deploy.evaluate) use it
FALL_HEIGHT_FRACTION = 0.5
#: fallen: z-component of the base's up axis below this (-); same users
FALL_UP_Z = 0.5


@dataclass(frozen=True)
class RobotDescription:
    """One legged robot, as both simulators and all stages see it (SI units, radians)."""

    # robot name, as used on the command line and in artifact metadata
    name: str
    # URDF path relative to pybullet_data.getDataPath()
    urdf: str
    # name of the floating-base link in the URDF
    base_link: str
    # actuated joints in canonical order (the order of every per-joint array in the project)
    joint_names: tuple[str, ...]
    # URDF links at the feet, one per leg (contact points)
    foot_links: tuple[str, ...]
    # nominal standing joint positions (rad), canonical order
    nominal_pose: tuple[float, ...]
    # lower joint position limits (rad)
    q_min: tuple[float, ...]
    # upper joint position limits (rad)
    q_max: tuple[float, ...]
    # joint speed limits (rad/s)
    qd_max: tuple[float, ...]
    # joint torque limits (N m)
    tau_max: tuple[float, ...]
    # default PD proportional gains (N m / rad)
    kp: tuple[float, ...]
    # default PD derivative gains (N m s / rad)
    kd: tuple[float, ...]
    # trunk height above the ground when standing at the nominal pose (m)
    nominal_base_height: float
    # trunk height at which episodes start, feet just above the ground (m)
    base_init_height: float
    # base roll, pitch, yaw at spawn (rad)
    base_rpy: tuple[float, ...] = (0.0, 0.0, 0.0)
    # Coulomb friction coefficient between feet and floor (-)
    foot_friction: float = 0.8
    # free-text provenance of the numbers above
    notes: str = ""
    # legs, derived from foot_links order (read-only convenience)
    legs: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        for fname in ("nominal_pose", "q_min", "q_max", "qd_max", "tau_max", "kp", "kd"):
            value = getattr(self, fname)
            if len(value) != n:
                raise ConfigError(
                    f"robot {self.name!r}: field {fname!r} has {len(value)} values, "
                    f"expected {n} (one per joint)"
                )
        if len(set(self.joint_names)) != n:
            raise ConfigError(f"robot {self.name!r}: joint_names has duplicates")
        lo, hi, q0 = np.array(self.q_min), np.array(self.q_max), np.array(self.nominal_pose)
        if np.any(lo >= hi):
            raise ConfigError(f"robot {self.name!r}: q_min must be below q_max for every joint")
        if np.any(q0 < lo) or np.any(q0 > hi):
            raise ConfigError(f"robot {self.name!r}: nominal_pose lies outside the joint limits")
        if not self.legs:
            object.__setattr__(self, "legs", tuple(f"leg{i}" for i in range(len(self.foot_links))))

    @property
    def num_joints(self) -> int:
        """Number of actuated joints."""
        return len(self.joint_names)

    @property
    def urdf_path(self) -> Path:
        """Absolute path of the URDF both simulators load: ``urdf`` inside the installed
        pybullet_data (or an absolute path), or its physical copy where a link's inertia is
        not physical (:func:`physical_urdf`)."""
        import pybullet_data

        return physical_urdf(Path(pybullet_data.getDataPath()) / self.urdf)

    def array(self, fname: str) -> np.ndarray:
        """A per-joint field as a float64 numpy array."""
        return np.asarray(getattr(self, fname), dtype=np.float64)


def load_robot(name: str = DEFAULT_ROBOT) -> RobotDescription:
    """Load a registered robot description by name (or from a path to a JSON file)."""
    path = ROBOTS.get(name)
    if path is None:
        candidate = Path(name)
        if candidate.suffix == ".json" and candidate.exists():
            path = candidate
        else:
            raise ConfigError(f"unknown robot {name!r}; registered robots: {sorted(ROBOTS)}")
    data = json.loads(Path(path).read_text())
    return from_dict(RobotDescription, data, where=f"{path}")


# -- a URDF both simulators read alike ----------------------------------------------------
#: relative slack of the triangle inequality before an inertia counts as not physical
INERTIA_SLACK = 1e-9
#: a repaired inertia's two smaller moments exceed the largest by this fraction of it, so
#: that rounding leaves it inside both simulators' checks
INERTIA_MARGIN = 1e-3
_KEYS = ("ixx", "ixy", "ixz", "iyy", "iyz", "izz")
_INDEX = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


def urdf_inertia(inertia: ET.Element) -> np.ndarray:
    """The 3 x 3 tensor of a URDF ``<inertia>`` element (absent entries 0)."""
    out = np.zeros((3, 3))
    for k, (a, b) in zip(_KEYS, _INDEX):
        out[a, b] = out[b, a] = float(inertia.get(k, "0"))
    return out


def set_urdf_inertia(inertia: ET.Element, tensor: np.ndarray) -> None:
    """Write ``tensor`` (3 x 3, symmetric) into a URDF ``<inertia>`` element."""
    for k, (a, b) in zip(_KEYS, _INDEX):
        inertia.set(k, repr(float(tensor[a, b])))


def absolute_mesh_paths(root: ET.Element, src: Path) -> None:
    """Make the relative mesh file names of URDF ``root`` (read from ``src``) absolute, so a
    copy of it can live anywhere."""
    for mesh in root.iter("mesh"):
        fn = mesh.get("filename")
        if fn and not fn.startswith(("/", "package://")):
            mesh.set("filename", str((src.parent / fn).resolve()))


def nearest_physical_inertia(inertia: np.ndarray) -> np.ndarray:
    """``inertia`` (3 x 3, symmetric) with its principal moments moved the least to make
    them a rigid body's: none negative, each at most the sum of the other two; the
    principal axes kept.  A physical tensor comes back unchanged."""
    moments, axes = np.linalg.eigh(inertia)
    if moments[0] >= 0 and moments[0] + moments[1] >= moments[2] * (1 - INERTIA_SLACK):
        return inertia
    m = np.maximum(moments, 0.0)
    short = m[2] * (1 + INERTIA_MARGIN) - m[0] - m[1]
    if short > 0:  # raise the two smaller moments alike until they pass the largest
        m[:2] += short / 2
    return axes @ np.diag(m) @ axes.T


@functools.lru_cache(maxsize=16)
def physical_urdf(src: Path) -> Path:
    """``src``, or, where a link's inertia is not a rigid body's, a copy with the nearest
    physical one (:func:`nearest_physical_inertia`) written once to the cache folder
    (``$ROBOT_RL_CACHE`` or ``~/.cache/robot_rl``) and named on stderr.  Without it each
    simulator repairs such a link its own way (MuJoCo averages the moments, PyBullet sets
    them to zero) and the two simulate different robots (the Mini Cheetah's thighs in
    pybullet_data are such links)."""
    text = src.read_bytes()
    root = ET.fromstring(text)
    fixed = []
    for link in root.iter("link"):
        ine = link.find("inertial/inertia")
        if ine is None:
            continue
        tensor = urdf_inertia(ine)
        new = nearest_physical_inertia(tensor)
        if new is not tensor:
            set_urdf_inertia(ine, new)
            was, now = np.linalg.eigvalsh(tensor), np.linalg.eigvalsh(new)
            fixed.append(f"{link.get('name')} (principal moments {was[0]:.3g}, {was[1]:.3g}, "
                         f"{was[2]:.3g} -> {now[0]:.3g}, {now[1]:.3g}, {now[2]:.3g} kg m^2)")
    if not fixed:
        return src
    absolute_mesh_paths(root, src)
    cache = Path(os.environ.get("ROBOT_RL_CACHE") or Path.home() / ".cache" / "robot_rl") / "urdf"
    out = cache / f"{src.stem}.{hashlib.sha1(text).hexdigest()[:12]}.urdf"
    if not out.exists():
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=out.name, suffix=".tmp", dir=cache)
        with os.fdopen(fd, "wb") as f:
            f.write(ET.tostring(root, encoding="utf-8", xml_declaration=True))
        os.replace(tmp, out)
    print(f"note: {src}: inertia of {'; '.join(fixed)} is not a rigid body's (each principal "
          f"moment must be at most the sum of the other two); both simulators load the "
          f"nearest physical one from {out}", file=sys.stderr)
    return out
