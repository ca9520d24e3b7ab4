"""Joint-level identification from suspended (fixed-base) logs.

With the base on a rig the legs are independent chains, and for the joints of leg l::

    tau_meas,j(t + d_l) = s_l * ID_j(q - o, qd, qdd)  +  J_j qdd_j  +  b_j qd_j  +  f_j tanh(qd_j / v)

``ID`` is MuJoCo's inverse dynamics (``mj_inverse``) of the nominal URDF model on the logged
q, qd and qdd (central difference of qd); since a leg's inverse dynamics is linear in its
inertial parameters, scaling every mass and inertia of leg l by s_l scales ID by s_l
exactly.  Rotor inertia J_j (MuJoCo armature), viscous damping b_j and Coulomb friction f_j
enter linearly.  ``o`` are the encoders' zero offsets (the encoder reads q_true + o_k):
to first order s_l ID(q - o) = s_l ID(q) - sum_k dID/dq_k (s_l o_k), linear in c_k = s_l o_k
(``dID/dq_k`` by central differences of ``mj_inverse``; o_k = c_k / s_l, the neglected term
is second order, 1e-3 of the gravity torque at 0.05 rad).  So everything is one linear
least-squares problem per leg (3 joints x T equations, 14 unknowns).  ``d_l`` is a nuisance time offset between the torque and encoder
samples (a 0.5 ms offset looks like 0.01 N m s/rad of damping with kp = 20 N m/rad); it
enters linearly through tau(t + d) ~ tau(t) + d dtau/dt.

The torque is sampled once per control period while the motion integrates it over the
period, so the raw equation error is dominated by the torque's sub-sample variation: the
same zero-phase low-pass (10 Hz) is applied to the torque and to every regressor column
(computed from the raw signals first, so the nonlinear Coulomb column is filtered exactly
like the torque it explains), which keeps the equation exact for the linear terms.

Uncertainty: ``std_statistical`` is a moving-block bootstrap (0.5 s blocks, residuals are
correlated in time; the LS formula sigma^2 (A^T A)^-1 would be ~3x too small), and
``std_systematic`` is the RMS change of the estimate across analysis variants the data
cannot decide between (filter cut-off 5/20 Hz, Coulomb velocity 0.01/0.05 rad/s, no time
offset), plus |b d| for the armature: a damping torque delayed like the torque samples,
b qd(t - d) = b qd - b d qdd, is indistinguishable from rotor inertia.  The reported std is
their quadrature sum.  Joints whose filtered speed RMS is
below ``min_speed_rms`` are not excited: their parameters come out as not identifiable.
Equations of a joint at its position limit (the limit's torque is not measured) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robot_rl.logs import RobotLog
from robot_rl.robot import RobotDescription
from robot_rl.sim_mujoco import index
from sysid.apply import true_angles
from sysid.config import JointFitConfig
from sysid.model import JOINT_KINDS, fixed_base_model, inverse_dynamics, leg_joints
from sysid.signals import block_bootstrap, block_normal_equations, lowpass, solve, trimmed

#: central-difference step of dID/dq (rad)
ENCODER_EPS = 1e-4
#: an encoder offset above this (rad) is refined by a second fit about the corrected angles
REFIT_OFFSET = 0.02


@dataclass
class Estimate:
    """One parameter's estimate from the data."""

    value: float
    std_statistical: float
    std_systematic: float
    excited: bool = True
    reason: str = ""

    @property
    def std(self) -> float:
        return float(np.hypot(self.std_statistical, self.std_systematic))


@dataclass
class JointFit:
    """Result of :func:`fit_joints`."""

    estimates: dict[str, Estimate]
    time_shift: dict[str, float] = field(default_factory=dict)  # per leg (foot link), s
    residual_rms: dict[str, float] = field(default_factory=dict)  # per joint, N m (filtered)
    seconds: float = 0.0  # training data used (s)


@dataclass
class _Raw:
    dt: float
    tau: np.ndarray
    qd: np.ndarray
    qdd: np.ndarray
    id: np.ndarray
    did: np.ndarray  # (T, J, per leg): dID_j / dq_k for the joints k of j's leg
    train: np.ndarray
    near_limit: np.ndarray  # (T, J) joint at (or filtered from) its position limit


def _near_limit(log: RobotLog, robot: RobotDescription, margin: float, spread: int) -> np.ndarray:
    """(T, J): within ``margin`` of a position limit, dilated by ``spread`` samples (the
    limit's contact torque is not in the model, and the filter smears it over neighbours)."""
    at = (log.q < robot.array("q_min") + margin) | (log.q > robot.array("q_max") - margin)
    if spread > 0 and at.any():
        kernel = np.ones(2 * spread + 1)
        at = np.stack([np.convolve(c.astype(float), kernel, mode="same") > 0 for c in at.T], axis=1)
    return at


def _raw(log: RobotLog, robot: RobotDescription, train: np.ndarray, cfg: JointFitConfig) -> _Raw:
    model = fixed_base_model(robot)
    idx = index(model, robot)
    dt = log.control_dt
    qdd = np.gradient(log.qd, log.time, axis=0)
    n = log.num_samples
    qpos = np.tile(model.qpos0, (n, 1))
    qvel, qacc = np.zeros((n, model.nv)), np.zeros((n, model.nv))
    qpos[:, idx.qpos], qvel[:, idx.qvel], qacc[:, idx.qvel] = log.q, log.qd, qdd
    ident = inverse_dynamics(model, qpos, qvel, qacc)[:, idx.qvel]
    # dID/dq within each leg; on the rig the legs are independent chains, so the m-th joint
    # of every leg is moved at once (2 x 3 passes instead of 2 x 12)
    legs = leg_joints(robot)
    did = np.zeros((n, robot.num_joints, len(legs[0])))
    for m in range(len(legs[0])):
        moved = idx.qpos[[int(joints[m]) for joints in legs]]
        base = qpos[:, moved].copy()
        qpos[:, moved] = base + ENCODER_EPS
        up = inverse_dynamics(model, qpos, qvel, qacc)[:, idx.qvel]
        qpos[:, moved] = base - ENCODER_EPS
        down = inverse_dynamics(model, qpos, qvel, qacc)[:, idx.qvel]
        qpos[:, moved] = base
        did[:, :, m] = (up - down) / (2 * ENCODER_EPS)
    near = _near_limit(log, robot, cfg.limit_margin, int(round(1.0 / (cfg.filter_hz * dt))))
    return _Raw(dt, log.tau, log.qd, qdd, ident, did, train, near)


def _columns(raw: _Raw, cutoff: float, vel: float) -> dict[str, np.ndarray]:
    f = lambda x: lowpass(x, cutoff, raw.dt)  # noqa: E731
    tau = f(raw.tau)
    return {"tau": tau, "dtau": np.gradient(tau, raw.dt, axis=0), "id": f(raw.id),
            "did": f(raw.did.reshape(len(raw.did), -1)).reshape(raw.did.shape),
            "qdd": f(raw.qdd), "qd": f(raw.qd), "fric": f(np.tanh(raw.qd / vel))}


def _design(cols: list[dict], rows: list[np.ndarray], joints: list[int], shift: bool,
            raws: list[_Raw]):
    """Rows (n, |joints|, p) and targets (n, |joints|) of one leg's regression; equations of
    a joint near its position limit are zeroed (they drop out of the least squares).
    Unknowns: the leg's mass scale, (armature, damping, Coulomb) per joint, s_l x the
    encoder offset per joint, the time offset (with ``shift``)."""
    nj = len(joints)
    p = 1 + 4 * nj + int(shift)
    a_all, y_all = [], []
    for c, r, raw in zip(cols, rows, raws):
        n = int(r.sum())
        a = np.zeros((n, nj, p))
        for k, j in enumerate(joints):
            a[:, k, 0] = c["id"][r, j]
            a[:, k, 1 + 3 * k] = c["qdd"][r, j]
            a[:, k, 2 + 3 * k] = c["qd"][r, j]
            a[:, k, 3 + 3 * k] = c["fric"][r, j]
            for m, jm in enumerate(joints):  # legs own consecutive joints
                a[:, k, 1 + 3 * nj + m] = -c["did"][r, j, jm % c["did"].shape[2]]
            if shift:
                a[:, k, -1] = -c["dtau"][r, j]
        y = np.stack([c["tau"][r, j] for j in joints], axis=1)
        off = raw.near_limit[r][:, joints]
        a[off], y[off] = 0.0, 0.0
        a_all.append(a)
        y_all.append(y)
    return np.concatenate(a_all), np.concatenate(y_all)


def _weighted_ls(a: np.ndarray, y: np.ndarray, iterations: int = 2):
    """LS with one weight per joint (1 / residual RMS), re-estimated ``iterations`` times."""
    w = np.ones(a.shape[1])
    for _ in range(iterations):
        aw, yw = a / w[None, :, None], y / w[None, :]
        x = solve(np.einsum("trp,trq->pq", aw, aw), np.einsum("trp,tr->p", aw, yw))
        res = y - np.einsum("trp,p->tr", a, x)
        used = np.maximum(np.sum(np.any(a != 0, axis=2), axis=0), 1)
        w = np.sqrt(np.sum(res ** 2, axis=0) / used) + 1e-9
    return x, w, aw, yw


def fit_joints(logs: list[RobotLog], train: list[np.ndarray], robot: RobotDescription,
               cfg: JointFitConfig, bootstrap: int, block_s: float,
               rng: np.random.Generator,
               offset_bounds: tuple[float, float] = (-0.2, 0.2)) -> JointFit:
    """Identify armature, damping, Coulomb friction, encoder offset per joint and mass
    scale per leg.  The offsets enter linearized about the logged angles; where one the data
    determine comes out larger than ``REFIT_OFFSET`` the fit is repeated once about the
    corrected angles (a Gauss-Newton step: the second-order error, 5 % of a 0.1 rad offset,
    drops out); ``offset_bounds`` (rad) clip the offsets that move the angles."""
    fit = _fit_joints(logs, train, robot, cfg, bootstrap, block_s, rng)
    est = [fit.estimates[f"encoder_offset/{j}"] for j in robot.joint_names]
    o = np.nan_to_num(np.array([e.value for e in est]))  # not excited: nan -> 0
    std = np.array([e.std for e in est])
    # only offsets the first fit determines move the angles, within their physical bounds
    o = np.where(std <= 0.5 * np.maximum(np.abs(o), REFIT_OFFSET), np.clip(o, *offset_bounds), 0.0)
    if np.abs(o).max() <= REFIT_OFFSET:
        return fit
    fit = _fit_joints([true_angles(log, o) for log in logs], train, robot, cfg, bootstrap,
                      block_s, rng)
    for j, x in zip(robot.joint_names, o):
        fit.estimates[f"encoder_offset/{j}"].value += float(x)
    return fit


def _fit_joints(logs: list[RobotLog], train: list[np.ndarray], robot: RobotDescription,
                cfg: JointFitConfig, bootstrap: int, block_s: float,
                rng: np.random.Generator) -> JointFit:
    raws = [_raw(log, robot, m, cfg) for log, m in zip(logs, train)]
    variants = [(cfg.filter_hz, cfg.coulomb_velocity, cfg.time_shift)]
    variants += [(f, cfg.coulomb_velocity, cfg.time_shift) for f in cfg.variant_filter_hz]
    variants += [(cfg.filter_hz, v, cfg.time_shift) for v in cfg.variant_coulomb_velocity]
    if cfg.variant_no_time_shift and cfg.time_shift:
        variants.append((cfg.filter_hz, cfg.coulomb_velocity, False))
    cols = {(f, v): [_columns(r, f, v) for r in raws] for f, v, _ in variants}
    main = cols[(cfg.filter_hz, cfg.coulomb_velocity)]
    rows = [trimmed(r.train, int(round(cfg.trim_s / r.dt)), 1) for r in raws]
    dt = raws[0].dt
    seconds = float(sum(r.sum() for r in rows) * dt)

    speed_rms = np.sqrt(np.mean(np.concatenate([c["qd"][r] for c, r in zip(main, rows)]) ** 2, axis=0))
    est: dict[str, Estimate] = {}
    shifts: dict[str, float] = {}
    resid: dict[str, float] = {}
    for leg, joints in enumerate(leg_joints(robot)):
        foot = robot.foot_links[leg]
        excited = [int(j) for j in joints if speed_rms[j] >= cfg.min_speed_rms]
        for j in joints:
            if int(j) not in excited:
                why = (f"joint not excited (filtered speed RMS {speed_rms[j]:.3g} rad/s < "
                       f"{cfg.min_speed_rms})")
                for kind in JOINT_KINDS:
                    est[f"{kind}/{robot.joint_names[j]}"] = Estimate(np.nan, np.inf, np.inf, False, why)
        if not excited:
            est[f"leg_mass_scale/{foot}"] = Estimate(np.nan, np.inf, np.inf, False,
                                                     "no joint of this leg is excited")
            continue
        a, y = _design(main, rows, excited, cfg.time_shift, raws)
        x, w, aw, yw = _weighted_ls(a, y)
        grams, rhss = block_normal_equations(aw, yw, max(int(round(block_s / dt)), 1))
        boot = block_bootstrap(grams, rhss, bootstrap, rng)
        stat = boot.std(axis=0)
        var_x = []
        for f, v, shift in variants[1:]:
            av, yv = _design(cols[(f, v)], rows, excited, shift, raws)
            xv = _weighted_ls(av, yv)[0]
            if cfg.time_shift and not shift:  # the time offset itself has no variant here
                xv = np.r_[xv, x[-1]]
            var_x.append(xv)
        sys_std = np.sqrt(np.mean((np.array(var_x) - x) ** 2, axis=0)) if var_x else 0 * x
        est[f"leg_mass_scale/{foot}"] = Estimate(float(x[0]), float(stat[0]), float(sys_std[0]))
        # encoder offsets: o_k = c_k / s_l, per bootstrap replicate and per variant
        io = slice(1 + 3 * len(excited), 1 + 4 * len(excited))
        off = x[io] / x[0]
        off_stat = (boot[:, io] / boot[:, :1]).std(axis=0)
        off_sys = (np.sqrt(np.mean([(xv[io] / xv[0] - off) ** 2 for xv in var_x], axis=0))
                   if var_x else 0 * off)
        delay = abs(x[-1]) if cfg.time_shift else 0.0
        for k, j in enumerate(excited):
            name = robot.joint_names[j]
            # b qd(t - d) = b qd - b d qdd: a damping torque as late as the torque samples
            # (d = the fitted offset) cannot be told from rotor inertia
            i_arm, i_damp = 1 + 3 * k, 2 + 3 * k
            sys_std[i_arm] = np.hypot(sys_std[i_arm], x[i_damp] * delay)
            for o, kind in enumerate(("armature", "damping", "coulomb")):
                i = 1 + 3 * k + o
                est[f"{kind}/{name}"] = Estimate(float(x[i]), float(stat[i]), float(sys_std[i]))
            est[f"encoder_offset/{name}"] = Estimate(float(off[k]), float(off_stat[k]),
                                                     float(off_sys[k]))
            resid[name] = float(w[k])
        if cfg.time_shift:
            shifts[foot] = float(x[-1])
    return JointFit(estimates=est, time_shift=shifts, residual_rms=resid, seconds=seconds)
