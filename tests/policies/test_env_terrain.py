"""The training env on terrain: spawn on the ground, falls measured from it, curriculum."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from policies.config import EnvConfig, TerrainCurriculumConfig
from policies.env import LeggedEnv
from policies.terrain_curriculum import EnvTerrain, tile_grid
from robot_rl.config import ConfigError, from_dict
from robot_rl.terrain import TerrainConfig, TerrainError, generate, step_height

TILE = TerrainConfig(kind="stairs_down", difficulty=0.5, size=4.0, horizontal_scale=0.1)


def test_default_env_has_no_height_field():
    env = LeggedEnv(EnvConfig(num_envs=2, threads=1))
    try:
        assert env.ground.field is None and env.base_model.nhfield == 0
        np.testing.assert_array_equal(env.ground.spawn, 0.0)
    finally:
        env.close()


def test_env_spawns_on_the_tile_and_measures_falls_from_the_ground():
    cfg = EnvConfig(num_envs=3, threads=1, push_interval=0.0, terrain=TILE)
    env = LeggedEnv(cfg)
    try:
        assert env.base_model.nhfield == 1
        top = generate(TILE).spawn_height
        assert top > 0.5
        env.reset(seed=0)
        z = env.qpos[:, 2] - top
        assert np.all(np.abs(z - env.robot.base_init_height) < 0.02)
        for _ in range(10):  # standing on the top platform, far above the plane: no fall
            _, _, terminated, _, _ = env.step(np.zeros((3, 12)))
            assert not terminated.any()
        # a base 5 cm above the stairs is a fall, though 0.6 m above the plane
        env.qpos[0, 2] = top + 0.05
        _, _, terminated, _, _ = env.step(np.zeros((3, 12)))
        assert terminated[0]
    finally:
        env.close()


def test_curriculum_grid_and_levels():
    cfg = EnvConfig(num_envs=6, threads=1, terrain=TILE, terrain_curriculum=TerrainCurriculumConfig(
        enabled=True, kinds=("flat", "slope", "stairs_up"), levels=4, max_init_level=1))
    grid = tile_grid(cfg.terrain, cfg.terrain_curriculum.kinds, 4)
    # 3 x 4 tiles of 4 m and a 4 m border all round; the first tile's corner at the origin
    assert grid.extent == pytest.approx((20.0, 24.0)) and grid.origin == pytest.approx((-4.0, -4.0))
    H, b = grid.heights, 40
    rim = H[0, 0]
    # the tile at level 3 (difficulty 1) of the slope column is the slope generator's tile
    # (but its last column, shared with the next tile), lowered so that its edge is the rim
    slope = generate(TerrainConfig(kind="slope", difficulty=1.0, size=4.0, horizontal_scale=0.1))
    tile = H[b + 120:b + 161, b + 40:b + 80]
    np.testing.assert_allclose(tile - slope.heights[:, :40], tile[0, 0] - slope.heights[0, 0], atol=1e-12)
    # every tile meets its neighbours and the border at the rim: no cliff to walk off
    # after climbing out of the stairs' or the slope's pit; the pit stays above the plane
    lines = H[b:-b:40, b:-b]  # tile edges along x, every row of tiles
    np.testing.assert_allclose(lines[:, 40:], rim, atol=1e-12)  # slope and stairs columns
    np.testing.assert_allclose(H[b:-b, b + 80:-b:40], rim, atol=1e-12)  # edges along y
    np.testing.assert_allclose(H[:b], rim)
    np.testing.assert_allclose(H[:, -b:], rim)
    assert rim > 0 and H.min() == pytest.approx(0.0, abs=1e-12)  # the deepest pit at the plane
    stairs_up = H[b + 120 + 20, b + 80 + 20]  # level 3's stairs centre: the pit's floor
    assert stairs_up == pytest.approx(rim - 5 * step_height(1.0), abs=1e-9)  # (2 - 0.5) / 0.31 -> 5 risers
    ground = EnvTerrain(cfg, np.random.default_rng(0))
    assert set(ground.column) == {0, 1, 2} and ground.level.max() <= 1
    ground.level[:] = 2
    ground._place(np.arange(6))
    ids = np.arange(6)
    xy = ground.spawn[:, :2].copy()
    xy[0, 0] += 2.5  # walked more than half a tile: up
    xy[1, 0] += 0.1  # asked 1 m/s for 10 s, walked 0.1 m: down
    xy[2, 0] += 1.0  # fell: down
    xy[3, 0] += 0.9  # walked 0.9 of the 1 m asked (a quarter tile) without falling: up
    xy[4, 0] += 0.5  # walked as asked (0.5 m), but less than a quarter tile asked: stays
    cmd = np.array([[1.0, 0, 0], [1.0, 0, 0], [0.1, 0, 0], [0.1, 0, 0], [0.05, 0, 0], [0, 0, 0]])
    fell = np.array([False, False, True, False, False, False])
    ground.episode_end(ids, xy, cmd, np.full(6, 10.0), fell)
    np.testing.assert_array_equal(ground.level, [3, 1, 1, 3, 2, 2])
    assert ground.mean_level == pytest.approx(12 / 6)
    # columns flat, slope, stairs_up, flat, slope, stairs_up
    assert ground.level_by_kind == pytest.approx({"flat": 3.0, "slope": 1.5, "stairs_up": 1.5})
    twice = EnvTerrain(replace(cfg, terrain_curriculum=replace(cfg.terrain_curriculum,
                                                               kinds=("flat", "slope", "flat"))),
                       np.random.default_rng(0))
    twice.level[:] = [0, 1, 2, 3, 4, 5]  # columns flat, slope, flat, flat, slope, flat
    assert twice.level_by_kind == pytest.approx({"flat": 10 / 4, "slope": 2.5})
    assert ground.spawn[0, 1] == pytest.approx(3.5 * 4.0)  # the new row's tile centre
    z = grid.height_at(ground.spawn[:, 0], ground.spawn[:, 1])
    np.testing.assert_allclose(ground.spawn[:, 2], z)
    # solving the top level sends the env to a random level
    xy = ground.spawn[:, :2].copy()
    xy[0, 0] += 2.5
    ground.episode_end(ids[:1], xy[:1], cmd[:1], np.array([10.0]), fell[:1])
    assert 0 <= ground.level[0] < 4
    env = LeggedEnv(cfg)
    try:
        env.reset(seed=1)
        above = env.qpos[:, 2] - env.ground.ground(env.qpos[:, 0], env.qpos[:, 1])
        np.testing.assert_allclose(above, env.robot.base_init_height, atol=0.02)
        for _ in range(3):
            env.step(np.zeros((6, 12)))
    finally:
        env.close()


def test_bad_terrain_settings_name_the_field():
    with pytest.raises(ConfigError, match="terrain.kind: unknown terrain 'lava'"):
        from_dict(EnvConfig, {"terrain": {"kind": "lava"}})
    with pytest.raises(TerrainError, match="^env.terrain_curriculum.kinds:"):
        TerrainCurriculumConfig(kinds=("flat", "ice"))
    with pytest.raises(TerrainError, match="^env.terrain_curriculum.levels:"):
        TerrainCurriculumConfig(levels=3, max_init_level=3)


def test_commanded_displacement_is_the_chord_of_the_commanded_arc():
    from policies.terrain_curriculum import commanded_displacement

    cmd = np.array([[0.5, 0.0, 0.0], [0.3, 0.4, 0.0], [0.5, 0.0, 0.6], [0.5, 0.0, -0.6],
                    [0.5, 0.0, 2 * np.pi / 10]])
    d = commanded_displacement(cmd, np.full(5, 10.0))
    # straight: |v| T; turning at w: 2 |v| |sin(w T / 2)| / w; a full circle: back at the start
    np.testing.assert_allclose(d[:2], [5.0, 5.0])
    np.testing.assert_allclose(d[2:4], 2 * 0.5 * abs(np.sin(3.0)) / 0.6)
    assert d[4] == pytest.approx(0.0, abs=1e-12)
    # the same by integrating the body-frame velocity along the heading
    t = np.linspace(0.0, 10.0, 200001)
    heading = 0.6 * t
    vx = np.trapezoid(0.5 * np.cos(heading), t)
    vy = np.trapezoid(0.5 * np.sin(heading), t)
    assert d[2] == pytest.approx(np.hypot(vx, vy), rel=1e-6)


def _ground_at_level(kind: str, num_envs: int, level: int) -> EnvTerrain:
    """A one-column curriculum of ``kind`` (4 levels, 8 m tiles), every env on ``level``."""
    grid = TerrainCurriculumConfig(enabled=True, kinds=(kind,), levels=4, max_init_level=2)
    cfg = replace(EnvConfig(), num_envs=num_envs, terrain_curriculum=grid,
                  terrain=replace(EnvConfig().terrain, horizontal_scale=0.1))
    ground = EnvTerrain(cfg, np.random.default_rng(0))
    ground.level[:] = level
    ground._place(np.arange(num_envs))
    return ground


def test_a_turning_env_that_drove_its_arc_is_not_sent_down():
    ground = _ground_at_level("rough", 2, 2)
    xy = ground.spawn[:, :2].copy()
    xy[:, 0] += 0.4  # 0.4 m: the chord of 0.5 m/s at 0.6 rad/s over 20 s is 0.45 m
    cmd = np.array([[0.5, 0.0, 0.6], [0.5, 0.0, 0.0]])
    ground.episode_end(np.arange(2), xy, cmd, np.full(2, 20.0), np.array([False, False]))
    # turning: 0.4 > half of 0.45 -> stays; straight: 0.4 < half of 10 m -> down
    np.testing.assert_array_equal(ground.level, [2, 1])


def test_tracking_the_command_over_a_quarter_tile_promotes_unless_the_env_fell():
    ground = _ground_at_level("stairs_up", 3, 1)
    xy = ground.spawn[:, :2].copy()
    xy[:, 1] += 2.5  # 2.5 m of the 3 m asked (0.15 m/s sideways for 20 s); half a tile is 4 m
    cmd = np.array([[0.0, 0.15, 0.0]] * 3)
    fell = np.array([False, True, False])
    xy[2, 1] -= 1.0  # 1.5 m of 3 m: between half and the tracked fraction -> stays
    ground.episode_end(np.arange(3), xy, cmd, np.full(3, 20.0), fell)
    np.testing.assert_array_equal(ground.level, [2, 0, 1])


def test_foot_clearance_counts_from_the_riser_ahead():
    """On stairs a swing foot heading for a riser is measured against the step it is about
    to meet (so it is too low before it stubs); heading away or at rest, against the ground
    under it; on flat ground the term reads the plain foot height."""
    from policies import rewards
    from policies.config import RewardConfig

    up = TerrainConfig(kind="stairs_up", difficulty=0.3, size=4.0, horizontal_scale=0.1)
    rise = step_height(0.3)  # 8 cm: first riser between x = 0.5 and 0.6 (platform 1 m)
    cfg = EnvConfig(num_envs=1, threads=1, terrain=up,
                    rewards=RewardConfig(clearance_lookahead=0.3))
    env = LeggedEnv(cfg)
    try:
        pos = np.array([[[0.3, 0.0, 0.05]] * 3 + [[-0.3, 0.0, 0.05]]])  # 5 cm above the tread
        vel = np.array([[[1.0, 0, 0], [-1.0, 0, 0], [0, 0, 0], [-1.0, 0, 0]]])
        h = env._clearance_height(pos, vel, np.full((1, 4), 0.05))
        # towards the riser (ahead 0.45: tread, 0.6: the step); away; at rest; towards the
        # riser on the other side
        np.testing.assert_allclose(h, [[0.05 - rise, 0.05, 0.05, 0.05 - rise]], atol=1e-12)
        st = rewards.StepState(
            command=np.zeros((1, 3)), base_linvel_b=np.zeros((1, 3)), base_angvel_b=np.zeros((1, 3)),
            gravity_b=np.array([[0, 0, -1.0]]), tau=np.zeros((1, 12)), qd=np.zeros((1, 12)),
            action=np.zeros((1, 12)), prev_action=np.zeros((1, 12)), foot_height=np.full((1, 4), 0.05),
            foot_vel=vel, foot_contact=np.zeros((1, 4), bool), foot_air_time=np.zeros((1, 4)),
            foot_clearance_height=h)
        c = RewardConfig()
        # the two moving feet heading for the riser owe (0.06 - (0.05 - rise)) each, the one
        # heading away 0.01; the one at rest is not swinging
        assert rewards.foot_clearance(st, c)[0] == pytest.approx(2 * (0.01 + rise) + 0.01)
    finally:
        env.close()
    flat = LeggedEnv(EnvConfig(num_envs=1, threads=1))
    try:
        assert flat._clearance_height(pos, vel, np.full((1, 4), 0.05)) is None
    finally:
        flat.close()
