"""Onboard base-velocity estimator: error against ground truth while walking, and its cost.

    python bench/bench_estimator.py [--seconds 60] [--vx 0.8] [--reality default] [--seed N]

Runs the committed A1 policy (``policies/trained/a1/policy.onnx``, which observes base
velocity) with the onboard runtime on the PyBullet stand-in, closed loop: the policy is
fed the estimate of :class:`deploy.estimator.KinematicInertialEstimator`, which sees only
what the stand-in measures (encoders, torque estimates, an IMU with noise, bias and yaw
drift).  Prints, over the policy-controlled part after ``--settle`` seconds:

* RMS error of the estimate against the true base-frame velocity, forward and lateral
  (m/s), per 10 s window (no divergence: the last window is no worse than the first), and
  the mean estimate against the true mean;
* tracking error of the command (ground truth), falls and faults;
* cost (p50/p99 us, one thread) of one estimator update, replayed over the recorded
  states, next to the policy's inference and the controller's whole decision
  (``OnboardController.compute``: checks, one estimator update, observation, inference).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from deploy.estimator import KinematicInertialEstimator
from deploy.runtime import Mode, OnboardController
from deploy.safety import SafetyConfig
from robot_rl.robot import load_robot
from robot_rl.standin import PyBulletStandIn
from robot_rl.standin_model import load_standin_config

POLICY = Path(__file__).resolve().parents[1] / "policies/trained/a1/policy.onnx"


def timed(fn, args: list, repeat: int = 3) -> np.ndarray:
    """Per-call wall times (us) of ``fn(a)`` for each ``a`` in ``args``, ``repeat`` passes."""
    out = []
    clock = time.perf_counter_ns
    for _ in range(repeat):
        for a in args:
            t0 = clock()
            fn(a)
            out.append(clock() - t0)
    return np.asarray(out) / 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="policy control (s) [60]")
    p.add_argument("--vx", type=float, default=0.8, help="forward command (m/s) [0.8]")
    p.add_argument("--yaw", type=float, default=0.0, help="yaw rate command (rad/s) [0]")
    p.add_argument("--settle", type=float, default=2.0, help="excluded after handover (s) [2]")
    p.add_argument("--reality", default="default", help="stand-in config or name [default]")
    p.add_argument("--seed", type=int, default=None, help="stand-in seed [the config's]")
    p.add_argument("--policy", default=str(POLICY))
    a = p.parse_args(argv)
    robot = load_robot("a1")
    seed = {} if a.seed is None else {"seed": a.seed}
    cfg = load_standin_config(a.reality, **seed)
    t_wall = time.perf_counter()
    with PyBulletStandIn(robot, cfg) as iface:
        ctl = OnboardController(a.policy, robot, iface, SafetyConfig(hold_s=0.5, ramp_s=1.0),
                                command=(a.vx, 0.0, a.yaw))
        if ctl.estimator is None:
            print(f"{a.policy}: the policy does not observe base velocity; nothing to estimate")
            return 1
        iface.reset()
        ctl.start()
        states, est, true, cmd_err, obs = [], [], [], [], []
        n = int(round((1.5 + a.seconds) / ctl.control_dt))
        fell = False
        for _ in range(n):
            step = ctl.step()
            states.append(step.state)
            truth = iface.ground_truth()
            if step.mode is Mode.POLICY:
                est.append(ctl.estimator.velocity.copy())
                true.append(truth.base_linvel_b)
                cmd_err.append(truth.base_linvel_b[0] - a.vx)
                obs.append(step.obs)
            if truth.base_pos[2] < 0.5 * robot.nominal_base_height or ctl.mode is Mode.DAMPING:
                fell = truth.base_pos[2] < 0.5 * robot.nominal_base_height
                break
    wall = time.perf_counter() - t_wall
    est, true = np.array(est), np.array(true)
    skip = int(round(a.settle / ctl.control_dt))
    err = (est - true)[skip:]
    rmse = np.sqrt(np.mean(err ** 2, axis=0))
    print(f"estimator on the stand-in ({a.reality}, seed {cfg.seed}), committed policy closed "
          f"loop on the estimate, command vx={a.vx} m/s yaw={a.yaw} rad/s, "
          f"{len(est) * ctl.control_dt:.1f} s of policy control ({wall:.0f} s wall)")
    print(f"falls: {int(fell)}, fault: {ctl.fault or '-'}")
    print(f"velocity RMSE vs ground truth (after {a.settle} s): forward {rmse[0]:.3f} m/s, "
          f"lateral {rmse[1]:.3f} m/s, vertical {rmse[2]:.3f} m/s")
    print(f"mean forward velocity: estimated {est[skip:, 0].mean():.3f}, true "
          f"{true[skip:, 0].mean():.3f} m/s; command tracking error (true) "
          f"{np.mean(np.abs(cmd_err[skip:])):.3f} m/s")
    window = int(round(10.0 / ctl.control_dt))
    rows = [np.sqrt(np.mean(err[i:i + window, :2] ** 2, axis=0))
            for i in range(0, len(err) - window + 1, window)]
    print("RMSE per 10 s window (forward, lateral):",
          ", ".join(f"({r[0]:.3f}, {r[1]:.3f})" for r in rows))
    # cost: replay the recorded states through a fresh estimator (one update each, three
    # passes, restamped so that time keeps advancing by one interface period)
    dt = iface.control_dt
    replay = [type(s)(**{**vars(s), "stamp": k * dt}) for k, s in enumerate(states * 3)]
    fresh = KinematicInertialEstimator(robot)
    fresh.update(replay[0])
    upd = timed(fresh.update, replay[1:], repeat=1)
    infer = timed(ctl.policy, obs[:2000], repeat=3)
    print(f"cost, one thread: estimator update p50 {np.percentile(upd, 50):.1f} us, p99 "
          f"{np.percentile(upd, 99):.1f} us ({ctl.decimation} updates per {ctl.control_dt * 1e3:.0f} "
          f"ms policy period: {ctl.decimation * np.percentile(upd, 50):.1f} us); policy "
          f"inference p50 {np.percentile(infer, 50):.1f} us, p99 {np.percentile(infer, 99):.1f} us")
    goal = rmse[0] <= 0.1 and not fell and ctl.fault is None and rows[-1][0] <= 2 * rows[0][0] + 0.02
    print(f"goal forward RMSE <= 0.1 m/s at {a.vx} m/s, no divergence: "
          f"{'met' if goal else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
