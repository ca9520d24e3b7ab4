"""``robot-rl train``: train the locomotion policy (stage 3)."""

from __future__ import annotations

import argparse
import json

from policies.train import BUDGETS, LocomotionConfig, train
from robot_rl.config import add_config_arguments, config_from_args, seed_argument


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robot-rl train",
        description="Train a command-following locomotion policy with TRPO (default) in MuJoCo, "
                    "with stage 1's identified parameters (and their ranges as domain "
                    "randomization) and stage 2's actuator network in the loop.  Writes "
                    "TensorBoard events, resumable checkpoints, policy.pt and the resolved "
                    "config.json to --out.")
    p.add_argument("--out", required=True, help="run folder, e.g. runs/<name>/policy")
    p.add_argument("--sysid", default=None, help="stage 1 output folder (params.json); "
                   "without it the nominal model is used and nothing is randomized")
    p.add_argument("--actuator", default=None, help="stage 2 output folder (actuator.pt); "
                   "without it joints use an ideal PD with the robot's gains")
    p.add_argument("--robot", default=None, help="robot description (default a1)")
    p.add_argument("--algo", default=None, choices=["trpo", "npg", "ppo_clip", "ppo_kl"],
                   help="learning algorithm [trpo]")
    p.add_argument("--iterations", type=int, default=None, help="training iterations")
    p.add_argument("--num-envs", type=int, default=None, help="parallel robots")
    p.add_argument("--seed", type=seed_argument, default=None, help="seed (runs are deterministic on CPU)")
    p.add_argument("--device", default=None, help="torch device: auto, cpu, cuda [auto]")
    p.add_argument("--physics", default=None, choices=["mujoco", "warp"],
                   help="physics engine: mujoco (C library, CPU threads) or warp (MuJoCo Warp: "
                        "all envs as worlds on a GPU; needs the 'warp' extra) [mujoco]")
    p.add_argument("--physics-device", default=None,
                   help="device of the warp physics: auto (GPU if any), cpu, cuda:0 [auto]")
    p.add_argument("--budget", choices=sorted(BUDGETS), default="default",
                   help="smoke: a few iterations to check the machinery")
    add_config_arguments(p, "env.rewards.torque=-0.1")
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--workers", type=int, default=0,
                   help="collect rollouts on this many Ray workers, --num-envs split among "
                        "them (needs the 'ray' extra) [0: single process, Ray not imported]")
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster to join with --workers: auto or host:port "
                        "[default: start a local one]")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    flags = {key: getattr(a, flag) for flag, key in (
        ("robot", "env.robot"), ("algo", "train.algo.name"),
        ("iterations", "train.runner.iterations"), ("num_envs", "env.num_envs"),
        ("seed", "train.runner.seed"), ("device", "train.runner.device"),
        ("physics", "env.physics"), ("physics_device", "env.physics_device"))}
    flags["env.actuation"] = "net" if a.actuator else None
    flags["train.runner.progress"] = False if a.quiet else None
    cfg = config_from_args(LocomotionConfig(), a, flags=flags, presets=BUDGETS[a.budget])
    sysid = None
    if a.sysid:
        from policies.randomization import load_sysid

        sysid = load_sysid(a.sysid)
    if a.ray_address and not a.workers:
        raise SystemExit("--ray-address needs --workers M")
    log = train(cfg, a.out, sysid=sysid, actuator_dir=a.actuator, resume=a.resume,
                workers=a.workers, ray_address=a.ray_address)
    print(f"done: iteration log {json.dumps({k: v for k, v in log.items() if isinstance(v, (int, float))})}")
    return 0
