"""How a training checkpoint behaves in a training world, deterministically and with its
exploration noise: mean forward speed for a held forward command, and when envs first fall.

The diagnosis of bench/RESULTS.md ("Why the pipeline does not walk on driver_mismatch")::

    python bench/diag_world.py --run runs/transfer/phase1/policy --checkpoint model_500.pt \\
        --pipeline runs/transfer/driver_mismatch --world net --steps 250      # falls at the start
    python bench/diag_world.py --run runs/x_dm_prand/policy --checkpoint model_700.pt \\
        --pipeline runs/transfer/driver_mismatch --world net --no-pushes      # speed, det. vs sampled

``--legs`` adds, per leg and joint in deterministic mode, what showed why aliengo did
not walk forward (RESULTS "aliengo: the cause was the stance"): contact fraction, highest foot,
mean joint angle and mean PD error (target - q).

``--world``: ``net`` (the pipeline's identified parameters and actuator network), ``pd`` or
``pd_random`` (identified parameters, ideal or randomized PD).  Ground truth (base velocity)
is read here for the metric only, as the env's rewards do.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from policies.env import FOOT_CONTACT_HEIGHT, LeggedEnv
from policies.randomization import load_sysid
from policies.train import read_run_config
from robot_rl.rl.models import ActorCritic


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="training run folder (config.json, checkpoints)")
    p.add_argument("--checkpoint", required=True, help="checkpoint file name in --run")
    p.add_argument("--pipeline", required=True, help="pipeline run folder (sysid/, actuator/)")
    p.add_argument("--world", default="net", choices=("net", "pd", "pd_random"))
    p.add_argument("--envs", type=int, default=64)
    p.add_argument("--steps", type=int, default=300, help="control steps per mode")
    p.add_argument("--vx", type=float, default=0.7, help="forward command (m/s)")
    p.add_argument("--no-pushes", action="store_true")
    p.add_argument("--legs", action="store_true",
                   help="per-leg gait statistics (contact, foot height, joint angles, PD error)")
    a = p.parse_args(argv)
    cfg = read_run_config(a.run)
    env_cfg = replace(cfg.env, num_envs=a.envs, actuation=a.world,
                      push_interval=1e6 if a.no_pushes else cfg.env.push_interval)
    pipe = Path(a.pipeline)
    env = LeggedEnv(env_cfg, sysid=load_sysid(pipe / "sysid"),
                    actuator_dir=str(pipe / "actuator") if a.world == "net" else None, seed=1)
    state = torch.load(Path(a.run) / a.checkpoint, map_location="cpu", weights_only=False)
    policy = ActorCritic(env.spec.size, env.robot.num_joints, cfg.train.policy)
    policy.load_state_dict(state["algo"]["policy"])
    command = np.array([a.vx, 0.0, 0.0])
    torch.manual_seed(0)  # the sampled mode's exploration noise
    try:
        for mode in ("deterministic", "sampled"):
            obs, _ = env.reset(seed=3)
            first_fall = np.full(a.envs, -1)
            vx, feet, q, err = [], [], [], []
            for t in range(a.steps):
                env.command[:] = command
                with torch.no_grad():
                    mean = policy.actor(policy.obs_normalizer(torch.as_tensor(obs, dtype=torch.float32)))
                    act = mean if mode == "deterministic" else \
                        mean + policy.log_std.exp() * torch.randn_like(mean)
                obs, _, terminated, _, _ = env.step(act.numpy())
                first_fall[terminated & (first_fall < 0)] = t
                if t >= 50:
                    vx.append(env.physics.sensor("base_linvel_local")[:, 0].mean())
                    feet.append(env.foot_height.copy())
                    q.append(env.measured_q().copy())  # the encoders', as the targets
                    err.append(env.obs_state.target - q[-1])
            fell = np.sort(first_fall[first_fall >= 0])
            print(f"{a.world} {mode}: forward speed {np.mean(vx):.3f} m/s for {a.vx} m/s; "
                  f"{len(fell)}/{a.envs} envs fell, first falls at control steps {fell[:10].tolist()}")
            if a.legs and mode == "deterministic":
                print_legs(env, np.array(feet), np.array(q), np.array(err))
    finally:
        env.close()
    return 0


def print_legs(env: LeggedEnv, feet: np.ndarray, q: np.ndarray, err: np.ndarray) -> None:
    """Per leg: fraction of steps in contact, highest foot (m above the ground), and per
    joint (hip, thigh, knee) the mean angle and mean PD error (rad), over steps and envs."""
    nj = env.robot.num_joints // len(env.robot.foot_links)
    contact = (feet < FOOT_CONTACT_HEIGHT).mean(axis=(0, 1))
    top = feet.max(axis=0).mean(axis=0)
    qm, em = q.mean(axis=(0, 1)), err.mean(axis=(0, 1))
    for i, leg in enumerate(env.robot.foot_links):
        js = slice(nj * i, nj * (i + 1))
        print(f"  {leg}: contact {100 * contact[i]:3.0f} %, foot up to {top[i]:.3f} m; joints "
              f"{np.array2string(qm[js], precision=2)} rad, PD error "
              f"{np.array2string(em[js], precision=2)} rad")


if __name__ == "__main__":
    raise SystemExit(main())
