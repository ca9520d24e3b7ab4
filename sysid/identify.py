"""Stage 1 end to end: logs -> fitted parameters with uncertainty -> params.json and plots.

Order: joints and leg masses from suspended logs (:mod:`sysid.joints`), then trunk mass,
trunk COM and foot friction from ground logs with the legs known (:mod:`sysid.ground`),
then the parameter table (:mod:`sysid.params`), then validation on held-out suspended data
(:mod:`sysid.replay`), plots, and finally ``params.json``, written atomically as the last
step: a run that fails on the way writes no params.json.
"""

from __future__ import annotations

import datetime
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.config import to_dict
from robot_rl.logs import RobotLog, read_log
from robot_rl.robot import RobotDescription, load_robot
from sysid.apply import apply_params, encoder_offsets, true_angles
from sysid.artifact import write_params
from sysid.config import SysidConfig
from sysid.ground import fit_ground
from sysid.joints import Estimate, fit_joints
from sysid.model import UNITS, fixed_base_model, kind_of, leg_joints, parameter_names
from sysid.params import parameter_table
from sysid.replay import holdout_mask, replay

SCHEMA = "robot_rl.sysid"
SCHEMA_VERSION = 1

METHOD = {
    "joints": "suspended logs: linear least squares on the inverse-dynamics regressor "
              "(MuJoCo mj_inverse of the nominal model on logged q, qd, qdd), per leg: "
              "tau = s_leg ID(q - encoder offset) + armature qdd + damping qd + coulomb tanh(qd/v) + time offset; "
              "torque and regressors low-passed alike",
    "trunk": "ground logs: contact forces eliminated through each leg's joint equations, "
             "payload mass and first moment by linear least squares on the 6 floating-base "
             "equations; samples with non-foot contact, unloaded/airborne feet or a tilted "
             "trunk excluded",
    "foot_friction": "ground logs: median |F_t|/F_n of loaded, slipping feet; lower bound "
                     "from sticking feet when nothing slips",
    "std": "sqrt(statistical^2 + systematic^2 + model^2); statistical: moving-block "
           "bootstrap (residuals are correlated in time); systematic: RMS change across "
           "analysis variants (filter cut-off, Coulomb velocity scale, time offset, slip "
           "threshold) and, for trunk and foot friction, the legs' +-1 std; model: type-B "
           "floor for model inadequacy (config std_floor)",
    "range": "fitted +- range_std * std, clipped to physical bounds; not identifiable: "
             "the whole physical bounds (narrowed by data bounds), value = the uncertain "
             "estimate clipped to it, or its centre when the data give none",
}


class SysidError(ValueError):
    """The logs cannot support identification (too short, unexcited, wrong kind)."""


@dataclass
class Result:
    """What :func:`identify` computed (params.json's content plus data for plots)."""

    params: dict[str, Any]
    artifacts: dict[str, Any]


def _git_state() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except Exception:  # noqa: BLE001 - provenance only
        return "unknown"


def _check_logs(logs: list[RobotLog], cfg: SysidConfig) -> None:
    if not logs:
        raise SysidError("no logs given")
    dts = {round(log.control_dt, 9) for log in logs}
    if len(dts) > 1:
        raise SysidError(f"logs have different control periods {sorted(dts)} s")
    susp = [log for log in logs if log.base_fixed]
    if not susp:
        raise SysidError("need at least one suspended (base_fixed) log: joint parameters and "
                         "leg masses are identified on the rig before the trunk; got only "
                         + ", ".join(f"{log.path} ({log.experiment})" for log in logs))
    total = sum(log.duration for log in susp)
    if total < cfg.min_log_s:
        raise SysidError(f"suspended logs too short to identify anything: {total:.2f} s in all "
                         f"({', '.join(log.path for log in susp)}), need at least {cfg.min_log_s} s")


def identify(log_paths: list[str | Path], robot: RobotDescription | str, cfg: SysidConfig,
             holdout: str | Path | None = None) -> Result:
    """Fit all parameters; return params.json's content (nothing is written here)."""
    t_start = time.time()
    robot = load_robot(robot) if isinstance(robot, str) else robot
    logs = [read_log(p, robot) for p in log_paths]
    _check_logs(logs, cfg)
    rng = np.random.default_rng(cfg.seed)
    susp = [log for log in logs if log.base_fixed]
    ground = [log for log in logs if not log.base_fixed]
    v = cfg.validation
    if holdout is not None:
        held = read_log(holdout, robot)
        if not held.base_fixed:
            raise SysidError(f"{holdout}: the held-out log must be a suspended (base_fixed) log")
        train = [np.ones(log.num_samples, dtype=bool) for log in susp]
        held_logs = [held]
        held_masks = [np.ones(held.num_samples, dtype=bool)]
    else:
        held_masks = [holdout_mask(log.num_samples, log.control_dt, v.holdout_fraction,
                                   v.holdout_block_s) for log in susp]
        train = [~m for m in held_masks]
        held_logs = susp

    joint_fit = fit_joints(susp, train, robot, cfg.joints, cfg.bootstrap, cfg.block_s, rng,
                           cfg.bounds.encoder_offset)
    estimates: dict[str, Estimate] = dict(joint_fit.estimates)
    table = parameter_table(estimates, robot, cfg)
    artifacts: dict[str, Any] = {"joint_fit": joint_fit}

    ground_info: dict[str, Any] = {"logs": [log.path for log in ground]}
    lower: dict[str, float] = {}
    trunk_names = ["trunk_mass", "trunk_com/x", "trunk_com/y", "trunk_com/z"]
    if not ground:
        for k in trunk_names + ["foot_friction"]:
            estimates[k] = Estimate(np.nan, np.inf, np.inf, False, "no ground log given")
    elif not all(table[f"leg_mass_scale/{f}"]["identifiable"] for f in robot.foot_links):
        for k in trunk_names + ["foot_friction"]:
            estimates[k] = Estimate(np.nan, np.inf, np.inf, False, "leg masses not identified "
                                    "(suspended logs), so contact forces are not known")
    else:
        joint_values = {k: (e.value if np.isfinite(e.value) else 0.0)
                        for k, e in joint_fit.estimates.items()}
        joint_values = {k: (float(np.clip(x, *table[k]["bounds"])) if kind_of(k) != "leg_mass_scale"
                            else table[k]["fitted"]) for k, x in joint_values.items()}
        # the legs' total std (with the model floor, e.g. the encoder offsets' 3 mrad) where
        # identified: the ground fit's +-1 std variants propagate it to the trunk
        joint_std = {k: (table[k]["std"] if table[k]["identifiable"] else e.std)
                     for k, e in joint_fit.estimates.items()}
        # the legs' kinematics from the true angles: the encoders read q_true + offset
        offsets = encoder_offsets(joint_values, robot)
        ground = [true_angles(log, offsets) for log in ground]
        try:
            gfit = fit_ground(ground, robot, joint_values, cfg.ground, cfg.bootstrap,
                              cfg.block_s, rng, joint_std, cfg.joints.coulomb_velocity)
        except ValueError as e:
            raise SysidError(str(e)) from e
        estimates.update(gfit.estimates)
        if gfit.friction_lower_bound is not None:
            lower["foot_friction"] = gfit.friction_lower_bound
        ground_info.update(valid_seconds=gfit.valid_seconds,
                           excluded_fraction={k: round(x, 4) for k, x in gfit.invalid_reasons.items()},
                           slip_samples=gfit.slip_samples,
                           friction_lower_bound=gfit.friction_lower_bound,
                           floor={k: (round(x, 6) if isinstance(x, float) else x)
                                  for k, x in gfit.floor.items()})
        artifacts["ground_fit"] = gfit
    table = parameter_table(estimates, robot, cfg, lower)
    n_ok = sum(e["identifiable"] for e in table.values())
    if n_ok == 0:
        reasons = sorted({e["reason"] for e in table.values()})
        raise SysidError("nothing identifiable from these logs: " + "; ".join(reasons[:4]))

    # validation: open-loop torque replay on held-out suspended data
    fitted = {k: e["fitted"] for k, e in table.items()}
    shift = np.zeros(robot.num_joints)
    for leg, joints in enumerate(leg_joints(robot)):
        shift[joints] = joint_fit.time_shift.get(robot.foot_links[leg], 0.0)
    nom_model = fixed_base_model(robot, v.timestep)
    id_model = apply_params(fixed_base_model(robot, v.timestep), fitted, robot)
    offsets = encoder_offsets(fitted, robot)
    reps = []
    for log, mask in zip(held_logs, held_masks):
        if mask.sum() * log.control_dt < v.window_s + log.control_dt:
            continue
        reps.append((log, replay(nom_model, robot, log, mask, v.window_s, shift),
                     replay(id_model, robot, log, mask, v.window_s, shift, offsets)))
    if not reps:
        raise SysidError("no held-out suspended data long enough for one replay window "
                         f"({v.window_s} s): give a longer log or --holdout")
    rn = float(np.sqrt(np.mean([r[1].rmse ** 2 for r in reps])))
    ri = float(np.sqrt(np.mean([r[2].rmse ** 2 for r in reps])))
    per_n = np.sqrt(np.mean([r[1].rmse_per_joint ** 2 for r in reps], axis=0))
    per_i = np.sqrt(np.mean([r[2].rmse_per_joint ** 2 for r in reps], axis=0))
    artifacts["replays"] = reps

    params = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "robot": robot.name,
        "joint_names": list(robot.joint_names),
        "foot_links": list(robot.foot_links),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": _git_state(),
        "method": METHOD,
        "units": dict(UNITS),
        "apply": "sysid.apply.apply_params(model, params, robot): sets each parameter on a "
                 "compiled MjModel from the URDF values (see 'maps_to' of each parameter)",
        "logs": [{"path": log.path, "experiment": log.experiment, "base_fixed": log.base_fixed,
                  "seconds": round(log.duration, 3), "samples": log.num_samples,
                  "source": log.source} for log in logs],
        "summary": {"parameters": len(table), "identifiable": n_ok,
                    "not_identifiable": [k for k, e in table.items() if not e["identifiable"]]},
        "parameters": table,
        "nuisance": {
            "torque_time_shift_s": dict(joint_fit.time_shift),
            "joint_residual_rms_Nm": {k: round(x, 5) for k, x in joint_fit.residual_rms.items()},
            "joint_fit_seconds": round(joint_fit.seconds, 3),
        },
        "ground": ground_info,
        "validation": {
            "method": f"open-loop replay of logged torques in MuJoCo, {v.window_s} s windows "
                      "from the logged state, held-out suspended data",
            "heldout": str(holdout) if holdout is not None else
            f"interleaved {v.holdout_block_s} s blocks, fraction {v.holdout_fraction}, of the "
            "suspended logs (not used for fitting)",
            "windows": int(sum(r[1].windows for r in reps)),
            "rmse_nominal_rad": rn,
            "rmse_identified_rad": ri,
            "ratio": ri / rn if rn > 0 else float("nan"),
            "rmse_per_joint_nominal_rad": dict(zip(robot.joint_names, map(float, per_n))),
            "rmse_per_joint_identified_rad": dict(zip(robot.joint_names, map(float, per_i))),
        },
        "config": to_dict(cfg),
        "runtime_s": 0.0,
    }
    params["runtime_s"] = round(time.time() - t_start, 2)
    return Result(params=params, artifacts=artifacts)


def write_outputs(result: Result, out: str | Path, robot: RobotDescription,
                  plots: bool = True) -> Path:
    """Plots first, then params.json (atomic) last; returns the params.json path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if plots:
        from sysid.plots import plot_friction, plot_params, plot_replay

        log, nom, ident = result.artifacts["replays"][0]
        plot_replay(out / "replay_heldout.png", robot, log, nom, ident)
        plot_params(out / "params.png", result.params["parameters"])
        g = result.artifacts.get("ground_fit")
        if g is not None and len(g.friction_samples.get("ratio", [])):
            cfg = result.params["config"]["ground"]
            plot_friction(out / "foot_friction.png", g.friction_samples["ratio"],
                          g.friction_samples["speed"], result.params["parameters"]["foot_friction"],
                          cfg["slip_speed"])
    path = out / "params.json"
    write_params(path, result.params)
    return path


def run(log_paths: list[str | Path], robot: str, out: str | Path, cfg: SysidConfig | None = None,
        holdout: str | Path | None = None, plots: bool = True) -> Path:
    """Identify and write ``<out>/params.json`` (+ plots); raise on bad input, writing nothing."""
    cfg = cfg or SysidConfig()
    desc = load_robot(robot)
    result = identify(log_paths, desc, cfg, holdout)
    assert set(result.params["parameters"]) == set(parameter_names(desc))
    return write_outputs(result, out, desc, plots)
