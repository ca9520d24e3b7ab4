"""Interquartile mean and percentile-bootstrap intervals over seeds, for the benchmarks.

The IQM is the mean of the middle half of the sorted values: ``n // 4`` values are cut
from each end (``scipy.stats.trim_mean(x, 0.25)``, the estimator rliable reports; for
5 seeds it is the mean of the middle 3). It ignores one bad or lucky seed out of five,
which the plain mean does not, and uses more seeds than the median.

Intervals are percentile bootstraps: the seeds are resampled with replacement
``n_resamples`` times with a fixed RNG, the statistic is recomputed on each resample, and
the interval is the (alpha/2, 1 - alpha/2) quantiles of those values. For a ratio of two
sides (ours / sb3) each side is resampled independently, since the seeds of one side are
not paired with those of the other in any way the statistic relies on.
"""

from __future__ import annotations

import numpy as np

N_RESAMPLES = 10_000
SEED = 0


def iqm(x, axis: int = -1) -> np.ndarray | float:
    """Interquartile mean along ``axis``: mean of the sorted values with ``n // 4`` cut
    from each end (equal to ``scipy.stats.trim_mean(x, 0.25, axis)``)."""
    x = np.sort(np.asarray(x, dtype=np.float64), axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise ValueError("iqm of an empty sample")
    k = n // 4
    mid = np.take(x, np.arange(k, n - k), axis=axis)
    out = mid.mean(axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def _resample(x: np.ndarray, rng: np.random.Generator, n_resamples: int) -> np.ndarray:
    """``(n_resamples, n)`` array of resamples (with replacement) of the 1-D sample ``x``."""
    return x[rng.integers(0, x.size, size=(n_resamples, x.size))]


def _as_sample(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("empty sample")
    return x


def bootstrap_ci(
    x,
    stat=iqm,
    n_resamples: int = N_RESAMPLES,
    confidence: float = 0.95,
    seed: int = SEED,
) -> tuple[float, float, float]:
    """``(point, low, high)``: ``stat(x)`` and its percentile-bootstrap interval.

    ``stat`` must accept an array and ``axis=-1`` (like :func:`iqm` or ``np.mean``)."""
    x = _as_sample(x)
    rng = np.random.default_rng(seed)
    boot = stat(_resample(x, rng, n_resamples), axis=-1)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boot, [a, 1.0 - a])
    return float(stat(x)), float(lo), float(hi)


def ratio_ci(
    num,
    den,
    stat=iqm,
    n_resamples: int = N_RESAMPLES,
    confidence: float = 0.95,
    seed: int = SEED,
) -> tuple[float, float, float]:
    """``(point, low, high)`` for ``stat(num) / stat(den)``, both samples resampled
    independently (one RNG, ``num`` drawn first).

    The ratio is only meaningful when ``stat(den)`` stays positive; if any resample of the
    denominator is <= 0 the interval is returned as ``(nan, nan)``."""
    num, den = _as_sample(num), _as_sample(den)
    bn, bd = _two_sample_boot(num, den, stat, n_resamples, seed)
    d = stat(den)
    point = float(stat(num) / d) if d > 0 else float("nan")
    if np.any(bd <= 0):
        return point, float("nan"), float("nan")
    return (point, *_percentiles(bn / bd, confidence))


def difference_ci(
    base,
    other,
    stat=iqm,
    n_resamples: int = N_RESAMPLES,
    confidence: float = 0.95,
    seed: int = SEED,
) -> tuple[float, float, float]:
    """``(point, low, high)`` for ``stat(other) - stat(base)``, both samples resampled
    independently (one RNG, ``base`` drawn first)."""
    base, other = _as_sample(base), _as_sample(other)
    bb, bo = _two_sample_boot(base, other, stat, n_resamples, seed)
    return (float(stat(other) - stat(base)), *_percentiles(bo - bb, confidence))


def _two_sample_boot(first: np.ndarray, second: np.ndarray, stat, n_resamples: int,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``stat`` of ``n_resamples`` bootstrap resamples of each sample, drawn independently
    from one RNG, ``first`` drawn first."""
    rng = np.random.default_rng(seed)
    return (stat(_resample(first, rng, n_resamples), axis=-1),
            stat(_resample(second, rng, n_resamples), axis=-1))


def _percentiles(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` percentile interval of bootstrap draws ``boot``."""
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boot, [a, 1.0 - a])
    return float(lo), float(hi)


def fmt_ci(t: tuple[float, float, float], digits: int = 2) -> str:
    """``(point, low, high)`` as ``"point [low, high]"`` with ``digits`` decimals."""
    p, lo, hi = t
    return f"{p:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
