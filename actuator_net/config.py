"""Configuration of the actuator network stage: model, data and training, composed.

Build with :func:`robot_rl.config.from_dict` (unknown keys fail); the resolved config is
saved inside ``actuator.pt`` and ``metrics.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from robot_rl.config import ConfigError

#: History spacing used when neither the user nor the config gives one (s), as in the paper.
PAPER_HISTORY_SPACING = 0.01


@dataclass(frozen=True)
class ModelConfig:
    """The actuator MLP (Hwangbo et al. 2019: 3 x 32 softsign units, 3 history steps; here
    as many steps as the logged actuator's response needs, see actuator_net.response)."""

    # spacing h between history steps: inputs at t, t - h, ..., t - (num_lags - 1) h (s)
    history_spacing: float = PAPER_HISTORY_SPACING
    # number of history steps per input signal, the newest included; None: chosen from the
    # logs, the fewest (at least the paper's 3) whose span covers the actuator's response
    # (actuator_net.response) (-)
    num_lags: int | None = None
    # with num_lags chosen from the logs: the longest span (num_lags - 1) h allowed (s)
    max_history_span: float = 0.06
    # with num_lags chosen from the logs: the most lags allowed (-)
    max_num_lags: int = 8
    # hidden layer widths (units)
    hidden: tuple[int, ...] = (32, 32, 32)
    # a linear term on the same inputs, fitted by robust least squares first, the MLP
    # learning the rest: outside the logs' excitation the model then keeps the fitted
    # stiffness instead of the MLP's saturation (see actuator_net.model); per actuator
    # type, kept only where the fit is a driver law (actuator_net.train.passive_law) (-)
    linear: bool = True
    # with the linear term: samples of the actuator at rest (held position error, zero
    # velocity, labelled with the linear term) added to training, as a fraction of the
    # training samples (see actuator_net.train.rest_samples) (-)
    rest_fraction: float = 0.1
    # the position input of each history lag: "now" = that lag's target against the joint's
    # position now (a driver behind a bus applies old targets to the present position: the
    # network tells a struck joint, felt at once, from a new target, felt after the latency);
    # "lag" = that lag's own error (Hwangbo et al.; checkpoints before 2026-12-03) (see
    # actuator_net.data)
    error_reference: str = "now"

    def __post_init__(self) -> None:
        if self.error_reference not in ("now", "lag"):
            raise ConfigError(f"model.error_reference must be 'now' or 'lag', got "
                              f"{self.error_reference!r}")
        if not self.history_spacing > 0:
            raise ConfigError(f"model.history_spacing must be > 0 s, got {self.history_spacing}")
        if self.num_lags is not None and self.num_lags < 1:
            raise ConfigError(f"model.num_lags must be >= 1 (or null: from the logs), got "
                              f"{self.num_lags}")
        if not self.max_history_span > 0 or self.max_num_lags < 1:
            raise ConfigError("model.max_history_span must be > 0 s and model.max_num_lags >= 1, "
                              f"got {self.max_history_span}, {self.max_num_lags}")
        if not 0.0 <= self.rest_fraction <= 1.0:
            raise ConfigError(f"model.rest_fraction must lie in [0, 1], got {self.rest_fraction}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"model.hidden must be positive widths, got {self.hidden}")


@dataclass(frozen=True)
class SplitConfig:
    """Split of every log by time (never at random: neighbouring windows overlap)."""

    # last fraction of each log's labelled samples held out for validation (-)
    val_fraction: float = 0.2
    # last fraction of each log's training part used for early stopping (-)
    early_stop_fraction: float = 0.15

    def __post_init__(self) -> None:
        for name in ("val_fraction", "early_stop_fraction"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise ConfigError(f"split.{name} must lie in (0, 1), got {v}")


@dataclass(frozen=True)
class TrainConfig:
    """Adam on minibatches with a cosine learning-rate decay and early stopping."""

    # random seed of initialisation and minibatch order (-)
    seed: int = 0
    # initial Adam learning rate (-)
    lr: float = 3e-3
    # minibatch size, in time samples (each carries all joints of the log) (-)
    batch_size: int = 256
    # upper bound on passes over the training samples (-)
    max_epochs: int = 600
    # upper bound on optimizer steps; the cosine decay spans min(epochs, steps) (-)
    max_steps: int = 3000
    # stop after this many epochs without improvement on the early-stopping slice (-)
    patience: int = 150
    # CPU threads torch may use while training; 1 is fastest for these small nets (-)
    num_threads: int = 1
    # show a tqdm progress bar (-)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.batch_size < 1 or self.max_epochs < 1 or self.max_steps < 1:
            raise ConfigError("train: lr, batch_size, max_epochs and max_steps must be positive")
        if self.patience < 1 or self.num_threads < 1:
            raise ConfigError("train: patience and num_threads must be >= 1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"train.seed: must be a non-negative integer, got {self.seed!r}")


@dataclass(frozen=True)
class ActuatorNetConfig:
    """Everything ``robot-rl actuator train`` needs besides the logs."""

    # the network
    model: ModelConfig = field(default_factory=ModelConfig)
    # the time split
    split: SplitConfig = field(default_factory=SplitConfig)
    # the optimisation
    train: TrainConfig = field(default_factory=TrainConfig)
    # which joints share a network: "auto" (joints with equal known gains and limits share
    # one; unknown gains give one per joint), "shared" (one for all), "per_joint", or a
    # comma-separated type label per joint, e.g. "hip,leg,leg" (-)
    joint_types: str = "auto"
