"""Does the actuator network extrapolate where a policy walks?  Its torque error on logs of
each policy walking on the robot, against its error on the rig log it learnt from.

Stage 2 learns from the suspended rig; a policy's gait decides which joint states the
network meets in the training world and in the fidelity and judge simulators.  Where a
policy walks on the robot but falls in the identified simulator, the question is whether the
network's torques are wrong for that gait (inputs outside what the rig showed) or the
closed loop amplifies small errors.  Per policy this logs ``--seconds`` of walking on the
stand-in (``deploy.walking_log``: the onboard controller, random commands and pushes),
feeds the logged (target, position, velocity) to the network at the log's rate and
compares its torque with the logged torque estimate::

    python bench/diag_actuator_regime.py --run runs/x --standin-config underdamped_drivers \\
        --policies runs/x/select/identified.onnx runs/x/select/randomized.onnx

Printed per log: torque RMSE and mean signed error per joint kind (hip, thigh, calf), the
data sheet's ideal PD on the same rows for scale, and the share of rows whose position
error or velocity lies outside the rig log's 0.5-99.5 percentile range of that joint (the
network's experience).  The rig row is the actuator stage's own held-out tail.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from actuator_net.data import position, validation_start
from actuator_net.importers import read_robot_log
from actuator_net.runtime import ActuatorNetEvaluator
from robot_rl.config import seed_argument
from robot_rl.robot import load_robot
from robot_rl.standin_model import load_standin_config

KINDS = ("hip", "thigh", "calf")


def network_torque(checkpoint: Path, target: np.ndarray, q: np.ndarray, qd: np.ndarray,
                   dt: float, joint_names: list[str]) -> np.ndarray:
    """(T, J) torque of the network driven row by row by a logged (T, J) sequence."""
    ev = ActuatorNetEvaluator(checkpoint, num_envs=1, physics_dt=dt, joint_names=joint_names,
                              num_threads=1)
    ev.reset()
    out = np.empty_like(q)
    for t in range(q.shape[0]):
        out[t] = ev(target[t][None], q[t][None], qd[t][None])[0]
    return out


def rows_outside(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of rows with any joint outside [lo, hi] (per joint)."""
    return float(np.mean(np.any((x < lo) | (x > hi), axis=1)))


def describe(name: str, s, tau_net: np.ndarray, kp: np.ndarray, kd: np.ndarray, first: int,
             ranges: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    rows = slice(first, None)
    err = tau_net[rows] - s.tau[rows]
    pd = kp * s.pos_error[rows] - kd * s.vel[rows]
    out = {"log": name, "rows": int(err.shape[0])}
    for k, kind in enumerate(KINDS):
        cols = np.arange(k, s.num_joints, 3)
        out[kind] = {"rmse": float(np.sqrt(np.mean(err[:, cols] ** 2))),
                     "bias": float(np.mean(err[:, cols])),
                     "pd_rmse": float(np.sqrt(np.mean((pd[:, cols] - s.tau[rows][:, cols]) ** 2))),
                     "tau_rms": float(np.sqrt(np.mean(s.tau[rows][:, cols] ** 2)))}
    out["rmse"] = float(np.sqrt(np.mean(err ** 2)))
    out["outside_pos_error"] = rows_outside(s.pos_error[rows], *ranges["pos_error"])
    out["outside_vel"] = rows_outside(s.vel[rows], *ranges["vel"])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="pipeline run folder (logs/, actuator/)")
    p.add_argument("--policies", nargs="+", required=True, help="ONNX policies to log walking")
    p.add_argument("--standin-config", default=None, help="the run's reality")
    p.add_argument("--robot", default="a1")
    p.add_argument("--seconds", type=float, default=20.0, help="walking log per policy (s) [20]")
    p.add_argument("--seed", type=seed_argument, default=1000, help="walking log seed [1000]")
    p.add_argument("--json", default=None, help="write the figures here")
    a = p.parse_args(argv)
    from deploy.walking_log import collect_walking

    run = Path(a.run)
    robot = load_robot(a.robot)
    ck = run / "actuator" / "actuator.pt"
    metrics = json.loads((run / "actuator" / "metrics.json").read_text())
    kp, kd = robot.array("kp"), robot.array("kd")
    rig = read_robot_log(run / "logs" / "suspended.npz", robot)
    dt = rig.sample_period()
    ranges = {f: (np.percentile(getattr(rig, f), 0.5, axis=0),
                  np.percentile(getattr(rig, f), 99.5, axis=0)) for f in ("pos_error", "vel")}
    logs = [("rig (held-out tail)", rig, validation_start(rig, metrics["split"]["val_fraction"]))]
    with tempfile.TemporaryDirectory() as tmp:
        for i, pol in enumerate(a.policies):
            path = collect_walking(pol, robot, a.seconds, Path(tmp) / f"w{i}.npz",
                                   standin_config=load_standin_config(a.standin_config),
                                   seed=a.seed, progress=False)
            logs.append((f"walking: {Path(pol).name}", read_robot_log(path, robot), 0))
        results = []
        for name, s, first in logs:
            q = position(s)  # logged, or integrated from the velocity
            tau = network_torque(ck, s.pos_error + q, q, s.vel, s.sample_period(), s.joint_names)
            first = max(first, 50)  # the history fills
            results.append(describe(name, s, tau, kp, kd, first, ranges))
    print(f"actuator network of {run} against logged torque estimates (N m), log rate "
          f"{1 / dt:.0f} Hz")
    print(f"{'log':34s} {'rows':>6s} " + " ".join(f"{k + ' rmse/bias/pd':>22s}" for k in KINDS)
          + f" {'outside pos_err':>15s} {'outside vel':>11s}")
    for r in results:
        cells = " ".join(f"{r[k]['rmse']:6.3f}/{r[k]['bias']:+6.3f}/{r[k]['pd_rmse']:6.3f}"
                         .rjust(22) for k in KINDS)
        print(f"{r['log'][:34]:34s} {r['rows']:6d} {cells} {r['outside_pos_error']:15.1%} "
              f"{r['outside_vel']:11.1%}")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
