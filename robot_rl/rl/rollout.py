"""Rollout collection: run the policy in a vector env for ``T`` steps, record a trajectory.

One loop serves the single-process runner (:class:`~robot_rl.rl.runner.OnPolicyRunner`)
and the Ray workers (:mod:`robot_rl.rl.distributed`).  Per env step it does only what
acting needs: normalize the observation (and, in one process, update the running
statistics), the actor's mean, a Gaussian sample, the action clip, ``env.step``, the
NaN checks and episode bookkeeping.  Values, log-probabilities and reward scaling do not
change the actions, so the learner computes them afterwards for the whole rollout in one
batch (:meth:`OnPolicyRunner.store_trajectory`): the policy is fixed during a rollout.

Two actors share one interface (``normalize``, ``update_normalizer``, ``sample``):

* :class:`NumpyActor` -- a numpy copy of the actor MLP and the normalizer statistics,
  sampling from its own ``numpy.random.Generator``.  The default on a CPU learner: for
  the small batches of a CPU rollout a numpy call costs about 1 us against about 5 us
  for a torch op, which is most of the per-step cost at thousands of steps per second.
* :class:`TorchActor` -- the torch policy itself on the learner's device (the default
  for a CUDA learner, where the forward pass belongs on the GPU); samples with torch's
  global RNG.

Both return numpy arrays: the env contract is numpy in, numpy out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from robot_rl.rl.models import ActorCritic


class NonFiniteError(RuntimeError):
    """An environment returned NaN or inf."""


class EnvContractError(ValueError):
    """The environment does not satisfy the runner's contract (see the runner's docstring)."""


def _elu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


_NP_ACTIVATIONS = {"tanh": np.tanh, "elu": _elu, "relu": _relu}


class NumpyActor:
    """The policy's actor and observation normalizer as float32 numpy arrays.

    :meth:`load` copies the weights and statistics from an :class:`ActorCritic` (at the
    start of every rollout); :meth:`store_normalizer` writes the statistics back after a
    rollout that updated them.  The normalizer update is the same Chan et al. merge as
    :meth:`EmpiricalNormalization.update`, kept in float64.
    """

    def __init__(self, policy: ActorCritic, seed: int):
        self.rng = np.random.default_rng(seed)
        self.load(policy)

    def load(self, policy: ActorCritic) -> None:
        """Copy the actor weights, ``std`` and the normalizer statistics from ``policy``."""
        with torch.no_grad():
            self.layers = [
                (m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy())
                for m in policy.actor.layers
            ]
            self.std = policy.log_std.detach().exp().cpu().numpy().astype(np.float32)
            norm = policy.obs_normalizer
            self.mean = norm.mean.detach().cpu().numpy().astype(np.float64)
            self.var = norm.var.detach().cpu().numpy().astype(np.float64)
            self.count = float(norm.count)
        self.eps, self.clip = norm.eps, norm.clip
        self._act = _NP_ACTIVATIONS[policy.actor.activation]
        self._scale_stats()

    def _scale_stats(self) -> None:
        self._mean32 = self.mean.astype(np.float32)
        self._inv_std32 = (1.0 / np.sqrt(self.var + self.eps)).astype(np.float32)

    def update_normalizer(self, obs: np.ndarray) -> None:
        """Merge a batch of raw observations ``(N, D)`` into the running statistics."""
        n = obs.shape[0]
        b_mean = obs.mean(0, dtype=np.float64)
        b_var = obs.var(0, dtype=np.float64)
        total = self.count + n
        w = n / total
        delta = b_mean - self.mean
        self.mean = self.mean + w * delta
        self.var = (1.0 - w) * self.var + w * b_var + w * (1.0 - w) * delta * delta
        self.count = total
        self._scale_stats()

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """``clip((obs - mean) / sqrt(var + eps))``, float32."""
        y = (obs - self._mean32) * self._inv_std32
        if self.clip is not None:
            np.clip(y, -self.clip, self.clip, out=y)
        return y

    def sample(self, obs: np.ndarray) -> np.ndarray:
        """Actions ``mean(obs) + std * noise`` for normalized ``obs`` ``(N, D)``."""
        x = obs
        for w, b in self.layers[:-1]:
            x = self._act(x @ w + b)
        w, b = self.layers[-1]
        mean = x @ w + b
        noise = self.rng.standard_normal(mean.shape, dtype=np.float32)
        return mean + self.std * noise

    def store_normalizer(self, policy: ActorCritic) -> None:
        """Write the running statistics into ``policy.obs_normalizer``'s buffers."""
        norm = policy.obs_normalizer
        with torch.no_grad():
            norm.mean.copy_(torch.from_numpy(self.mean))
            norm.var.copy_(torch.from_numpy(self.var))
            norm.count.fill_(self.count)

    def rng_state(self) -> dict[str, Any]:
        return self.rng.bit_generator.state

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state


class TorchActor:
    """The torch policy on its own device behind the :class:`NumpyActor` interface."""

    def __init__(self, policy: ActorCritic):
        self.policy = policy
        self.device = policy.log_std.device

    def load(self, policy: ActorCritic) -> None:
        self.policy = policy

    def _t(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).to(self.device)

    @torch.no_grad()
    def update_normalizer(self, obs: np.ndarray) -> None:
        self.policy.obs_normalizer.update(self._t(obs))

    @torch.no_grad()
    def normalize(self, obs: np.ndarray) -> np.ndarray:
        return self.policy.obs_normalizer(self._t(obs)).cpu().numpy()

    @torch.no_grad()
    def sample(self, obs: np.ndarray) -> np.ndarray:
        return self.policy.act(self._t(obs))[0].cpu().numpy()

    def store_normalizer(self, policy: ActorCritic) -> None:
        """Nothing to do: the statistics were updated in place."""

    def rng_state(self) -> None:
        return None  # torch's global RNG, saved by the runner

    def set_rng_state(self, state: Any) -> None:
        pass


def make_actor(kind: str, policy: ActorCritic, seed: int) -> NumpyActor | TorchActor:
    """``"numpy"``, ``"torch"`` or ``"auto"`` (numpy for a CPU policy, torch otherwise)."""
    if kind == "auto":
        kind = "numpy" if policy.log_std.device.type == "cpu" else "torch"
    if kind == "numpy":
        return NumpyActor(policy, seed)
    if kind == "torch":
        return TorchActor(policy)
    raise ValueError(f"rollout actor must be 'auto', 'numpy' or 'torch', got {kind!r}")


@dataclass
class Trajectory:
    """One rollout of ``T`` steps of ``N`` envs, numpy arrays with leading dims ``(T, N)``.

    ``obs`` are the normalized observations the actions were sampled at (``obs_raw``
    before normalization); ``final_obs`` the normalized last observation of every
    episode that ended at step ``t`` (rows of envs that did not end are zero);
    ``last_obs`` the raw observation after the last step.
    """

    obs_raw: np.ndarray
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray
    last_obs: np.ndarray
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)
    term_sums: dict[str, float] = field(default_factory=dict)
    term_steps: int = 0

    @property
    def num_steps(self) -> int:
        return self.rewards.shape[0]

    @property
    def num_envs(self) -> int:
        return self.rewards.shape[1]

    @staticmethod
    def concatenate(parts: list[Trajectory], weights: list[int]) -> Trajectory:
        """Join the trajectories of env shares (env axis), e.g. one per Ray worker.

        ``term_sums`` are per-step means over each share's envs: the result is weighted
        by the share sizes ``weights`` so that it is the mean over all envs.
        """
        n_total = sum(weights)
        cat = {
            name: np.concatenate([getattr(p, name) for p in parts], axis=1)
            for name in ("obs_raw", "obs", "actions", "rewards", "terminated", "truncated",
                         "final_obs")
        }
        terms = {
            k: sum(p.term_sums.get(k, 0.0) * n for p, n in zip(parts, weights)) / n_total
            for k in parts[0].term_sums
        }
        return Trajectory(
            **cat,
            last_obs=np.concatenate([p.last_obs for p in parts]),
            episode_returns=[r for p in parts for r in p.episode_returns],
            episode_lengths=[n for p in parts for n in p.episode_lengths],
            term_sums=terms,
            term_steps=parts[0].term_steps,
        )


def dense_final_obs(info: dict[str, Any], obs: np.ndarray, done: np.ndarray) -> np.ndarray:
    """``info["final_obs"]`` as a dense float32 ``(N, D)`` array (gymnasium's object array
    densified; rows of envs that did not finish are zero)."""
    final = info.get("final_obs") if isinstance(info, dict) else None
    if final is None:
        raise EnvContractError("an episode ended but info has no 'final_obs' (SAME_STEP contract)")
    if isinstance(final, np.ndarray) and final.dtype == object:
        mask = info.get("_final_obs")
        dense = np.zeros_like(obs)
        for i in np.flatnonzero(mask if mask is not None else done):
            dense[i] = np.asarray(final[i], dtype=np.float32)
        return dense
    if isinstance(final, torch.Tensor):
        final = final.detach().cpu().numpy()
    return np.asarray(final, dtype=np.float32)


class RolloutCollector:
    """Steps ``env`` with an actor and records :class:`Trajectory` objects.

    Keeps the per-env running episode return and length across rollouts.  ``low`` and
    ``high`` (or ``None``) clip the actions passed to ``env.step``; the unclipped sample
    is recorded.  ``where`` prefixes error messages (e.g. a Ray worker's seed).
    """

    def __init__(self, env: Any, low: np.ndarray | None = None,
                 high: np.ndarray | None = None, where: str = ""):
        self.env, self.low, self.high, self.where = env, low, high, where
        self.num_envs = int(env.num_envs)
        self.ep_return = np.zeros(self.num_envs)
        self.ep_length = np.zeros(self.num_envs, dtype=np.int64)

    def reset_episodes(self) -> None:
        self.ep_return[:] = 0.0
        self.ep_length[:] = 0

    def check_finite(self, x: np.ndarray, what: str, iteration: int, step: int) -> None:
        """Raise :class:`NonFiniteError` naming the env rows of ``x`` that hold NaN/inf."""
        if np.isfinite(x).all():
            return
        bad = np.flatnonzero(~np.isfinite(x.reshape(x.shape[0], -1)).all(-1)).tolist()
        raise NonFiniteError(
            f"{self.where}environment returned non-finite {what} at iteration {iteration}, "
            f"step {step}, env indices {bad}"
        )

    def collect(self, actor: NumpyActor | TorchActor, obs: np.ndarray, num_steps: int,
                update_normalizer: bool, iteration: int = 0) -> Trajectory:
        """Run ``num_steps`` steps from the raw observation ``obs``."""
        env, T, N = self.env, num_steps, self.num_envs
        obs = np.asarray(obs, dtype=np.float32)
        D = obs.shape[1]
        obs_raw = np.empty((T, N, D), np.float32)
        obs_norm = np.empty((T, N, D), np.float32)
        final = np.zeros((T, N, D), np.float32)
        rewards = np.empty((T, N), np.float32)
        terminated = np.empty((T, N), bool)
        truncated = np.empty((T, N), bool)
        actions = None
        traj_returns: list[float] = []
        traj_lengths: list[int] = []
        term_sums: dict[str, float] = {}
        term_steps = 0
        low, high = self.low, self.high
        for t in range(T):
            obs_raw[t] = obs
            if update_normalizer:
                actor.update_normalizer(obs)
            obs_norm[t] = on = actor.normalize(obs)
            a = actor.sample(on)
            if actions is None:
                actions = np.empty((T, N, a.shape[1]), np.float32)
            actions[t] = a
            next_obs, rew, term, trunc, info = env.step(a if low is None else np.clip(a, low, high))
            next_obs = np.asarray(next_obs, dtype=np.float32)
            rew = np.asarray(rew, dtype=np.float32)
            self.check_finite(next_obs, "obs", iteration, t)
            self.check_finite(rew, "reward", iteration, t)
            rewards[t] = rew
            terminated[t] = term = np.asarray(term, dtype=bool)
            truncated[t] = trunc = np.asarray(trunc, dtype=bool)
            self.ep_return += rew
            self.ep_length += 1
            done = term | trunc
            if done.any():
                ids = np.flatnonzero(done)
                f = dense_final_obs(info, next_obs, done)
                self.check_finite(f[ids], "final_obs", iteration, t)
                final[t, ids] = actor.normalize(f[ids])
                traj_returns.extend(self.ep_return[ids].tolist())
                traj_lengths.extend(self.ep_length[ids].tolist())
                self.ep_return[ids] = 0.0
                self.ep_length[ids] = 0
            terms = info.get("reward_terms") if isinstance(info, dict) else None
            if terms:
                for k, v in terms.items():
                    term_sums[k] = term_sums.get(k, 0.0) + float(np.mean(v))
                term_steps += 1
            obs = next_obs
        return Trajectory(
            obs_raw=obs_raw, obs=obs_norm, actions=actions, rewards=rewards,
            terminated=terminated, truncated=truncated, final_obs=final,
            last_obs=obs.copy(), episode_returns=traj_returns, episode_lengths=traj_lengths,
            term_sums=term_sums, term_steps=term_steps,
        )
