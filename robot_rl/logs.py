"""Robot logs: one documented schema, one writer, one validating reader.

A log is a NumPy ``.npz`` archive (uncompressed arrays plus one JSON metadata string).

Schema ``robot_rl.log`` version 1 (T samples, J joints; SI units, radians):

=============  =========  ========  ==========================================================
field          shape      unit      meaning
=============  =========  ========  ==========================================================
time           (T,)       s         sample time, strictly increasing
q_target       (T, J)     rad       joint position target sent at that sample
q              (T, J)     rad       measured joint position
qd             (T, J)     rad/s     measured joint velocity
tau            (T, J)     N m       measured joint torque (actuator output)
base_pos       (T, 3)     m         base position, world frame            (optional)
base_quat      (T, 4)     1         base orientation, quaternion w,x,y,z  (optional)
base_linvel    (T, 3)     m/s       base linear velocity, world frame     (optional)
base_angvel    (T, 3)     rad/s     base angular velocity, base frame     (optional)
meta           JSON str   -         metadata, below
=============  =========  ========  ==========================================================

``meta`` keys: ``schema`` ("robot_rl.log"), ``schema_version`` (1), ``robot`` (description
name), ``joint_names`` (J names, canonical order), ``units`` (field -> unit string, as in
the table), ``experiment`` (name), ``base_fixed`` (bool: suspended rig), ``control_dt``
(s), ``kp``/``kd`` (per-joint gains of the robot's joint controller, if known), ``source``
(free text: who produced the log), and ``extra`` (a free dict).

:func:`read_log` rejects a log that breaks any of this with :class:`LogError`, whose
message names the file and the field.  :func:`write_log` validates first and writes
atomically (temporary file, then rename), so no reader ever sees half a log.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.config import atomic_write_bytes

SCHEMA = "robot_rl.log"
SCHEMA_VERSION = 1
JOINT_FIELDS = {"q_target": "rad", "q": "rad", "qd": "rad/s", "tau": "N m"}
BASE_FIELDS = {"base_pos": ("m", 3), "base_quat": ("1", 4), "base_linvel": ("m/s", 3),
               "base_angvel": ("rad/s", 3)}
UNITS = {"time": "s", **JOINT_FIELDS, **{k: v[0] for k, v in BASE_FIELDS.items()}}


class LogError(ValueError):
    """A log file breaks the schema; the message names the file and the field."""


@dataclass
class RobotLog:
    """One robot log in memory (see the module docstring for the schema)."""

    time: np.ndarray
    q_target: np.ndarray
    q: np.ndarray
    qd: np.ndarray
    tau: np.ndarray
    robot: str
    joint_names: list[str]
    experiment: str
    control_dt: float
    base_fixed: bool
    base_pos: np.ndarray | None = None
    base_quat: np.ndarray | None = None
    base_linvel: np.ndarray | None = None
    base_angvel: np.ndarray | None = None
    kp: list[float] | None = None
    kd: list[float] | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    path: str = "<memory>"

    @property
    def num_samples(self) -> int:
        return int(self.time.shape[0])

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def duration(self) -> float:
        return float(self.time[-1] - self.time[0]) if self.num_samples else 0.0

    def meta(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "robot": self.robot,
            "joint_names": list(self.joint_names), "units": dict(UNITS),
            "experiment": self.experiment, "base_fixed": bool(self.base_fixed),
            "control_dt": float(self.control_dt), "kp": self.kp, "kd": self.kd,
            "source": self.source, "extra": self.extra,
        }

    def slice(self, start: int, stop: int) -> RobotLog:
        """Samples ``start:stop`` as a new log (same metadata)."""
        kw = {k: (v[start:stop] if isinstance(v, np.ndarray) else v) for k, v in vars(self).items()}
        return RobotLog(**kw)


def validate(log: RobotLog, robot: Any | None = None) -> RobotLog:
    """Check ``log`` against the schema (and ``robot``'s joints if given); return it."""
    where = log.path

    def fail(fieldname: str, msg: str) -> None:
        raise LogError(f"{where}: field {fieldname!r}: {msg}")

    def numeric(fieldname: str, a: Any) -> np.ndarray:
        a = np.asarray(a)
        if a.dtype.kind not in "iuf":  # signed, unsigned, float; not bool/complex/str/object
            fail(fieldname, f"expected real numbers, got dtype {a.dtype}"
                 + (f" (first value {a.reshape(-1)[:1].tolist()[0]!r})" if a.size else ""))
        return a

    t = numeric("time", log.time)
    if t.ndim != 1:
        fail("time", f"expected shape (T,), got {t.shape}")
    if t.shape[0] < 2:
        fail("time", f"needs at least 2 samples, got {t.shape[0]}")
    if not np.all(np.isfinite(t)):
        fail("time", f"contains NaN/Inf at sample {int(np.argmin(np.isfinite(t)))}")
    dt = np.diff(t)
    if np.any(dt <= 0):
        i = int(np.argmax(dt <= 0))
        fail("time", f"must be strictly increasing; sample {i + 1} ({t[i + 1]!r}) <= sample {i} ({t[i]!r})")
    n, nj = t.shape[0], len(log.joint_names)
    if nj == 0:
        fail("joint_names", "is empty")
    if len(set(log.joint_names)) != nj:
        fail("joint_names", "has duplicate names")
    for name in JOINT_FIELDS:
        a = getattr(log, name)
        if a is None:
            fail(name, "is missing")
        a = numeric(name, a)
        if a.shape != (n, nj):
            fail(name, f"expected shape ({n}, {nj}) = (samples, joints), got {a.shape}")
        bad = ~np.isfinite(a)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            fail(name, f"contains NaN/Inf at sample {i}, joint {log.joint_names[j]!r}")
    for name, (_, width) in BASE_FIELDS.items():
        a = getattr(log, name)
        if a is None:
            continue
        a = numeric(name, a)
        if a.shape != (n, width):
            fail(name, f"expected shape ({n}, {width}), got {a.shape}")
        if not np.all(np.isfinite(a)):
            fail(name, f"contains NaN/Inf at sample {int(np.argwhere(~np.isfinite(a))[0][0])}")
    if not (np.isfinite(log.control_dt) and log.control_dt > 0):
        fail("meta.control_dt", f"expected a positive number of seconds, got {log.control_dt!r}")
    for gain in ("kp", "kd"):
        g = getattr(log, gain)
        if g is not None and len(g) != nj:
            fail(f"meta.{gain}", f"expected {nj} values (one per joint), got {len(g)}")
    if robot is not None:
        if log.robot != robot.name:
            fail("meta.robot", f"log is for robot {log.robot!r}, expected {robot.name!r}")
        if list(log.joint_names) != list(robot.joint_names):
            if len(log.joint_names) != robot.num_joints:
                fail("joint_names", f"{len(log.joint_names)} joints, robot {robot.name!r} has "
                     f"{robot.num_joints}")
            diff = [(a, b) for a, b in zip(log.joint_names, robot.joint_names) if a != b]
            fail("joint_names", f"do not match robot {robot.name!r} in canonical order; first "
                 f"mismatch: log has {diff[0][0]!r}, expected {diff[0][1]!r}")
    return log


def write_log(path: str | Path, log: RobotLog) -> Path:
    """Validate ``log`` and write it to ``path`` (``.npz``) atomically; return the path."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    validate(log)
    arrays = {k: np.asarray(getattr(log, k), dtype=np.float64)
              for k in ("time", *JOINT_FIELDS, *BASE_FIELDS) if getattr(log, k) is not None}
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(log.meta())), **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return path


def read_log(path: str | Path, robot: Any | None = None) -> RobotLog:
    """Read and validate a log; raise :class:`LogError` naming the file and field."""
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise LogError(f"{where}: no such log file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - any unreadable archive is a bad log
        raise LogError(f"{where}: not a readable .npz log ({e})") from e
    if "meta" not in arrays:
        raise LogError(f"{where}: field 'meta': missing (not a {SCHEMA} file)")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except json.JSONDecodeError as e:
        raise LogError(f"{where}: field 'meta': not valid JSON ({e})") from e
    if meta.get("schema") != SCHEMA:
        raise LogError(f"{where}: field 'meta.schema': expected {SCHEMA!r}, got {meta.get('schema')!r}")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise LogError(f"{where}: field 'meta.schema_version': expected {SCHEMA_VERSION}, got "
                       f"{meta.get('schema_version')!r} (unknown schema version)")
    for key in ("robot", "joint_names", "units", "experiment", "control_dt", "base_fixed"):
        if key not in meta:
            raise LogError(f"{where}: field 'meta.{key}': missing")
    units = meta["units"]
    for name in ("time", *JOINT_FIELDS):
        if name not in arrays:
            raise LogError(f"{where}: field {name!r}: missing column")
    for name in arrays:
        if name not in UNITS:
            raise LogError(f"{where}: field {name!r}: unknown column; known: {sorted(UNITS)}")
        if units.get(name) != UNITS[name]:
            raise LogError(f"{where}: field {name!r}: unit {units.get(name)!r}, expected "
                           f"{UNITS[name]!r}")
    cdt = meta["control_dt"]
    if isinstance(cdt, bool) or not isinstance(cdt, (int, float)):
        raise LogError(f"{where}: field 'meta.control_dt': expected a number of seconds, got {cdt!r}")
    names = meta["joint_names"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise LogError(f"{where}: field 'meta.joint_names': expected a list of names, got {names!r}")
    log = RobotLog(
        time=arrays["time"], q_target=arrays["q_target"], q=arrays["q"], qd=arrays["qd"],
        tau=arrays["tau"], robot=str(meta["robot"]), joint_names=list(meta["joint_names"]),
        experiment=str(meta["experiment"]), control_dt=float(meta["control_dt"]),
        base_fixed=bool(meta["base_fixed"]),
        **{k: arrays.get(k) for k in BASE_FIELDS},
        kp=meta.get("kp"), kd=meta.get("kd"), source=str(meta.get("source", "")),
        extra=dict(meta.get("extra") or {}), path=where,
    )
    return validate(log, robot)
