"""The training env's command draw: uniform as before, adaptive toward weak commands."""

import numpy as np
import pytest

from policies.commands import CommandSampler
from policies.config import CommandConfig, EnvConfig
from policies.env import LeggedEnv
from policies.train import LocomotionConfig
from robot_rl.config import ConfigError, apply_overrides


def test_uniform_draw_is_the_former_one():
    """adaptive = 0 draws from the generator exactly as the env did before the sampler
    existed, so runs without the option are unchanged to the bit."""
    c = CommandConfig()
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    got = CommandSampler(c).sample(50, a)
    want = np.stack([b.uniform(*c.vx, 50), b.uniform(*c.vy, 50), b.uniform(*c.yaw, 50)], axis=1)
    want[b.random(50) < c.zero_fraction] = 0.0
    np.testing.assert_array_equal(got, want)
    assert a.random() == b.random()  # and leaves the generator where it did


def _cell_fractions(s: CommandSampler, cmd: np.ndarray) -> np.ndarray:
    hist = np.zeros(tuple(s.cells))
    np.add.at(hist, s.cell_of(cmd), 1)
    return hist / len(cmd)


def test_adaptive_draw_goes_where_tracking_falls_short():
    c = CommandConfig(adaptive=1.0, zero_fraction=0.0)
    s = CommandSampler(c)
    rng = np.random.default_rng(0)
    # every cell measured: one tracked badly (fast forward, no turn), the rest well
    centres = s.lo + (np.stack(np.unravel_index(np.arange(s.shortfall.size), tuple(s.cells)),
                               axis=1) + 0.5) * (s.hi - s.lo) / s.cells
    weak = np.array([0.7, 0.0, 0.0])
    is_weak = np.all(np.array(s.cell_of(centres)) == np.array(s.cell_of(weak[None])), axis=0)
    assert is_weak.sum() == 1
    short = np.where(is_weak, 0.9, 0.01)
    s.update(centres, short)
    assert s.count.sum() == s.shortfall.size and s.shortfall.max() == pytest.approx(0.9)
    frac = _cell_fractions(s, s.sample(20000, rng))
    p_weak = 0.9 / (0.9 + 0.01 * (s.shortfall.size - 1))
    assert frac[s.cell_of(weak[None])][0] == pytest.approx(p_weak, abs=0.02)
    # half adaptive: the uniform half keeps every cell in the data
    s_half = CommandSampler(CommandConfig(adaptive=0.5, zero_fraction=0.0))
    s_half.update(centres, short)
    frac = _cell_fractions(s_half, s_half.sample(20000, rng))
    uniform = 1.0 / s.shortfall.size
    assert frac[s.cell_of(weak[None])][0] == pytest.approx(0.5 * p_weak + 0.5 * uniform, abs=0.02)
    assert frac.min() > 0.3 * 0.5 * uniform
    # the draw stays inside the configured box
    cmd = s.sample(5000, rng)
    assert np.all(cmd >= s.lo) and np.all(cmd <= s.hi)


def test_update_averages_per_cell_and_skips_standing_episodes():
    s = CommandSampler(CommandConfig(adaptive=0.5, adaptive_memory=0.8))
    cmd = np.array([[0.7, 0.0, 0.0], [0.7, 0.0, 0.0], [0.0, 0.0, 0.0]])
    s.update(cmd, np.array([1.0, 0.5, 0.3]))
    cell = s.cell_of(cmd[:1])
    assert s.count[cell][0] == 2 and s.count.sum() == 2  # the standing one not counted
    assert s.shortfall[cell][0] == pytest.approx(0.8 * 1.0 + 0.2 * 0.5)
    assert "commands/shortfall/vx+0.70" in s.summary()


def _kernel(x, w=0.15):
    return 4.0 / (np.exp(x / w) + 2.0 + np.exp(-x / w))


def _walk_env(seconds: float) -> LeggedEnv:
    cfg = EnvConfig(num_envs=1, episode_seconds=seconds, push_interval=0.0,
                    commands=CommandConfig(adaptive=0.5, vx=(0.75, 0.75), vy=(0.0, 0.0),
                                           yaw=(0.0, 0.0), zero_fraction=0.0))
    env = LeggedEnv(cfg, seed=0)
    env.reset(seed=0)
    return env


def test_env_sums_each_step_tracking_shortfall():
    """Per step: 1 - the tracking kernels' mean weighted as the reward weighs them (planar
    2, yaw rate 1), recomputed here from the base velocities; at the episode's end the
    mean over its full length, a fall counting every step it did not live as untracked."""
    env = _walk_env(seconds=1.0)
    want = 0.0
    for _ in range(20):
        env.step(np.zeros((1, 12)))
        v, w = env.physics.sensor("base_linvel_local")[0], env.physics.sensor("base_gyro")[0]
        want += 1.0 - (2 * _kernel(np.hypot(0.75 - v[0], v[1])) + _kernel(abs(w[2]))) / 3
    assert env._shortfall[0] == pytest.approx(want, rel=1e-12) and 0.5 * 20 < want < 20
    env._episodes_ended(np.array([0]), np.array([True]))  # as if it fell now, at step 20
    n = env.cfg.max_episode_steps
    cell = env.commands.cell_of(env.command[:1])
    assert env.commands.shortfall[cell][0] == pytest.approx((want + n - 20) / n, rel=1e-12)


def test_env_feeds_ended_episodes_to_the_draw():
    env = _walk_env(seconds=0.3)
    env.qvel[0, 3] = 40.0  # rolls over
    for _ in range(env.cfg.max_episode_steps):
        _, _, term, trunc, _ = env.step(np.zeros((1, 12)))
        if term[0] or trunc[0]:
            break
    assert term[0] and env.commands.count.sum() == 1
    assert env.commands.shortfall[env.commands.count > 0][0] > 0.9


@pytest.mark.parametrize("key, value, field", [
    ("env.commands.adaptive", 1.5, "env.commands.adaptive: need a fraction"),
    ("env.commands.adaptive_cells", (8, 0, 3), "env.commands.adaptive_cells"),
    ("env.commands.adaptive_memory", 1.0, "env.commands.adaptive_memory"),
])
def test_bad_adaptive_settings_name_the_field(key, value, field):
    with pytest.raises(ConfigError, match=field):
        apply_overrides(LocomotionConfig(), {key: value})
