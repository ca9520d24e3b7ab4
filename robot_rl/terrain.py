"""Terrain: height fields generated from a kind, a difficulty in [0, 1] and a seed.

The one owner of the terrain format.  A :class:`Terrain` is a grid of heights (metres,
``heights[iy, ix]``, x fastest) with a horizontal spacing and the world position of its
first point; both simulators load that same array, through the converters here
(:meth:`Terrain.mujoco_hfield` for MuJoCo's ``hfield``, :meth:`Terrain.pybullet_heightfield`
for PyBullet's ``GEOM_HEIGHTFIELD``), so neither re-derives the layout.  Pure numpy: no
simulator is imported.

Kinds (numbers from legged_gym's terrain generator, difficulty ``d`` in [0, 1]):

* ``flat``: no height field; the simulators keep their infinite plane (today's ground);
* ``rough``: uniform noise of amplitude 0.01 + 0.07 d m, quantized in 5 mm steps, drawn on
  a 0.2 m grid and interpolated linearly;
* ``slope``: a pyramid rising outwards from the platform at 20 d degrees;
* ``stairs_up`` / ``stairs_down``: pyramid stairs, 0.31 m deep, 0.02 + 0.20 d m high,
  rising (up) or falling (down) outwards from the platform;
* ``obstacles``: 20 random boxes 1-2 m wide, heights +-(0.05 + 0.2 d) m (and halves).

Every tile has a flat square platform of side ``platform`` at its centre, where the robot
spawns; the lowest point of every field is at z = 0, flush with the plane around it.  A
robot crosses a tile by walking from the centre to (near) its edge: :attr:`Terrain.goal_distance`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robot_rl.config import ConfigError

#: terrain kinds, in curriculum column order
KINDS = ("flat", "rough", "slope", "stairs_up", "stairs_down", "obstacles")
SLOPE_MAX_DEG = 20.0  # slope angle at difficulty 1 (deg)
STEP_DEPTH = 0.31  # stair tread depth (m)
# stair riser: base + difficulty x gain (m).  The easiest stairs (2 cm) are ones a
# small robot's flat gait already steps onto (the A1's flat policy crosses 2 cm in MuJoCo,
# 4 cm only backwards), so a curriculum's first level is reachable; legged_gym's base is
# 5 cm (bench/RESULTS.md, "The curriculum grid had a cliff")
STEP_HEIGHT = (0.02, 0.20)
ROUGH_AMPLITUDE = (0.01, 0.07)  # rough: noise amplitude, base + difficulty x gain (m)
ROUGH_STEP = 0.005  # rough: heights are multiples of this (m)
ROUGH_CELL = 0.2  # rough: spacing of the noise samples before interpolation (m)
OBSTACLE_HEIGHT = (0.05, 0.20)  # obstacles: max height, base + difficulty x gain (m)
OBSTACLE_SIZE = (1.0, 2.0)  # obstacles: side range (m)
OBSTACLE_COUNT = 20
GOAL_MARGIN = 0.3  # the goal lies this far inside the tile's edge (m)
MAX_POINTS = 2048  # grid points per side, at most


class TerrainError(ConfigError):
    """A terrain setting is invalid, or the field does not fit the robot; names the field."""


@dataclass(frozen=True)
class TerrainConfig:
    """One terrain tile."""

    # kind: flat, rough, slope, stairs_up, stairs_down, obstacles
    kind: str = "flat"
    # difficulty in [0, 1]: noise amplitude, slope angle, step and obstacle height (-)
    difficulty: float = 0.0
    # seed of the random kinds (rough, obstacles)
    seed: int = 0
    # side of the square tile (m)
    size: float = 8.0
    # grid spacing of the height field (m)
    horizontal_scale: float = 0.05
    # side of the flat square spawn platform at the tile's centre (m)
    platform: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TerrainError(f"terrain.kind: unknown terrain {self.kind!r}; one of "
                               f"{', '.join(KINDS)}")
        d = self.difficulty
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d <= 1.0:
            raise TerrainError(f"terrain.difficulty: must be a number in [0, 1], got {d!r}")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise TerrainError(f"terrain.seed: must be a non-negative integer, got {self.seed!r}")
        if not self.horizontal_scale > 0:
            raise TerrainError(f"terrain.horizontal_scale: must be > 0 m, got "
                               f"{self.horizontal_scale!r}")
        if not self.platform >= 0:
            raise TerrainError(f"terrain.platform: must be >= 0 m, got {self.platform!r}")
        if not self.size >= self.platform + 4 * self.horizontal_scale:
            raise TerrainError(f"terrain.size: a {self.size!r} m tile does not hold its "
                               f"{self.platform} m spawn platform and a border of terrain")
        if self.size / self.horizontal_scale + 1 > MAX_POINTS:
            raise TerrainError(f"terrain.horizontal_scale: {self.horizontal_scale} m over a "
                               f"{self.size} m tile is more than {MAX_POINTS} points a side")

    @property
    def points(self) -> int:
        """Grid points per side."""
        return int(round(self.size / self.horizontal_scale)) + 1


@dataclass(frozen=True)
class Terrain:
    """A height field in the world: ``heights[iy, ix]`` (m) at x = origin[0] + ix h,
    y = origin[1] + iy h, with h = ``horizontal_scale``; ``spawn`` is the (x, y) where the
    robot starts; ``config`` the tile's (for a grid, the first tile's) settings."""

    heights: np.ndarray
    horizontal_scale: float
    origin: tuple[float, float]
    spawn: tuple[float, float]
    config: TerrainConfig

    @property
    def is_flat(self) -> bool:
        """No relief at all (the simulators then keep their plane only)."""
        return not np.any(self.heights)

    @property
    def extent(self) -> tuple[float, float]:
        """Size of the field along x and y (m)."""
        ny, nx = self.heights.shape
        return (nx - 1) * self.horizontal_scale, (ny - 1) * self.horizontal_scale

    @property
    def center(self) -> tuple[float, float]:
        """World (x, y) of the field's centre."""
        ex, ey = self.extent
        return self.origin[0] + ex / 2, self.origin[1] + ey / 2

    @property
    def spawn_height(self) -> float:
        """Ground height under the spawn point (m)."""
        return float(self.height_at(*self.spawn))

    @property
    def goal_distance(self) -> float:
        """Horizontal distance from the spawn to walk to cross the tile (m)."""
        return self.config.size / 2 - GOAL_MARGIN

    def height_at(self, x, y) -> np.ndarray:
        """Ground height (m) at world (x, y) (arrays broadcast): bilinear in the grid cell;
        0 (the plane) outside the field."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        h = self.horizontal_scale
        ny, nx = self.heights.shape
        u, v = (x - self.origin[0]) / h, (y - self.origin[1]) / h
        inside = (u >= 0) & (u <= nx - 1) & (v >= 0) & (v <= ny - 1)
        u, v = np.clip(u, 0, nx - 1), np.clip(v, 0, ny - 1)
        i0, j0 = np.minimum(np.floor(u).astype(int), nx - 2), np.minimum(np.floor(v).astype(int), ny - 2)
        fu, fv = u - i0, v - j0
        H = self.heights
        z = (H[j0, i0] * (1 - fu) * (1 - fv) + H[j0, i0 + 1] * fu * (1 - fv)
             + H[j0 + 1, i0] * (1 - fu) * fv + H[j0 + 1, i0 + 1] * fu * fv)
        return np.where(inside, z, 0.0)

    # -- the simulators' formats ---------------------------------------------------------
    def mujoco_hfield(self, base: float = 0.1) -> dict:
        """MuJoCo ``hfield`` and geom settings: ``nrow`` (y) x ``ncol`` (x) elevations
        normalized to [0, 1] (``userdata``, row-major, first row at the lowest y), ``size``
        (half extents x, y; elevation range; ``base`` thickness below, m) and the geom's
        ``pos`` (its centre; z of the lowest elevation)."""
        lo, hi = float(self.heights.min()), float(self.heights.max())
        top = max(hi - lo, 1e-6)
        ex, ey = self.extent
        cx, cy = self.center
        ny, nx = self.heights.shape
        return {"nrow": ny, "ncol": nx, "userdata": ((self.heights - lo) / top).ravel().tolist(),
                "size": [ex / 2, ey / 2, top, base], "pos": [cx, cy, lo]}

    def pybullet_heightfield(self) -> dict:
        """PyBullet ``GEOM_HEIGHTFIELD`` arguments (``numHeightfieldRows`` counts x points,
        data x fastest) and the body's position: PyBullet centres the shape on its
        mid-height, so the body sits at (max + min) / 2."""
        ny, nx = self.heights.shape
        cx, cy = self.center
        mid = 0.5 * float(self.heights.max() + self.heights.min())
        return {"shape": {"meshScale": [self.horizontal_scale, self.horizontal_scale, 1.0],
                          "heightfieldData": self.heights.ravel().tolist(),
                          "numHeightfieldRows": nx, "numHeightfieldColumns": ny},
                "position": [cx, cy, mid]}

    def check_spawn_area(self, footprint: float, robot: str = "robot") -> None:
        """Fail unless a robot needing a ``footprint`` x ``footprint`` m square stands on the
        platform and the tile is wider than that."""
        c = self.config
        if c.kind != "flat" and c.platform < footprint:
            raise TerrainError(f"terrain.platform: the {c.platform} m spawn platform is "
                               f"smaller than {robot}'s {footprint:.2f} m footprint")
        if c.size < 2 * footprint:
            raise TerrainError(f"terrain.size: the {c.size} m tile is smaller than twice "
                               f"{robot}'s {footprint:.2f} m footprint")


# -- generators ------------------------------------------------------------------------------
def generate(cfg: TerrainConfig) -> Terrain:
    """The tile of ``cfg``, centred on the world origin, lowest point at z = 0."""
    n, h = cfg.points, cfg.horizontal_scale
    half = (n - 1) * h / 2
    coords = np.arange(n) * h - half
    x, y = np.meshgrid(coords, coords)  # [iy, ix]
    heights = _HEIGHTS[cfg.kind](cfg, x, y)
    heights = heights - heights.min()
    return Terrain(heights=heights, horizontal_scale=h, origin=(-half, -half), spawn=(0.0, 0.0),
                   config=cfg)


def _ring(cfg: TerrainConfig, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Distance outwards from the platform's edge (m, 0 on the platform; square rings)."""
    return np.maximum(np.maximum(np.abs(x), np.abs(y)) - cfg.platform / 2, 0.0)


def _on_platform(cfg: TerrainConfig, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(x), np.abs(y)) <= cfg.platform / 2


def _flat(cfg, x, y):
    return np.zeros_like(x)


def _rough(cfg, x, y):
    rng = np.random.default_rng(cfg.seed)
    amp = ROUGH_AMPLITUDE[0] + ROUGH_AMPLITUDE[1] * cfg.difficulty
    levels = np.arange(-amp, amp + ROUGH_STEP / 2, ROUGH_STEP)
    n = x.shape[0]
    coarse_n = max(2, int(math.ceil((n - 1) * cfg.horizontal_scale / ROUGH_CELL)) + 1)
    coarse = rng.choice(levels, size=(coarse_n, coarse_n))
    # linear interpolation of the coarse samples onto the grid, rows then columns
    at = np.linspace(0, coarse_n - 1, n)
    rows = np.stack([np.interp(at, np.arange(coarse_n), r) for r in coarse])  # (coarse, n)
    fine = np.stack([np.interp(at, np.arange(coarse_n), c) for c in rows.T], axis=1)  # (n, n)
    return np.where(_on_platform(cfg, x, y), 0.0, fine)


def _slope(cfg, x, y):
    return math.tan(math.radians(SLOPE_MAX_DEG * cfg.difficulty)) * _ring(cfg, x, y)


def step_height(difficulty: float) -> float:
    """Stair riser height at ``difficulty`` (m)."""
    return STEP_HEIGHT[0] + STEP_HEIGHT[1] * difficulty


def difficulty_for(kind: str, relief: float) -> float:
    """The difficulty whose tile has ``relief``: the noise amplitude of ``rough`` (m, +-),
    the slope angle of ``slope`` (deg), the riser of ``stairs_up`` / ``stairs_down`` (m),
    the largest block of ``obstacles`` (m).  Raises :class:`TerrainError` outside [0, 1]."""
    base_gain = {"rough": ROUGH_AMPLITUDE, "slope": (0.0, SLOPE_MAX_DEG), "stairs_up": STEP_HEIGHT,
                 "stairs_down": STEP_HEIGHT, "obstacles": OBSTACLE_HEIGHT}
    if kind not in base_gain:
        raise TerrainError(f"terrain.kind: {kind!r} has no relief; expected one of {sorted(base_gain)}")
    base, gain = base_gain[kind]
    d = (relief - base) / gain
    if not 0.0 <= d <= 1.0 + 1e-12:
        raise TerrainError(f"terrain.difficulty: a {kind} relief of {relief} needs difficulty {d:.3f}, "
                           "outside [0, 1]")
    return min(d, 1.0)


def _stairs(cfg, x, y, sign: float):
    # points on a tread's boundary round inwards, so a step edge sits on a grid line
    r = _ring(cfg, x, y)
    steps = np.ceil(np.round(r / STEP_DEPTH, 9))
    return sign * step_height(cfg.difficulty) * steps


def _obstacles(cfg, x, y):
    rng = np.random.default_rng(cfg.seed)
    hmax = OBSTACLE_HEIGHT[0] + OBSTACLE_HEIGHT[1] * cfg.difficulty
    z = np.zeros_like(x)
    half = x.max()
    for _ in range(OBSTACLE_COUNT):
        w, d = rng.uniform(*OBSTACLE_SIZE, 2)
        cx, cy = rng.uniform(-half, half, 2)
        height = rng.choice([-hmax, -hmax / 2, hmax / 2, hmax])
        box = (np.abs(x - cx) <= w / 2) & (np.abs(y - cy) <= d / 2)
        z[box] = height
    z[_on_platform(cfg, x, y)] = 0.0
    return z


_HEIGHTS = {"flat": _flat, "rough": _rough, "slope": _slope,
            "stairs_up": lambda c, x, y: _stairs(c, x, y, 1.0),
            "stairs_down": lambda c, x, y: _stairs(c, x, y, -1.0),
            "obstacles": _obstacles}
assert tuple(_HEIGHTS) == KINDS
