"""Signal helpers: zero-phase low-pass, contiguous stretches, block bootstrap of least squares."""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, filtfilt

ORDER = 4


def lowpass(x: np.ndarray, cutoff_hz: float, dt: float, order: int = ORDER) -> np.ndarray:
    """Zero-phase Butterworth low-pass along axis 0 (no-op above the Nyquist frequency)."""
    wn = 2.0 * cutoff_hz * dt
    if wn >= 1.0:
        return np.array(x, dtype=float, copy=True)
    b, a = butter(order, wn)
    padlen = min(3 * max(len(a), len(b)), len(x) - 1)
    return filtfilt(b, a, x, axis=0, padlen=padlen)


def segments(mask: np.ndarray, min_len: int = 1) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of True in ``mask`` at least ``min_len`` long."""
    v = np.diff(np.r_[0, np.asarray(mask, dtype=int), 0])
    starts, stops = np.where(v == 1)[0], np.where(v == -1)[0]
    return [(int(s), int(e)) for s, e in zip(starts, stops) if e - s >= min_len]


def trimmed(mask: np.ndarray, trim: int, min_len: int = 1) -> np.ndarray:
    """``mask`` with ``trim`` samples removed at both ends of every run of True."""
    out = np.zeros_like(mask, dtype=bool)
    for s, e in segments(mask, min_len + 2 * trim):
        out[s + trim:e - trim] = True
    return out


def solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Least-squares solution of the normal equations, robust to rank deficiency."""
    scale = np.sqrt(np.clip(np.diag(gram), 1e-300, None))
    g = gram / np.outer(scale, scale)
    try:
        x = np.linalg.solve(g, rhs / scale)
        if not np.all(np.isfinite(x)):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        x = np.linalg.lstsq(g, rhs / scale, rcond=1e-12)[0]
    return x / scale


def block_bootstrap(grams: np.ndarray, rhss: np.ndarray, replicates: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Moving-block bootstrap of least squares from per-block normal equations.

    ``grams`` (B, p, p) and ``rhss`` (B, p) are A^T A and A^T y of B consecutive time
    blocks; each replicate draws B blocks with replacement and solves their sum.
    Returns (replicates, p).
    """
    nb = len(grams)
    out = np.empty((replicates, grams.shape[1]))
    for i in range(replicates):
        pick = rng.integers(0, nb, nb)
        out[i] = solve(grams[pick].sum(0), rhss[pick].sum(0))
    return out


def block_normal_equations(a: np.ndarray, y: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-block A^T A and A^T y of rows ``a`` (n, r, p) / ``y`` (n, r) in time order."""
    n = len(a)
    nb = max(n // block, 1)
    edges = np.linspace(0, n, nb + 1).astype(int)
    grams = np.stack([np.einsum("trp,trq->pq", a[s:e], a[s:e]) for s, e in zip(edges, edges[1:])])
    rhss = np.stack([np.einsum("trp,tr->p", a[s:e], y[s:e]) for s, e in zip(edges, edges[1:])])
    return grams, rhss
