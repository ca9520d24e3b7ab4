"""MuJoCo Warp physics: the training env on Warp against raw Warp physics and raw MuJoCo C.

Three throughputs, measured alternately in ``--rounds`` rounds (medians printed):

* env (warp): env steps/s of ``LeggedEnv`` with ``EnvConfig.physics = "warp"`` on
  ``--device``: physics on the device, actuation in torch beside it at every physics
  step, observations, rewards, resets and randomization on the host.
* raw warp: physics steps/s of the same Warp worlds stepped alone (zero torque from the
  nominal pose, as bench_env.py's motionless reference), divided by the decimation.
* raw mujoco: the same with ``mujoco.rollout`` over ``--threads`` CPU threads.

First, the constraint rows and contacts a world needs: the largest counts MuJoCo C reaches
with the env's model when the robot is dropped in random orientations under random torque
(``--drops``), against MuJoCo Warp's default allocation and the env's.

Printed ratios: env (warp) / raw warp (the issue's env-over-physics ratio on the Warp
backend) and raw warp / raw mujoco (what the device buys over this machine's CPU cores).
Run: ``python bench/bench_warp.py [--device auto|cpu|cuda:0] [--num-envs N] [--actuator DIR]
[--sysid DIR]``.  On a CPU Warp runs its kernels one world after another: expect it far
slower than MuJoCo C there; the numbers that matter come from a GPU.
"""

from __future__ import annotations

import argparse
import os
import time

import mujoco
import numpy as np
import torch
from bench_env import env_throughput, raw_physics

from policies.config import EnvConfig
from policies.env import LeggedEnv
from policies.randomization import load_sysid
from robot_rl.sim_mujoco import set_nominal


def raw_warp(env: LeggedEnv, physics_steps: int) -> float:
    """Physics steps/s of the env's Warp worlds stepped alone: zero torque from the nominal
    pose (the env's state is left to its next reset)."""
    w, m = env.physics.worlds, env.base_model
    d = mujoco.MjData(m)
    set_nominal(m, d, env.robot)
    n = env.num_envs
    with w.scope(), torch.inference_mode():
        w.set_state(np.zeros(n), np.tile(d.qpos, (n, 1)), np.zeros((n, m.nv)))
        w.ctrl.zero_()
        w.step()
        if w.device.is_cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(physics_steps):
            w.step()
        if w.device.is_cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
    return n * physics_steps / dt


def buffer_needs(env: LeggedEnv, drops: int, steps: int = 600) -> tuple[int, int]:
    """Largest (contacts, constraint rows) of the env's model in MuJoCo C over ``drops``
    drops from 0.3 m in random orientations, random torque pulsed on and off."""
    m, rng = env.base_model, np.random.default_rng(0)
    ncon = nefc = 0
    for _ in range(drops):
        d = mujoco.MjData(m)
        set_nominal(m, d, env.robot, height=0.3)
        q = rng.normal(size=4)
        d.qpos[3:7] = q / np.linalg.norm(q)
        for k in range(steps):
            d.ctrl[:] = rng.normal(0, 1.0, m.nu) * (k % 50 < 25)
            mujoco.mj_step(m, d)
            ncon, nefc = max(ncon, d.ncon), max(nefc, d.nefc)
    return ncon, nefc


def default_njmax(env: LeggedEnv) -> int:
    """The constraint rows per world that MuJoCo Warp allocates when not told."""
    m = env.base_model
    d = mujoco.MjData(m)
    set_nominal(m, d, env.robot)
    with env.physics.worlds.scope():
        return env.physics.worlds._mjw.put_data(m, d, nworld=1).njmax


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="Warp device: auto (GPU if any), cpu, cuda:0")
    p.add_argument("--num-envs", type=int, default=EnvConfig.num_envs,
                   help="parallel robots (worlds) [the training default; try 4096 on a GPU]")
    p.add_argument("--steps", type=int, default=50, help="control steps per measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="CPU threads of the MuJoCo C reference")
    p.add_argument("--actuator", default=None, help="actuator folder: use the actuator network")
    p.add_argument("--sysid", default=None, help="sysid folder: randomize every env's physics")
    p.add_argument("--drops", type=int, default=20, help="random drops for the buffer needs")
    a = p.parse_args()
    cfg = EnvConfig(num_envs=a.num_envs, actuation="net" if a.actuator else "pd",
                    physics="warp", physics_device=a.device)
    env = LeggedEnv(cfg, sysid=load_sysid(a.sysid) if a.sysid else None, actuator_dir=a.actuator)
    env_throughput(env, 3)  # compiles the kernels, warms the caches
    ncon, nefc = buffer_needs(env, a.drops)
    print(f"buffers: {a.drops} random drops reach {ncon} contacts and {nefc} constraint rows; "
          f"per world MuJoCo Warp's default is {default_njmax(env)} rows, the env "
          f"allocates {env.physics.worlds.njmax} (needed/allocated {nefc / env.physics.worlds.njmax:.2f})")
    print(f"envs={a.num_envs} device={env.physics.worlds.device} decimation={cfg.decimation} "
          f"actuation={cfg.actuation} randomized={a.sysid is not None} "
          f"C threads={a.threads} load average={os.getloadavg()[0]:.2f}")
    rows = []
    for r in range(a.rounds):
        ours = env_throughput(env, a.steps)
        warp = raw_warp(env, a.steps * cfg.decimation) / cfg.decimation
        c = raw_physics(env, a.steps * cfg.decimation, a.threads) / cfg.decimation
        rows.append((ours, warp, c))
        print(f"round {r}: env (warp) {ours:9.0f} | raw warp {warp:9.0f} | raw mujoco {c:9.0f} "
              f"env steps/s | env/raw warp {ours / warp:.3f} | raw warp/raw mujoco {warp / c:.3f}",
              flush=True)
    ours, warp, c = np.array(rows).T
    print(f"median over {a.rounds} rounds: env (warp) {np.median(ours):.0f}, raw warp "
          f"{np.median(warp):.0f}, raw mujoco {np.median(c):.0f} env steps/s; env/raw warp "
          f"{np.median(ours / warp):.3f}; raw warp/raw mujoco {np.median(warp / c):.3f}")


if __name__ == "__main__":
    main()
