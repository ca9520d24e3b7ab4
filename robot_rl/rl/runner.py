"""On-policy runner: rollouts over a vector env, updates, logging, checkpoints (helpers:
:mod:`robot_rl.rl.process` for seeding, threads, device, RNG and git state;
:mod:`robot_rl.rl.reward_scaling`).

Environment contract
--------------------
The runner drives any ``gymnasium.vector.VectorEnv`` (or an object with the same
attributes and methods) that satisfies all of the following:

1. ``num_envs: int``; ``single_observation_space`` and ``single_action_space`` are 1-D
   ``gymnasium.spaces.Box`` (observation dim ``D``, action dim ``A``).
2. ``metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.SAME_STEP``.  The
   runner refuses other modes (gymnasium's default is NEXT_STEP: pass
   ``autoreset_mode=AutoresetMode.SAME_STEP`` to ``SyncVectorEnv``/``AsyncVectorEnv``, or
   use :func:`make_gym_vec_env`).
3. ``reset(seed=int) -> (obs, info)`` with ``obs`` of shape ``(num_envs, D)``; env ``i``
   is seeded with ``seed + i`` (gymnasium's convention).  Called once, at construction.
4. ``step(actions) -> (obs, reward, terminated, truncated, info)``.  ``actions`` is a
   float32 numpy array of shape ``(num_envs, A)``; ``obs`` (any float dtype, converted
   to float32), ``reward`` (float), ``terminated`` and ``truncated`` (bool) are numpy
   arrays of shape ``(num_envs, D)`` / ``(num_envs,)`` and describe the transition just
   taken.  (Rollouts run in numpy on a CPU learner and the policy's forward pass on the
   learner's device otherwise: see :mod:`robot_rl.rl.rollout`.)
5. SAME_STEP autoreset: when env ``i`` ends an episode in a step (``terminated[i] or
   truncated[i]``), it is reset inside that same step; ``obs[i]`` is the first
   observation of the new episode and ``info["final_obs"]`` holds the last observation
   of the finished one: either gymnasium's object array (entry ``i`` an array of shape
   ``(D,)``, ``None`` elsewhere; mask ``info["_final_obs"]``) or a dense ``(num_envs, D)``
   array whose rows for envs that did not finish are ignored.  ``final_obs`` is
   required whenever any env finished.  ``truncated`` means a time limit (or another
   cut that is not a terminal state): the runner bootstraps the return with
   ``V(final_obs)``; ``terminated`` means a terminal state (value 0).  If both are true
   the step counts as terminated.
6. Optional ``info["reward_terms"]``: ``{name: array (num_envs,)}`` of per-step reward
   components; each is averaged over the iteration and logged as ``reward/<name>``.
7. Observations and rewards are finite; the runner checks every step and raises
   :class:`NonFiniteError` naming the iteration, step, field and env indices otherwise.

Rewards reported as episode returns are the env's raw rewards, whether or not
``RunnerConfig.normalize_rewards`` scales what the algorithm sees.
"""

from __future__ import annotations

import io
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from robot_rl.config import atomic_write_bytes, atomic_write_json, to_dict
from robot_rl.rl.algorithms import make_algorithm
from robot_rl.rl.base import OnPolicyAlgorithm
from robot_rl.rl.config import RunnerConfig, TrainConfig
from robot_rl.rl.models import ActorCritic, gaussian_log_prob
from robot_rl.rl.process import (
    git_state,
    limit_threads,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)
from robot_rl.rl.reward_scaling import RewardScaler
from robot_rl.rl.rollout import (
    EnvContractError,
    NonFiniteError,  # noqa: F401 (re-exported: robot_rl.rl.runner.NonFiniteError)
    RolloutCollector,
    Trajectory,
    make_actor,
)

Callback = Callable[[int, dict[str, Any]], None]


def make_gym_vec_env(env_id: str, num_envs: int, **kwargs: Any) -> gym.vector.SyncVectorEnv:
    """``SyncVectorEnv`` of ``gymnasium.make(env_id, **kwargs)`` with SAME_STEP autoreset."""
    return gym.vector.SyncVectorEnv(
        [lambda: gym.make(env_id, **kwargs) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )


class OnPolicyRunner:
    """Collect ``num_steps_per_env`` steps from every env, update, log, checkpoint; repeat.

    ``env`` must satisfy the contract in this module's docstring.  ``algo`` carries the
    policy (with its observation normalizer) and device.  ``callback(iteration, log)`` is
    called after every iteration with the logged numbers (and ``train/skip_reason``).
    ``train_cfg``, when given, is written with this runner's config to
    ``<log_dir>/config.json``.
    """

    def __init__(
        self,
        env: Any,
        algo: OnPolicyAlgorithm,
        cfg: RunnerConfig,
        callback: Callback | None = None,
        train_cfg: TrainConfig | None = None,
    ):
        self.env, self.algo, self.cfg, self.callback = env, algo, cfg, callback
        self.policy: ActorCritic = algo.policy
        self.device = algo.device
        self._check_env(env)
        self.num_envs = int(env.num_envs)
        obs_space, act_space = env.single_observation_space, env.single_action_space
        self.obs_dim, self.action_dim = int(obs_space.shape[0]), int(act_space.shape[0])
        if (self.policy.obs_dim, self.policy.action_dim) != (self.obs_dim, self.action_dim):
            raise EnvContractError(
                f"policy is {self.policy.obs_dim}->{self.policy.action_dim}, "
                f"env is {self.obs_dim}->{self.action_dim}"
            )
        low = high = None
        if (
            cfg.clip_actions
            and np.all(np.isfinite(act_space.low))
            and np.all(np.isfinite(act_space.high))
        ):
            low = np.asarray(act_space.low, dtype=np.float32)
            high = np.asarray(act_space.high, dtype=np.float32)
        algo.init_storage(self.num_envs, cfg.num_steps_per_env, self.obs_dim, self.action_dim)
        self.reward_scaler = (
            RewardScaler(self.num_envs, algo.cfg.gamma, cfg.reward_clip)
            if cfg.normalize_rewards
            else None
        )
        self.collector = RolloutCollector(env, low, high)
        self.actor = make_actor(cfg.rollout_actor, self.policy, cfg.seed)

        obs, _ = env.reset(seed=cfg.seed)
        if isinstance(obs, Tensor):
            raise EnvContractError(
                "env returned a torch tensor; the runner's contract is numpy arrays "
                "(see robot_rl.rl.runner)"
            )
        self.obs = np.array(obs, dtype=np.float32)
        self.collector.check_finite(self.obs, "obs (reset)", 0, 0)

        self.iteration = 0  # completed iterations
        self.env_steps = 0  # total env transitions collected (all envs)
        self.episode_returns: deque[float] = deque(maxlen=cfg.episode_window)
        self.episode_lengths: deque[int] = deque(maxlen=cfg.episode_window)
        self.last_log: dict[str, Any] = {}

        self.log_dir = Path(cfg.log_dir) if cfg.log_dir else None
        self.writer = None
        if self.log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.log_dir.mkdir(parents=True, exist_ok=True)
            config = (
                to_dict(train_cfg)
                if train_cfg is not None
                else {"algo": to_dict(algo.cfg), "policy": to_dict(self.policy.cfg)}
            )
            config["runner"] = to_dict(cfg)
            atomic_write_json(self.log_dir / "config.json", config)
            git = git_state()
            if git is not None:
                atomic_write_json(self.log_dir / "git.json", git)
            self.writer = SummaryWriter(str(self.log_dir))

    @classmethod
    def from_config(
        cls, env: Any, cfg: TrainConfig, callback: Callback | None = None
    ) -> OnPolicyRunner:
        """Seed, pick the device, build policy and algorithm for ``env``, return the runner."""
        limit_threads(cfg.runner.torch_threads, cfg.runner.blas_threads)
        seed_everything(cfg.runner.seed)
        device = resolve_device(cfg.runner.device)
        policy = ActorCritic(
            int(env.single_observation_space.shape[0]),
            int(env.single_action_space.shape[0]),
            cfg.policy,
        )
        algo = make_algorithm(cfg.algo, policy, device)
        return cls(env, algo, cfg.runner, callback=callback, train_cfg=cfg)

    # -- env plumbing -------------------------------------------------------------------

    @staticmethod
    def _check_env(env: Any) -> None:
        for attr in (
            "num_envs",
            "single_observation_space",
            "single_action_space",
            "reset",
            "step",
        ):
            if not hasattr(env, attr):
                raise EnvContractError(f"env has no {attr!r}; see robot_rl.rl.runner's contract")
        for name in ("single_observation_space", "single_action_space"):
            space = getattr(env, name)
            if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
                raise EnvContractError(f"env.{name} must be a 1-D Box, got {space}")
        mode = getattr(env, "metadata", {}).get("autoreset_mode")
        if mode != gym.vector.AutoresetMode.SAME_STEP:
            raise EnvContractError(
                f"env.metadata['autoreset_mode'] is {mode!r}; the runner needs "
                "AutoresetMode.SAME_STEP with info['final_obs'] (see make_gym_vec_env)"
            )

    # -- training loop ------------------------------------------------------------------

    def collect(self) -> dict[str, Any]:
        """Collect one rollout into the algorithm's storage and compute its returns."""
        self.actor.load(self.policy)
        traj = self.collector.collect(
            self.actor,
            self.obs,
            self.cfg.num_steps_per_env,
            update_normalizer=self.policy.cfg.normalize_obs,
            iteration=self.iteration,
        )
        self.actor.store_normalizer(self.policy)
        self.obs = traj.last_obs
        return self.store_trajectory(traj, self.actor.normalize(traj.last_obs))

    @torch.no_grad()
    def store_trajectory(self, traj: Trajectory, last_obs: np.ndarray) -> dict[str, Any]:
        """Fill the algorithm's storage from ``traj`` and compute GAE returns.

        The policy is the one the trajectory was collected with: action means,
        log-probabilities, values and ``V(final_obs)`` of truncated steps are computed
        here in one batch each.  ``last_obs`` is the normalized observation after the
        last step (its value bootstraps the return).  Rewards are scaled here when
        ``normalize_rewards`` is on.  Returns the rollout's episode and reward-term counts.
        """
        policy, dev = self.policy, self.device
        T, N = traj.num_steps, traj.num_envs

        def t(x: np.ndarray) -> Tensor:
            return torch.from_numpy(x).to(dev)

        obs, actions = t(traj.obs), t(traj.actions)
        term, trunc = t(traj.terminated), t(traj.truncated)
        rewards = traj.rewards
        if self.reward_scaler is not None:
            rewards = self.reward_scaler.scale(rewards, traj.terminated | traj.truncated)
        mean = policy.actor(obs.reshape(T * N, -1)).reshape(T, N, -1)
        log_prob = gaussian_log_prob(actions, mean, policy.log_std)
        values = policy.value(obs)
        final_values = torch.zeros(T, N, device=dev)
        if traj.truncated.any():
            final_values[trunc] = policy.value(t(traj.final_obs[traj.truncated]))
        self.algo.storage.fill(
            observations=obs,
            actions=actions,
            log_probs=log_prob,
            values=values,
            action_mean=mean,
            action_std=policy.action_std().expand_as(mean),
            rewards=t(rewards),
            terminated=term,
            truncated=trunc,
            final_values=final_values,
        )
        self.algo.compute_returns(t(last_obs))
        self.episode_returns.extend(traj.episode_returns)
        self.episode_lengths.extend(traj.episode_lengths)
        self.env_steps += T * N
        steps = max(traj.term_steps, 1)
        return {
            "completed": len(traj.episode_returns),
            "reward_terms": {k: v / steps for k, v in traj.term_sums.items()},
        }

    def learn(self, iterations: int | None = None) -> dict[str, Any]:
        """Run ``iterations`` more iterations (default: up to ``cfg.iterations`` in total).

        Returns the log of the last iteration.  Checkpoints go to
        ``<log_dir>/model_<iteration>.pt`` every ``save_interval`` iterations and at the end.
        """
        target = self.cfg.iterations if iterations is None else self.iteration + iterations
        from tqdm import tqdm

        bar = tqdm(
            total=target,
            initial=self.iteration,
            disable=not self.cfg.progress,
            desc=f"{self.algo.name}",
            unit="it",
            dynamic_ncols=True,
        )
        try:
            while self.iteration < target:
                t0 = time.perf_counter()
                self.policy.train()
                roll = self.collect()
                t1 = time.perf_counter()
                stats = self.algo.update()
                t2 = time.perf_counter()
                self.iteration += 1
                log = self._log(stats, roll, t1 - t0, t2 - t1)
                bar.update(1)
                bar.set_postfix(
                    ret=f"{log.get('episode/return_mean', float('nan')):.1f}",
                    kl=f"{stats.get('kl', 0.0):.4f}",
                )
                if (
                    self.log_dir is not None
                    and self.cfg.save_interval
                    and self.iteration % self.cfg.save_interval == 0
                ):
                    self.save(self.log_dir / f"model_{self.iteration}.pt")
        finally:
            bar.close()
        if self.log_dir is not None:
            self.save(self.log_dir / f"model_{self.iteration}.pt")
            if self.writer is not None:
                self.writer.flush()
        return self.last_log

    def _log(
        self, stats: dict[str, Any], roll: dict[str, Any], t_collect: float, t_update: float
    ) -> dict[str, Any]:
        log: dict[str, Any] = {}
        for k, v in stats.items():
            log[f"train/{k}"] = v
        if self.episode_returns:
            log["episode/return_mean"] = float(np.mean(self.episode_returns))
            log["episode/length_mean"] = float(np.mean(self.episode_lengths))
        log["episode/completed"] = roll["completed"]
        for k, v in roll["reward_terms"].items():
            log[f"reward/{k}"] = v
        n = self.cfg.num_steps_per_env * self.num_envs
        log["perf/fps"] = n / max(t_collect + t_update, 1e-9)
        log["perf/collection_s"] = t_collect
        log["perf/update_s"] = t_update
        log["perf/env_steps"] = self.env_steps
        log["policy/action_std_mean"] = float(self.policy.action_std().detach().mean())
        log.update(self._extra_log())
        if self.writer is not None:
            for k, v in log.items():
                if isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, self.iteration)
            for k, v in stats.items():
                if isinstance(v, str) and v:
                    self.writer.add_text(f"train/{k}", v, self.iteration)
        self.last_log = log
        if self.callback is not None:
            self.callback(self.iteration, log)
        return log

    def _extra_log(self) -> dict[str, Any]:
        """More numbers for this iteration's log (subclasses add theirs); none here."""
        return {}

    # -- checkpoints --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: iteration, algorithm (policy, normalizer, optimizers), RNG."""
        return {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "algo": self.algo.state_dict(),
            "reward_scaler": None
            if self.reward_scaler is None
            else self.reward_scaler.state_dict(),
            "rng": rng_state(),
            "actor_rng": self.actor.rng_state(),
            "episode_returns": list(self.episode_returns),
            "episode_lengths": list(self.episode_lengths),
            "runner_config": to_dict(self.cfg),
            "algo_config": to_dict(self.algo.cfg),
            "policy_config": to_dict(self.policy.cfg),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write a checkpoint atomically (``torch.save`` to a temporary file, then ``os.replace``)."""
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        atomic_write_bytes(path, buf.getvalue())

    def load(
        self, path: str | os.PathLike, load_optimizer: bool = True, load_rng: bool = True
    ) -> None:
        """Restore a checkpoint written by :meth:`save`; training resumes at its iteration."""
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.algo.load_state_dict(state["algo"], load_optimizer=load_optimizer)
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])
        if self.reward_scaler is not None and state.get("reward_scaler") is not None:
            self.reward_scaler.load_state_dict(state["reward_scaler"])
        self.episode_returns.clear()
        self.episode_returns.extend(state.get("episode_returns", []))
        self.episode_lengths.clear()
        self.episode_lengths.extend(state.get("episode_lengths", []))
        if load_rng:
            set_rng_state(state["rng"])
            if state.get("actor_rng") is not None:
                self.actor.set_rng_state(state["actor_rng"])

    def close(self) -> None:
        """Close the TensorBoard writer (the env is the caller's to close)."""
        if self.writer is not None:
            self.writer.close()
