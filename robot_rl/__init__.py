"""robot_rl: shared core of the sim-to-real stack (robots, simulators, logs, RL); the
``robot-rl`` command and pipeline, which import the stages, live apart in ``robot_rl.app``."""

__version__ = "0.1.0"
