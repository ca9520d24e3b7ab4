"""The stage's internal sample format: actuator time series, history windows, time split.

Every importer (:mod:`actuator_net.importers`) turns its file into an
:class:`ActuatorSeries`: T rows of joint position error ``q_target - q`` (rad), joint
velocity (rad/s) and measured actuator torque (N m) for J joints, with their times.
From a series, :func:`build_samples` makes the network's samples: for a target row k at
time t_k, the input of joint j is::

    [r_j(t_k, 0), r_j(t_k, h), ..., r_j(t_k, (L-1) h),  qd_j(t_k), ..., qd_j(t_k - (L-1) h)]
    r_j(t, d) = q*_j(t - d) - q_j(t) = e_j(t - d) + q_j(t - d) - q_j(t)

(e = position error q* - q, h = history spacing, L = number of lags; layout
``INPUT_LAYOUT``) and its label is tau_j(t_k): each past target is measured against the
joint's position *now*.  A driver behind a bus applies an old target to the joint's present
position, so a joint pushed aside (a foot striking the ground) changes the torque at once
while a new target changes it only after the latency.  With each lag's own error
(``LAG_ERROR_LAYOUT``, Hwangbo et al.'s input, and this project's before 2026-12-03) the two
look alike to the network, which learns from a rig where targets move and joints follow:
in closed loop it then answers a struck joint a latency late (bench/RESULTS.md, "The
actuator network answered a struck joint a latency late").  Where a series has no joint
position, its differences are integrated from the velocity.  When h is an integer multiple m of the sample period the
history is taken by index stride (rows k, k - m, k - 2m); otherwise it is linearly
interpolated in time.  A series sampled more slowly than h (period > h) is rejected.

The split is by time, per series: of the labelled rows, the last ``val_fraction`` are
validation, and the last ``early_stop_fraction`` of the rest drive early stopping.  A
training sample's label row always precedes every early-stopping and validation label row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Input layout of one joint, for L lags (newest first); also written into the checkpoint
#: and the ONNX metadata.
INPUT_LAYOUT = "q_target[t - i h] - q[t] for i in 0..L-1, then vel[t - i h] for i in 0..L-1"
#: The layout of each lag's own position error (``model.error_reference = "lag"``, and every
#: checkpoint written before 2026-12-03)
LAG_ERROR_LAYOUT = "pos_error[t - i h] for i in 0..L-1, then vel[t - i h] for i in 0..L-1"
#: ``model.error_reference`` -> input layout
LAYOUTS = {"now": INPUT_LAYOUT, "lag": LAG_ERROR_LAYOUT}

#: A signal whose standard deviation over a log is below this is "constant" (its unit).
MIN_STD = {"pos_error": 1e-6, "vel": 1e-6, "tau": 1e-6}
UNITS = {"pos_error": "rad", "vel": "rad/s", "tau": "N m"}
#: Relative tolerance on time stamps (jitter within it still counts as a uniform rate).
TIME_RTOL = 1e-6


class ActuatorDataError(ValueError):
    """Unusable actuator data; the message names the file and the field."""


@dataclass
class ActuatorSeries:
    """One contiguous stretch of actuator data: T rows, J joints (SI units, radians)."""

    # sample times (s), strictly increasing, shape (T,)
    time: np.ndarray
    # joint position error q_target - q (rad), shape (T, J)
    pos_error: np.ndarray
    # joint velocity (rad/s), shape (T, J)
    vel: np.ndarray
    # measured actuator output torque (N m), shape (T, J)
    tau: np.ndarray
    # joint names, length J
    joint_names: list[str]
    # the file this came from (for messages and metrics)
    source: str
    # where each signal came from in the file, "{i}" standing for the joint's column index
    columns: dict[str, str] = field(default_factory=lambda: {
        "pos_error": "q_target - q", "vel": "qd", "tau": "tau"})
    # proportional gains of the joint controller (N m / rad), if known, shape (J,)
    kp: np.ndarray | None = None
    # derivative gains of the joint controller (N m s / rad), if known, shape (J,)
    kd: np.ndarray | None = None
    # rows before this index only provide history: they are never a label or split row
    first_label: int = 0
    # per joint, a string naming its actuator (gains, limits) if known: equal keys may share
    # a network under joint_types "auto"
    actuator_keys: list[str] | None = None
    # joint position (rad), if the file has it, shape (T, J); only its differences are used
    pos: np.ndarray | None = None

    @property
    def num_rows(self) -> int:
        return int(self.time.shape[0])

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def field_name(self, signal: str, joint: int) -> str:
        """The file's name for ``signal`` of joint number ``joint``."""
        return self.columns.get(signal, signal).replace("{i}", str(joint))

    def sample_period(self) -> float:
        """Median spacing of the time stamps (s), to 12 significant digits."""
        return float(f"{float(np.median(np.diff(self.time))):.12g}")

    def fail(self, signal: str, msg: str, joint: int | None = None) -> ActuatorDataError:
        where = self.field_name(signal, joint) if joint is not None else signal
        jn = f" (joint {self.joint_names[joint]!r})" if joint is not None else ""
        return ActuatorDataError(f"{self.source}: field {where!r}{jn}: {msg}")


def check_series(s: ActuatorSeries) -> ActuatorSeries:
    """Check shapes, finiteness, time order and excitation; raise :class:`ActuatorDataError`."""
    t = np.asarray(s.time, dtype=np.float64)
    if t.ndim != 1 or t.shape[0] < 2:
        raise s.fail("time", f"expected at least 2 samples of shape (T,), got {t.shape}")
    if not np.all(np.isfinite(t)):
        raise s.fail("time", f"NaN/Inf at row {int(np.argmin(np.isfinite(t)))}")
    if np.any(np.diff(t) <= 0):
        raise s.fail("time", f"not strictly increasing at row {int(np.argmax(np.diff(t) <= 0)) + 1}")
    n, nj = t.shape[0], s.num_joints
    if nj == 0:
        raise s.fail("joint_names", "no joints")
    if not 0 <= s.first_label < n - 1:
        raise s.fail("time", f"first labelled row {s.first_label} outside the {n} rows")
    for sig in ("pos_error", "vel", "tau"):
        a = getattr(s, sig)
        if a.shape != (n, nj):
            raise s.fail(sig, f"expected shape ({n}, {nj}) = (rows, joints), got {a.shape}")
        bad = ~np.isfinite(a)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise s.fail(sig, f"NaN/Inf at row {i}", joint=int(j))
        std = a[s.first_label:].std(axis=0)
        for j in range(nj):
            scale = max(1.0, float(np.abs(a[s.first_label:, j]).mean()))
            if std[j] < MIN_STD[sig] * scale:
                raise s.fail(sig, f"constant over the log (std {std[j]:.3g} {UNITS[sig]}): the "
                             "actuator is not excited, nothing to learn from", joint=j)
    if s.pos is not None:
        if np.shape(s.pos) != (n, nj):
            raise s.fail("pos", f"expected shape ({n}, {nj}) = (rows, joints), got {np.shape(s.pos)}")
        if not np.all(np.isfinite(s.pos)):
            i, j = np.argwhere(~np.isfinite(s.pos))[0]
            raise s.fail("pos", f"NaN/Inf at row {i}", joint=int(j))
    for g in ("kp", "kd"):
        v = getattr(s, g)
        if v is not None and np.shape(v) != (nj,):
            raise s.fail(g, f"expected {nj} gains, got shape {np.shape(v)}")
    return s


@dataclass
class LagPlan:
    """How history is read from one series: by index stride, or by interpolation in time."""

    # index stride between history steps, or None when interpolating
    stride: int | None
    # the series' sample period (s)
    period: float


def lag_plan(s: ActuatorSeries, spacing: float) -> LagPlan:
    """Decide stride vs interpolation; reject a series sampled more slowly than ``spacing``."""
    period = s.sample_period()
    if spacing < period * (1 - TIME_RTOL):
        raise s.fail("time", f"sample period {period:.6g} s ({1 / period:.6g} Hz) is longer than "
                     f"the history spacing {spacing:.6g} s: the log's rate is too low for this "
                     f"spacing (use a history spacing >= {period:.6g} s, or a faster log)")
    ratio = spacing / period
    jitter = np.abs(np.diff(s.time) - period).max() / period
    stride = int(round(ratio))
    if abs(ratio - stride) <= 1e-6 * max(1.0, ratio) and jitter <= 1e-3:
        return LagPlan(stride=stride, period=period)
    return LagPlan(stride=None, period=period)


def position(s: ActuatorSeries) -> np.ndarray:
    """(T, J) joint position of ``s``: logged, or else integrated from the velocity
    (trapezoid, from 0 at the first row: only differences are meaningful)."""
    if s.pos is not None:
        return s.pos
    steps = 0.5 * (s.vel[1:] + s.vel[:-1]) * np.diff(s.time)[:, None]
    return np.concatenate([np.zeros((1, s.num_joints)), np.cumsum(steps, axis=0)])


def _lerp(a: np.ndarray, i0: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Rows ``i0 + w`` of ``a``, linearly interpolated."""
    return a[i0] * (1 - w) + a[i0 + 1] * w


def history(s: ActuatorSeries, rows: np.ndarray, spacing: float, num_lags: int,
            layout: str = INPUT_LAYOUT) -> np.ndarray:
    """Network inputs for label ``rows`` in ``layout`` (one of ``LAYOUTS``' values): shape
    (len(rows), J, 2 * num_lags), float64."""
    if layout not in LAYOUTS.values():
        raise ValueError(f"unknown input layout {layout!r}")
    plan = lag_plan(s, spacing)
    rows = np.asarray(rows, dtype=np.int64)
    q = position(s) if layout == INPUT_LAYOUT else None
    e_cols, v_cols = [], []
    for m in range(num_lags):
        if plan.stride is not None:
            idx = rows - m * plan.stride
            if idx.size and idx.min() < 0:
                raise ValueError("history reaches before the first row")
            e_cols.append(s.pos_error[idx] + (0.0 if q is None else q[idx] - q[rows]))
            v_cols.append(s.vel[idx])
        else:
            tq = s.time[rows] - m * spacing
            if tq.size and tq.min() < s.time[0] - TIME_RTOL * plan.period:
                raise ValueError("history reaches before the first row")
            pos = np.interp(tq, s.time, np.arange(s.num_rows, dtype=np.float64))
            i0 = np.clip(np.floor(pos).astype(np.int64), 0, s.num_rows - 2)
            w = (pos - i0)[:, None]
            e_cols.append(_lerp(s.pos_error, i0, w)
                          + (0.0 if q is None else _lerp(q, i0, w) - q[rows]))
            v_cols.append(_lerp(s.vel, i0, w))
    return np.stack(e_cols + v_cols, axis=-1)


def first_full_row(s: ActuatorSeries, spacing: float, num_lags: int) -> int:
    """First row whose whole history lies inside the series."""
    span = (num_lags - 1) * spacing
    ok = s.time - span >= s.time[0] - TIME_RTOL * s.sample_period()
    return int(np.argmax(ok))


@dataclass
class SplitRows:
    """Label rows of one series in each part of the time split."""

    train: np.ndarray
    early_stop: np.ndarray
    val: np.ndarray


def validation_start(s: ActuatorSeries, val_fraction: float) -> int:
    """First validation row of ``s``: the rows from ``first_label`` up to it may train."""
    n_lab = s.num_rows - s.first_label
    return s.first_label + int(np.floor((1 - val_fraction) * n_lab + 1e-9))


def split_rows(s: ActuatorSeries, spacing: float, num_lags: int, val_fraction: float,
               early_stop_fraction: float) -> SplitRows:
    """Time split of ``s``'s labelled rows (see the module docstring)."""
    val_start = validation_start(s, val_fraction)
    n_trainval = val_start - s.first_label
    es_start = s.first_label + int(np.floor((1 - early_stop_fraction) * n_trainval + 1e-9))
    start = max(s.first_label, first_full_row(s, spacing, num_lags))
    parts = SplitRows(train=np.arange(start, es_start), early_stop=np.arange(max(start, es_start), val_start),
                      val=np.arange(max(start, val_start), s.num_rows))
    for name in ("train", "early_stop", "val"):
        if len(getattr(parts, name)) < 2:
            raise s.fail("time", f"too short for a {name} part: {s.num_rows} rows, history "
                         f"{(num_lags - 1) * spacing:.4g} s, val_fraction {val_fraction}, "
                         f"early_stop_fraction {early_stop_fraction}")
    return parts


@dataclass
class Samples:
    """Network samples: inputs (N, J, 2L), labels (N, J), and where each came from."""

    x: np.ndarray
    y: np.ndarray
    # index of the series (in the list given to build_samples) of each sample
    series: np.ndarray
    # label row of each sample in its series
    row: np.ndarray
    # label time of each sample (s)
    time: np.ndarray
    # the raw position error and velocity at the label row (for the PD baselines), (N, J)
    pos_error: np.ndarray
    vel: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])


def build_samples(series: list[ActuatorSeries], parts: list[np.ndarray], spacing: float,
                  num_lags: int, layout: str = INPUT_LAYOUT) -> Samples:
    """Samples of the given label rows of each series (``parts[i]`` for ``series[i]``)."""
    xs, ys, sid, rows, times, es, vs = [], [], [], [], [], [], []
    for i, (s, r) in enumerate(zip(series, parts)):
        xs.append(history(s, r, spacing, num_lags, layout))
        ys.append(s.tau[r])
        sid.append(np.full(len(r), i))
        rows.append(r)
        times.append(s.time[r])
        es.append(s.pos_error[r])
        vs.append(s.vel[r])
    cat = np.concatenate
    return Samples(x=cat(xs), y=cat(ys), series=cat(sid), row=cat(rows), time=cat(times),
                   pos_error=cat(es), vel=cat(vs))
