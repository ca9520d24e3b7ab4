"""Domain randomization from stage 1's identified parameters.

``params.json`` (written by ``robot-rl sysid``) gives, per parameter, a fitted value and
a randomization range.  :func:`randomize` is a pure function of the ranges and an RNG;
the drawn values are written into one env's MuJoCo model by stage 1's documented
``apply_params`` (the single definition of how a parameter maps onto the model).
"""

from __future__ import annotations

import numpy as np

from sysid.artifact import SysidParams, read_params

# params.json is stage 1's artifact: its one reader lives there
load_sysid = read_params
__all__ = ["SysidParams", "load_sysid", "randomize"]


def randomize(ranges: dict[str, tuple[float, float]], rng: np.random.Generator) -> dict[str, float]:
    """Draw every parameter uniformly from its range, in name order (one vectorized draw:
    the same numbers as one draw per name, at a third of the cost)."""
    names = sorted(ranges)
    bounds = np.array([ranges[k] for k in names], dtype=float).reshape(len(names), 2)
    return dict(zip(names, rng.uniform(bounds[:, 0], bounds[:, 1]).tolist()))
