"""Data collection: drive a :class:`RobotInterface` through named experiments, log it.

Experiments (targets are generated at the control rate, kept inside the joint limits):

``suspended``
    Base fixed on a rig, feet in the air.  Every joint is excited around the nominal pose
    by, in turn, a logarithmic chirp (0.2 to 6 Hz), random steps held 0.1 to 0.5 s, and a
    sum of random sines; joints get independent phases and amplitudes.  For the actuator
    network and for joint-level identification (rotor inertia, damping, friction, link mass).
``ground``
    On the floor, with the joint gains raised (kp x4, kd x2: at the default gains an A1
    sags onto its thighs and an Aliengo falls): settle, then slow squats and pitch/roll sways (static load on the legs
    identifies trunk mass and centre of mass), then stepping in place with diagonal leg
    pairs (contacts and slip, for foot friction).

The log's base fields (position, orientation, velocities) come from the interface's
:meth:`~robot_rl.interface.RobotInterface.ground_truth` when it has one: identification
runs in a lab with motion capture, which the stand-in's ground truth plays.  Without it
they come from the IMU (orientation, angular velocity) and position and linear velocity
are left out of the log.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from robot_rl.interface import RobotInterface, RobotState
from robot_rl.logs import RobotLog, write_log
from robot_rl.robot import RobotDescription


def _amplitudes(robot: RobotDescription, fraction: float) -> np.ndarray:
    q0, lo, hi = robot.array("nominal_pose"), robot.array("q_min"), robot.array("q_max")
    return fraction * np.minimum(q0 - lo, hi - q0)


def suspended_targets(robot: RobotDescription, seconds: float, dt: float,
                      rng: np.random.Generator) -> np.ndarray:
    """(T, J) joint targets for the suspended-rig experiment."""
    n, nj = int(round(seconds / dt)), robot.num_joints
    t = np.arange(n) * dt
    amp = _amplitudes(robot, 0.6) * rng.uniform(0.6, 1.0, nj)
    third = max(n // 3, 1)
    out = np.zeros((n, nj))
    # 1. log chirp
    tc = t[:third]
    f0, f1, dur = 0.2, 6.0, max(tc[-1], dt)
    k = (f1 / f0) ** (1 / dur)
    phase = 2 * np.pi * f0 * (k ** tc - 1) / np.log(k)
    offsets = rng.uniform(0, 2 * np.pi, nj)
    out[:third] = np.sin(phase[:, None] + offsets[None, :]) * amp
    # 2. random steps
    i = third
    while i < 2 * third:
        hold = int(rng.uniform(0.1, 0.5) / dt)
        out[i:min(i + hold, 2 * third)] = rng.uniform(-1, 1, nj) * amp
        i += hold
    # 3. sum of random sines
    ts = t[2 * third:]
    for _ in range(4):
        f = rng.uniform(0.3, 4.0, nj)
        out[2 * third:] += 0.3 * amp * np.sin(2 * np.pi * f * ts[:, None] + rng.uniform(0, 6.3, nj))
    return robot.array("nominal_pose") + out


def ground_targets(robot: RobotDescription, seconds: float, dt: float,
                   rng: np.random.Generator) -> np.ndarray:
    """(T, J) joint targets for the standing / stepping-in-place experiment."""
    n, nj = int(round(seconds / dt)), robot.num_joints
    per_leg = nj // len(robot.foot_links)
    t = np.arange(n) * dt
    q0 = robot.array("nominal_pose")
    out = np.tile(q0, (n, 1))
    legs = len(robot.foot_links)
    front = np.array([i < legs // 2 for i in range(legs)])
    left = np.array([i % 2 == 1 for i in range(legs)])
    settle = int(1.0 / dt)
    quarter = (n - settle) // 4
    segs = [settle + quarter * i for i in range(5)]
    for leg in range(legs):
        hip, thigh, calf = leg * per_leg, leg * per_leg + 1, leg * per_leg + 2
        for s, e, kind in ((segs[0], segs[1], "squat"), (segs[1], segs[2], "pitch"),
                           (segs[2], segs[3], "roll"), (segs[3], n, "step")):
            tt = t[s:e] - t[s]
            if kind == "squat":
                a = 0.25 * np.sin(2 * np.pi * 0.4 * tt)
                out[s:e, thigh] += a
                out[s:e, calf] -= 2 * a
            elif kind == "pitch":
                a = 0.2 * np.sin(2 * np.pi * 0.3 * tt) * (1 if front[leg] else -1)
                out[s:e, thigh] += a
                out[s:e, calf] -= 1.5 * a
            elif kind == "roll":
                a = 0.15 * np.sin(2 * np.pi * 0.3 * tt) * (1 if left[leg] else -1)
                out[s:e, hip] += a
                out[s:e, thigh] += 0.5 * a
                out[s:e, calf] -= a
            else:
                diag = (leg in (0, 3))
                ph = 2 * np.pi * 1.5 * tt + (0 if diag else np.pi)
                lift = np.clip(np.sin(ph), 0, None) * rng.uniform(0.25, 0.35)
                out[s:e, thigh] += lift
                out[s:e, calf] -= 2 * lift
    return np.clip(out, robot.array("q_min") + 0.05, robot.array("q_max") - 0.05)


#: experiment -> (target generator, base fixed on the rig, (kp, kd) multipliers of the gains)
EXPERIMENTS: dict[str, tuple[Callable, bool, tuple[float, float]]] = {
    "suspended": (suspended_targets, True, (1.0, 1.0)),
    "ground": (ground_targets, False, (4.0, 2.0)),
}


def _base_record(iface: RobotInterface, st: RobotState) -> dict[str, np.ndarray | None]:
    """Base state for the log: motion capture (the interface's ground truth) if there is
    one, else the IMU's orientation and angular velocity."""
    try:
        gt = iface.ground_truth()
    except NotImplementedError:
        return {"base_pos": None, "base_quat": st.base_quat, "base_linvel": None,
                "base_angvel": st.base_angvel}
    return {"base_pos": gt.base_pos, "base_quat": gt.base_quat, "base_linvel": gt.base_linvel,
            "base_angvel": gt.base_angvel}


def run_experiment(iface: RobotInterface, experiment: str, seconds: float, seed: int = 0,
                   progress: bool = True, source: str = "") -> RobotLog:
    """Drive ``iface`` through ``experiment`` for ``seconds``; return the log (in memory)."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; known: {sorted(EXPERIMENTS)}")
    if seconds <= 0:
        raise ValueError(f"--seconds must be positive, got {seconds}")
    make, base_fixed, (kp_mul, kd_mul) = EXPERIMENTS[experiment]
    robot, dt = iface.robot, iface.control_dt
    targets = make(robot, seconds, dt, np.random.default_rng(seed))
    kp, kd = robot.array("kp") * kp_mul, robot.array("kd") * kd_mul
    if (kp_mul, kd_mul) != (1.0, 1.0):
        iface.set_gains(kp, kd)
    st = iface.reset()
    rows: dict[str, list] = {k: [] for k in ("time", "q_target", "q", "qd", "tau", "base_pos",
                                              "base_quat", "base_linvel", "base_angvel")}
    for k in tqdm(range(len(targets)), desc=f"collect {experiment}", unit="step",
                  disable=not progress, leave=False):
        iface.send_targets(targets[k])
        rows["time"].append(st.stamp)
        rows["q_target"].append(targets[k])
        for name in ("q", "qd", "tau"):
            rows[name].append(getattr(st, name))
        for name, value in _base_record(iface, st).items():
            rows[name].append(value)
        st = iface.step()
    arrays = {k: np.array(v) for k, v in rows.items() if v and v[0] is not None}
    return RobotLog(
        **arrays, robot=robot.name, joint_names=list(robot.joint_names), experiment=experiment,
        control_dt=dt, base_fixed=base_fixed, kp=kp.tolist(), kd=kd.tolist(),
        source=source or type(iface).__name__, extra={"seed": seed, "seconds": seconds},
    )


def collect(robot: RobotDescription, experiment: str, seconds: float, out: str | Path,
            standin_config=None, seed: int = 0, progress: bool = True) -> Path:
    """Run ``experiment`` on the PyBullet stand-in and write ``<out>/<experiment>.npz``.

    If ``out`` ends in ``.npz`` it is the file name.  The write is atomic: an error or an
    interruption leaves no log behind.
    """
    from robot_rl.standin import PyBulletStandIn

    out = Path(out)
    path = out if out.suffix == ".npz" else out / f"{experiment}.npz"
    base_fixed = EXPERIMENTS[experiment][1] if experiment in EXPERIMENTS else False
    with PyBulletStandIn(robot, standin_config, suspended=base_fixed) as iface:
        log = run_experiment(iface, experiment, seconds, seed=seed, progress=progress,
                             source=f"PyBulletStandIn(seed={iface.cfg.seed})")
    return write_log(path, log)
