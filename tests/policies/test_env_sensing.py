"""The training env observes what a robot measures: base velocity block optional, IMU bias."""

import numpy as np

from policies.config import EnvConfig
from policies.env import LeggedEnv
from robot_rl.obs_spec import projected_gravity

NO_NOISE = dict(num_envs=3, obs_noise=0.0, push_interval=0.0, randomize=False)


def _block(env, name):
    start = 0
    for n, size in env.spec.blocks():
        if n == name:
            return slice(start, start + size)
        start += size
    raise KeyError(name)


def test_default_policy_observes_no_base_velocity_and_spec_follows_the_config():
    env = LeggedEnv(EnvConfig(**NO_NOISE))
    assert not env.spec.base_linvel and "base_linvel" not in dict(env.spec.blocks())
    assert "base_linear_velocity_estimate" not in env.spec.signals()
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, env.spec.size)
    with_block = LeggedEnv(EnvConfig(**NO_NOISE, obs_base_linvel=True, obs_history=4))
    assert with_block.spec.base_linvel and with_block.spec.history == 4
    assert with_block.spec.size == env.spec.size + 3 + 2 * 2 * 12
    obs, _ = with_block.reset(seed=0)
    assert obs.shape == (3, with_block.spec.size)
    env.close()
    with_block.close()


def test_imu_bias_drawn_per_episode_enters_gravity_and_angular_velocity():
    cfg = EnvConfig(**NO_NOISE, imu_gyro_bias=0.02, imu_tilt_bias=0.03)
    env = LeggedEnv(cfg)
    obs, _ = env.reset(seed=1)
    for _ in range(3):
        obs, *_ = env.step(np.zeros((3, 12), np.float32))
    quat, gyro = env.physics.sensor("base_quat"), env.physics.sensor("base_gyro")
    g = obs[:, _block(env, "gravity")] / env.spec.scales["gravity"]
    w = obs[:, _block(env, "base_angvel")] / env.spec.scales["base_angvel"]
    np.testing.assert_allclose(g - projected_gravity(quat), env.gravity_bias, atol=1e-6)
    np.testing.assert_allclose(w - gyro, env.gyro_bias, atol=1e-5)
    assert np.all(env.gravity_bias[:, 2] == 0) and np.all(np.abs(env.gravity_bias[:, :2]) > 0)
    assert 0.002 < np.abs(env.gyro_bias).mean() < 0.06
    # a new episode draws new biases; off in the config, none
    before = env.gyro_bias.copy()
    env._reset_envs(np.array([0]))
    assert not np.allclose(env.gyro_bias[0], before[0]) and np.allclose(env.gyro_bias[1:], before[1:])
    env.close()
    clean = LeggedEnv(EnvConfig(**NO_NOISE, imu_gyro_bias=0.0, imu_tilt_bias=0.0))
    obs, _ = clean.reset(seed=1)
    g = obs[:, _block(clean, "gravity")]
    quat = clean.physics.sensor("base_quat")
    np.testing.assert_allclose(g, projected_gravity(quat), atol=1e-6)
    clean.close()
