"""On-policy runner: rollouts over a vector env, updates, logging, checkpoints.

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
4. ``step(actions) -> (obs, reward, terminated, truncated, info)``.  ``actions`` has
   shape ``(num_envs, A)`` and the array type of the observations the env returns: a
   float32 numpy array for numpy envs, a float32 torch tensor on the runner's device for
   torch envs.  ``reward`` (float), ``terminated`` and ``truncated`` (bool) have shape
   ``(num_envs,)`` and describe the transition just taken.
5. SAME_STEP autoreset: when env ``i`` ends an episode in a step (``terminated[i] or
   truncated[i]``), it is reset inside that same step; ``obs[i]`` is the first
   observation of the new episode and ``info["final_obs"]`` holds the last observation
   of the finished one: either gymnasium's object array (entry ``i`` an array of shape
   ``(D,)``, ``None`` elsewhere; mask ``info["_final_obs"]``) or a dense ``(num_envs, D)``
   array/tensor whose rows for envs that did not finish are ignored.  ``final_obs`` is
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
import math
import os
import random
import subprocess
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
from robot_rl.rl.algorithms import OnPolicyAlgorithm, make_algorithm
from robot_rl.rl.config import RunnerConfig, TrainConfig
from robot_rl.rl.models import ActorCritic

Callback = Callable[[int, dict[str, Any]], None]


class NonFiniteError(RuntimeError):
    """An environment returned NaN or inf."""


class EnvContractError(ValueError):
    """The environment does not satisfy the runner's contract (see the module docstring)."""


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python ``random``, numpy, torch (CPU and CUDA); optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_gym_vec_env(env_id: str, num_envs: int, **kwargs: Any) -> gym.vector.SyncVectorEnv:
    """``SyncVectorEnv`` of ``gymnasium.make(env_id, **kwargs)`` with SAME_STEP autoreset."""
    return gym.vector.SyncVectorEnv(
        [lambda: gym.make(env_id, **kwargs) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class RewardScaler:
    """Divide rewards by the running std of each env's discounted return (as VecNormalize).

    ``ret <- gamma * ret + r`` per env (reset to 0 at episode ends); the running variance
    of ``ret`` over all envs and steps gives ``r_scaled = clip(r / sqrt(var + 1e-8))``.
    The scalar statistics are python floats (one device sync per step).
    """

    def __init__(self, num_envs: int, gamma: float, clip: float, device: torch.device):
        self.gamma, self.clip = gamma, clip
        self.returns = torch.zeros(num_envs, device=device)
        self.mean, self.var, self.count = 0.0, 1.0, 0.0

    def __call__(self, rewards: Tensor, dones: Tensor) -> Tensor:
        self.returns.mul_(self.gamma).add_(rewards)
        m = self.returns.mean()
        b_mean, b_var = torch.stack([m, (self.returns - m).square().mean()]).tolist()
        n = self.returns.numel()
        total = self.count + n
        w = n / total
        delta = b_mean - self.mean
        self.mean += w * delta
        self.var = (1.0 - w) * self.var + w * b_var + w * (1.0 - w) * delta * delta
        self.count = total
        scaled = (rewards * (1.0 / math.sqrt(self.var + 1e-8))).clamp_(-self.clip, self.clip)
        self.returns.masked_fill_(dones, 0.0)
        return scaled

    def state_dict(self) -> dict[str, Any]:
        return {"returns": self.returns, "mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns = state["returns"].to(self.returns.device).clone()
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]


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
        self.action_low = self.action_high = None
        if (
            cfg.clip_actions
            and np.all(np.isfinite(act_space.low))
            and np.all(np.isfinite(act_space.high))
        ):
            self.action_low = torch.as_tensor(
                act_space.low, dtype=torch.float32, device=self.device
            )
            self.action_high = torch.as_tensor(
                act_space.high, dtype=torch.float32, device=self.device
            )
        algo.init_storage(self.num_envs, cfg.num_steps_per_env, self.obs_dim, self.action_dim)
        self.reward_scaler = (
            RewardScaler(self.num_envs, algo.cfg.gamma, cfg.reward_clip, self.device)
            if cfg.normalize_rewards
            else None
        )

        obs, _ = env.reset(seed=cfg.seed)
        self._torch_env = isinstance(obs, Tensor)
        self.obs = self._tensor(obs)
        self._check_finite(self.obs, "obs (reset)", 0)

        self.iteration = 0  # completed iterations
        self.env_steps = 0  # total env transitions collected (all envs)
        self.episode_returns: deque[float] = deque(maxlen=cfg.episode_window)
        self.episode_lengths: deque[int] = deque(maxlen=cfg.episode_window)
        self._ep_return = torch.zeros(self.num_envs, device=self.device)
        self._ep_length = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
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
            self._write_git_state()
            self.writer = SummaryWriter(str(self.log_dir))

    @classmethod
    def from_config(
        cls, env: Any, cfg: TrainConfig, callback: Callback | None = None
    ) -> OnPolicyRunner:
        """Seed, pick the device, build policy and algorithm for ``env``, return the runner."""
        if cfg.runner.torch_threads > 0:
            torch.set_num_threads(cfg.runner.torch_threads)
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

    def _tensor(self, x: Any, dtype: torch.dtype = torch.float32) -> Tensor:
        """A fresh tensor on the runner's device (never a view of an env's own buffer)."""
        if isinstance(x, Tensor):
            return x.to(device=self.device, dtype=dtype, copy=True)
        np_dtype = np.bool_ if dtype == torch.bool else np.float32
        return torch.from_numpy(np.array(x, dtype=np_dtype)).to(self.device)

    def _check_finite(self, x: Any, what: str, step: int) -> None:
        """Raise :class:`NonFiniteError` naming the env rows of ``x`` that hold NaN/inf."""
        if isinstance(x, Tensor):
            ok = bool(torch.isfinite(x).all())
        else:
            ok = bool(np.isfinite(x).all())
        if not ok:
            rows = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
            finite = torch.isfinite(rows.reshape(rows.shape[0], -1)).all(-1)
            bad = torch.nonzero(~finite).flatten().tolist()
            raise NonFiniteError(
                f"environment returned non-finite {what} at iteration {self.iteration}, "
                f"step {step}, env indices {bad}"
            )

    def _final_obs(self, info: dict[str, Any], done: Tensor, next_obs: Tensor, step: int) -> Tensor:
        final = info.get("final_obs")
        if final is None:
            raise EnvContractError(
                "an episode ended but info has no 'final_obs' (SAME_STEP contract)"
            )
        if isinstance(final, np.ndarray) and final.dtype == object:
            mask = info.get("_final_obs")
            rows = np.nonzero(mask if mask is not None else done.cpu().numpy())[0]
            out = next_obs.clone()
            if len(rows):
                out[torch.as_tensor(rows, device=self.device)] = self._tensor(
                    np.stack([np.asarray(final[i], dtype=np.float32) for i in rows])
                )
        else:
            out = self._tensor(final)
        self._check_finite(out[done], "final_obs", step)
        return out

    # -- training loop ------------------------------------------------------------------

    def collect(self) -> dict[str, Any]:
        """Collect one rollout into the algorithm's storage and compute its returns."""
        cfg, algo, policy, env = self.cfg, self.algo, self.policy, self.env
        normalizer = policy.obs_normalizer
        update_norm = policy.cfg.normalize_obs
        low, high = self.action_low, self.action_high
        term_sums: dict[str, Any] = {}
        term_steps = 0
        completed = 0
        obs = self.obs
        with torch.no_grad():
            for step in range(cfg.num_steps_per_env):
                if update_norm:
                    normalizer.update(obs)
                actions = algo.act(normalizer(obs))
                env_actions = actions if low is None else torch.clamp(actions, low, high)
                if not self._torch_env:
                    env_actions = env_actions.cpu().numpy()
                next_obs, rew, term, trunc, info = env.step(env_actions)
                self._check_finite(next_obs, "obs", step)
                self._check_finite(rew, "reward", step)
                next_obs = self._tensor(next_obs)
                rew = self._tensor(rew)
                term = self._tensor(term, torch.bool)
                trunc = self._tensor(trunc, torch.bool)
                done = term | trunc

                self._ep_return += rew
                self._ep_length += 1
                final = None
                if bool(done.any()):
                    idx = torch.nonzero(done).flatten()
                    self.episode_returns.extend(self._ep_return[idx].tolist())
                    self.episode_lengths.extend(self._ep_length[idx].tolist())
                    completed += int(idx.numel())
                    self._ep_return[idx] = 0.0
                    self._ep_length[idx] = 0
                    final = normalizer(self._final_obs(info, done, next_obs, step))

                terms = info.get("reward_terms") if isinstance(info, dict) else None
                if terms:
                    for k, v in terms.items():
                        m = v.float().mean() if isinstance(v, Tensor) else float(np.mean(v))
                        term_sums[k] = term_sums.get(k, 0.0) + m
                    term_steps += 1

                if self.reward_scaler is not None:
                    rew = self.reward_scaler(rew, done)
                algo.process_env_step(rew, term, trunc, final)
                obs = next_obs
            self.obs = obs
            algo.compute_returns(normalizer(obs))
        self.env_steps += cfg.num_steps_per_env * self.num_envs
        return {
            "completed": completed,
            "reward_terms": {k: float(v) / max(term_steps, 1) for k, v in term_sums.items()},
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
            "rng": _rng_state(),
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
            _set_rng_state(state["rng"])

    def _write_git_state(self) -> None:
        assert self.log_dir is not None
        try:
            head = subprocess.run(
                ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
            ).stdout.strip()
            dirty = subprocess.run(
                ["git", "status", "--porcelain"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return
        atomic_write_json(self.log_dir / "git.json", {"commit": head, "status": dirty.splitlines()})

    def close(self) -> None:
        """Close the TensorBoard writer (the env is the caller's to close)."""
        if self.writer is not None:
            self.writer.close()
