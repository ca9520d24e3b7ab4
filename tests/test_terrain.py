"""Terrain generation (robot_rl/terrain.py) and the two simulators loading the same field."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pybullet as pb
import pytest

from robot_rl.robot import load_robot
from robot_rl.sim_mujoco import build_model, footprint
from robot_rl.sim_pybullet import new_world
from robot_rl.terrain import (
    KINDS,
    SLOPE_MAX_DEG,
    STEP_DEPTH,
    TerrainConfig,
    TerrainError,
    generate,
    step_height,
)

A1 = load_robot("a1")
RELIEF = [k for k in KINDS if k != "flat"]


def _axis_profile(kind: str, difficulty: float):
    """Heights along +x from the centre (y = 0), and their x."""
    t = generate(TerrainConfig(kind=kind, difficulty=difficulty))
    ny, nx = t.heights.shape
    x = t.origin[0] + np.arange(nx) * t.horizontal_scale
    row = t.heights[ny // 2]
    return t, x[nx // 2:], row[nx // 2:]


@pytest.mark.parametrize("kind", KINDS)
def test_generator_is_deterministic_per_seed(kind):
    a = generate(TerrainConfig(kind=kind, difficulty=0.6, seed=4)).heights
    b = generate(TerrainConfig(kind=kind, difficulty=0.6, seed=4)).heights
    np.testing.assert_array_equal(a, b)
    assert a.shape == (161, 161) and a.min() == 0.0
    c = generate(TerrainConfig(kind=kind, difficulty=0.6, seed=5)).heights
    if kind in ("rough", "obstacles"):  # the random kinds
        assert not np.array_equal(a, c)
        assert np.abs(a).max() > 0.03
    else:
        np.testing.assert_array_equal(a, c)
    if kind == "flat":
        assert generate(TerrainConfig(kind=kind)).is_flat


def test_platform_is_flat_and_spawn_is_on_it():
    for kind in RELIEF:
        t = generate(TerrainConfig(kind=kind, difficulty=0.8, seed=1, platform=1.2))
        xs = np.linspace(-0.55, 0.55, 12)
        on = t.height_at(*np.meshgrid(xs, xs))
        np.testing.assert_allclose(on, t.spawn_height, atol=1e-12, err_msg=kind)


@pytest.mark.parametrize("difficulty", [0.25, 0.5, 1.0])
def test_slope_angle(difficulty):
    t, x, z = _axis_profile("slope", difficulty)
    off = x > t.config.platform / 2 + 1e-9
    grad = np.diff(z[off]) / np.diff(x[off])
    np.testing.assert_allclose(np.degrees(np.arctan(grad)), SLOPE_MAX_DEG * difficulty, atol=1e-9)
    assert z[0] == 0.0  # rising outwards from the platform


@pytest.mark.parametrize("kind,sign", [("stairs_up", 1.0), ("stairs_down", -1.0)])
def test_stair_step_height_grows_with_difficulty(kind, sign):
    heights = []
    for d in (0.0, 0.5, 1.0):
        t, x, z = _axis_profile(kind, d)
        jumps = np.diff(z)[np.abs(np.diff(z)) > 1e-9]
        np.testing.assert_allclose(jumps, sign * step_height(d), atol=1e-9)
        # one riser per tread depth beyond the platform, all in the direction of the kind
        beyond = x[-1] - t.config.platform / 2
        assert len(jumps) == math.ceil(beyond / STEP_DEPTH - 1e-9)
        heights.append(abs(jumps[0]))
    assert heights[0] == pytest.approx(0.02) and heights[2] == pytest.approx(0.22)
    assert heights[0] < heights[1] < heights[2]


def _mujoco_ground(model, xy):
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    gid = np.zeros(1, dtype=np.int32)
    out = []  # static geoms only (flg_static=1); the callers keep the rays off the robot
    for x, y in xy:
        dist = mujoco.mj_ray(model, data, np.array([x, y, 10.0]), np.array([0.0, 0.0, -1.0]),
                             None, 1, -1, gid)
        assert model.geom(gid[0]).name in ("terrain", "floor")
        out.append(10.0 - dist)
    return np.array(out)


def _pybullet_ground(terrain, xy):
    client = new_world(terrain=terrain)
    try:
        hits = pb.rayTestBatch([[x, y, 10.0] for x, y in xy], [[x, y, -1.0] for x, y in xy],
                               physicsClientId=client)
        assert all(h[0] >= 0 for h in hits)
        return np.array([h[3][2] for h in hits])
    finally:
        pb.disconnect(client)


@pytest.mark.parametrize("kind", RELIEF)
def test_both_simulators_put_the_ground_at_the_same_height(kind):
    t = generate(TerrainConfig(kind=kind, difficulty=0.7, seed=3, size=4.0))
    rng = np.random.default_rng(0)
    h = t.horizontal_scale
    # grid points (no interpolation: exact up to float32), and points anywhere (robot far away)
    grid = t.origin[0] + h * rng.integers(0, t.heights.shape[1], (12, 2))
    anywhere = rng.uniform(-1.95, 1.95, (12, 2))
    xy = np.concatenate([grid, anywhere])
    # keep the rays off the robot standing at the centre
    xy = xy[np.max(np.abs(xy), axis=1) > 0.5]
    model = build_model(A1, terrain=t)
    mj, bullet, ours = _mujoco_ground(model, xy), _pybullet_ground(t, xy), t.height_at(*xy.T)
    n = int(np.sum(np.max(np.abs(grid), axis=1) > 0.5))
    np.testing.assert_allclose(mj[:n], ours[:n], atol=1e-5)
    np.testing.assert_allclose(bullet[:n], ours[:n], atol=1e-5)
    # between grid points each simulator splits a cell into two triangles (bilinear here):
    # they differ by at most the largest height change across one cell's diagonal
    tol = 1e-5 + max(np.abs(np.diff(t.heights, axis=0)).max(), np.abs(np.diff(t.heights, axis=1)).max())
    np.testing.assert_allclose(mj, ours, atol=tol)
    np.testing.assert_allclose(bullet, ours, atol=tol)
    np.testing.assert_allclose(mj, bullet, atol=tol)
    if kind == "slope":  # smooth: a cell's height change is slope x spacing
        assert tol < math.tan(math.radians(SLOPE_MAX_DEG)) * h * 1.5


@pytest.mark.parametrize("changes,field", [
    ({"kind": "lava"}, "terrain.kind"),
    ({"difficulty": 1.5}, "terrain.difficulty"),
    ({"difficulty": -0.1}, "terrain.difficulty"),
    ({"difficulty": float("nan")}, "terrain.difficulty"),
    ({"seed": -1}, "terrain.seed"),
    ({"horizontal_scale": 0.0}, "terrain.horizontal_scale"),
    ({"size": 1.0, "platform": 1.0}, "terrain.size"),
    ({"horizontal_scale": 0.001}, "terrain.horizontal_scale"),
])
def test_bad_settings_name_the_field(changes, field):
    with pytest.raises(TerrainError, match=f"^{field}:"):
        TerrainConfig(**changes)


def test_field_that_does_not_fit_the_spawn_area_is_refused():
    from robot_rl.mujoco_robot import MujocoRobot
    from robot_rl.standin import PyBulletStandIn

    fp = footprint(A1)
    assert 0.4 < fp < 0.8  # the A1's feet stand within about 0.4 m x 0.3 m
    small = generate(TerrainConfig(kind="rough", platform=0.3, size=4.0))
    for make in (MujocoRobot, PyBulletStandIn):
        with pytest.raises(TerrainError, match=f"^terrain.platform: .* a1's {fp:.2f} m footprint"):
            make(A1, terrain=small)
    tiny = generate(TerrainConfig(kind="flat", size=0.8, platform=0.5))
    with pytest.raises(TerrainError, match="^terrain.size:"):
        MujocoRobot(A1, terrain=tiny)


def test_robot_spawns_on_the_ground_in_both_simulators():
    from robot_rl.mujoco_robot import MujocoRobot
    from robot_rl.standin import PyBulletStandIn

    t = generate(TerrainConfig(kind="stairs_down", difficulty=0.5))
    assert t.spawn_height > 1.0
    for make in (MujocoRobot, PyBulletStandIn):
        sim = make(A1, terrain=t)
        try:
            sim.reset()
            z0 = sim.ground_truth().base_pos[2]
            assert z0 == pytest.approx(t.spawn_height + A1.base_init_height, abs=0.02)
            for _ in range(60):
                sim.step()
            z = sim.ground_truth().base_pos[2] - t.spawn_height
            assert 0.5 * A1.nominal_base_height < z < A1.base_init_height + 0.01, make.__name__
        finally:
            sim.close()


def test_difficulty_for_a_relief_builds_that_relief():
    """The suite names its tiles by relief; the difficulty it derives gives that relief."""
    from robot_rl.terrain import difficulty_for

    d = difficulty_for("stairs_up", 0.08)
    _, _, z = _axis_profile("stairs_up", d)
    np.testing.assert_allclose(np.abs(np.diff(z)[np.abs(np.diff(z)) > 1e-9]), 0.08, atol=1e-9)
    t, x, z = _axis_profile("slope", difficulty_for("slope", 15.0))
    off = x > t.config.platform / 2 + 1e-9
    np.testing.assert_allclose(np.degrees(np.arctan(np.diff(z[off]) / np.diff(x[off]))), 15.0, atol=1e-9)
    rough = generate(TerrainConfig(kind="rough", difficulty=difficulty_for("rough", 0.03), seed=3))
    assert 0.05 < np.ptp(rough.heights) <= 0.06 + 1e-9  # +-3 cm
    with pytest.raises(TerrainError, match="terrain.difficulty: a slope relief of 25"):
        difficulty_for("slope", 25.0)
    with pytest.raises(TerrainError, match="terrain.kind: 'flat' has no relief"):
        difficulty_for("flat", 0.0)
