"""Reward scaling by the running std of the discounted return (``normalize_rewards``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class RewardScaler:
    """Divide rewards by the running std of each env's discounted return (as VecNormalize).

    ``ret <- gamma * ret + r`` per env (reset to 0 at episode ends); the running variance
    of ``ret`` over all envs and all steps so far gives ``r_scaled = clip(r / sqrt(var +
    1e-8))``, with the variance including step ``t`` when step ``t`` is scaled.  Numpy,
    float64; :meth:`scale` does a whole rollout at once (prefix sums over the steps).
    """

    def __init__(self, num_envs: int, gamma: float, clip: float):
        self.gamma, self.clip = gamma, clip
        self.returns = np.zeros(num_envs)
        self.mean, self.var, self.count = 0.0, 1.0, 0.0

    def scale(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """Scaled rewards for a rollout: ``rewards`` and ``dones`` of shape ``(T, N)``."""
        rewards = np.asarray(rewards, dtype=np.float64)
        T, N = rewards.shape
        rets = np.empty_like(rewards)
        ret = self.returns
        for t in range(T):
            ret = self.gamma * ret + rewards[t]
            rets[t] = ret
            ret = np.where(dones[t], 0.0, ret)
        self.returns = ret
        # running mean/var after each step, from prefix sums (exact merge of all batches)
        counts = self.count + N * np.arange(1, T + 1)
        s1 = self.count * self.mean + np.cumsum(rets.sum(1))
        s2 = self.count * (self.var + self.mean**2) + np.cumsum(np.square(rets).sum(1))
        means = s1 / counts
        variances = np.maximum(s2 / counts - means**2, 0.0)
        self.mean, self.var, self.count = float(means[-1]), float(variances[-1]), float(counts[-1])
        scaled = rewards / np.sqrt(variances + 1e-8)[:, None]
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """One step: ``rewards`` and ``dones`` of shape ``(N,)``."""
        return self.scale(np.asarray(rewards)[None], np.asarray(dones)[None])[0]

    def state_dict(self) -> dict[str, Any]:
        return {"returns": torch.from_numpy(self.returns.copy()), "mean": self.mean,
                "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns = np.asarray(state["returns"].cpu().numpy(), dtype=np.float64).copy()
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]
