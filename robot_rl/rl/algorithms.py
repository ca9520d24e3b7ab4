"""The algorithm registry: :func:`make_algorithm` by :attr:`AlgoConfig.name`.

The algorithms live in their own modules: :mod:`robot_rl.rl.base`
(:class:`OnPolicyAlgorithm`: storage, value fit, update skeleton, the update statistics),
:mod:`robot_rl.rl.trpo` (:class:`TRPO`, :class:`NPG`), :mod:`robot_rl.rl.ppo`
(:class:`PPOClip`, :class:`PPOAdaptiveKL`), over the pure functions of
:mod:`robot_rl.rl.numerics`.  Their names are re-exported here so that older imports
(``from robot_rl.rl.algorithms import TRPO``) keep working.
"""

from __future__ import annotations

import torch

from robot_rl.rl.base import OnPolicyAlgorithm, Stats
from robot_rl.rl.config import AlgoConfig
from robot_rl.rl.models import ActorCritic
from robot_rl.rl.numerics import (
    FlatAdam,
    LineSearchResult,
    adapt_kl_beta,
    conjugate_gradient,
    explained_variance,
    fisher_vector_product,
    flat_grad,
    flat_params,
    line_search,
    make_fisher_vector_product,
    set_flat_params,
)
from robot_rl.rl.ppo import PPOAdaptiveKL, PPOClip
from robot_rl.rl.trpo import NPG, TRPO

__all__ = [
    "ALGORITHM_CLASSES",
    "NPG",
    "TRPO",
    "FlatAdam",
    "LineSearchResult",
    "OnPolicyAlgorithm",
    "PPOAdaptiveKL",
    "PPOClip",
    "Stats",
    "adapt_kl_beta",
    "conjugate_gradient",
    "explained_variance",
    "fisher_vector_product",
    "flat_grad",
    "flat_params",
    "line_search",
    "make_algorithm",
    "make_fisher_vector_product",
    "set_flat_params",
]

#: Algorithm classes by :attr:`AlgoConfig.name` (an explicit table, no import side effects).
ALGORITHM_CLASSES: dict[str, type[OnPolicyAlgorithm]] = {
    "trpo": TRPO,
    "npg": NPG,
    "ppo_clip": PPOClip,
    "ppo_kl": PPOAdaptiveKL,
}


def make_algorithm(
    cfg: AlgoConfig, policy: ActorCritic, device: torch.device | str = "cpu"
) -> OnPolicyAlgorithm:
    """Instantiate the algorithm named by ``cfg.name``."""
    return ALGORITHM_CLASSES[cfg.name](policy, cfg, device)
