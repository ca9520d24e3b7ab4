"""Trunk mass, trunk centre of mass and foot friction from ground (floating-base) logs.

Contact forces are not logged, so they are eliminated.  With the legs identified first
(mass scales, armature, damping, Coulomb friction from the suspended logs), MuJoCo's
floating-base inverse dynamics ``f = M(q) qdd + c(q, qd)`` (base acceleration from the
logged base velocities, central differences) must equal ``S^T tau_joint + sum_i J_i^T F_i``.
Each leg's 3 joint rows involve only that leg's foot force (J_i restricted to the leg is
3 x 3 and well conditioned with bent knees), so ``F_i = J_i,leg^-T (f_leg - tau_joint)``;
a foot in the air simply comes out with F_i ~ 0, no contact detection is needed.  The 6
base rows then give the trunk equation: with the trunk modelled as its URDF body plus an
unknown payload (mass mu, first moment h = mu p, second moment neglected: below 1e-3 kg m^2
for payloads within 5 cm), the base-wrench residual is *linear* in (mu, h)::

    sum_i J_i,base^T F_i - f_base(URDF trunk) = [ mu (a - g) + R (alpha x h + w x (w x h)) ;
                                                  h x R^T (a - g) ]

with a, alpha, w the trunk's linear acceleration, angular acceleration and angular velocity.
Static loads during squats and sways determine mu and the horizontal COM; tilting the trunk
(pitch/roll sways) and accelerating it determine the vertical COM.  Torque and regressors
are low-passed alike (2 Hz; variants 1 and 3 Hz give the systematic std), the statistical
std is a block bootstrap, and only samples where the model is valid are used: no geometry
but the feet within ``clearance`` of the floor (checked with MuJoCo's collision detection on
the logged pose), every loaded foot on the floor, feet carrying a plausible share of the
weight, the trunk less than 45 degrees from upright.  A ground log in which the robot rests
on its thighs or falls over therefore yields "not identifiable", not a number.

Foot friction: a loaded foot whose contact point slides (speed > ``slip_speed``) is on the
friction cone, so mu = |F_t| / F_n there (median over slipping samples; bootstrap over
blocks; slip-speed variants for the systematic std).  Without slipping the data only give a
lower bound (99th percentile of |F_t| / F_n while sticking): foot friction is then reported
as not identifiable with range [lower bound, upper physical bound].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np

from robot_rl.logs import RobotLog
from robot_rl.robot import RobotDescription
from robot_rl.sim_mujoco import build_model, index
from sysid.apply import apply_params, true_angles
from sysid.config import GroundFitConfig
from sysid.joints import Estimate
from sysid.model import AXES, foot_radius, leg_joints, nominal
from sysid.signals import block_bootstrap, block_normal_equations, lowpass, segments, solve, trimmed

GRAVITY = np.array([0.0, 0.0, -9.81])


@dataclass
class GroundData:
    """Per-sample quantities of one ground log (T samples, F feet)."""

    dt: float
    time: np.ndarray
    valid: np.ndarray  # (T,) usable for the trunk/friction fits
    wrench: np.ndarray  # (T, 6) sum J_base^T F - f_base(URDF trunk): the payload's wrench
    rot: np.ndarray  # (T, 3, 3) trunk orientation
    acc: np.ndarray  # (T, 3) trunk linear acceleration, world
    alpha: np.ndarray  # (T, 3) trunk angular acceleration, trunk frame
    omega: np.ndarray  # (T, 3) trunk angular velocity, trunk frame
    force: np.ndarray  # (T, F, 3) contact force on each foot, world
    foot_vel: np.ndarray  # (T, F, 3) contact-point velocity, world
    foot_z: np.ndarray  # (T, F) lowest point of each foot sphere, world z (m)
    loaded: np.ndarray  # (T, F) foot carries load
    clearance: np.ndarray  # (T,) lowest non-foot geometry above z = 0 (m)
    reasons: dict[str, float] = field(default_factory=dict)  # invalid fraction per reason


@dataclass
class GroundFit:
    """Result of :func:`fit_ground`."""

    estimates: dict[str, Estimate]
    valid_seconds: float = 0.0
    invalid_reasons: dict[str, float] = field(default_factory=dict)
    slip_samples: int = 0
    friction_lower_bound: float | None = None
    friction_samples: dict[str, np.ndarray] = field(default_factory=dict)  # for plots
    floor: dict[str, Any] = field(default_factory=dict)  # see :func:`fit_floor`


def _leg_model(robot: RobotDescription, joint_values: dict[str, float]) -> mujoco.MjModel:
    model = build_model(robot)
    legs = {k: v for k, v in joint_values.items()
            if k.split("/")[0] in ("armature", "damping", "leg_mass_scale")}
    return apply_params(model, legs, robot)


def ground_data(log: RobotLog, robot: RobotDescription, joint_values: dict[str, float],
                cfg: GroundFitConfig, clearance: np.ndarray | None = None,
                coulomb_velocity: float = 0.02) -> GroundData:
    """Contact forces, payload wrench and validity of every sample of a ground log.

    ``clearance`` (T,) of non-foot geometry above z = 0, if already known (it does not
    depend on ``joint_values``), skips the collision checks.  Joint Coulomb friction is
    f tanh(qd / ``coulomb_velocity``), as in the joint fit.
    """
    if log.base_pos is None or log.base_quat is None or log.base_linvel is None \
            or log.base_angvel is None:
        raise ValueError(f"{log.path}: a ground log needs base_pos, base_quat, base_linvel and "
                         "base_angvel")
    model = _leg_model(robot, joint_values)
    model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONSTRAINT
    idx = index(model, robot)
    if not idx.floating:
        raise ValueError("ground identification needs the floating-base model")
    coul = np.array([joint_values.get(f"coulomb/{j}", 0.0) for j in robot.joint_names])
    t, dt, n = log.time, log.control_dt, log.num_samples
    qacc_j = np.gradient(log.qd, t, axis=0)
    acc = np.gradient(log.base_linvel, t, axis=0)
    alpha = np.gradient(log.base_angvel, t, axis=0)
    radius = foot_radius(model, robot)
    nf = len(robot.foot_links)
    legs = leg_joints(robot)
    tb = idx.base_body

    # collision model: floor contacts of non-foot geoms, with a margin
    cmodel = build_model(robot)
    cmodel.geom_margin[:] = cfg.clearance + 0.05
    cdata = mujoco.MjData(cmodel)
    floor = cmodel.geom("floor").id
    foot_bodies = {int(cmodel.site_bodyid[s]) for s in idx.foot_site}
    foot_geoms = {g for g in range(cmodel.ngeom) if cmodel.geom_bodyid[g] in foot_bodies
                  and cmodel.geom_type[g] == mujoco.mjtGeom.mjGEOM_SPHERE}
    # a non-foot floor contact within two foot radii of a foot centre is the foot's own
    # region (a shin mesh ending at the toe, as laikago's does), not the robot touching down
    foot_zone = 2.0 * radius

    d = mujoco.MjData(model)
    jacp = np.zeros((3, model.nv))
    wrench = np.zeros((n, 6))
    force = np.zeros((n, nf, 3))
    fvel = np.zeros((n, nf, 3))
    fz = np.zeros((n, nf))
    rot = np.zeros((n, 3, 3))
    check = clearance is None
    clear = np.full(n, np.inf) if check else clearance
    for k in range(n):
        d.qpos[0:3], d.qpos[3:7] = log.base_pos[k], log.base_quat[k]
        d.qpos[idx.qpos] = log.q[k]
        d.qvel[0:3], d.qvel[3:6] = log.base_linvel[k], log.base_angvel[k]
        d.qvel[idx.qvel] = log.qd[k]
        d.qacc[0:3], d.qacc[3:6] = acc[k], alpha[k]
        d.qacc[idx.qvel] = qacc_j[k]
        mujoco.mj_inverse(model, d)
        f = d.qfrc_inverse
        tau_joint = log.tau[k] - coul * np.tanh(log.qd[k] / coulomb_velocity)
        rot[k] = d.xmat[tb].reshape(3, 3)
        w = f[0:6].copy()
        for i in range(nf):
            p = d.site_xpos[idx.foot_site[i]] - np.array([0.0, 0.0, radius[i]])
            fz[k, i] = p[2]
            mujoco.mj_jac(model, d, jacp, None, p, int(model.site_bodyid[idx.foot_site[i]]))
            cols = idx.qvel[legs[i]]
            try:
                fi = np.linalg.solve(jacp[:, cols].T, f[cols] - tau_joint[legs[i]])
            except np.linalg.LinAlgError:
                fi = np.full(3, np.nan)
            force[k, i] = fi
            w -= jacp[:, 0:6].T @ fi
            fvel[k, i] = jacp @ d.qvel
        wrench[k] = -w
        if not check:
            continue
        cdata.qpos[:] = d.qpos
        mujoco.mj_kinematics(cmodel, cdata)
        mujoco.mj_collision(cmodel, cdata)
        feet = cdata.site_xpos[idx.foot_site]
        for c in cdata.contact[:cdata.ncon]:
            other = c.geom1 if c.geom2 == floor else c.geom2 if c.geom1 == floor else None
            if other is not None and other not in foot_geoms and \
                    (np.linalg.norm(feet - c.pos, axis=1) > foot_zone).all():
                clear[k] = min(clear[k], c.dist)

    floor_z = float(np.percentile(fz.min(axis=1), 5))
    weight = sum(nominal(robot).body_mass.values()) * 9.81
    total = force[:, :, 2].sum(axis=1)
    loaded = force[:, :, 2] > cfg.load_fraction * weight / nf
    upright = rot[:, 2, 2] > np.cos(np.radians(45))
    # non-foot clearance is measured against z = 0: shift by the estimated floor height
    reasons = {
        "settling": t - t[0] < cfg.skip_start_s,
        "non-foot geometry near the floor": clear - floor_z < cfg.clearance,
        "loaded foot off the floor": (loaded & (fz - floor_z > cfg.foot_height_tol)).any(axis=1),
        "feet carry < 30% of the weight": ~(total > 0.3 * weight),
        "trunk tilted > 45 deg": ~upright,
        "singular leg Jacobian": ~np.isfinite(force).all(axis=(1, 2)),
    }
    valid = np.ones(n, dtype=bool)
    for bad in reasons.values():
        valid &= ~bad
    valid = trimmed(valid, 0, int(round(cfg.min_segment_s / dt)))
    return GroundData(
        dt=dt, time=t, valid=valid, clearance=clear, wrench=np.nan_to_num(wrench), rot=rot, acc=acc,
        alpha=alpha, omega=log.base_angvel.copy(), force=np.nan_to_num(force), foot_vel=fvel,
        foot_z=fz,
        loaded=loaded & valid[:, None],
        reasons={k: float(v.mean()) for k, v in reasons.items()},
    )


def _trunk_rows(g: GroundData, cutoff: float, edge: int):
    """Filtered regressor rows (n, 6, 4) and targets (n, 6) over the valid stretches."""
    n = len(g.time)
    a = np.zeros((n, 6, 4))
    ag = g.acc - GRAVITY
    ag_local = np.einsum("tji,tj->ti", g.rot, ag)
    a[:, 0:3, 0] = ag
    for i in range(3):
        e = np.eye(3)[i]
        lin = np.cross(g.alpha, e) + np.cross(g.omega, np.cross(g.omega, e))
        a[:, 0:3, 1 + i] = np.einsum("tij,tj->ti", g.rot, lin)
        a[:, 3:6, 1 + i] = np.cross(e[None, :], ag_local)
    rows, ys = [], []
    for s, e in segments(g.valid, 2 * edge + 8):
        af = lowpass(a[s:e].reshape(e - s, -1), cutoff, g.dt).reshape(e - s, 6, 4)
        yf = lowpass(g.wrench[s:e], cutoff, g.dt)
        rows.append(af[edge:e - s - edge])
        ys.append(yf[edge:e - s - edge])
    if not rows:
        return np.zeros((0, 6, 4)), np.zeros((0, 6))
    return np.concatenate(rows), np.concatenate(ys)


def _trunk_params(x: np.ndarray, m0: float, c0: np.ndarray) -> np.ndarray:
    """(mu, h) -> (trunk mass, com x, y, z)."""
    mass = m0 + x[..., 0]
    com = (m0 * c0 + x[..., 1:4]) / mass[..., None]
    return np.concatenate([mass[..., None], com], axis=-1)


def _friction(data: list[GroundData], slip_speed: float, stick_speed: float):
    ratios, speeds = [], []
    for g in data:
        fn = g.force[:, :, 2]
        ft = np.linalg.norm(g.force[:, :, :2], axis=2)
        vt = np.linalg.norm(g.foot_vel[:, :, :2], axis=2)
        ratios.append(np.where(g.loaded, ft / np.maximum(fn, 1e-9), np.nan))
        speeds.append(np.where(g.loaded, vt, np.nan))
    r, v = np.concatenate(ratios), np.concatenate(speeds)
    slip = np.isfinite(r) & (v > slip_speed)
    stick = np.isfinite(r) & (v < stick_speed)
    return r, v, slip, stick


def _lstsq_trunk(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq((a * _ROW_WEIGHTS[None, :, None]).reshape(-1, 4),
                           (y * _ROW_WEIGHTS[None, :]).reshape(-1), rcond=None)[0]


#: rows are 3 forces (N) and 3 moments (N m): moments weighted as forces at a 0.2 m lever
_ROW_WEIGHTS = np.array([1.0, 1.0, 1.0, 5.0, 5.0, 5.0])


def fit_ground(logs: list[RobotLog], robot: RobotDescription, joint_values: dict[str, float],
               cfg: GroundFitConfig, bootstrap: int, block_s: float,
               rng: np.random.Generator, joint_std: dict[str, float] | None = None,
               coulomb_velocity: float = 0.02) -> GroundFit:
    """Identify trunk mass, trunk COM and foot friction; mark what the data cannot give.

    ``joint_std`` (std of the leg parameters) propagates the legs' uncertainty: the fits
    are repeated with every leg mass scale moved by +-1 std together (the trunk mass is
    what the legs do not weigh), and every encoder offset too (the legs' kinematics), and
    the RMS change joins the systematic std.  ``logs`` carry the true joint angles (the
    caller has taken the fitted encoder offsets off).
    """
    data = [ground_data(log, robot, joint_values, cfg, None, coulomb_velocity) for log in logs]
    nom = nominal(robot)
    m0, c0 = nom.trunk_mass, nom.trunk_com
    dt = data[0].dt
    block = max(int(round(block_s / dt)), 1)
    valid_s = float(sum(g.valid.sum() for g in data) * dt)
    reasons = {k: float(np.mean([g.reasons[k] for g in data])) for k in data[0].reasons}
    est: dict[str, Estimate] = {}
    trunk_names = ["trunk_mass"] + [f"trunk_com/{a}" for a in AXES]
    edge = int(round(1.0 / (cfg.filter_hz * dt)))  # filter transient at stretch ends

    # the same valid samples, with the leg mass scales and the encoder offsets (the legs'
    # kinematics) moved by +-1 std
    legs = [k for k in joint_values if k.startswith("leg_mass_scale/")]
    leg_variants: list[list[GroundData]] = []
    if joint_std and legs and valid_s > 0:
        off_std = np.array([joint_std.get(f"encoder_offset/{j}", 0.0) for j in robot.joint_names])
        off_std = np.where(np.isfinite(off_std), off_std, 0.0)
        for sign in (1.0, -1.0):
            jv = dict(joint_values)
            for k in legs:
                jv[k] = joint_values[k] + sign * joint_std.get(k, 0.0)
            dv = [ground_data(true_angles(log, sign * off_std), robot, jv, cfg, g.clearance,
                              coulomb_velocity)
                  for log, g in zip(logs, data)]
            for gv, g in zip(dv, data):
                gv.valid, gv.loaded = g.valid, g.loaded
            leg_variants.append(dv)

    def trunk_ls(cutoff: float, data: list[GroundData] = data):
        parts = [_trunk_rows(g, cutoff, edge) for g in data]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    a, y = trunk_ls(cfg.filter_hz)
    if valid_s < cfg.min_valid_s or len(a) < 10:
        worst = max(reasons, key=reasons.get) if reasons else "no data"
        why = (f"only {valid_s:.1f} s of ground data where the model is valid (need "
               f"{cfg.min_valid_s} s); most excluded samples: {worst} "
               f"({100 * reasons.get(worst, 0):.0f}%)")
        for k in trunk_names:
            est[k] = Estimate(np.nan, np.inf, np.inf, False, why)
    else:
        x = _lstsq_trunk(a, y)
        p = _trunk_params(x, m0, c0)
        aw, yw = a * _ROW_WEIGHTS[None, :, None], y * _ROW_WEIGHTS[None, :]
        grams, rhss = block_normal_equations(aw, yw, block)
        stat = _trunk_params(block_bootstrap(grams, rhss, bootstrap, rng), m0, c0).std(axis=0)
        dev = []
        for cutoff in cfg.variant_filter_hz:
            av, yv = trunk_ls(cutoff)
            if len(av) >= 10:
                dev.append(_trunk_params(_lstsq_trunk(av, yv), m0, c0) - p)
        for dv in leg_variants:
            dev.append(_trunk_params(_lstsq_trunk(*trunk_ls(cfg.filter_hz, dv)), m0, c0) - p)
        sys_std = np.sqrt(np.mean(np.array(dev) ** 2, axis=0)) if dev else 0 * p
        for i, k in enumerate(trunk_names):
            est[k] = Estimate(float(p[i]), float(stat[i]), float(sys_std[i]))

    r, v, slip, stick = _friction(data, cfg.slip_speed, cfg.stick_speed)
    lower = float(np.percentile(r[stick], 99)) if stick.sum() >= 20 else None
    # the floor's bootstrap draws from a child generator: the friction's stay as they were
    fit = GroundFit(estimates=est, valid_seconds=valid_s, invalid_reasons=reasons,
                    slip_samples=int(slip.sum()), friction_lower_bound=lower,
                    friction_samples={"ratio": r[np.isfinite(r)], "speed": v[np.isfinite(r)]},
                    floor=fit_floor(data, cfg, block, bootstrap, rng.spawn(1)[0]))
    if slip.sum() < cfg.min_slip_samples:
        why = (f"feet did not slip ({int(slip.sum())} slipping samples, need "
               f"{cfg.min_slip_samples}): friction only bounded below"
               + (f" by {lower:.3g}" if lower is not None else ""))
        est["foot_friction"] = Estimate(np.nan, np.inf, np.inf, False, why)
        return fit
    vals = r[slip]  # time-major: consecutive slipping samples stay in one bootstrap block
    mu = float(np.median(vals))
    groups = np.array_split(vals, max(len(vals) // block, 2))
    boot = [np.median(np.concatenate([groups[i] for i in rng.integers(0, len(groups), len(groups))]))
            for _ in range(bootstrap)]
    dev = []
    for speed in cfg.variant_slip_speed:
        _, _, sl, _ = _friction(data, speed, cfg.stick_speed)
        if sl.sum() >= cfg.min_slip_samples:
            dev.append(float(np.median(r[sl])) - mu)
    for dv in leg_variants:
        rv, _, sl, _ = _friction(dv, cfg.slip_speed, cfg.stick_speed)
        if sl.sum() >= cfg.min_slip_samples:
            dev.append(float(np.median(rv[sl])) - mu)
    sys_std = float(np.sqrt(np.mean(np.array(dev) ** 2))) if dev else 0.0
    est["foot_friction"] = Estimate(mu, float(np.std(boot)), sys_std)
    return fit


def fit_floor(data: list[GroundData], cfg: GroundFitConfig, block: int, bootstrap: int,
              rng: np.random.Generator) -> dict[str, Any]:
    """The floor's compliance under the loaded feet: a spring and damper per foot.

    A foot pressed into a compliant floor (a mat, turf, soft soil) sits below the unloaded
    contact height by (F + B v) / K, F its normal force, v its vertical speed; on a rigid
    floor its height does not depend on the load.  Loaded feet of the valid samples give
    ``z = z0 - C F - E v`` (least squares; z from the logged base pose and the legs'
    kinematics, F from the inverse dynamics above), so K = 1 / C and B = E / C: the local
    stiffness and damping about the loads the log holds (``contact_height_mm``, the line's
    zero-load height, below zero: a floor that stiffens as it is pressed, or lightly loaded
    feet the valid samples leave out); the std of C and E is a block bootstrap over at least
    ``cfg.min_floor_blocks`` time blocks.  ``sink_mm`` is C times the median foot load (the
    part of the foot's height that follows its load), ``depth_mm`` the foot's height below
    z = 0 (the log's floor plane) at that load.  A floor whose sink is below ``cfg.rigid_sink``
    with 2 std is reported rigid, with the stiffness it exceeds; one whose sink is not
    above zero by 2 std either is not identifiable from the log.

    Reported in ``params.json`` (``ground.floor``); where compliant, the identified
    simulator (training env, evaluation, fidelity) stands on it as a sprung pad under each
    foot (:class:`robot_rl.sim_mujoco.FloorPad`, read by :func:`sysid.artifact.read_params`).
    """
    rows, ys = [], []
    for g in data:
        m = g.loaded & g.valid[:, None]  # (T, F)
        a = np.stack([np.ones_like(g.foot_z), -g.force[:, :, 2], -g.foot_vel[:, :, 2]], axis=-1)
        rows.append(a * m[:, :, None])
        ys.append(g.foot_z * m)
    a, y = np.concatenate(rows), np.concatenate(ys)
    n = int(np.count_nonzero(a[:, :, 0]))
    if n < cfg.min_floor_samples:
        return {"identifiable": False, "samples": n,
                "reason": f"{n} loaded foot samples (need {cfg.min_floor_samples})"}
    keep = a[:, :, 0].any(axis=1)  # time samples with a loaded foot, in time order
    a, y = a[keep], y[keep]
    loaded = a[:, :, 0] > 0
    grams, rhss = block_normal_equations(a, y, block)
    if len(grams) < cfg.min_floor_blocks:
        return {"identifiable": False, "samples": n,
                "reason": f"{len(grams)} time blocks with a loaded foot (need "
                          f"{cfg.min_floor_blocks} for the bootstrap)"}
    x = solve(grams.sum(0), rhss.sum(0))
    boot = block_bootstrap(grams, rhss, bootstrap, rng)
    z0, c, e = x
    c_std = float(boot[:, 1].std())
    load = -float(np.median(a[:, :, 1][loaded]))  # median normal force (N)
    resid = (y - np.einsum("trp,p->tr", a, x))[loaded]
    sink, sink_std = float(c * load), float(c_std * load)
    out = {"identifiable": True, "samples": n, "median_load_N": load,
           "sink_mm": 1e3 * sink, "sink_std_mm": 1e3 * sink_std,
           "depth_mm": 1e3 * (sink - float(z0)), "contact_height_mm": 1e3 * float(z0),
           "residual_mm": 1e3 * float(resid.std())}
    if sink + 2.0 * sink_std < cfg.rigid_sink:  # the bound from the resolution, not a negative C
        bound = load / max(max(sink, 0.0) + 2.0 * sink_std, 1e-6)
        out.update(rigid=True, stiffness_above_N_per_m=bound,
                   reason=f"sink under the median foot load {1e3 * sink:.2f} +- "
                          f"{1e3 * sink_std:.2f} mm, below {1e3 * cfg.rigid_sink:g} mm")
        return out
    if sink - 2.0 * sink_std <= 0.0:
        out.update(identifiable=False, rigid=False,
                   reason=f"sink under the median foot load {1e3 * sink:.2f} +- "
                          f"{1e3 * sink_std:.2f} mm: neither rigid nor clearly compliant")
        return out
    k = 1.0 / c
    # std of K = 1/C and B = E/C by the bootstrap replicates where C stays positive
    ok = boot[:, 1] > 0
    ks, bs = 1.0 / boot[ok, 1], boot[ok, 2] / boot[ok, 1]
    out.update(rigid=False, stiffness_N_per_m=float(k), stiffness_std=float(ks.std()),
               damping_N_s_per_m=float(e / c), damping_std=float(bs.std()),
               reason="compliant: the feet sink with their load")
    return out
