"""Throughput of the full training env against raw MuJoCo physics, same model and threads.

ratio = (env steps/s of LeggedEnv: actuation, observations, rewards, resets, randomization)
        / (raw ``mujoco.rollout`` physics steps/s on the same model and thread count / decimation)

Goal: >= 0.8.  Run: ``python bench/bench_env.py [--num-envs 128] [--rounds 5] [--actuator DIR]
[--backend auto|plugin|numpy] [--sysid DIR]`` (without ``--sysid`` no env is randomized and
all share one MjModel).  Two raw references, each measured in every round:

* motionless: one long open-loop rollout of the torque-motor model at zero torque from
  the nominal pose (fitted sysid parameters, one model).  The robot collapses and lies
  still: its constraint solver converges in about 1 iteration per step.
* same transitions: exactly the physics the env computed, without the env.  The env's own
  run (same seed and actions) is recorded once: the state at each control step and the
  torque of each physics step (its torque sensors).  The torque-motor model, with each
  episode's randomized parameters, replays them: one rollout call over all
  (env, control step) pairs, ``decimation`` steps each.  The bench checks that the replay
  reproduces the env's states.  What the env adds on top of it is the actuation (the
  network), observations, rewards, resets, randomization and Python.

The env and the references are measured alternately in ``--rounds`` rounds and the median
ratio is the result: a shared machine's load moves a single measurement by +-0.1.
``bench_env_breakdown.py`` splits the env's control step into its parts against these
references; ``bench_warp.py`` measures the MuJoCo Warp backend.
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import mujoco
import numpy as np

from policies.config import EnvConfig
from policies.env import LeggedEnv
from policies.randomization import load_sysid
from robot_rl.sim_mujoco import MujocoModelConfig, build_model, rollout_pool, set_nominal
from sysid.apply import apply_params


def fitted_model(env: LeggedEnv) -> mujoco.MjModel:
    """The robot's torque-motor model (whatever actuators the env's model has), with the
    env's fitted sysid parameters if it has any (not randomized)."""
    m = build_model(env.robot, MujocoModelConfig(timestep=env.cfg.physics_dt))
    if env.sysid is not None:
        apply_params(m, env.sysid.values, env.robot)
    return m


def raw_physics(env: LeggedEnv, physics_steps: int, nthread: int,
                models: list[mujoco.MjModel] | None = None) -> float:
    """Physics steps/s of one long open-loop rollout of all envs from the nominal pose at
    zero torque: the motionless reference.  ``models``: one torque-motor model per env
    [:func:`fitted_model` for all]."""
    models = models or [fitted_model(env)] * env.num_envs
    m = models[0]
    datas = [mujoco.MjData(m) for _ in range(nthread)]
    d = mujoco.MjData(m)  # the nominal pose in this model's state layout (the env's model may
    set_nominal(m, d, env.robot)  # hold more state, e.g. the actuator network's history)
    nominal = np.zeros(mujoco.mj_stateSize(m, mujoco.mjtState.mjSTATE_FULLPHYSICS))
    mujoco.mj_getState(m, d, nominal, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    init = np.tile(nominal, (len(models), 1))
    ctrl = np.zeros((len(models), physics_steps, m.nu))
    # outputs allocated and touched before the clock starts: first-touch page faults are
    # not physics (the env reuses its buffers)
    state = np.ones((len(models), physics_steps, len(nominal)))
    sensordata = np.ones((len(models), physics_steps, m.nsensordata))
    with rollout_pool(nthread, pin=env.cfg.pin_threads) as ro:
        t = time.perf_counter()
        ro.rollout(models, datas, init, ctrl, state=state, sensordata=sensordata)
        dt = time.perf_counter() - t
    return len(models) * physics_steps / dt


def record_transitions(env: LeggedEnv, steps: int) -> dict:
    """Run the env as :func:`env_throughput` does, recording every rollout call: the state
    it starts from, each physics step's actuator torque, each env's episode parameters, and
    the state it ends in.  Needs the actuation inside the model (its torque sensors)."""
    calls = []
    physics = env.physics  # CpuPhysics
    inner = physics.rollout_steps
    torque = physics.columns(tuple(f"torque_{j}" for j in env.robot.joint_names))

    def hooked(controls):
        start, params = env.state.copy(), list(env.randomized)
        sensors = inner(controls)
        if controls.shape[1] == env.cfg.decimation:  # a control step (not reset()'s 1 step)
            calls.append((start, sensors[:, :, torque].copy(), params, env.state.copy()))
        return sensors

    physics.rollout_steps = hooked
    try:
        env_throughput(env, steps)
    finally:
        del physics.rollout_steps
    return {"calls": calls}


def replay_inputs(env: LeggedEnv, record: dict) -> tuple:
    """Torque-motor models, start states and torques of every recorded transition."""
    base = build_model(env.robot, MujocoModelConfig(timestep=env.cfg.physics_dt))
    scratch = mujoco.MjData(base)
    nraw = mujoco.mj_stateSize(base, mujoco.mjtState.mjSTATE_FULLPHYSICS)  # time, qpos, qvel
    built: dict[int, mujoco.MjModel] = {}
    models, starts, torques, ends = [], [], [], []
    for start, tau, params, end in record["calls"]:
        for p in params:
            values = p or (env.sysid.values if env.sysid is not None else None)
            key = id(p) if p else -1
            if key not in built:
                m = copy.copy(base)
                if values:
                    apply_params(m, values, env.robot, scratch)
                built[key] = m
            models.append(built[key])
        starts.append(start[:, :nraw])
        ctrl = np.zeros((env.num_envs, tau.shape[1], base.nu))
        ctrl[:, :, env.physics.idx.actuator] = tau
        torques.append(ctrl)
        ends.append(end[:, :nraw])
    return models, np.concatenate(starts), np.concatenate(torques), np.concatenate(ends)


def replay_physics(env: LeggedEnv, inputs: tuple, nthread: int) -> tuple[float, float]:
    """Physics steps/s of the recorded transitions replayed in one rollout call, and the
    largest difference (qpos, qvel) between the replayed and the env's end states."""
    models, starts, ctrl, ends = inputs
    nstep = ctrl.shape[1]
    datas = [mujoco.MjData(models[0]) for _ in range(nthread)]
    state = np.ones((len(models), nstep, starts.shape[1]))
    sensordata = np.ones((len(models), nstep, models[0].nsensordata))
    with rollout_pool(nthread, pin=env.cfg.pin_threads) as ro:
        t = time.perf_counter()
        ro.rollout(models, datas, starts, ctrl, state=state, sensordata=sensordata)
        dt = time.perf_counter() - t
    mismatch = float(np.max(np.abs(state[:, -1, 1:] - ends[:, 1:])))
    return len(models) * nstep / dt, mismatch


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
    p.add_argument("--no-pin", action="store_true",
                   help="leave the physics threads unpinned (EnvConfig.pin_threads=False), for "
                        "the env and the raw references alike")
    a = p.parse_args()
    cfg = EnvConfig(num_envs=a.num_envs, threads=a.threads, actuation="net" if a.actuator else "pd",
                    actuator_backend=a.backend, pin_threads=not a.no_pin)
    env = LeggedEnv(cfg, sysid=load_sysid(a.sysid) if a.sysid else None, actuator_dir=a.actuator)
    env_throughput(env, 10)  # warm up
    print(f"envs={a.num_envs} threads={a.threads} decimation={cfg.decimation} actuation={cfg.actuation}"
          f" in-model={env.actuation.in_model} randomized={a.sysid is not None} pinned={cfg.pin_threads}"
          f" load average={os.getloadavg()[0]:.2f}")
    inputs = None
    if env.actuation.in_model:
        inputs = replay_inputs(env, record_transitions(env, a.steps))
    else:
        print("same-transitions reference: n/a (the actuation runs in Python: no torque sensors)")
    ratios, replay_ratios = [], []
    for r in range(a.rounds):
        ours = env_throughput(env, a.steps)
        raw = raw_physics(env, a.steps * cfg.decimation, a.threads) / cfg.decimation
        ratios.append(ours / raw)
        line = (f"round {r}: full env {ours:8.0f} env steps/s | motionless raw/decimation {raw:8.0f},"
                f" ratio {ours / raw:.3f}")
        if inputs is not None:
            same, mismatch = replay_physics(env, inputs, a.threads)
            same /= cfg.decimation
            replay_ratios.append(ours / same)
            line += (f" | same transitions raw/decimation {same:8.0f}, ratio {ours / same:.3f}"
                     f" (replayed states match to {mismatch:.1e})")
        print(line, flush=True)
    for name, rs in (("motionless", ratios), ("same transitions", replay_ratios)):
        if rs:
            print(f"ratio against {name} physics: median {np.median(rs):.3f} (range "
                  f"{min(rs):.3f}-{max(rs):.3f} over {a.rounds} rounds; goal >= 0.8)")


if __name__ == "__main__":
    main()
