"""Data from the operating regime: run a policy on the robot under random commands and
pushes, and log it in the project's log schema (experiment ``walking``).

Stages 1 and 2 identify from rig and ground experiments, whose joint speeds, loads and
contact patterns are not those of walking; a network that never saw walking extrapolates
there.  This experiment closes the loop as practitioners do: deploy the current policy,
log what the robot did, re-identify.  The onboard controller drives the robot exactly as
in deployment (start sequence, safety checks, one-thread onnxruntime); a recording proxy
logs every step of the robot interface (its rate, not the policy's), with the target the
joints were tracking, what the robot measured, and the base state from motion capture
(the interface's ground truth) where there is one.  Commands change every 2-4 s, drawn from
the policy's training ranges (10 % standing); the base is kicked at ``push_interval_s``.
The log stops at a fall (a log is one continuous stretch of time).

On a real robot: the same, through the robot's bridge, with its motion capture or without
base position and velocity (sysid then uses the joint data only).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from deploy.runtime import Mode, OnboardController
from robot_rl.interface import GroundTruth, RobotInterface, RobotState
from robot_rl.logs import RobotLog, write_log
from robot_rl.robot import RobotDescription

#: command ranges (forward m/s, lateral m/s, yaw rate rad/s) and the standing fraction
COMMAND_RANGES = ((-0.8, 0.8), (-0.3, 0.3), (-0.6, 0.6))
STAND_FRACTION = 0.1


class RecordingInterface(RobotInterface):
    """Passes everything to ``inner`` and records each step: the state the controller read,
    the target being tracked, and the ground truth at that instant."""

    def __init__(self, inner: RobotInterface):
        self.inner, self.robot, self.control_dt = inner, inner.robot, inner.control_dt
        self.rows: dict[str, list] = {k: [] for k in ("time", "q_target", "q", "qd", "tau",
                                                      "base_pos", "base_quat", "base_linvel",
                                                      "base_angvel")}
        self._last: RobotState | None = None
        self._target = inner.robot.array("nominal_pose")

    def reset(self) -> RobotState:
        self._last = self.inner.reset()
        return self._last

    def read_state(self) -> RobotState:
        self._last = self.inner.read_state()
        return self._last

    def send_targets(self, q_target: np.ndarray) -> None:
        self._target = np.array(q_target, dtype=np.float64)
        self.inner.send_targets(q_target)

    def step(self) -> RobotState:
        st, gt = self._last, self.ground_truth()
        r = self.rows
        r["time"].append(st.stamp)
        r["q_target"].append(self._target)
        for k in ("q", "qd", "tau"):
            r[k].append(np.asarray(getattr(st, k), dtype=np.float64))
        r["base_pos"].append(gt.base_pos)
        r["base_quat"].append(gt.base_quat)
        r["base_linvel"].append(gt.base_linvel)
        r["base_angvel"].append(gt.base_angvel)
        self._last = self.inner.step()
        return self._last

    def ground_truth(self) -> GroundTruth:
        return self.inner.ground_truth()

    def push(self, delta_v: np.ndarray) -> None:
        self.inner.push(delta_v)

    def set_gains(self, kp: np.ndarray, kd: np.ndarray) -> None:
        self.inner.set_gains(kp, kd)

    def close(self) -> None:
        self.inner.close()


def run_walking(ctl: OnboardController, rec: RecordingInterface, seconds: float, seed: int,
                push_interval_s: float = 4.0, push_speed: float = 0.3,
                progress: bool = True) -> dict:
    """Drive ``rec`` with ``ctl`` for ``seconds`` of policy control; returns a summary."""
    rng = np.random.default_rng(seed)
    robot = rec.robot
    rec.reset()
    ctl.start()
    dt = ctl.control_dt
    n = int(round(seconds / dt)) + int(round((ctl.safety.hold_s + ctl.safety.ramp_s) / dt))
    next_cmd, next_push, fell = 0.0, push_interval_s, False
    commands = []
    for _ in tqdm(range(n), desc="collect walking", unit="step", disable=not progress,
                  leave=False):
        if ctl.mode is Mode.POLICY:
            t = ctl.time
            if t >= next_cmd:
                cmd = (0.0, 0.0, 0.0) if rng.random() < STAND_FRACTION else \
                    tuple(float(rng.uniform(*r)) for r in COMMAND_RANGES)
                ctl.set_command(*cmd)
                commands.append((round(t, 3), cmd))
                next_cmd = t + rng.uniform(2.0, 4.0)
            if push_interval_s > 0 and t >= next_push and hasattr(rec.inner, "push"):
                a = rng.uniform(0, 2 * math.pi)
                rec.push(push_speed * np.array([math.cos(a), math.sin(a), 0.0]))
                next_push = t + push_interval_s
        ctl.step()
        gt = rec.ground_truth()
        up_z = 1.0 - 2.0 * (gt.base_quat[1] ** 2 + gt.base_quat[2] ** 2)
        if gt.base_pos[2] < 0.5 * robot.nominal_base_height or up_z < 0.5:
            fell = True
            break
        if ctl.mode is Mode.DAMPING:
            break
    return {"commands": commands, "fell": fell, "fault": ctl.fault}


def collect_walking(policy: str | Path, robot: RobotDescription, seconds: float,
                    out: str | Path, standin_config=None, seed: int = 0,
                    progress: bool = True) -> Path:
    """Run ``policy`` on the PyBullet stand-in and write ``<out>/walking.npz`` (atomic)."""
    from robot_rl.standin import PyBulletStandIn

    out = Path(out)
    path = out if out.suffix == ".npz" else out / "walking.npz"
    with PyBulletStandIn(robot, standin_config) as iface:
        rec = RecordingInterface(iface)
        ctl = OnboardController(policy, robot, rec)
        info = run_walking(ctl, rec, seconds, seed, progress=progress)
        source = f"PyBulletStandIn(seed={iface.cfg.seed}) driven by {Path(policy).name}"
    rows = rec.rows
    if len(rows["time"]) < 10:
        raise ValueError(f"{policy}: the robot fell or faulted before the log had 10 samples")
    log = RobotLog(**{k: np.array(v) for k, v in rows.items()}, robot=robot.name,
                   joint_names=list(robot.joint_names), experiment="walking",
                   control_dt=rec.control_dt, base_fixed=False, kp=robot.array("kp").tolist(),
                   kd=robot.array("kd").tolist(), source=source,
                   extra={"seed": seed, "seconds": seconds, "policy": str(policy),
                          "fell": info["fell"], "fault": info["fault"],
                          "commands": [[t, list(c)] for t, c in info["commands"]]})
    if info["fell"] or info["fault"]:
        print(f"note: the walking log stops at {rows['time'][-1]:.1f} s: "
              f"{'the robot fell' if info['fell'] else info['fault']}")
    return write_log(path, log)
