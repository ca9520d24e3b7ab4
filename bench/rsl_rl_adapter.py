"""``policies.env.LeggedEnv`` behind rsl_rl's ``VecEnv`` interface (rsl-rl-lib 5.x).

A thin adapter for ``bench/bench_rsl_rl.py``: rsl_rl's ``OnPolicyRunner`` drives this
project's locomotion env unchanged.  rsl_rl is not a dependency of the package; install it
for the benchmark only (``pip install rsl-rl-lib``; it needs tensordict and GitPython, and
leaves an installed torch alone when torch >= 2.6).

What rsl_rl 5.x reads from a ``VecEnv`` (``rsl_rl/env/vec_env.py``, ``runners/
on_policy_runner.py``, ``algorithms/ppo.py``), and what it gets here:

* ``num_envs``, ``num_actions``; ``max_episode_length`` (control steps of an episode,
  ``EnvConfig.max_episode_steps``); ``episode_length_buf``: the env's own per-env step
  counter ``LeggedEnv.steps`` as a tensor sharing its memory (assigning to it, as
  ``learn(init_at_random_ep_len=True)`` does, writes the env's counters); ``device``;
  ``cfg`` (the ``EnvConfig`` as a dict, for rsl_rl's logger).
* ``get_observations() -> TensorDict({"policy": obs})``: the observation after the last
  step (after a same-step reset, the new episode's first one, as rsl_rl expects).
* ``step(actions) -> (obs, rewards, dones, extras)``: ``dones = terminated | truncated``
  (int64), ``extras["time_outs"] = truncated`` (bool), which rsl_rl's PPO uses to
  bootstrap the reward with ``gamma * V(s_t)`` at time-outs.  Rewards are the env's
  (float32), unscaled.  With ``log_terms`` the per-step means of ``info["reward_terms"]``
  go to ``extras["log"]`` (rsl_rl's logger shows them when it writes TensorBoard).

The reward-cost curriculum that ``policies.train.train`` advances after every one of its
iterations (``k_c = start ** (rate ** i)`` after iteration ``i``) is advanced here by env
steps instead: after every ``curriculum_every`` steps per env (this project's
``num_steps_per_env``), so both learners see the same curriculum at the same env step
whatever their rollout length.

Every call of the wrapped ``env.step`` is timed (``env_seconds``, ``env_calls``), so a
benchmark can split training wall-clock into environment and learner time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict


class RslRlLeggedEnv(VecEnv):
    """rsl_rl ``VecEnv`` over a ``LeggedEnv`` (or any same-step-autoreset gymnasium
    ``VectorEnv`` with a ``steps`` counter and ``cfg.max_episode_steps``)."""

    def __init__(
        self,
        env: Any,
        device: str | torch.device = "cpu",
        seed: int = 0,
        curriculum: Callable[[int], float] | None = None,
        curriculum_every: int = 0,
        log_terms: bool = False,
    ) -> None:
        self.env = env
        self.device = torch.device(device)
        self.num_envs = int(env.num_envs)
        self.num_actions = int(env.single_action_space.shape[0])
        self.max_episode_length = int(env.cfg.max_episode_steps)
        self.cfg = asdict(env.cfg)
        self.curriculum, self.curriculum_every = curriculum, int(curriculum_every)
        self.log_terms = log_terms
        self.env_seconds = 0.0
        self.env_calls = 0
        obs, _ = env.reset(seed=seed)
        self._obs = self._to_obs(obs)

    # -- rsl_rl's VecEnv ------------------------------------------------------------------
    @property
    def episode_length_buf(self) -> torch.Tensor:
        """The env's per-env step counters (shares memory on the CPU)."""
        buf = torch.from_numpy(self.env.steps)
        return buf if self.device.type == "cpu" else buf.to(self.device)

    @episode_length_buf.setter
    def episode_length_buf(self, value: torch.Tensor) -> None:
        self.env.steps[:] = np.asarray(torch.as_tensor(value).detach().cpu().numpy(),
                                       dtype=self.env.steps.dtype)

    def get_observations(self) -> TensorDict:
        return self._obs

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        a = actions.detach().to("cpu", torch.float32).numpy()
        t0 = time.perf_counter()
        obs, reward, terminated, truncated, info = self.env.step(a)
        self.env_seconds += time.perf_counter() - t0
        self.env_calls += 1
        if self.curriculum is not None and self.curriculum_every > 0 \
                and self.env_calls % self.curriculum_every == 0:
            self.env.set_curriculum(self.curriculum(self.env_calls // self.curriculum_every))
        self._obs = self._to_obs(obs)
        dev = self.device
        rewards = torch.from_numpy(np.asarray(reward, dtype=np.float32)).to(dev)
        dones = torch.from_numpy((terminated | truncated).astype(np.int64)).to(dev)
        extras: dict[str, Any] = {"time_outs": torch.from_numpy(np.asarray(truncated, bool)).to(dev)}
        if self.log_terms and "reward_terms" in info:
            extras["log"] = {f"/reward/{k}": float(np.mean(v)) for k, v in info["reward_terms"].items()}
        return self._obs, rewards, dones, extras

    def close(self) -> None:
        self.env.close()

    # -- helpers ----------------------------------------------------------------------------
    def _to_obs(self, obs: np.ndarray) -> TensorDict:
        t = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32)).to(self.device)
        return TensorDict({"policy": t}, batch_size=[self.num_envs], device=self.device)
