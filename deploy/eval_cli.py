"""``robot-rl eval``: run an exported policy with the onboard runtime in PyBullet or MuJoCo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deploy.evaluate import DEFAULT_COMMANDS, SIMS, EvalConfig, evaluate
from deploy.metadata import MetadataError
from robot_rl.config import ConfigError


def _commands(text: str) -> tuple[tuple[float, float, float], ...]:
    """``"vx,vy,yaw;vx,vy,yaw;..."`` -> tuple of triples."""
    out = []
    for item in text.split(";"):
        parts = [float(x) for x in item.split(",")]
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
                    "actuator), 'mujoco' = the training simulator with an ideal PD. One "
                    "episode per command. Writes report_<sim>.json/.md, report.json/.md "
                    "(headline, with the sim-to-sim gap when both reports exist), "
                    "velocity_<sim>.png and, for pybullet, rollout.gif.")
    p.add_argument("--sim", choices=SIMS, default="pybullet", help="simulator [pybullet]")
    p.add_argument("--policy", required=True, help="exported policy.onnx (robot-rl export)")
    p.add_argument("--out", default=None,
                   help="output folder, e.g. <run>/eval [default: eval/ next to the policy]")
    p.add_argument("--seconds", type=float, default=20.0,
                   help="policy-controlled seconds per command episode [20]")
    p.add_argument("--settle", type=float, default=2.0,
                   help="seconds after the handover excluded from tracking errors [2]")
    p.add_argument("--robot", default="",
                   help="robot description [default: the robot in the model's metadata]")
    p.add_argument("--sysid", default=None,
                   help="<run>/sysid: apply the identified parameters to the MuJoCo model "
                        "(mujoco only)")
    p.add_argument("--compare", default=None,
                   help="another report.json for the side-by-side table [default: "
                        "report_mujoco.json / report_pybullet.json in --out if present]")
    p.add_argument("--commands", type=_commands, default=DEFAULT_COMMANDS,
                   help=f"episodes as 'vx,vy,yaw;...' (m/s, m/s, rad/s) [{default_cmds}]")
    p.add_argument("--standin-seed", type=int, default=0,
                   help="hidden-physics seed of the PyBullet stand-in [0]")
    p.add_argument("--no-video", action="store_true", help="skip the GIF (pybullet)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    policy = Path(a.policy)
    out = Path(a.out) if a.out else policy.parent / "eval"
    try:
        cfg = EvalConfig(sim=a.sim, robot=a.robot, seconds=a.seconds, settle_s=a.settle,
                         commands=a.commands, standin_seed=a.standin_seed, video=not a.no_video)
        report = evaluate(policy, out, cfg, sysid=a.sysid, compare=a.compare,
                          progress=not a.quiet)
    except (MetadataError, ConfigError, ValueError, FileNotFoundError) as e:
        print(f"robot-rl eval: {e}", file=sys.stderr)
        return 1
    s = report["metrics"]
    print(json.dumps(s, indent=1))
    print(f"wrote {out}/report_{a.sim}.json, report.md ({', '.join(report.get('files', []))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
