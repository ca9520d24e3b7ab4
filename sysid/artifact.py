"""``params.json``, stage 1's artifact: the one reader and writer.

Schema (written by :func:`sysid.identify.run` and ``robot-rl sysid --hand-set``): a JSON
object with ``robot`` (description name) and ``parameters``: name -> {``nominal``,
``fitted``, ``std``, ``identifiable``, ``range`` [low, high], ``unit``, ``maps_to``, ...};
``ground.floor`` (optional, :func:`sysid.ground.fit_floor`) is the floor under the feet:
where it is identifiable and not rigid, its ``stiffness_N_per_m`` and ``damping_N_s_per_m``
become :attr:`SysidParams.floor`, the compliant floor the identified simulator stands on;
the other keys (method, logs, validation, ...) document the run.  :func:`read_params`
accepts the run's ``sysid/`` folder or the file, validates what consumers use and names the
file and field on error; it imports nothing of the identification code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.config import ConfigError, artifact_file, atomic_write_json
from robot_rl.sim_mujoco import FloorPad


@dataclass(frozen=True)
class SysidParams:
    """Fitted values and randomization ranges, by parameter name."""

    robot: str
    values: dict[str, float]
    ranges: dict[str, tuple[float, float]]
    #: the measured compliant floor (None: rigid, or not identified)
    floor: FloorPad | None = None


def params_path(path: str | Path) -> Path:
    """``<dir>/params.json`` for a folder, else the path itself."""
    return artifact_file(path, "params.json")


def read_params(path: str | Path, robot: str | None = None) -> SysidParams:
    """Read and validate ``params.json`` (or the folder holding it)."""
    path = params_path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no sysid parameters (run `robot-rl sysid`)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from e
    params = data.get("parameters") if isinstance(data, dict) else None
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"{path}: field 'parameters' missing or empty")
    values, ranges = {}, {}
    for k, v in params.items():
        try:
            values[k] = float(v["fitted"])
            lo, hi = (float(x) for x in v["range"])
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{path}: field 'parameters.{k}' needs a numeric 'fitted' and a "
                              f"[low, high] 'range' ({e!r})") from e
        if not (np.isfinite(values[k]) and np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
            raise ConfigError(f"{path}: field 'parameters.{k}': fitted {values[k]} and range "
                              f"{[lo, hi]} must be finite with low <= high")
        ranges[k] = (lo, hi)
    found = str(data.get("robot", ""))
    if robot and found and found != robot:
        raise ConfigError(f"{path}: field 'robot': parameters are for robot {found!r}, "
                          f"expected {robot!r}")
    return SysidParams(robot=found, values=values, ranges=ranges, floor=_floor(data, path))


def describe_floor(floor: dict) -> str:
    """One line on ``params.json``'s ``ground.floor`` ("" when the run has none)."""
    if floor.get("identifiable") and floor.get("rigid"):
        return (f"rigid (feet sink {floor['sink_mm']:.2f} mm under their load; stiffer than "
                f"{floor['stiffness_above_N_per_m']:.0f} N/m per foot)")
    if floor.get("identifiable"):
        return (f"compliant, {floor['stiffness_N_per_m']:.0f} +- {floor['stiffness_std']:.0f} N/m "
                f"and {floor['damping_N_s_per_m']:.0f} N s/m per foot, feet "
                f"{floor['depth_mm']:.1f} mm deep at their load (the identified simulator stands "
                "on it: a sprung pad per foot)")
    return f"not identified ({floor.get('reason', '')})" if floor else ""


def _floor(data: dict, path: Path) -> FloorPad | None:
    """``ground.floor`` as a :class:`FloorPad` where stage 1 found it compliant."""
    floor = (data.get("ground") or {}).get("floor") or {}
    if not isinstance(floor, dict) or not floor.get("identifiable") or floor.get("rigid", True):
        return None
    try:
        return FloorPad(float(floor["stiffness_N_per_m"]), float(floor["damping_N_s_per_m"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{path}: field 'ground.floor': a compliant floor needs "
                          f"'stiffness_N_per_m' > 0 and 'damping_N_s_per_m' >= 0 ({e})") from None


def write_params(path: str | Path, params: dict[str, Any]) -> Path:
    """Write a params.json dict atomically (into ``<dir>/params.json`` for a folder path)."""
    path = Path(path)
    path = path / "params.json" if path.suffix != ".json" else path
    atomic_write_json(path, params)
    read_params(path)  # what was written reads back
    return path
