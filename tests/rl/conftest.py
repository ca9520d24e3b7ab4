"""A tiny deterministic vector env that follows the runner's contract (SAME_STEP autoreset)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest


class PointEnv(gym.vector.VectorEnv):
    """1-D point: obs ``[x, t / horizon]``, action moves x by ``gain * a`` (default 0.1).

    Reward ``1 - pos_coef * x^2`` (default 0.1); x starts uniform in ``[-start, start]``
    (default 0.5); truncated after ``horizon`` steps; terminated when ``|x| > x_max``.
    The defaults make every policy earn about the same; ``start=2, gain=0.5,
    pos_coef=1`` make a task where steering x to 0 earns far more than acting at random
    (:meth:`steering_return` is that controller's return).  Records every finished
    episode (return, length, final obs) so tests can compare with what the runner saw.
    ``nan_at`` injects a NaN observation in env 0 at that global step.  ``dense_final``
    gives ``final_obs`` as a dense array instead of gymnasium's object array.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, num_envs=3, horizon=4, x_max=1e9, nan_at=None, dense_final=False,
                 start=0.5, gain=0.1, pos_coef=0.1):
        self.num_envs, self.horizon, self.x_max = num_envs, horizon, x_max
        self.start, self.gain, self.pos_coef = start, gain, pos_coef
        self.nan_at, self.dense_final = nan_at, dense_final
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, num_envs
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.finished: list[
            tuple[int, int, float, int, np.ndarray]
        ] = []  # (step, env, ret, len, final)
        self.global_step = 0

    def _obs(self):
        return np.stack([self.x, self.t / self.horizon], 1).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        self.rng = np.random.default_rng(seed)
        self.x = self.rng.uniform(-self.start, self.start, self.num_envs)
        self.t = np.zeros(self.num_envs)
        self.ret = np.zeros(self.num_envs)
        return self._obs(), {}

    def step(self, actions):
        a = np.asarray(actions, dtype=np.float64).reshape(self.num_envs)
        assert np.all(np.abs(a) <= 1.0), "runner must clip actions to the Box bounds"
        self.x = self.x + self.gain * a
        self.t += 1
        pos = -self.pos_coef * self.x**2
        reward = (1.0 + pos).astype(np.float32)
        self.ret += reward
        terminated = np.abs(self.x) > self.x_max
        truncated = (self.t >= self.horizon) & ~terminated
        done = terminated | truncated
        obs = self._obs()
        if self.nan_at is not None and self.global_step == self.nan_at:
            obs[0, 0] = np.nan
        info = {"reward_terms": {"pos": pos, "const": np.ones(self.num_envs)}}
        if done.any():
            ids = np.nonzero(done)[0]
            if self.dense_final:
                final = np.zeros_like(obs)
                final[ids] = obs[ids]
            else:
                final = np.empty(self.num_envs, dtype=object)
                for i in ids:
                    final[i] = obs[i].copy()
            info["final_obs"], info["_final_obs"] = final, done.copy()
            for i in ids:
                self.finished.append(
                    (self.global_step, int(i), float(self.ret[i]), int(self.t[i]), obs[i].copy())
                )
            self.x[ids] = self.rng.uniform(-self.start, self.start, len(ids))
            self.t[ids] = 0
            self.ret[ids] = 0.0
            obs[ids] = self._obs()[ids]
        self.global_step += 1
        return obs, reward, terminated, truncated, info

    def steering_return(self, seed=0, episodes=64):
        """Mean return of the first ``episodes`` episodes of the deterministic controller
        ``a = clip(-x / gain, -1, 1)`` (steer x to 0 as fast as the action bound allows),
        run on this env from ``reset(seed)``: what a well-trained policy approaches."""
        obs, _ = self.reset(seed=seed)
        start = len(self.finished)
        while len(self.finished) - start < episodes:
            obs, *_ = self.step(np.clip(-obs[:, :1] / self.gain, -1.0, 1.0))
        return float(np.mean([f[2] for f in self.finished[start : start + episodes]]))


@pytest.fixture
def point_env():
    """Factory of :class:`PointEnv` instances."""
    return PointEnv


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small networks on a shared 2-core machine: one intra-op thread is far faster."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
