"""``robot-rl``: one command, one sub-command per stage.

    robot-rl robots                       list robot descriptions (and check them)
    robot-rl collect                      collect logs from the hardware stand-in
    robot-rl sysid                        stage 1: identify physical parameters
    robot-rl actuator train               stage 2: learn the actuator network
    robot-rl train                        stage 3: train the locomotion policy
    robot-rl export                       stage 4: export the policy to ONNX
    robot-rl eval                         evaluate a policy (MuJoCo or PyBullet)
    robot-rl pipeline                     all four stages on one robot

Stage commands live in their stage package (``<stage>/cli.py`` with ``main(argv)``);
this module only dispatches, so a stage that is not installed says so instead of failing
obscurely.  It is also the one place that turns a user error (a bad input file, config
key or value: the exception types in :data:`USER_ERRORS`, and an ``OSError`` on a path the
user named) raised by any command into one line, ``robot-rl <command>: error: <message>``
on stderr, and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from robot_rl.config import seed_argument
from robot_rl.robot import DEFAULT_ROBOT, ROBOTS

#: sub-command -> (module with main(argv), one-line help)
STAGES: dict[str, tuple[str, str]] = {
    "sysid": ("sysid.cli", "stage 1: identify the robot's physical parameters from logs"),
    "actuator": ("actuator_net.cli", "stage 2: learn the actuator network from logs"),
    "train": ("policies.cli", "stage 3: train a locomotion policy with TRPO in MuJoCo"),
    "export": ("deploy.export_cli", "stage 4: export a trained policy to ONNX"),
    "eval": ("deploy.eval_cli", "evaluate a policy in MuJoCo or PyBullet"),
    "fidelity": ("deploy.fidelity", "how well the identified simulator predicts the robot"),
    "select": ("deploy.select", "choose among candidate policies on the robot or in the identified simulator"),
    "pipeline": ("robot_rl.app.pipeline", "run collect -> sysid -> actuator -> train -> export -> eval"),
}


#: the project's user-error exception types, (module, class): the message names the file
#: or field and what was expected.  Only types whose module is loaded can have been raised.
USER_ERRORS: tuple[tuple[str, str], ...] = (
    ("robot_rl.config", "ConfigError"),
    ("robot_rl.logs", "LogError"),
    ("sysid.identify", "SysidError"),
    ("actuator_net.data", "ActuatorDataError"),
    ("deploy.metadata", "MetadataError"),
    ("policies.artifact", "PolicyFileError"),
    ("deploy.export", "ExportError"),
)


def _user_errors() -> tuple[type[BaseException], ...]:
    """The loaded user-error types (evaluated when an exception reaches the handler)."""
    found = [getattr(sys.modules[m], n, None) for m, n in USER_ERRORS if m in sys.modules]
    # OSError: a path the user named that cannot be read or written (missing, a file where
    # a folder goes, no permission, disk full)
    return (OSError, *(t for t in found if isinstance(t, type)))


def _collect(argv: list[str]) -> int:
    from robot_rl.collect import EXPERIMENTS, collect
    from robot_rl.robot import load_robot
    from robot_rl.standin_model import load_standin_config

    p = argparse.ArgumentParser(
        prog="robot-rl collect",
        description="Drive the PyBullet hardware stand-in through an experiment and write a "
                    "validated log (<out>/<experiment>.npz, schema in robot_rl/logs.py). "
                    "The write is atomic: an interrupted run leaves no log.")
    p.add_argument("--robot", default=DEFAULT_ROBOT, help=f"robot description ({', '.join(ROBOTS)})")
    p.add_argument("--experiment", required=True, choices=sorted([*EXPERIMENTS, "walking"]),
                   help="suspended: base on a rig, joints excited with chirps and steps; "
                        "ground: standing, squats, sways and stepping in place; walking: a "
                        "policy (--policy) under random commands and pushes, the regime it "
                        "will operate in")
    p.add_argument("--policy", default=None, help="walking: the exported policy.onnx to run")
    p.add_argument("--seconds", type=float, default=20.0, help="duration (s) [20]")
    p.add_argument("--out", required=True, help="output folder (or a .npz file name)")
    p.add_argument("--standin-config", default=None,
                   help="stand-in config JSON (hidden physics, actuator); default: "
                        "robot_rl/standin/default.json")
    p.add_argument("--standin-seed", type=seed_argument, default=None,
                   help="override the stand-in's hidden-parameter seed")
    p.add_argument("--seed", type=seed_argument, default=0, help="seed of the excitation signals [0]")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if not a.seconds > 0:
        print(f"robot-rl collect: error: --seconds: expected a duration > 0 s, got {a.seconds:g}",
              file=sys.stderr)
        return 2
    overrides = {} if a.standin_seed is None else {"seed": a.standin_seed}
    cfg = load_standin_config(a.standin_config, **overrides)
    if a.experiment == "walking":
        if not a.policy:
            print("robot-rl collect: error: --experiment walking needs --policy <policy.onnx>",
                  file=sys.stderr)
            return 2
        from deploy.walking_log import collect_walking  # runs the onboard controller

        path = collect_walking(a.policy, load_robot(a.robot), a.seconds, a.out, cfg,
                               seed=a.seed, progress=not a.quiet)
        print(f"wrote {path}")
        return 0
    path = collect(load_robot(a.robot), a.experiment, a.seconds, a.out, cfg, seed=a.seed,
                   progress=not a.quiet)
    print(f"wrote {path}")
    return 0


def _robots(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="robot-rl robots",
                                description="List registered robots; --check compares what "
                                            "MuJoCo and PyBullet see of each and how each "
                                            "stands at its nominal pose on its own PD gains "
                                            "(2 s in MuJoCo).")
    p.add_argument("--check", action="store_true")
    a = p.parse_args(argv)
    from robot_rl.robot import load_robot

    for name in ROBOTS:
        r = load_robot(name)
        line = f"{name:10s} {r.urdf:35s} {r.num_joints} joints"
        if a.check:
            import numpy as np

            from robot_rl.consistency import mujoco_view, pybullet_view
            from robot_rl.mujoco_robot import stance_tilt

            m, b = mujoco_view(r), pybullet_view(r)
            st = stance_tilt(r)
            line += (f"  mass MuJoCo {m.total_mass:.3f} kg / PyBullet {b.total_mass:.3f} kg,"
                     f" max foot gap {np.abs(m.foot_pos - b.foot_pos).max():.1e} m; on its own"
                     f" gains it stands at pitch {st['pitch_deg']:+.1f} / roll {st['roll_deg']:+.1f}"
                     f" deg, joints up to {st['max_sag_rad']:.2f} rad off target")
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"robots": "list robots and check MuJoCo/PyBullet agree",
                "collect": "collect a log from the PyBullet hardware stand-in",
                **{k: v[1] for k, v in STAGES.items()}}
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[0])
        print("\nusage: robot-rl <command> [options]   (robot-rl <command> --help for more)\n")
        for k, v in commands.items():
            print(f"  {k:10s} {v}")
        return 0
    cmd, rest = argv[0], argv[1:]
    try:
        return _dispatch(cmd, rest, commands)
    except _user_errors() as e:
        message = " ".join(str(e).split())  # one line
        print(f"robot-rl {cmd}: error: {message}", file=sys.stderr)
        return 2


def _dispatch(cmd: str, rest: list[str], commands: dict[str, str]) -> int:
    if cmd == "collect":
        return _collect(rest)
    if cmd == "robots":
        return _robots(rest)
    if cmd not in STAGES:
        print(f"robot-rl: unknown command {cmd!r}; commands: {', '.join(commands)}", file=sys.stderr)
        return 2
    module = STAGES[cmd][0]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            print(f"robot-rl {cmd}: not yet available in this version ({module} is not built).",
                  file=sys.stderr)
            return 2
        raise
    return int(mod.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
