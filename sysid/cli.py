"""``robot-rl sysid``: identify the robot's physical parameters from logs (stage 1)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from robot_rl.config import ConfigError, add_config_arguments, config_from_args, write_config
from robot_rl.logs import LogError
from robot_rl.robot import DEFAULT_ROBOT, ROBOTS
from sysid.artifact import describe_floor
from sysid.config import SysidConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robot-rl sysid",
        description="Fit the MuJoCo model's physical parameters (rotor inertia, damping, "
                    "Coulomb friction and encoder zero offset per joint, mass scale per leg, trunk mass and centre of "
                    "mass, foot friction) to logs, with standard deviations, identifiability and "
                    "randomization ranges.  Writes <out>/params.json (atomically, last: a failed "
                    "run writes none), the resolved config.json and plots of held-out replays.  Suspended logs identify the "
                    "joints and legs, ground logs the trunk and foot friction.")
    p.add_argument("--hand-set", action="store_true",
                   help="write no identification: URDF values with broad hand-set ranges "
                        "(sysid.params.HAND_SET), the randomization of a baseline without stage 1")
    p.add_argument("--logs", nargs="+", default=None,
                   help="log files (.npz, schema robot_rl.log): at least one suspended log, "
                        "ground logs for trunk and foot friction")
    p.add_argument("--robot", default=DEFAULT_ROBOT, help=f"robot description ({', '.join(ROBOTS)})")
    p.add_argument("--out", required=True, help="output folder (<run>/sysid)")
    p.add_argument("--holdout", default=None,
                   help="suspended log used only for validation; default: interleaved blocks "
                        "of the suspended logs are held out")
    add_config_arguments(p, "joints.filter_hz=8 bootstrap=100 (SysidConfig, sysid/config.py)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    from sysid.identify import SysidError, run

    if a.hand_set:
        return _hand_set(a)
    if not a.logs:
        print("robot-rl sysid: error: --logs is required (or --hand-set)", file=sys.stderr)
        return 2

    try:
        cfg = config_from_args(SysidConfig(), a)
        path = run(a.logs, a.robot, a.out, cfg, holdout=a.holdout, plots=not a.no_plots)
    except (SysidError, LogError, ConfigError, FileNotFoundError) as e:
        print(f"robot-rl sysid: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    write_config(a.out, cfg)
    data = json.loads(path.read_text())
    s, v = data["summary"], data["validation"]
    print(f"wrote {path}: {s['identifiable']}/{s['parameters']} parameters identifiable; held-out "
          f"replay RMSE {v['rmse_identified_rad']:.4f} rad (nominal model {v['rmse_nominal_rad']:.4f}"
          f" rad, ratio {v['ratio']:.3f}); {data['runtime_s']:.1f} s")
    if s["not_identifiable"]:
        print("not identifiable: " + ", ".join(s["not_identifiable"]))
    floor = describe_floor((data.get("ground") or {}).get("floor") or {})
    if floor:
        print(f"floor: {floor}")
    return 0


def _hand_set(a: argparse.Namespace) -> int:
    """params.json with URDF values and hand-set ranges (no logs read)."""
    from robot_rl.robot import load_robot
    from sysid.artifact import write_params
    from sysid.identify import SCHEMA, SCHEMA_VERSION
    from sysid.model import UNITS
    from sysid.params import HAND_SET, hand_set_table

    robot = load_robot(a.robot)
    table = hand_set_table(robot)
    params = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "robot": robot.name,
              "joint_names": list(robot.joint_names), "foot_links": list(robot.foot_links),
              "method": {"hand_set": f"no identification; ranges per kind {HAND_SET}"},
              "units": dict(UNITS), "logs": [],
              "summary": {"parameters": len(table), "identifiable": 0,
                          "not_identifiable": sorted(table)},
              "parameters": table}
    path = write_params(Path(a.out), params)
    print(f"wrote {path}: {len(table)} hand-set parameters (no identification)")
    return 0
