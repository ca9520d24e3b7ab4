"""Where a control step of the training env goes, against the physics it computes.

Prints, per control step of ``--num-envs`` envs (milliseconds):

* the env's step, split into its rollout calls (physics, an in-model actuation such as the
  network plugin, thread hand-off), resets (randomization included) and the rest (Python:
  observations, rewards, commands, checks);
* the same transitions replayed on torque-motor models without the env (bench_env.py's
  "same transitions"), in one rollout call and in one call per control step as the env
  makes them;
* the motionless reference (bench_env.py's), on the fitted model and on the envs' current
  randomized models.

Run: ``python bench/bench_env_breakdown.py [--actuator DIR] [--sysid DIR]`` (same options as
bench_env.py).  The ratio of the motionless reference to the one-call replay is the ceiling
that the motionless ratio of bench_env.py can reach with Python and the actuation free.
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import mujoco
import numpy as np
from bench_env import fitted_model, raw_physics, record_transitions, replay_inputs, replay_physics

from policies.config import EnvConfig
from policies.env import LeggedEnv
from policies.randomization import load_sysid
from robot_rl.sim_mujoco import MujocoModelConfig, build_model, rollout_pool
from sysid.apply import apply_params


def timed_steps(env: LeggedEnv, steps: int) -> dict[str, float]:
    """ms per control step: whole step, rollout calls, resets, the rest."""
    spent = {"rollout": 0.0, "resets": 0.0}
    pool, reset = env.physics._rollout, env._reset_envs
    inner_rollout = pool.rollout

    def rollout(*a, **k):
        t = time.perf_counter()
        inner_rollout(*a, **k)
        spent["rollout"] += time.perf_counter() - t

    def resets(ids):
        t = time.perf_counter()
        reset(ids)
        spent["resets"] += time.perf_counter() - t

    env.reset(seed=0)
    actions = np.random.default_rng(0).normal(0, 0.3, (steps, env.num_envs, env.robot.num_joints))
    pool.rollout, env._reset_envs = rollout, resets
    try:
        t = time.perf_counter()
        for a in actions:
            env.step(a)
        total = time.perf_counter() - t
    finally:
        del pool.rollout, env._reset_envs
    out = {k: 1e3 * v / steps for k, v in spent.items()}
    out["step"] = 1e3 * total / steps
    out["rest"] = out["step"] - out["rollout"] - out["resets"]
    return out


def replay_per_call(env: LeggedEnv, inputs: tuple, nthread: int) -> float:
    """ms per control step of the recorded transitions replayed one control step per call."""
    models, starts, ctrl, _ = inputs
    n, nstep = env.num_envs, ctrl.shape[1]
    datas = [mujoco.MjData(models[0]) for _ in range(nthread)]
    state = np.ones((n, nstep, starts.shape[1]))
    sens = np.ones((n, nstep, models[0].nsensordata))
    calls = len(models) // n
    with rollout_pool(nthread, pin=env.cfg.pin_threads) as ro:
        t = time.perf_counter()
        for c in range(calls):
            rows = slice(c * n, (c + 1) * n)
            ro.rollout(models[rows], datas, starts[rows], ctrl[rows], nstep=nstep, state=state,
                       sensordata=sens, skip_checks=True, chunk_size=env.physics._chunk_multistep)
        return 1e3 * (time.perf_counter() - t) / calls


def motionless(env: LeggedEnv, models: list[mujoco.MjModel], steps: int, nthread: int) -> float:
    """ms per control step of bench_env.py's motionless reference on ``models``."""
    return 1e3 * len(models) * env.cfg.decimation / raw_physics(
        env, steps * env.cfg.decimation, nthread, models)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-envs", type=int, default=EnvConfig.num_envs)
    p.add_argument("--steps", type=int, default=200, help="control steps per measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--actuator", default=None, help="actuator folder: use the actuator network")
    p.add_argument("--sysid", default=None, help="sysid folder: randomize every env's physics")
    a = p.parse_args()
    cfg = EnvConfig(num_envs=a.num_envs, threads=a.threads, actuation="net" if a.actuator else "pd")
    env = LeggedEnv(cfg, sysid=load_sysid(a.sysid) if a.sysid else None, actuator_dir=a.actuator)
    if not env.actuation.in_model:
        raise SystemExit("the breakdown needs the actuation inside the model (plugin or PD)")
    timed_steps(env, 10)  # warm up
    inputs = replay_inputs(env, record_transitions(env, a.steps))
    fitted = fitted_model(env)
    base = build_model(env.robot, MujocoModelConfig(timestep=cfg.physics_dt))
    randomized = [apply_params(copy.copy(base), v, env.robot) if v else fitted
                  for v in env.randomized]
    print(f"envs={a.num_envs} threads={a.threads} actuation={cfg.actuation} "
          f"randomized={a.sysid is not None} load average={os.getloadavg()[0]:.2f}; "
          "ms per control step")
    for r in range(a.rounds):
        s = timed_steps(env, a.steps)
        one = 1e3 * env.num_envs * cfg.decimation / replay_physics(env, inputs, a.threads)[0]
        per_call = replay_per_call(env, inputs, a.threads)
        still_fit = motionless(env, [fitted] * env.num_envs, a.steps, a.threads)
        still_rand = motionless(env, randomized, a.steps, a.threads)
        print(f"round {r}: env step {s['step']:.2f} = rollout calls {s['rollout']:.2f} + resets "
              f"{s['resets']:.2f} + rest {s['rest']:.2f} | same transitions: one call {one:.2f}, "
              f"per control step {per_call:.2f} | motionless: fitted {still_fit:.2f}, randomized "
              f"{still_rand:.2f} | ceiling of the motionless ratio {still_fit / one:.3f}",
              flush=True)


if __name__ == "__main__":
    main()
