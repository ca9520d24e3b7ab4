"""Held-out validation: replay logged torques open loop in MuJoCo, compare joint trajectories.

The suspended log's measured actuator torques drive the fixed-base MuJoCo model (linearly
interpolated, 1 ms steps, shifted by the identified torque time offset) over short windows,
each started from the logged joint state; the joint-angle error against the log over all
windows is the model's RMSE.  No controller is in the loop, so model errors (missing
friction, inertia, mass) show up directly and are not corrected by feedback.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from robot_rl.logs import RobotLog
from robot_rl.robot import RobotDescription
from robot_rl.sim_mujoco import index
from sysid.signals import segments


def holdout_mask(n: int, dt: float, fraction: float, block_s: float) -> np.ndarray:
    """True for held-out samples: every k-th block of ``block_s`` (k = 1 / fraction)."""
    mask = np.zeros(n, dtype=bool)
    if fraction <= 0:
        return mask
    block = max(int(round(block_s / dt)), 1)
    k = max(int(round(1.0 / fraction)), 2)
    for b, start in enumerate(range(0, n, block)):
        if b % k == k // 2:
            mask[start:start + block] = True
    if not mask.any():  # log shorter than k // 2 + 1 blocks: hold out its end
        mask[n - max(int(round(fraction * n)), 1):] = True
    return mask


@dataclass
class Replay:
    """Replay of one model on held-out windows."""

    rmse: float  # rad, all joints and windows
    rmse_per_joint: np.ndarray  # (J,) rad
    starts: list[int]  # sample index where each window starts
    q_sim: np.ndarray  # (windows, n, J) simulated joint angles at samples start+1 .. start+n
    windows: int


def window_starts(mask: np.ndarray, n: int) -> list[int]:
    """Non-overlapping window starts inside the True runs of ``mask``."""
    starts = []
    for s, e in segments(mask, n + 1):
        starts.extend(range(s, e - n, n))
    return starts


def replay(model: mujoco.MjModel, robot: RobotDescription, log: RobotLog, mask: np.ndarray,
           window_s: float, time_shift: np.ndarray | None = None,
           encoder_offset: np.ndarray | None = None) -> Replay:
    """Drive ``model`` (fixed base) with ``log.tau`` over windows inside ``mask``; with
    ``encoder_offset`` (J,) the model's joints start at, and are compared as, the logged
    angle minus the offset (the encoders read q_true + offset)."""
    idx = index(model, robot)
    if idx.floating:
        raise ValueError("replay needs the fixed-base (suspended) model")
    d = mujoco.MjData(model)
    h = model.opt.timestep
    dt = log.control_dt
    n = max(int(round(window_s / dt)), 1)
    sub = max(int(round(dt / h)), 1)
    shift = np.zeros(robot.num_joints) if time_shift is None else np.asarray(time_shift)
    offset = np.zeros(robot.num_joints) if encoder_offset is None else np.asarray(encoder_offset)
    starts = window_starts(mask, n)
    if not starts:
        raise ValueError(f"{log.path}: no held-out stretch of {window_s} s to replay")
    sims = np.zeros((len(starts), n, robot.num_joints))
    for w, s in enumerate(starts):
        t = log.time[s] + (np.arange(n * sub) + 0.5) * (dt / sub)
        u = np.stack([np.interp(t + shift[j], log.time, log.tau[:, j])
                      for j in range(robot.num_joints)], axis=1)
        mujoco.mj_resetData(model, d)
        d.qpos[idx.qpos] = log.q[s] - offset
        d.qvel[idx.qvel] = log.qd[s]
        mujoco.mj_forward(model, d)
        for k in range(n):
            for i in range(sub):
                d.ctrl[idx.actuator] = u[k * sub + i]
                mujoco.mj_step(model, d)
            sims[w, k] = d.qpos[idx.qpos] + offset
    meas = np.stack([log.q[s + 1:s + n + 1] for s in starts])
    err = sims - meas
    if not np.all(np.isfinite(err)):
        raise FloatingPointError(f"{log.path}: replay diverged (NaN) in the MuJoCo model")
    return Replay(rmse=float(np.sqrt(np.mean(err ** 2))),
                  rmse_per_joint=np.sqrt(np.mean(err ** 2, axis=(0, 1))),
                  starts=starts, q_sim=sims, windows=len(starts))
