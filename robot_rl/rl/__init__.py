"""On-policy RL algorithms (TRPO, NPG, PPO) over one rollout storage and one runner.

Seams as in rsl_rl: :mod:`~robot_rl.rl.storage` (rollout buffers, GAE),
:mod:`~robot_rl.rl.models` (actor-critic, observation normalizer),
:mod:`~robot_rl.rl.base` (the algorithm base: per-step API, value fit, update skeleton),
:mod:`~robot_rl.rl.trpo` (TRPO, NPG), :mod:`~robot_rl.rl.ppo` (PPO-clip,
PPO-adaptive-KL), :mod:`~robot_rl.rl.numerics` (flat parameters, FlatAdam, conjugate
gradient, Fisher-vector product, line search, the adaptive-KL rule),
:mod:`~robot_rl.rl.algorithms` (the registry: :func:`make_algorithm`),
:mod:`~robot_rl.rl.rollout` (the per-step loop: numpy actor on a CPU learner, torch
actor on a GPU one), :mod:`~robot_rl.rl.runner` (iterations, logging, checkpoints; its
docstring is the environment contract), :mod:`~robot_rl.rl.reward_scaling` (the running
return std rewards are divided by), :mod:`~robot_rl.rl.process` (seeding, threads,
device, the RNG state checkpoints carry, git state), :mod:`~robot_rl.rl.distributed`
(rollouts on Ray workers) and :mod:`~robot_rl.rl.config`.
"""

from robot_rl.rl.algorithms import ALGORITHM_CLASSES, make_algorithm
from robot_rl.rl.base import OnPolicyAlgorithm
from robot_rl.rl.config import AlgoConfig, PolicyConfig, RunnerConfig, TrainConfig
from robot_rl.rl.models import ActorCritic, EmpiricalNormalization
from robot_rl.rl.numerics import (
    LineSearchResult,
    adapt_kl_beta,
    conjugate_gradient,
    fisher_vector_product,
    line_search,
    make_fisher_vector_product,
)
from robot_rl.rl.ppo import PPOAdaptiveKL, PPOClip
from robot_rl.rl.process import resolve_device, seed_everything
from robot_rl.rl.runner import (
    EnvContractError,
    NonFiniteError,
    OnPolicyRunner,
    make_gym_vec_env,
)
from robot_rl.rl.storage import Batch, RolloutStorage, compute_gae
from robot_rl.rl.trpo import NPG, TRPO

__all__ = [
    "ALGORITHM_CLASSES",
    "NPG",
    "TRPO",
    "ActorCritic",
    "AlgoConfig",
    "Batch",
    "EmpiricalNormalization",
    "EnvContractError",
    "LineSearchResult",
    "NonFiniteError",
    "OnPolicyAlgorithm",
    "OnPolicyRunner",
    "PPOAdaptiveKL",
    "PPOClip",
    "PolicyConfig",
    "RolloutStorage",
    "RunnerConfig",
    "TrainConfig",
    "adapt_kl_beta",
    "compute_gae",
    "conjugate_gradient",
    "fisher_vector_product",
    "line_search",
    "make_algorithm",
    "make_fisher_vector_product",
    "make_gym_vec_env",
    "resolve_device",
    "seed_everything",
]
