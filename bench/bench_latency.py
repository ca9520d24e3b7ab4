"""Onboard latency: one control step with onnxruntime vs torch eager, one thread each.

    python bench/bench_latency.py [--calls 20000] [--rounds 10]

Randomly initialised policies of the training architecture (-> 128 -> 128 -> 12, ELU,
observation normalization inside), in two observation layouts:

* ``default``: the training configuration's (``policies.config.EnvConfig``: gait clock with
  stride, joint history, no base velocity), so no estimator runs on board;
* ``estimator``: the same with the base velocity observed, as the onboard estimate
  (``deploy.estimator.KinematicInertialEstimator``, leg kinematics + IMU filter).

The default policy is run as the exported ONNX graph in onnxruntime (the onboard
runtime's ``OnnxPolicy``: one intra-op thread, sequential, inputs/outputs bound once with
IOBinding) and as the torch module in eager mode (``torch.set_num_threads(1)``, inference
mode).

Figures, each p50 / p99 of single calls (microseconds) over all rounds, measured in
interleaved rounds so all variants see the same machine load (the last column, the
lowest per-round p99, shows the tail with the least interference from other processes):

* ``inference``: the policy call alone, numpy float32 in, numpy out;
* ``obs + action state``: the runtime's observation and action state machine
  (:class:`robot_rl.obs_state.ObsActionState`) for one period: ``observe`` (history push,
  observation build) and ``act`` (action clip, gait reference, joint targets);
* ``estimator update``: one update of the onboard estimator (the runtime runs one per
  interface state, i.e. ``decimation`` per policy period, one of them inside ``compute``);
  the state has knee torques of a standing robot, so all four legs count as in contact
  and the estimator does its full update;
* ``full step``: ``OnboardController.compute(state)`` in POLICY mode on a fresh state =
  safety checks, observation build, inference, action clipping, gait reference,
  joint-limit clipping (no robot I/O); ``+ estimator``: the same with the estimator's
  update and health check.  The goal (issue 19) is its p99 <= 100 us on one thread; the
  estimator's share is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deploy.export import export_policy, ort_session
from deploy.runtime import Mode, OnboardController
from deploy.safety import SafetyConfig
from deploy.testing import FakeRobot, write_random_policy
from policies.artifact import read_policy
from policies.config import EnvConfig
from policies.env import observation_spec
from robot_rl.interface import RobotState
from robot_rl.obs_spec import ObservationSpec
from robot_rl.robot import load_robot


def timed(fn, n: int, between: int = 0) -> np.ndarray:
    """Per-call wall times (ns) of ``n`` calls; with ``between`` > 0, a pure-Python loop of
    that many additions runs between calls, untimed (see ``--between``)."""
    out = np.empty(n)
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        fn()
        out[i] = clock() - t0
        if between:
            other_work(between)
    return out


def other_work(n: int) -> int:
    """Stand-in for the rest of a control loop between two steps (robot I/O, logging): a
    Python loop that runs the interpreter through other code and data."""
    x = 0
    for i in range(n):
        x += i
    return x


def pct(ts: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(ts, 50)) / 1e3, float(np.percentile(ts, 99)) / 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=20000, help="calls per variant [20000]")
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds [10]")
    p.add_argument("--robot", default="a1")
    p.add_argument("--between", type=int, default=0,
                   help="untimed pure-Python additions between two calls [0]: a tight loop "
                        "keeps the caches and branch predictors warm for the step, a robot's "
                        "loop runs other code in between (1200 take ~45 us here)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    robot = load_robot(a.robot)
    with tempfile.TemporaryDirectory(prefix="bench_latency_") as d:
        tmp = Path(d)
        paths = {}
        for name, spec in layouts(robot).items():
            write_random_policy(tmp / name, robot, spec=spec, seed=0)
            paths[name] = export_policy(tmp / name, tmp / f"{name}.onnx").path
        model = read_policy(tmp / "default").model.eval()
        return run(a, robot, paths, model)


def layouts(robot) -> dict[str, ObservationSpec]:
    """The two observation layouts the onboard step is measured with: ``default``, the
    training configuration's (policies.config.EnvConfig: no base velocity, joint history,
    gait clock with stride; no estimator runs), and ``estimator``, the same with the
    estimated base velocity observed (the estimator runs in the step)."""
    default = observation_spec(EnvConfig(robot=robot.name), robot)
    return {"default": default, "estimator": dataclasses.replace(default, base_linvel=True)}


def controller(robot, onnx_path: Path) -> tuple[OnboardController, RobotState]:
    """A controller in POLICY mode on a fake robot with a realistic moving state, and a
    state with the knee torques of a robot standing on its four feet (the estimator, when
    there is one, then uses every leg)."""
    fake = FakeRobot(robot)
    ctl = OnboardController(onnx_path, robot, fake, SafetyConfig(hold_s=0.0, ramp_s=0.0),
                            command=(0.5, 0.0, 0.2))
    fake.reset()
    ctl.start()
    fake.base_angvel = np.array([0.01, -0.02, 0.2])
    for _ in range(10):
        ctl.step()
    assert ctl.mode is Mode.POLICY, ctl.fault
    tau = np.tile([0.5, 2.0, -8.0], robot.num_joints // 3)
    return ctl, dataclasses.replace(fake.read_state(), tau=tau)


def run(a: argparse.Namespace, robot, onnx_paths: dict[str, Path], model: torch.nn.Module) -> int:
    """Measure and print (the policy files live in a temporary folder meanwhile)."""
    ctl, state = controller(robot, onnx_paths["default"])
    ectl, estate = controller(robot, onnx_paths["estimator"])
    assert ctl.estimator is None and ectl.estimator is not None
    obs = ctl.last.obs.copy()
    ort_infer = ctl._infer
    plain = ort_session(onnx_paths["default"])

    def torch_infer(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    def step_with(c: OnboardController, s: RobotState, infer=None):
        def fn():
            s.stamp = max(c._t0 + c.time, s.stamp + 0.005)  # a fresh state
            c._steps = int(round((s.stamp - c._t0) / c.control_dt))
            c.compute(s)
        return (c, infer), fn

    est = ectl.estimator
    machine, action, command = ctl._obs_state, ctl.last.action[None], ctl.command[None]

    def obs_and_action():  # one period of the state machine, as the runtime runs it
        machine.observe(q=state.q[None], qd=state.qd[None], base_quat=state.base_quat[None],
                        base_angvel_b=state.base_angvel[None], command=command)
        machine.act(action, command)

    def estimator_update():  # a fresh state each call, as at the interface's rate
        estate.stamp += 0.005
        est.update(estate)

    np.testing.assert_allclose(ort_infer(obs), torch_infer(obs), atol=1e-5)
    variants = {
        "inference onnxruntime": (None, lambda: ort_infer(obs)),
        "inference onnxruntime (session.run)": (None, lambda: plain.run(["actions"], {"obs": obs})),
        "inference torch eager": (None, lambda: torch_infer(obs)),
        "obs + action state": (None, obs_and_action),
        "estimator update": (None, estimator_update),
        "full step onnxruntime": step_with(ctl, state, ort_infer),
        "full step torch eager": step_with(ctl, state, torch_infer),
        "full step + estimator, onnxruntime": step_with(ectl, estate),
    }
    samples: dict[str, list[np.ndarray]] = {k: [] for k in variants}
    per_round = max(1, a.calls // a.rounds)
    for _ in range(a.rounds):
        for name, (use, fn) in variants.items():
            if use is not None and use[1] is not None:
                use[0]._infer = use[1]
            fn()  # warm
            samples[name].append(timed(fn, per_round, a.between))
    ctl._infer = ort_infer
    assert ctl.mode is Mode.POLICY and ectl.mode is Mode.POLICY, (ctl.fault, ectl.fault)

    res = {k: pct(np.concatenate(v)) for k, v in samples.items()}
    # the quietest round's p99: the tail without most of the other processes' preemption
    best = {k: min(pct(r)[1] for r in v) for k, v in samples.items()}
    cpu = platform.processor() or platform.machine()
    print(f"onboard latency, {a.robot}, default layout {ctl.meta.obs_dim}->"
          f"{'->'.join(str(h) for h in ctl.meta.policy_config.get('actor_hidden', []))}->"
          f"{ctl.meta.action_dim} (estimator layout {ectl.meta.obs_dim} inputs), one thread "
          f"each, {per_round * a.rounds} calls per variant in {a.rounds} interleaved rounds"
          + (f", {a.between} Python additions between calls" if a.between else ""))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} CPU cores ({cpu}), load average {load:.1f}, python "
          f"{platform.python_version()}, torch {torch.__version__}, onnxruntime "
          f"{__import__('onnxruntime').__version__}")
    print(f"{'':38s} {'p50 (us)':>9s} {'p99 (us)':>9s} {'p99 quietest round (us)':>24s}")
    for k, (p50, p99) in res.items():
        print(f"{k:38s} {p50:9.1f} {p99:9.1f} {best[k]:24.1f}")
    ri = res["inference torch eager"][0] / res["inference onnxruntime"][0]
    rs = res["full step torch eager"][0] / res["full step onnxruntime"][0]
    ri99 = res["inference torch eager"][1] / res["inference onnxruntime"][1]
    rs99 = res["full step torch eager"][1] / res["full step onnxruntime"][1]
    print(f"ratio torch / onnxruntime: inference p50 {ri:.2f}x, p99 {ri99:.2f}x; "
          f"full step p50 {rs:.2f}x, p99 {rs99:.2f}x")
    with_est = res["full step + estimator, onnxruntime"]
    share = (with_est[0] - res["full step onnxruntime"][0]) / with_est[0]
    print(f"estimator: one update p50 {res['estimator update'][0]:.1f} us; the step with it "
          f"costs {with_est[0] - res['full step onnxruntime'][0]:+.1f} us p50 more than the "
          f"default step ({100 * share:.0f} % of it); {ectl.decimation} updates per "
          f"{1e3 * ectl.control_dt:.0f} ms policy period: "
          f"{ectl.decimation * res['estimator update'][0]:.1f} us")
    for label, key in (("default layout", "full step onnxruntime"),
                       ("with the estimator", "full step + estimator, onnxruntime")):
        p50, p99 = res[key]
        print(f"goal p99 full step <= 100 us (issue 19), {label}: "
              f"{'met' if p99 <= 100.0 else 'NOT met'} (p50 {p50:.1f} us, p99 {p99:.1f} us, "
              f"quietest round's p99 {best[key]:.1f} us)")
    goal = res["inference onnxruntime"][1] <= 25.0
    print(f"goal p99 inference <= 25 us: {'met' if goal else 'NOT met'} "
          f"({res['inference onnxruntime'][1]:.1f} us); onnxruntime faster than torch eager: "
          f"{'yes' if ri > 1 else 'no'}")
    footprint(onnx_paths["default"])
    return 0


def footprint(onnx_path: Path) -> None:
    """The robot computer's cost of the runtime, in a fresh process beside an empty one:
    import time and peak memory of ``deploy.runtime`` plus a loaded controller."""
    import subprocess

    # peak resident memory of this process image (VmHWM; ru_maxrss would include the parent's
    # at fork time)
    hwm = ("int(next(ln.split()[1] for ln in open('/proc/self/status') "
           "if ln.startswith('VmHWM')))")
    code = ("import sys, time; t = time.perf_counter(); import deploy.runtime as r; "
            "from robot_rl.robot import load_robot; t1 = time.perf_counter(); "
            f"c = r.OnboardController({str(onnx_path)!r}, load_robot({robot_name(onnx_path)!r})); "
            "t2 = time.perf_counter(); "
            f"print(t1 - t, t2 - t1, {hwm}, "
            "int('torch' in sys.modules), int('onnx' in sys.modules))")
    base = f"print({hwm})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    imp, load, rss, torch_in, onnx_in = out.stdout.split()
    empty = subprocess.run([sys.executable, "-c", base], capture_output=True, text=True,
                           check=True).stdout.strip()
    print(f"runtime footprint: import {1e3 * float(imp):.0f} ms, controller load "
          f"{1e3 * float(load):.0f} ms, peak RSS {int(rss) / 1024:.0f} MiB (empty Python "
          f"{int(empty) / 1024:.0f} MiB, ratio {int(rss) / int(empty):.1f}x); torch imported: "
          f"{'yes' if int(torch_in) else 'no'}, onnx imported: {'yes' if int(onnx_in) else 'no'}")


def robot_name(onnx_path: Path) -> str:
    from deploy.onnx_policy import OnnxPolicy

    return OnnxPolicy(onnx_path).meta.robot


if __name__ == "__main__":
    sys.exit(main())
