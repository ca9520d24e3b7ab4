"""Hand-checkable pieces: least squares + block bootstrap, filters, splits, the parameter table."""

import math

import numpy as np
import pytest

from robot_rl.config import ConfigError, from_dict
from robot_rl.robot import load_robot
from sysid.config import SysidConfig
from sysid.joints import Estimate
from sysid.params import parameter_table
from sysid.replay import holdout_mask, window_starts
from sysid.signals import block_bootstrap, block_normal_equations, lowpass, segments, solve, trimmed

A1 = load_robot("a1")


def test_least_squares_and_bootstrap_match_the_textbook_on_iid_data():
    rng = np.random.default_rng(0)
    n, sigma = 4000, 0.3
    a = np.c_[np.ones(n), rng.normal(size=n), rng.uniform(-1, 1, n)]
    x_true = np.array([1.0, -2.0, 0.5])
    y = a @ x_true + rng.normal(0, sigma, n)
    x = solve(a.T @ a, a.T @ y)
    # normal equations against LAPACK's lstsq (another algorithm, any BLAS): float64 with
    # cond(a' a) ~ 10, so they agree to ~1e-14 (measured 3e-15); 1e-10 leaves room for any
    # kernel, a wrong solve is off by far more
    np.testing.assert_allclose(x, np.linalg.lstsq(a, y, rcond=None)[0], rtol=1e-10)
    analytic = sigma * np.sqrt(np.diag(np.linalg.inv(a.T @ a)))
    grams, rhss = block_normal_equations(a[:, None, :], y[:, None], 50)
    assert grams.shape == (80, 3, 3)
    np.testing.assert_allclose(grams.sum(0), a.T @ a)  # float64 sums in another order: ~1e-15
    boot = block_bootstrap(grams, rhss, 400, rng).std(axis=0)
    np.testing.assert_allclose(boot, analytic, rtol=0.25)


def test_solve_survives_rank_deficiency():
    g = np.array([[1.0, 1.0], [1.0, 1.0]])
    x = solve(g, np.array([2.0, 2.0]))
    assert np.all(np.isfinite(x)) and x.sum() == pytest.approx(2.0)


def test_lowpass_keeps_slow_signals_and_is_zero_phase():
    dt = 0.005
    t = np.arange(2000) * dt
    slow = np.sin(2 * np.pi * 0.5 * t)
    fast = 0.5 * np.sin(2 * np.pi * 60 * t)
    out = lowpass(slow + fast, 10.0, dt)
    np.testing.assert_allclose(out[200:-200], slow[200:-200], atol=2e-3)
    np.testing.assert_array_equal(lowpass(slow, 500.0, dt), slow)  # above Nyquist: no-op


def test_segments_trim_and_holdout_split():
    m = np.array([0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0], dtype=bool)
    assert segments(m) == [(1, 4), (5, 11)]
    assert segments(m, 4) == [(5, 11)]
    np.testing.assert_array_equal(np.where(trimmed(m, 1))[0], [2, 6, 7, 8, 9])
    h = holdout_mask(4000, 0.005, 0.2, 2.0)
    assert h.mean() == pytest.approx(0.2, abs=0.02) and not h[:400].any()
    short = holdout_mask(600, 0.005, 0.2, 2.0)  # 3 s log: its end is held out
    assert short[-1] and short.mean() == pytest.approx(0.2, abs=0.01)
    starts = window_starts(h, 50)
    assert all(h[s:s + 51].all() for s in starts) and len(starts) >= 14


def test_parameter_table_ranges_and_identifiability():
    cfg = SysidConfig()
    j = A1.joint_names[0]
    est = {
        f"damping/{j}": Estimate(0.2, 0.004, 0.003),
        f"armature/{j}": Estimate(0.001, 0.002, 0.0),  # std 2x its value: not identifiable
        f"coulomb/{j}": Estimate(0.004, 0.003, 0.0),  # near the lower bound: range clipped at 0
        "foot_friction": Estimate(math.nan, math.inf, math.inf, False, "no slip"),
    }
    t = parameter_table(est, A1, cfg, lower_bounds={"foot_friction": 0.7})
    d = t[f"damping/{j}"]
    std = math.sqrt(0.004 ** 2 + 0.003 ** 2 + max(0.02 * 0.2, 2e-3) ** 2)
    assert d["identifiable"] and d["std"] == pytest.approx(std)
    assert d["range"] == pytest.approx([0.2 - 2 * std, 0.2 + 2 * std])
    assert d["nominal"] == 0.0 and d["unit"] == "N m s/rad" and "dof_damping" in d["maps_to"]
    a = t[f"armature/{j}"]
    assert not a["identifiable"] and "std" in a["reason"]
    assert a["range"] == list(cfg.bounds.armature) and a["fitted"] == pytest.approx(0.001)
    assert a["std"] == pytest.approx(0.02 / math.sqrt(12))
    c = t[f"coulomb/{j}"]
    assert c["identifiable"] and c["range"][0] == 0.0
    f = t["foot_friction"]
    assert not f["identifiable"] and f["reason"] == "no slip"
    assert f["range"] == [0.7, cfg.bounds.foot_friction[1]]
    none = t[f"damping/{A1.joint_names[1]}"]  # no estimate at all: centre of the bounds
    assert not none["identifiable"] and none["fitted"] == pytest.approx(sum(cfg.bounds.damping) / 2)
    assert f["fitted"] == pytest.approx(0.5 * (0.7 + cfg.bounds.foot_friction[1]))


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ConfigError, match="filterhz"):
        from_dict(SysidConfig, {"joints": {"filterhz": 3}})
    with pytest.raises(ConfigError):
        SysidConfig(bootstrap=2)
