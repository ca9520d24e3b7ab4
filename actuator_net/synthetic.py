"""Synthetic actuator logs: pendulums driven by a delayed, lagged, saturated PD actuator.

For tests and demos without a robot.  Each joint is an independent pendulum
``I qdd = tau - m g l sin(q) - b qd``; its actuator applies ``kp (q*(t - latency) - q) -
kd qd``, clipped to ``tau_max``, through a first-order lag of time constant ``tc``.  The
log's ``tau`` is that actuator torque (plus noise); its ``kp``/``kd`` are the controller's
gains, so an ideal PD model misses the latency, lag and saturation.
"""

from __future__ import annotations

import numpy as np

from robot_rl.logs import RobotLog
from robot_rl.pd import pd_torque


def pendulum_log(seconds: float = 20.0, log_dt: float = 0.005, physics_dt: float = 0.001,
                 num_joints: int = 1, kp: float = 20.0, kd: float = 0.5, latency: float = 0.01,
                 tc: float = 0.004, tau_max: float = 8.0, seed: int = 0,
                 noise_tau: float = 0.01, path: str = "<synthetic>") -> RobotLog:
    """A :class:`~robot_rl.logs.RobotLog` of ``num_joints`` pendulums (schema of robot_rl.logs)."""
    rng = np.random.default_rng(seed)
    dec = int(round(log_dt / physics_dt))
    n_log = int(round(seconds / log_dt))
    nj = num_joints
    inertia = rng.uniform(0.05, 0.1, nj)
    mgl = rng.uniform(1.0, 3.0, nj)
    damping = rng.uniform(0.05, 0.2, nj)
    # targets: random steps held 0.1-0.4 s plus a sine, around 0
    tgt = np.zeros((n_log, nj))
    for j in range(nj):
        i = 0
        while i < n_log:
            hold = int(rng.uniform(0.1, 0.4) / log_dt)
            tgt[i:i + hold, j] = rng.uniform(-0.8, 0.8)
            i += hold
        tt = np.arange(n_log) * log_dt
        tgt[:, j] += 0.3 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * tt)
    delay = int(round(latency / physics_dt))
    alpha = 1 - np.exp(-physics_dt / tc) if tc > 0 else 1.0
    q, qd, tau = np.zeros(nj), np.zeros(nj), np.zeros(nj)
    sent = [np.zeros(nj)] * (delay + 1)
    rows = {k: [] for k in ("time", "q_target", "q", "qd", "tau")}
    for k in range(n_log):
        rows["time"].append(k * log_dt)
        rows["q_target"].append(tgt[k].copy())
        rows["q"].append(q.copy())
        rows["qd"].append(qd.copy())
        rows["tau"].append(tau + rng.normal(0, noise_tau, nj))
        for _ in range(dec):
            sent.append(tgt[k])
            target = sent.pop(0)
            u = pd_torque(kp, kd, target - q, qd, tau_max)
            tau = tau + alpha * (u - tau)
            qdd = (tau - mgl * np.sin(q) - damping * qd) / inertia
            qd = qd + physics_dt * qdd
            q = q + physics_dt * qd
    arr = {k: np.array(v) for k, v in rows.items()}
    return RobotLog(**arr, robot="pendulum", joint_names=[f"pendulum_{j}" for j in range(nj)],
                    experiment="synthetic", control_dt=log_dt, base_fixed=True,
                    kp=[kp] * nj, kd=[kd] * nj, source="actuator_net.synthetic", path=path,
                    extra={"latency": latency, "tc": tc, "tau_max": tau_max})
