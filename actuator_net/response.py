"""How long the actuator takes to respond, from its logs; the history the network needs.

The network sees position error and velocity at t, t - h, ..., t - (L - 1) h.  An actuator
whose torque at t still follows commands older than (L - 1) h (bus latency, jitter, a
slow current loop) cannot be learned from that window: on a stand-in with 20 ms latency,
up to 8 ms jitter and an 8 ms torque lag the paper's 20 ms window gave a held-error
stiffness 24 % below the driver's (3 % with the 50 ms chosen here).  So the window is
chosen from the logs.

The estimate needs no gains.  Per joint, on the rows before the validation part, the
torque is fitted by a distributed-lag law on a grid of lags (spacing ``g``: the log's
sample period, or a multiple of it near 2.5 ms)::

    tau(t) = sum_m a_m e(t - m g) + sum_m b_m qd(t - m g) + c,    a_m >= 0

(bounded least squares).  For a driver ``kp (q*(t - d) - q(t)) - kd qd`` seen through a
first-order lag, ``a`` is the command's impulse response (``sum a = kp``) and the ``qd``
lags carry ``q(t - d) - q(t)``; ``a``'s median and 90 % point are the reported delay
(``estimated_lag_s``) and response end, medians over the joints whose torque follows
their commands.  The window is chosen by how well the law explains the torque when it may
only look back as far as the window: for each candidate number of lags L (spans
(L - 1) h, from the paper's 3 lags up to ``max_num_lags`` and ``max_history_span``), the
same fit restricted to lags within the span, against a reference fit reaching
``REFERENCE_SPAN`` back.  A joint needs the fewest lags whose residual variance (a
fraction of its torque variance) lies within ``RHO`` of the reference's plus ``EPS``:
older commands then explain nothing its window misses.  The history is the upper median
of the joints' needs (robust to a few joints whose logs the law explains poorly); where
that joint is not served by any candidate the largest is taken (``capped``).  An
actuator whose torque does not follow its commands linearly (saturated most of the time)
gains nothing from longer spans and keeps the paper's 3 lags.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import lsq_linear

from actuator_net.data import ActuatorSeries

#: lags the paper uses; fewer are never chosen (-)
PAPER_NUM_LAGS = 3
#: the reference fit looks back this far, or 40 ms past the largest candidate span (s)
REFERENCE_SPAN = 0.1
#: a span explains the torque as well as the reference if its residual variance is at most
#: (1 + RHO) times the reference's ...
RHO = 0.05
#: ... plus EPS (fractions of the torque variance)
EPS = 1e-3
#: lag grid spacing: the log's sample period times the integer nearest this over it (s)
GRID = 0.0025
#: a joint's delay is reported, and its need for lags counted, if its command term's variance
#: is at least this fraction of the torque variance (else the torque does not follow the
#: commands linearly: it needs the paper's 3 lags) (-)
MIN_COMMAND_SHARE = 0.1
#: rows used for the fits, at most, over all logs (evenly spread; 2000 per log at least) (-)
MAX_ROWS = 20000


@dataclass
class ResponseEstimate:
    """What the logs say about the actuator's response (all times in s)."""

    # per log: the lag grid spacing
    grid_s: list[float]
    # how far back the reference fit looks
    reference_span_s: float
    # median over joints of the command response's median delay, and of its 90 % point
    # (over the joints of log 0 whose torque follows the commands; NaN if none does)
    delay_s: float
    end_s: float
    # per joint (name of log 0's joints): delay, end, the reference fit's R^2 and its
    # static stiffness (sum of the command weights, N m/rad)
    per_joint: dict
    # candidate span -> mean over joints and logs of the residual variance fraction (for
    # the record; the choice is per joint)
    residual: dict[float, float]
    # the reference's
    reference_residual: float
    # per joint and log: (log index, joint name, residual fractions at the candidate spans
    # in their order, the reference's, the command term's variance fraction)
    joint_residuals: list[tuple[int, str, list[float], float, float]]


def _fit(e: np.ndarray, v: np.ndarray, y: np.ndarray, rows: np.ndarray, stride: int,
         taps: int) -> tuple[np.ndarray, float, float]:
    """Bounded least squares of y[rows] on e, v at lags 0..taps-1 (times ``stride`` rows):
    (command weights a (taps,), residual variance fraction, variance fraction of the
    command term sum_m a_m e(t - m g))."""
    cols = [e[rows - m * stride] for m in range(taps)] + [v[rows - m * stride] for m in range(taps)]
    a = np.stack(cols, axis=1)
    scale = np.maximum(a.std(axis=0), 1e-12)
    a = np.c_[a / scale, np.ones(len(rows))]
    yy = y[rows]
    lower = np.r_[np.zeros(taps), np.full(taps + 1, -np.inf)]
    sol = lsq_linear(a, yy, bounds=(lower, np.inf), method="bvls").x
    var = max(float(yy.var()), 1e-30)
    command = float(np.var(a[:, :taps] @ sol[:taps])) / var
    return sol[:taps] / scale[:taps], float(np.var(yy - a @ sol)) / var, command


def _quantile_time(a: np.ndarray, grid: float, q: float) -> float:
    """First lag (s) by which a fraction ``q`` of the weights ``a`` has arrived."""
    total = a.sum()
    if total <= 0:
        return 0.0
    return float(np.argmax(np.cumsum(a) >= q * total - 1e-12)) * grid


def estimate_response(series: list[ActuatorSeries], rows: list[np.ndarray],
                      spans: list[float]) -> ResponseEstimate:
    """Fit the distributed-lag law (module docstring) on ``rows`` of each series, for
    each of the candidate ``spans`` (s) and the reference span."""
    ref_span = max(REFERENCE_SPAN, max(spans) + 0.04)
    res = {w: [] for w in spans}
    ref_res, grids, per_joint, joints, shares = [], [], {}, [], []
    for si, (s, r) in enumerate(zip(series, rows)):
        period = s.sample_period()
        stride = max(1, int(round(GRID / period)))
        grid = stride * period
        grids.append(grid)
        ref_taps = int(np.floor(ref_span / grid + 1e-6)) + 1
        r = np.asarray(r, dtype=np.int64)
        r = r[r - (ref_taps - 1) * stride >= 0]
        cap = max(2000, MAX_ROWS // len(series))
        if len(r) > cap:
            r = r[np.linspace(0, len(r) - 1, cap).round().astype(np.int64)]
        if len(r) < 8 * ref_taps:  # too short to tell: the candidates all fit as well
            continue
        for j in range(s.num_joints):
            e, v, y = s.pos_error[:, j], s.vel[:, j], s.tau[:, j]
            a, ref, command = _fit(e, v, y, r, stride, ref_taps)
            ref_res.append(ref)
            joints.append((si, s.joint_names[j]))
            shares.append(command)
            for w in spans:
                taps = int(np.floor(w / grid * (1 + 1e-6))) + 1
                res[w].append(_fit(e, v, y, r, stride, taps)[1])
            if si == 0:
                per_joint[s.joint_names[j]] = {
                    "delay_s": _quantile_time(a, grid, 0.5), "end_s": _quantile_time(a, grid, 0.9),
                    "r2": 1.0 - ref, "command_share": command,
                    "static_stiffness": float(a.sum())}
    if not ref_res:
        return ResponseEstimate(grid_s=grids, reference_span_s=ref_span, delay_s=float("nan"),
                                end_s=float("nan"), per_joint={},
                                residual={w: float("nan") for w in spans},
                                reference_residual=float("nan"), joint_residuals=[])
    # the delay of joints whose torque follows their commands (not saturated most of the time)
    follows = [p for p in per_joint.values() if p["command_share"] >= MIN_COMMAND_SHARE]
    delays = [p["delay_s"] for p in follows] or [float("nan")]
    ends = [p["end_s"] for p in follows] or [float("nan")]
    return ResponseEstimate(grid_s=grids, reference_span_s=ref_span,
                            delay_s=float(np.median(delays)), end_s=float(np.median(ends)),
                            per_joint=per_joint,
                            residual={w: float(np.mean(v)) for w, v in res.items()},
                            reference_residual=float(np.mean(ref_res)),
                            joint_residuals=[(si, name, [res[w][i] for w in spans], ref_res[i],
                                              shares[i]) for i, (si, name) in enumerate(joints)])


def _finite(v: float) -> float | None:
    """``v``, or None (JSON null) if it is NaN."""
    return float(v) if np.isfinite(v) else None


def candidate_lags(spacing: float, max_span: float, max_num_lags: int) -> list[int]:
    """Numbers of lags to choose from: 3 (the paper's) up to the caps (at least 3)."""
    top = min(max_num_lags, 1 + int(np.floor(max_span / spacing + 1e-9)))
    return list(range(PAPER_NUM_LAGS, max(top, PAPER_NUM_LAGS) + 1))


def choose_num_lags(series: list[ActuatorSeries], rows: list[np.ndarray], spacing: float,
                    max_span: float, max_num_lags: int) -> tuple[int, dict]:
    """The number of lags at ``spacing`` whose window covers the actuator's response (module
    docstring), and the record of the choice for ``metrics.json``."""
    lags = candidate_lags(spacing, max_span, max_num_lags)
    spans = [(n - 1) * spacing for n in lags]
    est = estimate_response(series, rows, spans)
    # per joint: the fewest lags explaining its torque as well as the reference (len(lags):
    # none of them; the paper's 3 where the torque does not follow the commands); the
    # history is the upper median over joints and logs
    needs = []
    for si, name, residual, ref, share in est.joint_residuals:
        ok = [k for k, r in enumerate(residual)
              if r <= (1.0 + RHO) * ref + EPS or share < MIN_COMMAND_SHARE]
        needs.append(ok[0] if ok else len(lags))
        if si == 0:
            est.per_joint[name]["num_lags_needed"] = lags[ok[0]] if ok else None
    if needs:
        k = sorted(needs)[len(needs) // 2]
        chosen, capped = lags[min(k, len(lags) - 1)], k == len(lags)
    else:  # logs too short to tell
        chosen, capped = PAPER_NUM_LAGS, False
    record = {
        "method": "per joint, distributed-lag fits of the torque on position error and "
                  "velocity (command weights >= 0) on the rows before validation; the fewest "
                  f"lags whose span explains it within {RHO:g} x the {est.reference_span_s:g} s "
                  f"fit's residual + {EPS:g} of the torque variance; upper median over joints",
        # null where no joint's torque follows its commands
        "estimated_lag_s": est.delay_s if np.isfinite(est.delay_s) else None,
        "response_end_s": est.end_s if np.isfinite(est.end_s) else None,
        "candidates": {str(n): {"span_s": w, "residual_fraction": _finite(est.residual[w])}
                       for n, w in zip(lags, spans)},
        "reference_span_s": est.reference_span_s,
        "reference_residual_fraction": _finite(est.reference_residual),
        "grid_s": est.grid_s,
        "per_joint": est.per_joint,
        "suggested_num_lags": chosen,
        "capped": capped,
    }
    return chosen, record
