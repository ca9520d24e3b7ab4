"""bench/stats.py: interquartile mean and bootstrap intervals used by bench/bench_trpo.py."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "bench" / "stats.py"
_spec = importlib.util.spec_from_file_location("bench_stats", _PATH)
stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stats)


def test_iqm_hand_worked():
    # 5 seeds, one outlier: n // 4 = 1 cut from each end -> mean(2, 3, 4) = 3 (plain mean 22).
    assert stats.iqm([100.0, 2.0, 1.0, 4.0, 3.0]) == pytest.approx(3.0)
    # 8 values: cut 2 each end -> mean(3, 4, 5, 6) = 4.5 (plain mean 16.5 with the outliers).
    assert stats.iqm([-50.0, 1, 3, 4, 5, 6, 8, 130]) == pytest.approx(4.5)
    # fewer than 4 values: nothing cut, the plain mean.
    assert stats.iqm([1.0, 2.0, 6.0]) == pytest.approx(3.0)
    # along an axis, one row per resample
    np.testing.assert_allclose(stats.iqm(np.array([[100.0, 2, 1, 4, 3], [5, 5, 5, 5, -9]])), [3, 5])


def test_iqm_matches_scipy_trim_mean():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for n in range(1, 20):
        x = rng.standard_cauchy(n)
        assert stats.iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25))


def test_interval_contains_point_and_shrinks():
    rng = np.random.default_rng(2)

    def sample(n):  # returns around 1000 with 20 % outliers (a failed seed scores about 0)
        x = rng.normal(1000.0, 100.0, n)
        x[rng.random(n) < 0.2] = rng.normal(0.0, 10.0)
        return x

    small, large = sample(8), sample(400)
    p_s, lo_s, hi_s = stats.bootstrap_ci(small)
    p_l, lo_l, hi_l = stats.bootstrap_ci(large)
    assert lo_s <= p_s <= hi_s and lo_l <= p_l <= hi_l
    assert hi_l - lo_l < 0.5 * (hi_s - lo_s)
    # the IQM resists the outliers the plain mean follows
    assert abs(p_l - 1000.0) < 60.0  # middle half of the mixture: about 963
    assert abs(np.mean(large) - 1000.0) > 150.0  # plain mean: about 800
    # fixed RNG: the same interval twice
    assert stats.bootstrap_ci(small) == (p_s, lo_s, hi_s)


def test_ratio_interval():
    rng = np.random.default_rng(3)
    a = rng.normal(1500.0, 150.0, 6)
    b = rng.normal(1000.0, 100.0, 6)
    r, lo, hi = stats.ratio_ci(a, b)
    assert r == pytest.approx(stats.iqm(a) / stats.iqm(b))
    assert 1.0 < lo <= r <= hi < 2.0
    r2, lo2, hi2 = stats.ratio_ci(np.tile(a, 50), np.tile(b, 50))
    assert r2 == pytest.approx(r, rel=0.02)  # n // 4 cuts 1 of 6 but 75 of 300
    assert lo2 <= r2 <= hi2
    assert hi2 - lo2 < 0.5 * (hi - lo)
    # one outlier seed on the denominator side: the IQM ratio ignores it, the mean's does not
    b_out = b.copy()
    b_out[0] = 10_000.0
    r3, lo3, hi3 = stats.ratio_ci(a, b_out)
    assert lo3 <= r3 <= hi3
    assert r3 == pytest.approx(1.5, abs=0.3)
    assert np.mean(a) / np.mean(b_out) < 0.8
    # a denominator whose resamples can reach <= 0 has no ratio interval
    _, lo4, hi4 = stats.ratio_ci(a, [-5.0, 1.0, 2.0, -3.0, 4.0])
    assert np.isnan(lo4) and np.isnan(hi4)
