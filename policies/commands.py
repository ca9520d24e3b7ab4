"""Velocity commands of the training env: drawn at every episode start, uniformly or where
the policy tracks worst.

:class:`CommandSampler` owns the draw.  Uniform (``CommandConfig.adaptive = 0``, the
default): forward, lateral and yaw rate each uniform in their range, a ``zero_fraction``
of episodes standing.  Adaptive (``adaptive = a > 0``): the command box is cut into a grid
of cells (``adaptive_cells``); each cell remembers how far the episodes commanded from it
fell short of their command (``update``: an exponential average of the episode's tracking
shortfall, 0 = tracked exactly, 1 = nothing tracked or fallen at once); a fraction ``a``
of the episodes then draws its cell in proportion to that shortfall and its command
uniformly inside the cell, the others uniformly over the whole box.  A policy that has
settled into a weak corner (e.g. shuffling at fast forward commands under weak drivers)
meets that corner more often, where the uniform draw gives every command region the same
share whatever is learnt there, as in walk-these-ways' and legged_gym's command curricula;
the uniform share keeps every command in the data.  The cell averages live in the env's
memory only: a resumed run, and each phase of the pipeline, starts them afresh (every cell
at 1), and they settle as the first episodes end (about three per iteration at 128 envs
and 20 s episodes).
"""

from __future__ import annotations

import numpy as np

from policies.config import CommandConfig


class CommandSampler:
    """Draws commands (n, 3) = (forward m/s, lateral m/s, yaw rate rad/s) under a
    :class:`CommandConfig`; ``update`` feeds back each ended episode's shortfall."""

    def __init__(self, cfg: CommandConfig):
        self.cfg = cfg
        self.lo = np.array([cfg.vx[0], cfg.vy[0], cfg.yaw[0]], dtype=float)
        self.hi = np.array([cfg.vx[1], cfg.vy[1], cfg.yaw[1]], dtype=float)
        self.cells = np.array(cfg.adaptive_cells, dtype=int)
        # a cell's extent per axis (0 along an axis whose range is one value)
        self.width = (self.hi - self.lo) / self.cells
        #: tracking shortfall per cell in [0, 1] (cells never commanded start at 1: worst
        #: until measured, so each is tried)
        self.shortfall = np.ones(tuple(self.cells))
        #: episodes that have updated each cell
        self.count = np.zeros(tuple(self.cells), dtype=np.int64)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` commands.  Uniform sampling draws from ``rng`` exactly as it always did
        (forward, lateral, yaw, then the standing episodes), so runs without the adaptive
        draw are unchanged."""
        c = self.cfg
        cmd = np.stack([rng.uniform(*c.vx, n), rng.uniform(*c.vy, n),
                        rng.uniform(*c.yaw, n)], axis=1)
        if c.adaptive > 0:
            pick = rng.random(n) < c.adaptive
            k = int(np.count_nonzero(pick))
            if k:
                w = self.shortfall.ravel()
                total = w.sum()
                p = w / total if total > 0 else np.full(w.size, 1.0 / w.size)
                flat = rng.choice(w.size, size=k, p=p)
                cell = np.stack(np.unravel_index(flat, tuple(self.cells)), axis=1)
                cmd[pick] = self.lo + (cell + rng.random((k, 3))) * self.width
        cmd[rng.random(n) < c.zero_fraction] = 0.0
        return cmd

    def cell_of(self, cmd: np.ndarray) -> tuple[np.ndarray, ...]:
        """Grid indices of commands (n, 3), clipped into the grid."""
        idx = np.floor((cmd - self.lo) / np.where(self.width > 0, self.width, 1.0)).astype(int)
        idx = np.clip(idx, 0, self.cells - 1)
        return tuple(idx.T)

    def update(self, cmd: np.ndarray, shortfall: np.ndarray) -> None:
        """Fold ended episodes' shortfalls (n,) in [0, 1] into the cells of their commands
        (n, 3), one episode at a time (two episodes of one cell both count).  Standing
        episodes (a zero command) are not counted: they are drawn apart from the grid."""
        if self.cfg.adaptive <= 0:
            return
        moving = np.any(cmd != 0.0, axis=1)
        m = self.cfg.adaptive_memory
        for cell, s in zip(zip(*self.cell_of(cmd[moving])), shortfall[moving]):
            first = self.count[cell] == 0
            self.shortfall[cell] = s if first else m * self.shortfall[cell] + (1 - m) * s
            self.count[cell] += 1

    def summary(self) -> dict[str, float]:
        """For the training log: mean and worst shortfall over the measured cells, and the
        mean over each forward-speed column of the grid (``commands/shortfall/vx<centre>``)."""
        seen = self.count > 0
        if not seen.any():
            return {}
        out = {"commands/shortfall/mean": float(self.shortfall[seen].mean()),
               "commands/shortfall/worst": float(self.shortfall[seen].max())}
        for i in range(self.cells[0]):
            col = seen[i]
            if col.any():
                centre = self.lo[0] + (i + 0.5) * self.width[0]
                out[f"commands/shortfall/vx{centre:+.2f}"] = float(self.shortfall[i][col].mean())
        return out
