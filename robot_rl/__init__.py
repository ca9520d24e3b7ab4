"""robot_rl: shared core of the sim-to-real stack (robots, simulators, logs, RL, CLI)."""

__version__ = "0.1.0"
