"""Throughput of the full training env against raw MuJoCo physics, same model and threads.

ratio = (env steps/s of LeggedEnv: actuation, observations, rewards, resets, randomization)
        / (raw ``mujoco.rollout`` physics steps/s on the same model and thread count / decimation)

Goal: >= 0.8.  Run: ``python bench/bench_env.py [--num-envs 128] [--rounds 5] [--actuator DIR]
[--backend auto|plugin|numpy] [--sysid DIR]`` (without ``--sysid`` no env is randomized and all share one MjModel).  The
env and the raw physics are measured alternately in ``--rounds`` rounds and the median
ratio is the result: a shared machine's load moves a single measurement by +-0.1.
"""

from __future__ import annotations

import argparse
import os
import time

import mujoco
import numpy as np
from mujoco import rollout

from policies.config import EnvConfig
from policies.env import LeggedEnv
from policies.randomization import load_sysid
from robot_rl.sim_mujoco import MujocoModelConfig, build_model, set_nominal
from sysid.apply import apply_params


def raw_physics(env: LeggedEnv, physics_steps: int, nthread: int) -> float:
    """Physics steps/s of one long open-loop rollout of all envs from the nominal pose: the
    robot's torque-motor model at zero torque (whatever actuators the env's model has), with
    the env's fitted sysid parameters if it has any (not randomized)."""
    m = build_model(env.robot, MujocoModelConfig(timestep=env.cfg.physics_dt))
    if env.sysid is not None:
        apply_params(m, env.sysid.values, env.robot)
    datas = [mujoco.MjData(m) for _ in range(nthread)]
    d = mujoco.MjData(m)  # the nominal pose in this model's state layout (the env's model may
    set_nominal(m, d, env.robot)  # hold more state, e.g. the actuator network's history)
    nominal = np.zeros(mujoco.mj_stateSize(m, mujoco.mjtState.mjSTATE_FULLPHYSICS))
    mujoco.mj_getState(m, d, nominal, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    init = np.tile(nominal, (env.num_envs, 1))
    ctrl = np.zeros((env.num_envs, physics_steps, m.nu))
    # outputs allocated and touched before the clock starts: first-touch page faults are
    # not physics (the env reuses its buffers)
    state = np.ones((env.num_envs, physics_steps, len(nominal)))
    sensordata = np.ones((env.num_envs, physics_steps, m.nsensordata))
    with rollout.Rollout(nthread=nthread) as ro:
        t = time.perf_counter()
        ro.rollout([m] * env.num_envs, datas, init, ctrl, state=state, sensordata=sensordata)
        dt = time.perf_counter() - t
    return env.num_envs * physics_steps / dt


def env_throughput(env: LeggedEnv, steps: int) -> float:
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.normal(0, 0.3, (steps, env.num_envs, env.robot.num_joints))
    t = time.perf_counter()
    for k in range(steps):
        env.step(actions[k])
    return env.num_envs * steps / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-envs", type=int, default=EnvConfig.num_envs,
                   help="parallel robots [the training default]")
    p.add_argument("--steps", type=int, default=200, help="control steps per measurement")
    p.add_argument("--rounds", type=int, default=5,
                   help="interleaved rounds (env, then raw physics); the median ratio is the result")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--actuator", default=None, help="actuator folder: use the actuator network")
    p.add_argument("--backend", default="auto", choices=("auto", "plugin", "numpy"),
                   help="where the actuator network runs (EnvConfig.actuator_backend) [auto]")
    p.add_argument("--sysid", default=None,
                   help="sysid folder: randomize every env's physics at each episode start")
    a = p.parse_args()
    cfg = EnvConfig(num_envs=a.num_envs, threads=a.threads, actuation="net" if a.actuator else "pd",
                    actuator_backend=a.backend)
    env = LeggedEnv(cfg, sysid=load_sysid(a.sysid) if a.sysid else None, actuator_dir=a.actuator)
    env_throughput(env, 10)  # warm up
    print(f"envs={a.num_envs} threads={a.threads} decimation={cfg.decimation} actuation={cfg.actuation}"
          f" in-model={env.actuation.in_model} randomized={a.sysid is not None} load average={os.getloadavg()[0]:.2f}")
    ratios = []
    for r in range(a.rounds):
        ours = env_throughput(env, a.steps)
        raw = raw_physics(env, a.steps * cfg.decimation, a.threads) / cfg.decimation
        ratios.append(ours / raw)
        print(f"round {r}: full env {ours:8.0f} env steps/s, raw physics/decimation {raw:8.0f}, "
              f"ratio {ours / raw:.3f}", flush=True)
    print(f"ratio: median {np.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f} over "
          f"{a.rounds} rounds; goal >= 0.8)")


if __name__ == "__main__":
    main()
