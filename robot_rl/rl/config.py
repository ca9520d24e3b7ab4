"""Typed configs of the RL core: algorithm, policy network, runner.

One frozen dataclass per layer, composed (not inherited) into :class:`TrainConfig`.
Every field carries its meaning and unit in the comment above it and is validated in
``__post_init__``.  Build them from plain mappings with :func:`robot_rl.config.from_dict`
(unknown keys raise :class:`robot_rl.config.ConfigError`), e.g.
``from_dict(TrainConfig, {"algo": {"name": "trpo"}, "runner": {"seed": 3}})``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from robot_rl.config import ConfigError

#: Algorithm names accepted by :attr:`AlgoConfig.name`.
ALGORITHMS = ("trpo", "npg", "ppo_clip", "ppo_kl")
#: Hidden-layer activations accepted by :attr:`PolicyConfig.activation`.
ACTIVATIONS = ("tanh", "elu", "relu")


def _check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{where}: {msg}")


def _positive(obj: object, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        _check(math.isfinite(v) and v > 0, f"{type(obj).__name__}.{n}", f"must be > 0, got {v!r}")


def _fraction(obj: object, *names: str) -> None:
    """Fields that must lie in (0, 1]."""
    for n in names:
        v = getattr(obj, n)
        _check(0.0 < v <= 1.0, f"{type(obj).__name__}.{n}", f"must be in (0, 1], got {v!r}")


@dataclass(frozen=True)
class AlgoConfig:
    """On-policy algorithm: advantage estimation, policy step, value-function fit."""

    # algorithm: "trpo", "npg" (natural gradient, no line search), "ppo_clip", "ppo_kl"
    name: str = "trpo"
    # discount factor per env step (-)
    gamma: float = 0.99
    # GAE lambda (-)
    lam: float = 0.95
    # normalize advantages to zero mean, unit std over the batch before the policy step
    normalize_advantages: bool = True
    # trust-region radius delta: bound on KL(old || new) summed over action dimensions and
    # averaged over states, per update (nats); sb3-contrib's target_kl is per action dimension
    max_kl: float = 0.01
    # conjugate-gradient iterations for the natural-gradient direction (count)
    cg_iters: int = 10
    # damping added to the Fisher matrix: F + damping * I (-)
    cg_damping: float = 0.1
    # CG stops early when the squared residual norm falls below this (-)
    cg_residual_tol: float = 1e-10
    # fraction of the batch's states used for Fisher-vector products, in (0, 1] (-)
    fvp_subsample: float = 1.0
    # maximum line-search trials, the full step included (count)
    line_search_steps: int = 10
    # line-search step shrink factor per trial (-)
    backtrack: float = 0.5
    # guard: skip the policy update when the surrogate gradient norm exceeds this (-)
    max_grad_norm: float = 1.0e4
    # value-function Adam learning rate (1/update)
    value_lr: float = 1.0e-3
    # value-function epochs over the batch per update (count)
    value_epochs: int = 5
    # value-function minibatches per epoch (count)
    value_minibatches: int = 4
    # PPO: policy epochs over the batch per update (count)
    ppo_epochs: int = 5
    # PPO: policy minibatches per epoch (count)
    ppo_minibatches: int = 4
    # PPO: policy Adam learning rate (1/update)
    ppo_lr: float = 3.0e-4
    # PPO-clip: ratio clip epsilon (-)
    ppo_clip: float = 0.2
    # PPO-clip: policy gradient norm clipping per minibatch step (-)
    ppo_max_grad_norm: float = 1.0
    # PPO-KL: target mean KL per update for the adaptive penalty (nats)
    kl_target: float = 0.01
    # PPO-KL: initial KL penalty coefficient beta (-)
    kl_beta_init: float = 1.0
    # PPO: entropy bonus coefficient (-)
    entropy_coef: float = 0.0

    def __post_init__(self) -> None:
        _check(self.name in ALGORITHMS, "AlgoConfig.name", f"{self.name!r} not in {ALGORITHMS}")
        _check(0.0 <= self.gamma <= 1.0, "AlgoConfig.gamma", f"must be in [0, 1], got {self.gamma}")
        _check(0.0 <= self.lam <= 1.0, "AlgoConfig.lam", f"must be in [0, 1], got {self.lam}")
        _positive(
            self,
            "max_kl",
            "value_lr",
            "ppo_lr",
            "ppo_clip",
            "ppo_max_grad_norm",
            "kl_target",
            "kl_beta_init",
            "max_grad_norm",
        )
        _fraction(self, "fvp_subsample")
        _check(
            0.0 < self.backtrack < 1.0,
            "AlgoConfig.backtrack",
            f"must be in (0, 1), got {self.backtrack}",
        )
        _check(
            self.cg_damping >= 0.0, "AlgoConfig.cg_damping", f"must be >= 0, got {self.cg_damping}"
        )
        _check(self.cg_residual_tol >= 0.0, "AlgoConfig.cg_residual_tol", "must be >= 0")
        _check(self.entropy_coef >= 0.0, "AlgoConfig.entropy_coef", "must be >= 0")
        for n in (
            "cg_iters",
            "line_search_steps",
            "value_epochs",
            "value_minibatches",
            "ppo_epochs",
            "ppo_minibatches",
        ):
            v = getattr(self, n)
            _check(
                isinstance(v, int) and v >= 1,
                f"AlgoConfig.{n}",
                f"must be an integer >= 1, got {v!r}",
            )


@dataclass(frozen=True)
class PolicyConfig:
    """Actor-critic MLP: Gaussian policy with state-independent log std, separate value net."""

    # actor hidden layer widths (units)
    actor_hidden: tuple[int, ...] = (64, 64)
    # critic hidden layer widths (units)
    critic_hidden: tuple[int, ...] = (64, 64)
    # hidden activation: "tanh", "elu" or "relu"
    activation: str = "tanh"
    # initial log standard deviation of every action dimension (log of action units)
    init_log_std: float = 0.0
    # orthogonal weight init (gain sqrt(2) hidden, 0.01 policy head, 1 value head)
    ortho_init: bool = True
    # normalize observations with running mean/var stored in the policy
    normalize_obs: bool = True
    # normalized observations are clipped to [-obs_clip, obs_clip] (std units)
    obs_clip: float = 10.0

    def __post_init__(self) -> None:
        for n in ("actor_hidden", "critic_hidden"):
            v = getattr(self, n)
            _check(
                len(v) >= 1 and all(int(h) >= 1 for h in v),
                f"PolicyConfig.{n}",
                f"needs at least one layer of width >= 1, got {v!r}",
            )
        _check(
            self.activation in ACTIVATIONS,
            "PolicyConfig.activation",
            f"{self.activation!r} not in {ACTIVATIONS}",
        )
        _check(
            math.isfinite(self.init_log_std) and -20 < self.init_log_std < 5,
            "PolicyConfig.init_log_std",
            f"must be in (-20, 5), got {self.init_log_std}",
        )
        _positive(self, "obs_clip")


@dataclass(frozen=True)
class RunnerConfig:
    """Rollout loop, logging, checkpoints, device and seed."""

    # env steps collected per env per iteration (steps)
    num_steps_per_env: int = 24
    # training iterations (rollout + update) run by OnPolicyRunner.learn (count)
    iterations: int = 100
    # save a checkpoint every this many iterations; 0 = only at the end (iterations)
    save_interval: int = 50
    # run folder for TensorBoard events, config.json and checkpoints; "" = no files
    log_dir: str = ""
    # torch device: "auto" (cuda when available, else cpu), "cpu", "cuda", "cuda:1", ...
    device: str = "auto"
    # seed of python, numpy, torch and the env's first reset (-)
    seed: int = 0
    # scale rewards by the running std of the discounted return (as VecNormalize does)
    normalize_rewards: bool = False
    # scaled rewards are clipped to [-reward_clip, reward_clip] (-); only with normalize_rewards
    reward_clip: float = 10.0
    # clip sampled actions to a Box action space's bounds before env.step (the
    # unclipped sample is stored for the update)
    clip_actions: bool = True
    # torch intra-op threads (the learner: update, values); 0 = torch's default (all
    # cores: the physics threads are idle during the update)
    torch_threads: int = 0
    # threads of numpy's BLAS (the numpy actor's matmuls during rollouts); 0 = the
    # library's default.  1: idle BLAS workers spin between the actor's matmuls on the
    # cores the physics threads need (2 cores: 1.3-1.4x env steps/s in training)
    blas_threads: int = 1
    # completed episodes averaged for the logged return/length (episodes)
    episode_window: int = 100
    # show a tqdm progress bar with ETA
    progress: bool = True
    # who runs the policy during rollouts: "numpy" (a numpy copy of the actor: fastest
    # for the small batches of a CPU run), "torch" (the policy on its device) or "auto"
    # (numpy for a CPU learner, torch otherwise)
    rollout_actor: str = "auto"

    def __post_init__(self) -> None:
        for n in ("num_steps_per_env", "iterations", "episode_window"):
            v = getattr(self, n)
            _check(
                isinstance(v, int) and v >= 1,
                f"RunnerConfig.{n}",
                f"must be an integer >= 1, got {v!r}",
            )
        for n in ("save_interval", "torch_threads", "blas_threads", "seed"):
            v = getattr(self, n)
            _check(
                isinstance(v, int) and v >= 0,
                f"RunnerConfig.{n}",
                f"must be an integer >= 0, got {v!r}",
            )
        _check(
            self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda", "mps"),
            "RunnerConfig.device",
            f"unknown device {self.device!r}",
        )
        _positive(self, "reward_clip")
        _check(
            self.rollout_actor in ("auto", "numpy", "torch"),
            "RunnerConfig.rollout_actor",
            f"must be 'auto', 'numpy' or 'torch', got {self.rollout_actor!r}",
        )


@dataclass(frozen=True)
class TrainConfig:
    """Everything an on-policy training run needs besides the environment."""

    # algorithm hyperparameters
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    # network architecture and observation normalization
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    # rollout loop, logging, checkpoints
    runner: RunnerConfig = field(default_factory=RunnerConfig)
