"""``robot-rl eval``: run an exported policy with the onboard runtime in PyBullet or MuJoCo."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from deploy.evaluate import DEFAULT_COMMANDS, SIMS, TERRAIN_COMMANDS, EvalConfig, evaluate
from deploy.metadata import MetadataError
from robot_rl.config import (
    ConfigError,
    add_config_arguments,
    config_from_args,
    seed_argument,
    write_config,
)
from robot_rl.standin_model import realities
from robot_rl.terrain import KINDS, TerrainConfig, TerrainError


def _commands(text: str) -> tuple[tuple[float, float, float], ...]:
    """``"vx,vy,yaw;vx,vy,yaw;..."`` -> tuple of triples."""
    out = []
    for item in text.split(";"):
        try:
            parts = [float(x) for x in item.split(",")]
        except ValueError:
            parts = []
        if len(parts) != 3:
            raise argparse.ArgumentTypeError(f"command {item!r}: expected vx,vy,yaw_rate")
        out.append(tuple(parts))
    return tuple(out)


def build_parser() -> argparse.ArgumentParser:
    default_cmds = ";".join(",".join(f"{v:g}" for v in c) for c in DEFAULT_COMMANDS)
    p = argparse.ArgumentParser(
        prog="robot-rl eval",
        description="Evaluate an exported policy.onnx with the onboard runtime (start "
                    "sequence, safety checks, one-thread onnxruntime) against a simulated "
                    "robot: 'pybullet' = the hardware stand-in (hidden physics, reference "
                    "actuator), 'mujoco' = the training simulator (ideal PD, or the actuator "
                    "network with --actuator). One "
                    "episode per command. Writes report_<sim>.json/.md, report.json/.md "
                    "(headline, with the sim-to-sim gap when both reports exist), "
                    "velocity_<sim>.png and, for pybullet, rollout.gif.")
    p.add_argument("--sim", choices=SIMS, default=None, help="simulator [pybullet]")
    p.add_argument("--policy", required=True, help="exported policy.onnx (robot-rl export)")
    p.add_argument("--out", default=None,
                   help="output folder, e.g. <run>/eval [default: eval/ next to the policy]")
    p.add_argument("--seconds", type=float, default=None,
                   help="policy-controlled seconds per command episode [20; suite: 8]")
    p.add_argument("--settle", type=float, default=None,
                   help="seconds after the handover excluded from tracking errors [2]")
    p.add_argument("--robot", default=None,
                   help="robot description [default: the robot in the model's metadata]")
    p.add_argument("--sysid", default=None,
                   help="<run>/sysid: apply the identified parameters to the MuJoCo model "
                        "(mujoco only)")
    p.add_argument("--actuator", default=None,
                   help="<run>/actuator: drive the MuJoCo joints with the actuator network "
                        "instead of an ideal PD; with --sysid, the identified world phase 3 "
                        "trains in (mujoco only)")
    p.add_argument("--compare", default=None,
                   help="another report.json for the side-by-side table [default: "
                        "report_mujoco.json / report_pybullet.json in --out if present]")
    terrain_cmds = ";".join(",".join(f"{v:g}" for v in c) for c in TERRAIN_COMMANDS)
    p.add_argument("--commands", type=_commands, default=None,
                   help=f"episodes as 'vx,vy,yaw;...' (m/s, m/s, rad/s) [{default_cmds}; "
                        f"with --terrain: {terrain_cmds}]")
    p.add_argument("--terrain", default=None,
                   help=f"walk across a terrain tile ({', '.join(KINDS)}), the same height "
                        "field in both simulators; reports the success rate (crossed the "
                        "tile without falling) [none: the plane]")
    p.add_argument("--difficulty", type=float, default=None,
                   help="terrain difficulty in [0, 1] (slope angle, step height, roughness) [0.5]")
    p.add_argument("--terrain-seed", type=seed_argument, default=0,
                   help="seed of the random terrains (rough, obstacles) [0]")
    p.add_argument("--standin-config", default=None,
                   help="the reality to evaluate on (pybullet): a stand-in config JSON or a "
                        f"shipped reality's name ({', '.join(realities())}) [default]")
    p.add_argument("--standin-seed", type=seed_argument, default=None,
                   help="hidden-physics seed of the PyBullet stand-in [the config's seed]")
    p.add_argument("--push-interval", type=float, default=None,
                   help="kick the base every this many seconds of policy control (pybullet; "
                        "0 = no pushes) [0]")
    p.add_argument("--push-speed", type=float, default=None,
                   help="horizontal speed of a kick, random direction (m/s) [0.5]")
    suite = p.add_argument_group(
        "transfer suite", "--suite runs the policy over every shipped reality x seeds with "
        "forward, backward, lateral, turning, combined and standing commands and pushes, "
        "and writes suite.json, suite.md and suite.png to --out")
    suite.add_argument("--suite", action="store_true", help="run the transfer suite")
    suite.add_argument("--realities", default="",
                       help="comma-separated shipped realities and/or paths of stand-in "
                            "config JSON files (a robot of one's own) [all shipped]")
    suite.add_argument("--suite-seeds", default="0,1,2",
                       help="hidden-physics seeds per reality [0,1,2]")
    suite.add_argument("--terrains", action="store_true",
                       help="also cross the terrain issue's tiles (+-3 cm rough ground, 15 deg "
                            "slope, 8 cm stairs up and down) on the default reality, one tile "
                            "per seed, and report success against the goals (95/95/80/80 %%)")
    p.add_argument("--no-video", action="store_true", help="skip the GIF (pybullet)")
    add_config_arguments(p, "safety.ramp_s=1.5 fall_up_z=0.3 (EvalConfig, deploy/evaluate.py)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    policy = Path(a.policy)
    out = Path(a.out) if a.out else policy.parent / "eval"
    if a.terrains and not a.suite:
        print("robot-rl eval: --terrains: needs --suite (the terrain part of the transfer suite)",
              file=sys.stderr)
        return 2
    if a.suite:
        return _suite(a, policy, out)
    terrain = None  # a bad terrain setting reaches robot_rl/app/cli.py's user-error handler
    if a.terrain is not None:
        terrain = TerrainConfig(kind=a.terrain, seed=a.terrain_seed,
                                difficulty=0.5 if a.difficulty is None else a.difficulty)
    elif a.difficulty is not None:
        raise TerrainError("terrain.difficulty: --difficulty needs --terrain")
    commands = a.commands or (DEFAULT_COMMANDS if terrain is None else TERRAIN_COMMANDS)
    try:
        cfg = config_from_args(EvalConfig(), a, flags={
            "sim": a.sim, "robot": a.robot, "seconds": a.seconds, "settle_s": a.settle,
            "commands": commands if terrain is not None else a.commands,
            "standin_config": a.standin_config,
            "standin_seed": a.standin_seed, "push_interval_s": a.push_interval,
            "push_speed": a.push_speed, "video": False if a.no_video else None})
        if terrain is not None:
            cfg = replace(cfg, terrain=terrain)
        report = evaluate(policy, out, cfg, sysid=a.sysid, compare=a.compare,
                          progress=not a.quiet, actuator=a.actuator)
        write_config(out, cfg, f"config_{cfg.sim}.json")
    except TerrainError:
        raise  # robot_rl/app/cli.py's handler: one line naming the field, exit status 2
    except (MetadataError, ConfigError, ValueError, FileNotFoundError) as e:
        print(f"robot-rl eval: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    s = report["metrics"]
    print(json.dumps(s, indent=1))
    print(f"wrote {out}/report_{cfg.sim}.json, config_{cfg.sim}.json, report.md ({', '.join(report.get('files', []))})")
    return 0


def _suite(a: argparse.Namespace, policy: Path, out: Path) -> int:
    from deploy.suite import run_suite

    try:
        seeds = tuple(seed_argument(x) for x in a.suite_seeds.split(",") if x.strip())
    except argparse.ArgumentTypeError as e:
        print(f"robot-rl eval: --suite-seeds: {e}", file=sys.stderr)
        return 2
    names = [x.strip() for x in a.realities.split(",") if x.strip()] or None
    other = [kv for kv in a.set if not kv.startswith("safety.")]
    if other or a.config:
        print(f"robot-rl eval: --suite: {'--config' if a.config else '--set ' + other[0]}: the "
              "suite sets its own evaluation; only --set safety.<field> applies to it",
              file=sys.stderr)
        return 2
    try:
        safety = config_from_args(EvalConfig(), a).safety
        suite = run_suite(policy, out, names=names, seeds=seeds or (0,),
                          seconds=a.seconds or 8.0, push_interval_s=a.push_interval or 3.0,
                          push_speed=(0.5 if a.push_speed is None else a.push_speed)
                          if a.push_interval else 0.4, robot=a.robot or "",
                          progress=not a.quiet, terrains=a.terrains, safety=safety)
    except (MetadataError, ConfigError, ValueError, FileNotFoundError) as e:
        print(f"robot-rl eval: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    from deploy.suite import suite_markdown

    print(suite_markdown(suite))
    print(f"wrote {out}/suite.json, suite.md, suite.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
