"""The parameter table of params.json: value, std, identifiability and range per parameter.

The total std is sqrt(statistical^2 + systematic^2 + model^2): bootstrap, analysis
variants, and the type-B model-adequacy floor of :class:`sysid.config.StdFloorConfig`.
A parameter is identifiable when the data excite it and its total std is at most
``max_relative_std`` x max(|fitted|, the scale of its kind) (``SCALES``: the size at which a
parameter of that kind starts to matter).  Its randomization range is fitted +- ``range_std``
std, clipped to the kind's physical bounds.  A parameter that is not identifiable gets the
whole bounds interval (narrowed by what the data do say, e.g. a lower bound on foot
friction) as its range and the std of a uniform draw over it, so that the policy is trained
across everything the data allow; its value is the data's (too uncertain) estimate clipped
to that range where there is one, else the interval's centre.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from robot_rl.robot import RobotDescription
from robot_rl.sensors import GRAVITY
from sysid.apply import MAPPING
from sysid.config import SysidConfig
from sysid.joints import Estimate
from sysid.model import UNITS, kind_of, nominal, parameter_names, weight_moment

#: size at which a parameter of each kind matters (identifiability threshold reference)
SCALES = {"armature": 5e-4, "damping": 0.05, "coulomb": 0.05, "encoder_offset": 0.02,
          "leg_mass_scale": 1.0,
          "trunk_mass": None, "trunk_com": 0.01, "foot_friction": 1.0}


def nominal_values(robot: RobotDescription) -> dict[str, float]:
    """URDF values: no armature, damping or friction, unit mass scales, URDF trunk."""
    nom = nominal(robot)
    out: dict[str, float] = {}
    for name in parameter_names(robot):
        kind = kind_of(name)
        if kind in ("armature", "damping", "coulomb", "encoder_offset"):
            out[name] = 0.0
        elif kind == "leg_mass_scale":
            out[name] = 1.0
        elif kind == "trunk_mass":
            out[name] = nom.trunk_mass
        elif kind == "trunk_com":
            out[name] = float(nom.trunk_com["xyz".index(name[-1])])
        else:
            out[name] = float(robot.foot_friction)
    return out


def bounds_of(name: str, robot: RobotDescription, cfg: SysidConfig) -> tuple[float, float]:
    """Physical bounds of parameter ``name``."""
    b, kind = cfg.bounds, kind_of(name)
    nom = nominal(robot)
    if kind == "trunk_mass":
        return (b.trunk_mass_factor[0] * nom.trunk_mass, b.trunk_mass_factor[1] * nom.trunk_mass)
    if kind == "trunk_com":
        c = float(nom.trunk_com["xyz".index(name[-1])])
        return (c + b.trunk_com_offset[0], c + b.trunk_com_offset[1])
    return tuple(getattr(b, kind))


def _clean(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def parameter_table(estimates: dict[str, Estimate], robot: RobotDescription, cfg: SysidConfig,
                    lower_bounds: dict[str, float] | None = None) -> dict[str, dict[str, Any]]:
    """params.json's ``parameters``: one entry per name of :func:`parameter_names`."""
    nominal_v = nominal_values(robot)
    lower_bounds = lower_bounds or {}
    table = {}
    for name in parameter_names(robot):
        kind = kind_of(name)
        lo, hi = bounds_of(name, robot, cfg)
        e = estimates.get(name, Estimate(np.nan, np.inf, np.inf, False, "no data for this parameter"))
        scale = SCALES[kind] if SCALES[kind] is not None else nominal_v[name]
        ok = e.excited and math.isfinite(e.value) and math.isfinite(e.std)
        floor = cfg.std_floor.floor(kind, e.value) if ok else math.inf
        std = math.sqrt(e.std ** 2 + floor ** 2)
        reason = e.reason
        if ok and std > cfg.max_relative_std * max(abs(e.value), scale):
            ok, reason = False, (f"std {std:.3g} above {cfg.max_relative_std} x "
                                 f"max(|fitted|, {scale:.3g})")
        if ok and not (lo - cfg.range_std * std <= e.value <= hi + cfg.range_std * std):
            ok, reason = False, (f"estimate {e.value:.4g} outside the physical bounds "
                                 f"[{lo:.4g}, {hi:.4g}] by more than {cfg.range_std} std")
        if ok:
            fitted = float(np.clip(e.value, lo, hi))
            rng = [max(lo, fitted - cfg.range_std * std), min(hi, fitted + cfg.range_std * std)]
            entry_std = std
        else:
            lo_data = max(lo, lower_bounds.get(name, lo))
            rng = [lo_data, hi]
            # the data's estimate where there is one (uncertain, but the best there is),
            # else the centre of the range
            fitted = (float(np.clip(e.value, *rng)) if e.excited and math.isfinite(e.value)
                      else 0.5 * (rng[0] + rng[1]))
            entry_std = (rng[1] - rng[0]) / math.sqrt(12.0)
        table[name] = {
            "nominal": nominal_v[name],
            "fitted": fitted,
            "std": float(entry_std),
            "std_statistical": _clean(e.std_statistical) if ok else None,
            "std_systematic": _clean(e.std_systematic) if ok else None,
            "std_model": floor if ok else None,
            "identifiable": bool(ok),
            "reason": "" if ok else reason,
            "estimate": _clean(e.value),
            "range": [float(rng[0]), float(rng[1])],
            "bounds": [float(lo), float(hi)],
            "unit": UNITS[kind],
            "maps_to": MAPPING[kind],
        }
    return table


#: broad hand-set ranges, as legged_gym and walk-these-ways randomize without identification,
#: per kind and in units of the robot's size, so that they carry across robots (m: total
#: mass, g: gravity, h: nominal base height; for the A1, m g h = 33 N m and m h^2 = 0.91
#: kg m^2): armature in m h^2, damping in m g h per rad/s, Coulomb friction in m g h, the leg
#: masses and the trunk mass as multiples of the URDF's, the trunk COM as an offset in h,
#: foot friction as it is; encoder offsets none (those stacks take the encoders as calibrated)
HAND_SET = {"armature": (0.0, 0.0045), "damping": (0.0, 0.015), "coulomb": (0.0, 0.03),
            "encoder_offset": (0.0, 0.0),
            "leg_mass_scale": (0.8, 1.2), "trunk_mass": (0.8, 1.6), "trunk_com": (-0.18, 0.18),
            "foot_friction": (0.3, 1.25)}


def hand_set_units(robot: RobotDescription) -> dict[str, float]:
    """The unit of each :data:`HAND_SET` kind for ``robot`` (SI per unit of the table)."""
    nom, h, mgh = nominal(robot), robot.nominal_base_height, weight_moment(robot)
    return {"armature": mgh * h / GRAVITY, "damping": mgh, "coulomb": mgh, "encoder_offset": 1.0,
            "leg_mass_scale": 1.0, "trunk_mass": nom.trunk_mass, "trunk_com": h,
            "foot_friction": 1.0}


def hand_set_table(robot: RobotDescription) -> dict[str, dict[str, Any]]:
    """A parameter table with no identification behind it: URDF values and the broad
    :data:`HAND_SET` ranges (the randomization a policy gets without stage 1)."""
    values, units = nominal_values(robot), hand_set_units(robot)
    table = {}
    for name in parameter_names(robot):
        kind = kind_of(name)
        lo, hi = (units[kind] * v for v in HAND_SET[kind])
        if kind == "trunk_com":
            lo, hi = values[name] + lo, values[name] + hi
        table[name] = {"nominal": values[name], "fitted": values[name],
                       "std": (hi - lo) / math.sqrt(12.0), "identifiable": False,
                       "reason": "hand-set range, not identified", "range": [lo, hi],
                       "unit": UNITS[kind], "maps_to": MAPPING[kind]}
    return table
