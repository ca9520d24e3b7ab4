"""History windows (stride and interpolation), the time split, rejection of bad series."""

from __future__ import annotations

import numpy as np
import pytest

from actuator_net.data import (
    LAG_ERROR_LAYOUT,
    ActuatorDataError,
    ActuatorSeries,
    build_samples,
    check_series,
    history,
    lag_plan,
    split_rows,
)


def ramp_series(n=40, dt=0.01, first_label=0, jitter=0.0):
    """pos_error = 10 * row, vel = -row, tau = row^2 (two joints: second is +1000)."""
    r = np.arange(n, dtype=np.float64)
    t = r * dt + jitter * np.sin(r)
    col = lambda a: np.stack([a, a + 1000.0], axis=1)  # noqa: E731
    return ActuatorSeries(time=t, pos_error=col(10 * r), vel=col(-r), tau=col(r ** 2),
                          joint_names=["a", "b"], source="ramp.npz", first_label=first_label)


def test_history_by_stride():
    s = ramp_series(dt=0.005)  # 200 Hz, h = 0.01 s = 2 rows
    assert lag_plan(s, 0.01).stride == 2
    x = history(s, np.array([10, 11]), 0.01, 3, LAG_ERROR_LAYOUT)
    assert x.shape == (2, 2, 6)
    # row 10: pos_error rows 10, 8, 6 then vel rows 10, 8, 6
    np.testing.assert_allclose(x[0, 0], [100, 80, 60, -10, -8, -6])
    np.testing.assert_allclose(x[1, 1], [1110, 1090, 1070, 989, 991, 993])


def test_history_refers_each_past_target_to_the_position_now():
    """The default layout: lag m's input is q*(t - m h) - q(t).  With the joint position
    logged (here q = 3 row, so q* = e + q = 13 row) and, without it, integrated from the
    velocity (vel = -row at 200 Hz: q(r) = -r^2 dt / 2, exact for the trapezoid)."""
    s = ramp_series(dt=0.005)
    s.pos = 3.0 * np.stack([np.arange(40.0)] * 2, axis=1)
    x = history(s, np.array([10]), 0.01, 3)
    np.testing.assert_allclose(x[0, 0], [130 - 30, 104 - 30, 78 - 30, -10, -8, -6])
    s.pos = None
    x = history(s, np.array([10]), 0.01, 3)
    dq = lambda r: -(r ** 2 - 100) * 0.005 / 2  # noqa: E731 - q(r) - q(10)
    np.testing.assert_allclose(x[0, 0], [100, 80 + dq(8), 60 + dq(6), -10, -8, -6])
    # interpolated lags (250 Hz): the position is interpolated like the error
    s = ramp_series(dt=0.004)
    s.pos = 3.0 * np.stack([np.arange(40.0)] * 2, axis=1)
    np.testing.assert_allclose(history(s, np.array([10]), 0.01, 3)[0, 0],
                               [100, 75 - 7.5, 50 - 15, -10, -7.5, -5])


def test_history_by_interpolation():
    s = ramp_series(dt=0.004)  # 250 Hz: h = 0.01 s = 2.5 rows -> interpolate in time
    assert lag_plan(s, 0.01).stride is None
    x = history(s, np.array([10]), 0.01, 3, LAG_ERROR_LAYOUT)
    # rows 10, 7.5, 5: the ramp is linear, so interpolation is exact
    np.testing.assert_allclose(x[0, 0], [100, 75, 50, -10, -7.5, -5])
    # a non-linear signal: midpoint of rows 7 and 8
    s.pos_error[:, 0] = np.arange(s.num_rows) ** 2
    x = history(s, np.array([10]), 0.01, 3, LAG_ERROR_LAYOUT)
    assert x[0, 0, 1] == pytest.approx((49 + 64) / 2)


def test_history_spacing_equal_to_period_and_jittered_clock():
    s = ramp_series(dt=0.02)  # 50 Hz log, its own spacing
    np.testing.assert_allclose(history(s, np.array([5]), 0.02, 3, LAG_ERROR_LAYOUT)[0, 0],
                               [50, 40, 30, -5, -4, -3])
    j = ramp_series(dt=0.01, jitter=1e-4)  # jittered stamps: interpolate by time
    assert lag_plan(j, 0.02).stride is None


def test_too_low_rate_is_rejected():
    s = ramp_series(dt=0.02)
    with pytest.raises(ActuatorDataError, match=r"ramp\.npz.*'time'.*50 Hz.*too low"):
        lag_plan(s, 0.01)


def test_time_split_no_overlap():
    s = ramp_series(n=1000, dt=0.005)
    p = split_rows(s, 0.01, 3, val_fraction=0.2, early_stop_fraction=0.15)
    assert p.val[0] == 800 and p.val[-1] == 999  # the last 20 % of the rows
    assert p.early_stop[0] == 680 and p.early_stop[-1] == 799
    assert p.train[0] == 4 and p.train[-1] == 679  # first row with a full 0.02 s history
    assert p.train.max() < p.early_stop.min() <= p.early_stop.max() < p.val.min()
    smp = build_samples([s], [p.train], 0.01, 3, LAG_ERROR_LAYOUT)
    # no training sample's label or input reaches into validation time
    assert smp.time.max() < s.time[p.val[0]]
    assert smp.x[..., :3].max() < 10 * p.val[0]


def test_time_split_respects_history_only_rows():
    """ANYmal: rows before first_label are history; the split is over labelled rows only."""
    s = ramp_series(n=2288, dt=0.0025, first_label=15)
    p = split_rows(s, 0.01, 3, 0.2, 0.15)
    assert len(p.val) == 455 and p.val[0] == 15 + 1818
    assert p.train[0] == 15


def test_split_of_several_logs_is_per_log():
    a, b = ramp_series(n=100), ramp_series(n=300)
    pa, pb = (split_rows(s, 0.01, 3, 0.2, 0.15) for s in (a, b))
    assert (len(pa.val), len(pb.val)) == (20, 60)
    smp = build_samples([a, b], [pa.val, pb.val], 0.01, 3)
    assert (smp.series == 0).sum() == 20 and (smp.series == 1).sum() == 60


@pytest.mark.parametrize("signal,field", [("pos_error", "q_target - q"), ("vel", "qd"),
                                          ("tau", "tau")])
def test_constant_signal_is_rejected(signal, field):
    s = ramp_series()
    getattr(s, signal)[:, 1] = 3.0
    with pytest.raises(ActuatorDataError, match=rf"ramp\.npz: field '{field}' \(joint 'b'\).*constant"):
        check_series(s)


def test_nan_is_rejected():
    s = ramp_series()
    s.vel[7, 0] = np.nan
    with pytest.raises(ActuatorDataError, match=r"ramp\.npz: field 'qd' \(joint 'a'\).*row 7"):
        check_series(s)


def test_too_short_log_is_rejected():
    s = ramp_series(n=8)
    with pytest.raises(ActuatorDataError, match="too short"):
        split_rows(s, 0.01, 3, 0.2, 0.15)
