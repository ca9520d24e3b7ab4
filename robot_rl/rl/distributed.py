"""Distributed rollout collection on Ray (issue 9): M workers, one learner.

Design
------
*Rollout level, not step level.*  Each of ``M`` Ray actors (:class:`RolloutWorker`) owns
one vector env built by a picklable factory ``env_factory(num_envs, seed)`` with its own
share ``n_k`` of the envs (``num_envs`` split as evenly as possible) and its own seed
``seed + k * SEED_STRIDE`` (env construction, ``reset`` and the worker's torch sampling
RNG), so domain randomization, commands and action noise of worker ``k`` are
reproducible.  Once per iteration :class:`DistributedRunner` (a subclass of
:class:`~robot_rl.rl.runner.OnPolicyRunner` that only replaces :meth:`collect`)

1. puts ``policy.state_dict()`` (actor, critic, ``log_std`` *and* the observation
   normalizer's statistics) in the object store once (``ray.put``) and sends the
   reference to every worker;
2. each worker runs the stochastic policy locally for ``num_steps_per_env`` steps with
   the normalizer *frozen* at the broadcast statistics and returns its trajectory: raw
   observations, sampled actions, rewards, terminated/truncated flags, the dense final
   observations of finished episodes, the observation after the last step, completed
   episode returns/lengths and per-step reward-term means;
3. the learner concatenates the shares along the env axis (worker ``k`` = env rows
   ``offset_k .. offset_k + n_k``) and hands the trajectory to the base runner's
   :meth:`~robot_rl.rl.runner.OnPolicyRunner.store_trajectory`, the same code the
   single-process rollout uses: ``V(s_t)``, ``log pi(a_t|s_t)`` and the action mean in
   one batched forward pass on the learner's device, ``V(final_obs)`` for truncated
   steps, the reward scaler over the whole rollout, one ``storage.fill`` and GAE (the
   workers normalized the observations with the frozen statistics; the learner
   normalizes the observation after the last step with the same statistics, on its
   device).  Only then are the iteration's raw observations merged into the normalizer.

The one semantic difference from :meth:`OnPolicyRunner.collect`: the single-process
rollout updates the normalizer before every step; here the statistics are frozen for
the iteration and updated once after it (the same data, merged exactly by Chan's rule).

:class:`RayVectorEnv` also satisfies the runner's env contract by itself (``step``
scatters the action batch and gathers the results, one Ray round trip per step), so the
plain ``OnPolicyRunner`` can drive it.  No training path steps it, and it is not fault
tolerant (a worker failure there raises); it is kept because it is the env contract
that :class:`DistributedRunner` inherits (the base constructor checks for ``step``),
because tests/rl/test_distributed.py steps fixed actions through it to pin each
worker's seed and env rows, and because ``bench/bench_ray.py`` measures it against the
rollout path (bench/RESULTS.md: why the runner uses rollouts).

Fault tolerance (rollout path)
------------------------------
Every ``ray.get`` has a timeout (``rollout_timeout_s``).  A worker whose rollout fails
with ``RayActorError`` (incl. ``ActorDiedError``) or times out is killed and replaced by
a new actor with the *same* env share and seed; the replacement resets its envs (fresh
episodes) and **re-collects that worker's whole share for the iteration**; the shares of
the other workers are kept.  Each replacement prints a warning and increments
``dist/worker_restarts`` (logged every iteration, cumulative).  After
``max_restarts_per_iteration`` replacements in one iteration the runner raises
:class:`WorkerFailure`: it never trains on partial data.  Errors raised *inside* a
worker's env or policy (e.g. :class:`~robot_rl.rl.runner.NonFiniteError`) are not
retried; they propagate.

Ray is imported only by this module, i.e. only when ``--workers`` is used.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray.exceptions import GetTimeoutError, RayActorError

from robot_rl.rl.algorithms import make_algorithm
from robot_rl.rl.config import PolicyConfig, TrainConfig
from robot_rl.rl.models import ActorCritic
from robot_rl.rl.process import limit_threads, resolve_device, seed_everything
from robot_rl.rl.rollout import NumpyActor, RolloutCollector, Trajectory, dense_final_obs
from robot_rl.rl.runner import Callback, OnPolicyRunner

#: worker ``k`` is seeded with ``seed + k * SEED_STRIDE``
SEED_STRIDE = 1000

EnvFactory = Callable[[int, int], Any]  # (num_envs, seed) -> vector env


class WorkerFailure(RuntimeError):
    """Rollout workers kept failing; the iteration's data is incomplete."""


def split_envs(num_envs: int, num_workers: int) -> list[int]:
    """Env share of each worker: ``num_envs`` split as evenly as possible (earlier ones larger)."""
    if num_workers < 1 or num_envs < num_workers:
        raise ValueError(f"need 1 <= workers <= num_envs, got {num_workers} workers, "
                         f"{num_envs} envs")
    base, extra = divmod(num_envs, num_workers)
    return [base + (k < extra) for k in range(num_workers)]


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to a Ray cluster (``address``: ``"auto"`` or ``host:port``) or start a local one.

    A local cluster gets this checkout on its workers' ``PYTHONPATH`` so actors import
    the same ``robot_rl`` (and stage packages) as the driver.  No-op if Ray is running.
    """
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address)
        return
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})


class _Worker:
    """One rollout worker: an env share, a numpy copy of the actor, the current observation."""

    def __init__(self, env_factory: EnvFactory, num_envs: int, seed: int, policy_cfg: dict,
                 clip_actions: bool, torch_threads: int):
        limit_threads(max(torch_threads, 1), 1)  # workers share the cores with physics
        seed_everything(seed)
        self.seed = seed
        self.env = env_factory(num_envs, seed)
        self.num_envs = int(self.env.num_envs)
        obs_space, act_space = self.env.single_observation_space, self.env.single_action_space
        self.policy = ActorCritic(int(obs_space.shape[0]), int(act_space.shape[0]),
                                  PolicyConfig(**policy_cfg))
        self.actor = NumpyActor(self.policy, seed)
        low = high = None
        if clip_actions and np.all(np.isfinite(act_space.low)) and np.all(np.isfinite(act_space.high)):
            low = np.asarray(act_space.low, np.float32)
            high = np.asarray(act_space.high, np.float32)
        self.collector = RolloutCollector(self.env, low, high, where=f"worker seed {seed}: ")
        self.obs = None

    def spaces(self) -> tuple[Any, Any, int]:
        return self.env.single_observation_space, self.env.single_action_space, self.num_envs

    def pid(self) -> int:
        return os.getpid()

    def reset(self, seed: int | None = None) -> np.ndarray:
        self.obs, _ = self.env.reset(seed=self.seed if seed is None else seed)
        self.obs = np.asarray(self.obs, dtype=np.float32)
        self.collector.reset_episodes()
        return self.obs

    def call(self, name: str, *args: Any) -> Any:
        return getattr(self.env, name)(*args)

    def step(self, actions: np.ndarray) -> tuple:
        obs, rew, term, trunc, info = self.env.step(actions)
        self.obs = np.asarray(obs, dtype=np.float32)
        return self.obs, rew, term, trunc, _dense_info(info, self.obs, term, trunc)

    def rollout(self, weights: dict[str, torch.Tensor], num_steps: int,
                env_calls: list[tuple[str, tuple]]) -> Trajectory:
        """Run the policy for ``num_steps`` steps (normalizer frozen); return the trajectory."""
        for name, args in env_calls:
            getattr(self.env, name)(*args)
        self.policy.load_state_dict(weights)
        self.actor.load(self.policy)
        traj = self.collector.collect(self.actor, self.obs, num_steps, update_normalizer=False)
        self.obs = traj.last_obs
        return traj


def _dense_info(info: dict, obs: np.ndarray, term: Any, trunc: Any) -> dict:
    """``info`` with ``final_obs`` as a dense ``(n, D)`` float32 array (object arrays densified)."""
    info = dict(info) if isinstance(info, dict) else {}
    if info.get("final_obs") is None:
        return info
    info["final_obs"] = dense_final_obs(info, obs, np.asarray(term) | np.asarray(trunc))
    return info


RolloutWorker = ray.remote(_Worker)


class RayVectorEnv:
    """``M`` Ray rollout workers presented as one vector env (the runner's contract).

    ``num_envs`` is the sum of the workers' shares; env rows are worker-major.  ``step``
    works (one round trip per step; kept for the env contract, tests and the bench: see
    the module docstring); :meth:`rollout` is the fast, fault-tolerant path used by
    :class:`DistributedRunner`.  ``call(name, *args)`` calls a method on every
    worker's env now and again before every rollout and on replacement workers (e.g.
    ``call("set_curriculum", 0.3)``); the last call per name is kept.
    """

    metadata = {"autoreset_mode": None}  # set in __init__ (gymnasium import kept local)

    def __init__(self, env_factory: EnvFactory, num_envs: int, num_workers: int,
                 policy_cfg: PolicyConfig | None = None, clip_actions: bool = True,
                 seed: int = 0, address: str | None = None, worker_cpus: float = 1.0,
                 worker_threads: int = 1, rollout_timeout_s: float = 600.0,
                 max_restarts_per_iteration: int = 3):
        from dataclasses import asdict

        import gymnasium as gym

        init_ray(address)
        self.metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
        self.env_factory, self.shares = env_factory, split_envs(num_envs, num_workers)
        self.offsets = np.cumsum([0] + self.shares)
        self.num_workers, self.num_envs = num_workers, num_envs
        self.policy_cfg = asdict(policy_cfg or PolicyConfig())
        self.clip_actions, self.seed = clip_actions, seed
        self.worker_cpus, self.worker_threads = worker_cpus, worker_threads
        self.timeout, self.max_restarts = rollout_timeout_s, max_restarts_per_iteration
        self.restarts = 0
        self._reset_seed = seed
        self._env_calls: dict[str, tuple] = {}
        self.workers = [self._spawn(k) for k in range(num_workers)]
        spaces = ray.get([w.spaces.remote() for w in self.workers], timeout=self.timeout)
        self.single_observation_space, self.single_action_space = spaces[0][:2]
        got = [s[2] for s in spaces]
        if got != self.shares:
            raise ValueError(f"env factory built {got} envs, asked for {self.shares}")

    def worker_seed(self, k: int) -> int:
        """Seed of worker ``k``'s envs and sampling RNG."""
        return self._reset_seed + k * SEED_STRIDE

    def _spawn(self, k: int) -> Any:
        return RolloutWorker.options(num_cpus=self.worker_cpus).remote(
            self.env_factory, self.shares[k], self.worker_seed(k), self.policy_cfg,
            self.clip_actions, self.worker_threads)

    def _get(self, refs: list) -> list:
        return ray.get(refs, timeout=self.timeout)

    # -- the runner's env contract ------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset worker ``k`` with ``seed + k * SEED_STRIDE``; obs concatenated worker-major."""
        if seed is not None:
            self._reset_seed = seed
        obs = self._get([w.reset.remote(self.worker_seed(k)) for k, w in enumerate(self.workers)])
        return np.concatenate(obs), {}

    def step(self, actions: Any):
        actions = np.asarray(actions, dtype=np.float32)
        refs = [w.step.remote(actions[self.offsets[k]:self.offsets[k + 1]])
                for k, w in enumerate(self.workers)]
        try:
            parts = self._get(refs)
        except (RayActorError, GetTimeoutError) as e:
            raise WorkerFailure(f"a worker failed during step(); the per-step path does not "
                                f"recover (use DistributedRunner): {e}") from e
        obs = np.concatenate([p[0] for p in parts])
        rew = np.concatenate([np.asarray(p[1], np.float32) for p in parts])
        term = np.concatenate([np.asarray(p[2], bool) for p in parts])
        trunc = np.concatenate([np.asarray(p[3], bool) for p in parts])
        info: dict[str, Any] = {}
        if (term | trunc).any():
            info["final_obs"] = np.concatenate(
                [p[4].get("final_obs", np.zeros_like(p[0])) for p in parts])
            info["_final_obs"] = term | trunc
        terms = [p[4].get("reward_terms") for p in parts]
        if all(terms):
            info["reward_terms"] = {k: np.concatenate([np.asarray(t[k]) for t in terms])
                                    for k in terms[0]}
        return obs, rew, term, trunc, info

    def call(self, name: str, *args: Any) -> list:
        """Call ``env.<name>(*args)`` on every worker (remembered for later rollouts)."""
        self._env_calls[name] = args
        return self._get([w.call.remote(name, *args) for w in self.workers])

    def close(self) -> None:
        for w in self.workers:
            ray.kill(w)
        self.workers = []

    # -- rollout-level, fault-tolerant path ---------------------------------------------

    def rollout(self, weights: Any, num_steps: int) -> list[dict[str, Any]]:
        """Every worker's trajectory for one iteration (list ordered by worker).

        ``weights`` is an object reference (``ray.put``) to the policy's state dict.  A
        worker that dies or times out is replaced and its share re-collected; see the
        module docstring.
        """
        calls = list(self._env_calls.items())
        pending = {k: w.rollout.remote(weights, num_steps, calls)
                   for k, w in enumerate(self.workers)}
        results: dict[int, dict[str, Any]] = {}
        restarts = 0
        deadline = time.monotonic() + self.timeout
        while pending:
            ready, _ = ray.wait(list(pending.values()), num_returns=1,
                                timeout=max(deadline - time.monotonic(), 0.0))
            if not ready:  # the slowest worker(s) timed out
                failed = {k: GetTimeoutError(f"no rollout within {self.timeout:.0f} s")
                          for k in pending}
            else:
                k = next(k for k, r in pending.items() if r == ready[0])
                try:
                    results[k] = ray.get(ready[0], timeout=self.timeout)
                    del pending[k]
                    continue
                except RayActorError as e:
                    failed = {k: e}
            for k, err in failed.items():
                restarts += 1
                if restarts > self.max_restarts:
                    raise WorkerFailure(
                        f"{restarts - 1} worker replacements this iteration and worker {k} "
                        f"failed again ({type(err).__name__}); refusing to train on partial "
                        "data") from err
                self.restarts += 1
                warnings.warn(f"rollout worker {k} (seed {self.worker_seed(k)}) failed: "
                              f"{type(err).__name__}; replacing it and re-collecting its "
                              f"{self.shares[k]} envs (restart {self.restarts})", stacklevel=2)
                ray.kill(self.workers[k])
                self.workers[k] = w = self._spawn(k)
                w.reset.remote(self.worker_seed(k))
                for name, args in calls:
                    w.call.remote(name, *args)
                pending[k] = w.rollout.remote(weights, num_steps, calls)
            deadline = time.monotonic() + self.timeout
        return [results[k] for k in range(self.num_workers)]


class DistributedRunner(OnPolicyRunner):
    """:class:`OnPolicyRunner` whose :meth:`collect` gathers trajectories from Ray workers.

    ``env`` must be a :class:`RayVectorEnv`.  Everything else (update, logging,
    checkpoints, resume) is the base runner's; ``dist/worker_restarts`` is added to the log.
    """

    env: RayVectorEnv

    @classmethod
    def from_factory(cls, env_factory: EnvFactory, num_envs: int, num_workers: int,
                     cfg: TrainConfig, callback: Callback | None = None,
                     address: str | None = None, **env_kwargs: Any) -> DistributedRunner:
        """Start the workers (``num_envs`` split over ``num_workers``) and build the runner."""
        limit_threads(cfg.runner.torch_threads, cfg.runner.blas_threads)
        seed_everything(cfg.runner.seed)
        env = RayVectorEnv(env_factory, num_envs, num_workers, policy_cfg=cfg.policy,
                           clip_actions=cfg.runner.clip_actions, seed=cfg.runner.seed,
                           address=address, **env_kwargs)
        policy = ActorCritic(int(env.single_observation_space.shape[0]),
                             int(env.single_action_space.shape[0]), cfg.policy)
        algo = make_algorithm(cfg.algo, policy, resolve_device(cfg.runner.device))
        return cls(env, algo, cfg.runner, callback=callback, train_cfg=cfg)

    def collect(self) -> dict[str, Any]:
        """One rollout from all workers into the algorithm's storage, returns computed.

        The workers act with the normalizer statistics of the start of the iteration; the
        statistics are updated here afterwards with all the iteration's observations.
        """
        policy = self.policy
        weights = ray.put({k: v.detach().cpu() for k, v in policy.state_dict().items()})
        traj = Trajectory.concatenate(self.env.rollout(weights, self.cfg.num_steps_per_env),
                                      self.env.shares)
        # the normalizer's buffers live on the learner's device (a GPU with --device auto
        # on a GPU machine): numpy goes in through .to(device) and comes out through .cpu()
        with torch.no_grad():
            last_obs = torch.from_numpy(traj.last_obs).to(self.device)
            last = policy.obs_normalizer(last_obs).cpu().numpy()
        roll = self.store_trajectory(traj, last)
        if policy.cfg.normalize_obs:
            T, N, D = traj.obs_raw.shape
            policy.obs_normalizer.update(torch.from_numpy(traj.obs_raw.reshape(T * N, D))
                                         .to(self.device))
        self.obs = traj.last_obs
        return roll

    def _extra_log(self) -> dict[str, Any]:
        """``dist/worker_restarts`` (cumulative) and ``dist/workers``."""
        return {"dist/worker_restarts": self.env.restarts, "dist/workers": self.env.num_workers}

    def close(self) -> None:
        super().close()
        self.env.close()
