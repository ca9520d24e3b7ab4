"""Importers: each file format becomes :class:`~actuator_net.data.ActuatorSeries`.

The model code never knows which format its data came from; each importer is a
documented column mapping plus the checks its raw format needs (the robot_rl log reader
already validates its own files).

``robot_rl`` (``.npz``, schema in :mod:`robot_rl.logs`)
    pos_error = ``q_target - q``, vel = ``qd``, tau = ``tau``, time = ``time``; gains from
    the log's ``kp``/``kd`` (else the robot description's); joints share an actuator key
    when their gains and the description's torque and speed limits are equal.

``anymal`` (raw little-endian float64 pair ``<name>_input.f64`` + ``<name>_target.f64``)
    Input rows of 48 values: ``ANYMAL_LAYOUT`` (velocity, position error, torque; each a
    window of 16 consecutive samples, oldest first) at 400 Hz; target = torque at the
    newest step.  Consecutive windows are shifted by one step, so the file is one stretch
    of time: the importer rebuilds that series (T = samples + 15 rows; the first 15 rows
    only provide history, so labels are exactly the file's targets) and checks that the
    windows do chain.  The window's torque values (values 32-47) are never read.  Gains: the
    paper's kp = 50 N m/rad, kd = 0.1 N m s/rad.

``ankle_csv`` (``ANKLE_CSV``: humanoid ankle CSV with a header row, 50 Hz, no time column)
    per joint i: pos_error = ``joint_pos_target_i - joint_pos_i``, vel = ``joint_vel_i``,
    tau = ``tau_est_i`` (the driver's torque estimate); ``tau_cal_i`` (a torque the
    controller computed) is not used.  Gains unknown.  Any CSV with such per-joint columns
    can be read with :func:`read_csv` and its own :class:`CsvFormat`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actuator_net.data import ActuatorDataError, ActuatorSeries, check_series

FORMATS = ("robot_rl", "anymal", "ankle_csv")


# -- robot_rl logs -----------------------------------------------------------------------

def from_robot_log(log, robot=None) -> ActuatorSeries:
    """Series of a :class:`robot_rl.logs.RobotLog` (gains from the log, else from ``robot``)."""
    kp = np.asarray(log.kp, dtype=np.float64) if log.kp is not None else None
    kd = np.asarray(log.kd, dtype=np.float64) if log.kd is not None else None
    if robot is not None and list(robot.joint_names) == list(log.joint_names):
        kp = robot.array("kp") if kp is None else kp
        kd = robot.array("kd") if kd is None else kd
    keys = None
    if kp is not None and kd is not None:
        lim = ([(robot.tau_max[j], robot.qd_max[j]) for j in range(len(kp))]
               if robot is not None and robot.num_joints == len(kp) else [None] * len(kp))
        keys = [f"kp={kp[j]:g},kd={kd[j]:g}" + (f",tau_max={lim[j][0]:g},qd_max={lim[j][1]:g}"
                                                 if lim[j] else "") for j in range(len(kp))]
    s = ActuatorSeries(
        time=np.asarray(log.time, dtype=np.float64),
        pos_error=np.asarray(log.q_target - log.q, dtype=np.float64),
        vel=np.asarray(log.qd, dtype=np.float64), tau=np.asarray(log.tau, dtype=np.float64),
        joint_names=list(log.joint_names), source=str(log.path),
        columns={"pos_error": "q_target - q", "vel": "qd", "tau": "tau", "pos": "q"},
        kp=kp, kd=kd, actuator_keys=keys, pos=np.asarray(log.q, dtype=np.float64))
    return check_series(s)


def read_robot_log(path: str | Path, robot=None) -> ActuatorSeries:
    """Read a robot_rl ``.npz`` log (validated by :func:`robot_rl.logs.read_log`)."""
    from robot_rl.logs import read_log
    from robot_rl.robot import load_robot

    log = read_log(path, robot)
    if robot is None:
        try:
            robot = load_robot(log.robot)
        except ValueError:
            robot = None
    return from_robot_log(log, robot)


# -- ANYmal SEA binary pair --------------------------------------------------------------

#: Value ranges of one 48-value ANYmal input row (each a 16-sample window, oldest first).
ANYMAL_LAYOUT = {"vel": (0, 16), "pos_error": (16, 32), "tau": (32, 48)}
ANYMAL_WINDOW = 16
ANYMAL_RATE_HZ = 400.0
#: The paper's PD gains of the ANYmal SEA joint controller.
ANYMAL_KP, ANYMAL_KD = 50.0, 0.1
_ANYMAL_NAMES = {"vel": "velocity window (input values 0-15)",
                 "pos_error": "position error window (input values 16-31)"}


def anymal_pair(path: str | Path) -> tuple[Path, Path]:
    """(input, target) files from either one of them."""
    path = Path(path)
    stem = path.name
    if "_input" in stem:
        return path, path.with_name(stem.replace("_input", "_target"))
    if "_target" in stem:
        return path.with_name(stem.replace("_target", "_input")), path
    raise ActuatorDataError(f"{path}: field 'file name': an ANYmal file pair is named "
                            "<name>_input.f64 and <name>_target.f64")


def read_anymal(path: str | Path, rate_hz: float = ANYMAL_RATE_HZ, kp: float | None = ANYMAL_KP,
                kd: float | None = ANYMAL_KD) -> ActuatorSeries:
    """Read an ANYmal ``*_input.f64`` / ``*_target.f64`` pair (either path) as one series."""
    inp, tgt = anymal_pair(path)
    for p in (inp, tgt):
        if not p.exists():
            raise ActuatorDataError(f"{p}: field 'file': no such file")
    w = ANYMAL_WINDOW
    raw = np.fromfile(inp, "<f8")
    width = 3 * w
    if raw.size == 0 or raw.size % width:
        raise ActuatorDataError(f"{inp}: field 'input': {raw.size} float64 values, not a "
                                f"positive multiple of {width} (rows of {width} values)")
    x = raw.reshape(-1, width)
    y = np.fromfile(tgt, "<f8")
    n = x.shape[0]
    if y.shape != (n,):
        raise ActuatorDataError(f"{tgt}: field 'target': {y.size} values, expected {n} (one "
                                f"per input row of {inp.name})")
    windows = {}
    for sig in ("vel", "pos_error"):  # the torque window is never read
        a, b = ANYMAL_LAYOUT[sig]
        win = x[:, a:b]
        bad = ~np.isfinite(win)
        if bad.any():
            i, k = np.argwhere(bad)[0]
            raise ActuatorDataError(f"{inp}: field {_ANYMAL_NAMES[sig]!r}: NaN/Inf at sample {i}, "
                                    f"value {a + k}")
        if n > 1 and not np.allclose(win[1:, :-1], win[:-1, 1:], rtol=0, atol=1e-9):
            i = int(np.argmax(np.any(np.abs(win[1:, :-1] - win[:-1, 1:]) > 1e-9, axis=1)))
            raise ActuatorDataError(f"{inp}: field {_ANYMAL_NAMES[sig]!r}: window of sample "
                                    f"{i + 1} is not the window of sample {i} shifted by one "
                                    "step: not one contiguous stretch of time")
        windows[sig] = np.concatenate([win[0], win[1:, -1]])[:, None]
    if not np.all(np.isfinite(y)):
        raise ActuatorDataError(f"{tgt}: field 'target': NaN/Inf at sample "
                                f"{int(np.argmin(np.isfinite(y)))}")
    # labels are the target file; the first w - 1 rows only provide history (their torque
    # is a placeholder, never a label)
    tau = np.concatenate([np.full(w - 1, y[0]), y])[:, None]
    name = re.sub(r"_input$", "", inp.stem)
    s = ActuatorSeries(
        time=np.arange(n + w - 1) / rate_hz, pos_error=windows["pos_error"], vel=windows["vel"],
        tau=tau, joint_names=[name], source=str(inp),
        columns={"pos_error": _ANYMAL_NAMES["pos_error"], "vel": _ANYMAL_NAMES["vel"],
                 "tau": f"target ({tgt.name})"},
        kp=None if kp is None else np.array([kp]), kd=None if kd is None else np.array([kd]),
        first_label=w - 1, actuator_keys=[name])
    return check_series(s)


# -- CSV with per-joint columns ----------------------------------------------------------

@dataclass(frozen=True)
class CsvFormat:
    """Column names of a per-joint CSV; ``{i}`` is the joint's index (0, 1, ...)."""

    # joint position target (rad)
    q_target: str
    # measured joint position (rad)
    q: str
    # measured joint velocity (rad/s)
    qd: str
    # measured (or driver-estimated) actuator torque (N m)
    tau: str
    # sample rate (Hz) when the file has no time column
    rate_hz: float
    # time column (s), or "" for none
    time: str = ""
    # joint name given to column index i
    joint_name: str = "joint_{i}"


#: The humanoid ankle CSV (4 joints, 50 Hz); tau_cal_i is ignored.
ANKLE_CSV = CsvFormat(q_target="joint_pos_target_{i}", q="joint_pos_{i}", qd="joint_vel_{i}",
                      tau="tau_est_{i}", rate_hz=50.0, joint_name="ankle_{i}")


def read_csv(path: str | Path, fmt: CsvFormat = ANKLE_CSV) -> ActuatorSeries:
    """Read a CSV with a header row and per-joint columns named by ``fmt``."""
    path = Path(path)
    if not path.exists():
        raise ActuatorDataError(f"{path}: field 'file': no such file")
    with open(path) as f:
        header = [h.strip() for h in f.readline().strip().split(",")]
    col = {h: k for k, h in enumerate(header)}
    joints = []
    while all(getattr(fmt, c).format(i=len(joints)) in col for c in ("q_target", "q", "qd", "tau")):
        joints.append(len(joints))
    if not joints:
        need = [getattr(fmt, c).format(i=0) for c in ("q_target", "q", "qd", "tau")]
        missing = [c for c in need if c not in col]
        raise ActuatorDataError(f"{path}: field {missing[0]!r}: missing column (header has "
                                f"{header[:8]}{'...' if len(header) > 8 else ''})")
    try:
        data = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.float64,
                             invalid_raise=True)
    except ValueError as e:
        raise ActuatorDataError(f"{path}: field 'rows': not a numeric table ({e})") from e
    data = np.atleast_2d(data)
    if data.shape[1] != len(header):
        raise ActuatorDataError(f"{path}: field 'rows': {data.shape[1]} values per row, header "
                                f"has {len(header)} columns")

    def column(name: str) -> np.ndarray:
        a = data[:, col[name]]
        bad = ~np.isfinite(a)
        if bad.any():
            raise ActuatorDataError(f"{path}: field {name!r}: NaN, Inf or empty at data row "
                                    f"{int(np.argmax(bad))} (file line {int(np.argmax(bad)) + 2})")
        return a

    def stack(template: str) -> np.ndarray:
        return np.stack([column(template.format(i=i)) for i in joints], axis=1)

    q_target, q, qd, tau = (stack(getattr(fmt, c)) for c in ("q_target", "q", "qd", "tau"))
    time = column(fmt.time) if fmt.time else np.arange(data.shape[0]) / fmt.rate_hz
    s = ActuatorSeries(
        time=time, pos_error=q_target - q, vel=qd, tau=tau,
        joint_names=[fmt.joint_name.format(i=i) for i in joints], source=str(path),
        columns={"pos_error": f"{fmt.q_target} - {fmt.q}", "vel": fmt.qd, "tau": fmt.tau,
                 "pos": fmt.q}, pos=q)
    return check_series(s)


# -- dispatch -----------------------------------------------------------------------------

def guess_format(path: Path) -> str:
    """Format from the file name: ``.npz`` robot_rl, ``.f64`` anymal, ``.csv`` ankle_csv."""
    return {".npz": "robot_rl", ".f64": "anymal", ".csv": "ankle_csv"}.get(path.suffix, "robot_rl")


def expand_paths(paths: list[str | Path], fmt: str | None = None) -> list[Path]:
    """Files named by ``paths`` (folders expand to their data files, sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and (
                (fmt or guess_format(f)) == guess_format(f)) and f.suffix in (".npz", ".f64", ".csv"))
            found = [f for f in found if not (f.suffix == ".f64" and "_target" in f.name)]
            if not found:
                raise ActuatorDataError(f"{p}: field 'folder': no log files (.npz, .f64, .csv)")
            out.extend(found)
        elif p.suffix == ".f64" and "_target" in p.name:
            out.append(anymal_pair(p)[0])
        else:
            out.append(p)
    seen: list[Path] = []
    for p in out:
        if p not in seen:
            seen.append(p)
    return seen


def load_series(paths: list[str | Path], fmt: str | None = None, robot=None) -> list[ActuatorSeries]:
    """Import every file (format given, or guessed per file from its suffix)."""
    if fmt is not None and fmt not in FORMATS:
        raise ActuatorDataError(f"format {fmt!r}: unknown; known formats: {FORMATS}")
    out = []
    for p in expand_paths(paths, fmt):
        f = fmt or guess_format(p)
        if f == "robot_rl":
            out.append(read_robot_log(p, robot))
        elif f == "anymal":
            out.append(read_anymal(p))
        else:
            out.append(read_csv(p, ANKLE_CSV))
    if not out:
        raise ActuatorDataError("no logs given")
    names = out[0].joint_names
    for s in out[1:]:
        if s.joint_names != names:
            raise ActuatorDataError(f"{s.source}: field 'joint_names': {s.joint_names} differ from "
                                    f"{names} of {out[0].source}; one training run takes logs of "
                                    "one set of joints")
    return out
