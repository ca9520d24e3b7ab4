"""Does the simulator built from stages 1 and 2 predict the robot?  ``robot-rl fidelity``.

Four simulators, the training simulator's MuJoCo model and physics step with
{nominal, identified} parameters x {ideal PD, actuator network}, are compared with the
robot on data from the regime the policy operates in:

* **open loop**: held-out walking logs (``robot-rl collect --experiment walking``, not used
  by stages 1 and 2) are cut into windows (``window_s``); each window starts every
  simulator from the logged state (base pose and velocity from motion capture, joints
  from the encoders; the actuator network's history warmed on the four samples before)
  and drives it with the logged joint targets (multiple shooting).  Errors against the
  log: joint angles (rad RMS), base velocity (m/s RMS), base position at the window's end
  (m), base height (m RMS).
* **closed loop**: the same exported policy, through the same onboard controller, on the
  robot (the stand-in the logs came from) and in each simulator, over the transfer suite's
  commands: tracking errors, mean torque, falls, and whether the simulator agrees with the
  robot on falling, command by command.

Where the logs come from the hardware stand-in, a fifth row, ``stand-in truth``, replays
them in the training simulator with the stand-in's hidden physics (its drawn masses, COM,
joint friction and rotor inertia, :mod:`sysid.grading`) and its own reference actuator
equations (:class:`StandInActuation`): the reference for what identifying parameters and
actuator can give this simulator; what separates it from the log is mostly the engines'
difference (MuJoCo's contacts and integration against PyBullet's), plus the spring and
gearbox play the reference leaves out.  ``gap_closed`` says how much of the error between
nominal+pd and the truth each simulator removes (a learned actuator can exceed 1).  The
closed loop has the same row: the policy walking in the truth world.  Where a simulator
and the robot disagree about a policy, the truth row says which side of the gap it is on:
agreeing with the robot, identification is short of the truth; agreeing with the simulator,
the two engines part.  Only this report reads the truth; no stage does, and a real robot
has none.

Writes ``fidelity.json``, ``fidelity.md`` and ``fidelity.png`` to ``<run>/fidelity``.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from robot_rl.config import atomic_write_bytes, atomic_write_json
from robot_rl.logs import RobotLog, read_log
from robot_rl.mujoco_robot import MujocoRobot
from robot_rl.robot import RobotDescription, load_robot
from robot_rl.sim_mujoco import FloorPad, MujocoModelConfig, build_model, index, settle_pads
from robot_rl.standin_model import HiddenParams, StandInConfig

#: the training simulator's physics step (s), as policies.config.EnvConfig.physics_dt
PHYSICS_DT = 0.005


@dataclass(frozen=True)
class Variant:
    """One simulator: parameters and actuation."""

    identified: bool
    actuation: str  # "pd" or "net"

    @property
    def name(self) -> str:
        return f"{'identified' if self.identified else 'nominal'}+{self.actuation}"


VARIANTS = (Variant(False, "pd"), Variant(False, "net"), Variant(True, "pd"), Variant(True, "net"))
#: the open-loop row of the stand-in's hidden physics and actuator in the training simulator
TRUTH = "stand-in truth"
#: the open-loop row of another run's (the previous round's) identified simulator with its
#: network, replayed on this run's held-out logs: two simulators compared on the same data
PREVIOUS = "previous identified+net"
#: control steps of log before the first open-loop window, at least: every simulator's
#: windows start at the same samples, after the longest warm-up an actuation of the report
#: needs (:func:`warm_steps`; a slow driver or a long network history pushes it later)
FIRST_WINDOW = 16
#: a simulator to replay in: (hook applied to the MuJoCo model or None, actuation, the
#: encoders' zero offsets (J,) rad: the simulated robot measures q + offset and its drivers
#: track the target on that reading, and the compliant floor it stands on: None for
#: MuJoCo's rigid contact)
World = tuple[Callable[[mujoco.MjModel], None] | None, Callable[..., np.ndarray], np.ndarray,
              FloorPad | None]


def gap_closed(nominal: float, error: float, truth: float) -> float | None:
    """The share of the error between the nominal model and the stand-in truth
    (``nominal - truth``) that a simulator with ``error`` removes: 1 = as good as the truth,
    0 = no better than nominal, above 1 = better than the truth's equations in this
    simulator; None when the truth is not at least 1 % better than the nominal model."""
    gap = nominal - truth
    return None if gap <= 0.01 * nominal else (nominal - error) / gap


def _model_hook(robot: RobotDescription, sysid: Path | None):
    """Stage 1's fitted parameters applied to the model (None: the nominal model)."""
    from deploy.evaluate import sysid_hook  # the evaluation's identified MuJoCo robot

    return None if sysid is None else sysid_hook(robot, sysid)


def _offsets(robot: RobotDescription, sysid: Path | None) -> np.ndarray:
    """Stage 1's encoder zero offsets (zeros for the nominal model)."""
    from deploy.evaluate import sysid_offsets

    return sysid_offsets(robot, sysid)


def _floor(robot: RobotDescription, sysid: Path | None) -> FloorPad | None:
    """Stage 1's compliant floor (None: rigid, unidentified, or the nominal model)."""
    from deploy.evaluate import sysid_floor

    return sysid_floor(robot, sysid)


def _actuation(robot: RobotDescription, actuator: Path | None, physics_dt: float):
    """Stage 2's actuator network (None: ideal PD), as the training env builds it."""
    from policies.actuation import make_actuation  # the training env's actuation seam

    return make_actuation("pd" if actuator is None else "net", robot, 1, physics_dt, actuator,
                          backend="numpy")


def _world(robot: RobotDescription, run: Path, v: Variant, physics_dt: float = PHYSICS_DT) -> World:
    """The :data:`World` of variant ``v`` of ``run``."""
    sysid, actuator = _folders(run, v)
    return (_model_hook(robot, sysid), _actuation(robot, actuator, physics_dt),
            _offsets(robot, sysid), _floor(robot, sysid))


def _folders(run: Path, v: Variant) -> tuple[Path | None, Path | None]:
    """The run's stage-1 and stage-2 folders a variant uses (None where it is nominal / PD)."""
    return (run / "sysid" if v.identified else None,
            run / "actuator" if v.actuation == "net" else None)


class SimRobot(MujocoRobot):
    """The training simulator as a robot: MuJoCo with stage 1's fitted parameters
    (``sysid``, a ``<run>/sysid`` folder; None: nominal) and stage 2's actuator network
    driving the joints (``actuator``, a ``<run>/actuator`` folder; None: ideal PD).
    :meth:`of_run` builds one :class:`Variant` of a pipeline run.

    ``draws``: with ``sysid``, every :meth:`reset` first draws the parameters from stage
    1's randomization ranges (the training's domain randomization) with this generator, so
    each episode meets one robot the identification allows.  ``terrain`` as
    :class:`~robot_rl.mujoco_robot.MujocoRobot`'s.  ``world`` (a :data:`World` such as
    :func:`truth_world`'s) replaces what ``sysid`` and ``actuator`` would build."""

    def __init__(self, robot: RobotDescription, sysid: Path | None, actuator: Path | None,
                 physics_dt: float = PHYSICS_DT, draws: np.random.Generator | None = None,
                 terrain=None, world: World | None = None):
        if world is not None and (sysid is not None or actuator is not None):
            raise ValueError("SimRobot: give a world or sysid/actuator folders, not both")
        hook, self.actuation, offsets, floor = world if world is not None else (
            _model_hook(robot, sysid), _actuation(robot, actuator, physics_dt),
            _offsets(robot, sysid), _floor(robot, sysid))
        if draws is not None:
            if sysid is None:
                raise ValueError("SimRobot: parameter draws need identified parameters (sysid)")
            from sysid.artifact import read_params

            fitted = read_params(sysid, robot=robot.name)
            self._ranges, self._fitted = fitted.ranges, fitted.values
        self._draws = draws
        #: the parameters drawn for the current episode (None: the fitted values)
        self.drawn: dict[str, float] | None = None
        super().__init__(robot, physics_dt=physics_dt, model_hook=hook, terrain=terrain,
                         encoder_offset=offsets,
                         model_config=MujocoModelConfig(timestep=physics_dt, floor=floor))

    @classmethod
    def of_run(cls, robot: RobotDescription, run: Path, variant: Variant,
               physics_dt: float = PHYSICS_DT, draws: np.random.Generator | None = None) -> SimRobot:
        """The simulator ``variant`` of the pipeline run in ``run``."""
        return cls(robot, *_folders(Path(run), variant), physics_dt=physics_dt, draws=draws)

    def reset(self):
        if self._draws is not None:
            from policies.randomization import randomize
            from sysid.apply import apply_params, encoder_offsets

            self.drawn = randomize(self._ranges, self._draws)
            apply_params(self.model, self.drawn, self.robot, data=self.data)
            self.encoder_offset = encoder_offsets({**self._fitted, **self.drawn}, self.robot)
        st = super().reset()
        self.actuation.reset(np.array([0]), (st.q - self.encoder_offset)[None], st.qd[None])
        return st

    def step(self):
        m, d, idx = self.model, self.data, self.idx
        target = self._target - self.encoder_offset  # the driver's PD reads the encoder
        for _ in range(self.decimation):
            self._tau = np.asarray(self.actuation(target[None], d.qpos[idx.qpos][None],
                                                  d.qvel[idx.qvel][None])[0], dtype=np.float64)
            d.ctrl[idx.actuator] = self._tau
            mujoco.mj_step(m, d)
        return self.read_state()


class StandInActuation:
    """The stand-in's reference actuator (``robot_rl.standin_actuator``) with its hidden
    parameters, in the actuation interface of :func:`policies.actuation.make_actuation`
    (one robot): ``act(target[1, J], q[1, J], qd[1, J]) -> tau[1, J]``, called once per
    MuJoCo step of ``physics_dt``.  Inside, the driver runs at the stand-in's own physics
    step (its latency, jitter and torque lag counted as there, a new target every
    ``control_dt``) on the joint state at the start of the MuJoCo step, positions carried on
    at the joint velocity; the mean motor
    torque over the sub-steps is returned (saturation and thermal foldback applied).  The
    MuJoCo model carries the joint's friction and the rotor's inertia (damping,
    frictionloss, armature).  A series spring or gearbox play is not modelled: on the
    stand-in's ``series_elastic`` and ``friction_backlash`` drivers the motor torque passed
    straight through predicts a swaying A1's joints as well as on the rigid drivers
    (tests/deploy/test_fidelity.py)."""

    def __init__(self, robot: RobotDescription, standin: StandInConfig, hidden: HiddenParams,
                 physics_dt: float = PHYSICS_DT):
        from robot_rl.standin_actuator import ReferenceActuator

        self.hidden, self.cfg = hidden, standin.actuator
        self.sub = int(round(physics_dt / standin.physics_dt))
        self.per_target = int(round(standin.control_dt / standin.physics_dt))
        if self.sub < 1 or abs(self.sub * standin.physics_dt - physics_dt) > 1e-9:
            raise ValueError(f"physics step {physics_dt} s is not a multiple of the stand-in's "
                             f"{standin.physics_dt} s")
        self.drive = ReferenceActuator(self.cfg, robot, standin.physics_dt, hidden,
                                       rng=np.random.default_rng(0))
        #: control steps of log to run before a window starts: the latency and its jitter,
        #: then three time constants of the torque loop
        lag = self.cfg.latency + self.cfg.latency_jitter + 3 * self.cfg.torque_time_constant
        self.warm_steps = 2 + int(np.ceil(lag / standin.control_dt))
        self._n = 0

    def reset(self, ids, q, qd) -> None:  # noqa: ARG002 - the interface's signature
        self.drive.reset(np.asarray(q, dtype=np.float64)[0])
        self._n = 0

    def __call__(self, target, q, qd) -> np.ndarray:
        target = np.asarray(target, dtype=np.float64)[0]
        q, qd = np.asarray(q, dtype=np.float64)[0], np.asarray(qd, dtype=np.float64)[0]
        tau = np.zeros_like(q)
        for i in range(self.sub):
            if self._n % self.per_target == 0:
                self.drive.push_target(target)
            self._n += 1
            self.drive.step(q + qd * (i * self.drive.dt), qd)  # q carried on at qd
            tau += self.drive.tau
        return (tau / self.sub)[None]


def truth_world(robot: RobotDescription, standin: StandInConfig,
                physics_dt: float = PHYSICS_DT) -> World:
    """The :data:`World` of the training simulator with the stand-in's hidden truth (its
    floor, where compliant, as a :class:`~robot_rl.sim_mujoco.FloorPad`)."""
    from sysid.apply import apply_params, encoder_offsets
    from sysid.grading import hidden_params, truth_values

    hidden = hidden_params(robot, standin)
    values = truth_values(robot, standin, hidden)
    # the world carries the encoder offsets (the replay shifts targets and angles by them),
    # so the driver's own copy of them is taken out
    driver = dataclasses.replace(hidden, encoder_offset=0.0)
    floor = (FloorPad(standin.floor_stiffness, standin.floor_damping)
             if standin.floor_stiffness > 0 else None)
    return (lambda model: apply_params(model, values, robot),
            StandInActuation(robot, standin, driver, physics_dt), encoder_offsets(values, robot),
            floor)


# -- open loop -----------------------------------------------------------------------------
def warm_steps(act, control_dt: float) -> int:
    """Control steps of log an actuation runs on before a window starts: its own
    ``warm_steps`` (the stand-in's driver), or the span of a network's history plus one
    (at least 4: the PD has no memory)."""
    if hasattr(act, "warm_steps"):
        return int(act.warm_steps)
    span = getattr(act, "history_s", 0.0)
    return max(4, 1 + int(np.ceil(span / control_dt - 1e-9)))


def windows(log: RobotLog, window_s: float, first: int = FIRST_WINDOW) -> list[int]:
    """Start indices of the open-loop windows of ``window_s`` in ``log`` (after the first
    ``first`` samples, the actuations' history); empty when the log is too short."""
    w = int(round(window_s / log.control_dt))
    return list(range(first, len(log.time) - w - 1, w))


def replay(log: RobotLog, robot: RobotDescription, run: Path | None, variant: Variant | None,
           window_s: float = 0.5, physics_dt: float = PHYSICS_DT,
           world: World | None = None, first: int = FIRST_WINDOW) -> dict[str, Any]:
    """Multiple-shooting replay of ``log`` in ``variant`` of ``run`` (or in ``world``, a
    :data:`World` such as :func:`truth_world`'s); errors against the log.  On a compliant
    floor each window starts with the pads pressed to the logged feet's depth.
    Windows start ``first`` control steps into the log, whatever the simulator (a report
    passes the longest warm-up of its simulators); the actuation runs on the logged states
    and targets of its :func:`warm_steps` before each window."""
    if log.base_pos is None or log.base_linvel is None or log.base_quat is None:
        raise ValueError(f"{log.path}: open-loop fidelity needs the base state (motion capture)")
    if world is None:
        world = _world(robot, run, variant, physics_dt)
    hook, act, o, floor = world
    model = build_model(robot, MujocoModelConfig(timestep=physics_dt, floor=floor))
    if hook is not None:
        hook(model)
    idx, d = index(model, robot), mujoco.MjData(model)
    from sysid.model import nominal  # the feet's radii, for the pads' start

    radius = nominal(robot).foot_radius
    sub = int(round(log.control_dt / physics_dt))
    if sub < 1 or abs(sub * physics_dt - log.control_dt) > 1e-9:
        raise ValueError(f"{log.path}: control_dt {log.control_dt} s is not a multiple of the "
                         f"physics step {physics_dt} s")
    w, warm = int(round(window_s / log.control_dt)), warm_steps(act, log.control_dt)
    if warm > first:
        raise ValueError(f"the actuation needs {warm} control steps of history, the windows "
                         f"leave {first}")
    starts = windows(log, window_s, first)
    if not starts:
        raise ValueError(f"{log.path}: shorter than one {window_s} s window")
    err_q, err_v, err_h, end_pos = [], [], [], []
    for s in starts:
        mujoco.mj_resetData(model, d)
        d.qpos[0:3], d.qpos[3:7] = log.base_pos[s], log.base_quat[s]
        d.qvel[0:3], d.qvel[3:6] = log.base_linvel[s], log.base_angvel[s]
        # the model's joints at the true angles: the encoders read q + o, the drivers
        # track the target on that reading
        d.qpos[idx.qpos], d.qvel[idx.qvel] = log.q[s] - o, log.qd[s]
        settle_pads(model, d, robot, radius)
        mujoco.mj_forward(model, d)
        act.reset(np.array([0]), (log.q[s - warm] - o)[None], log.qd[s - warm][None])
        for k in range(s - warm, s):  # the actuation's history (the network's), from the log
            act((log.q_target[k] - o)[None], (log.q[k] - o)[None], log.qd[k][None])
        q_sim, p_sim, v_sim = [], [], []
        for k in range(s, s + w):
            for _ in range(sub):
                tau = act((log.q_target[k] - o)[None], d.qpos[idx.qpos][None],
                          d.qvel[idx.qvel][None])[0]
                d.ctrl[idx.actuator] = tau
                mujoco.mj_step(model, d)
            q_sim.append(d.qpos[idx.qpos] + o)
            p_sim.append(d.qpos[0:3].copy())
            v_sim.append(d.qvel[0:3].copy())
        q_sim, p_sim, v_sim = map(np.array, (q_sim, p_sim, v_sim))
        sl = slice(s + 1, s + w + 1)
        err_q.append(q_sim - log.q[sl])
        err_v.append(v_sim - log.base_linvel[sl])
        err_h.append(p_sim[:, 2] - log.base_pos[sl, 2])
        end_pos.append(float(np.linalg.norm(p_sim[-1, :2] - log.base_pos[sl][-1, :2])))
    rms = lambda x: float(np.sqrt(np.mean(np.square(x))))  # noqa: E731
    return {"windows": len(starts), "window_s": window_s, "joint_rmse_rad": rms(err_q),
            "base_vel_rmse_mps": rms(err_v), "base_height_rmse_m": rms(err_h),
            "base_pos_end_err_m": float(np.mean(end_pos))}


# -- closed loop -----------------------------------------------------------------------------
def closed_loop(policy: Path, robot: RobotDescription, run: Path, standin_config: str | None,
                seconds: float = 6.0, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """The policy on the robot (the stand-in) and in every variant over the suite's
    commands; last, in the stand-in's hidden physics and driver in the training simulator
    (grading only, as the open loop's truth row): where a variant and the robot disagree,
    the truth row tells whether identification is short of the truth or the two physics
    engines part."""
    from deploy.evaluate import EvalConfig, evaluate
    from deploy.suite import SUITE_COMMANDS
    from robot_rl.standin_model import load_standin_config

    commands = tuple(c for _, c in SUITE_COMMANDS)
    cfg = EvalConfig(sim="pybullet", robot=robot.name, seconds=seconds, commands=commands,
                     standin_config=standin_config or "", standin_seed=seed, video=False)
    reports = {"robot": evaluate(policy, None, cfg, progress=progress)}
    mcfg = EvalConfig(sim="mujoco", robot=robot.name, seconds=seconds, commands=commands,
                      video=False)
    for v in VARIANTS:
        reports[v.name] = evaluate(policy, None, mcfg, interface=SimRobot.of_run(robot, run, v),
                                   progress=progress)
    truth = SimRobot(robot, None, None, world=truth_world(robot, load_standin_config(standin_config)))
    reports[TRUTH] = evaluate(policy, None, mcfg, interface=truth, progress=progress)
    real = [e["fell"] for e in reports["robot"]["episodes"]]
    out = {}
    for name, rep in reports.items():
        fell = [e["fell"] for e in rep["episodes"]]
        out[name] = {**{k: rep["metrics"][k] for k in ("falls", "vx_abs_err", "vy_abs_err",
                                                        "yaw_abs_err", "torque_mean")},
                     "fall_agreement": float(np.mean([a == b for a, b in zip(fell, real)])),
                     "per_command_vx": [e["vx_mean"] for e in rep["episodes"]]}
    return out


# -- the report ------------------------------------------------------------------------------
def fidelity(run: str | Path, logs: list[str | Path] | None = None, policy: str | Path | None = None,
             collect_seconds: float = 30.0, window_s: float = 0.5, closed: bool = True,
             progress: bool = True, previous: str | Path | None = None) -> dict[str, Any]:
    """Open- and closed-loop fidelity of the run's simulators; writes ``<run>/fidelity``.
    ``previous``: a run folder whose identified simulator with its network is replayed on the
    same held-out logs (row :data:`PREVIOUS`; errors on different logs do not compare)."""
    run = Path(run)
    meta = json.loads((run / "pipeline.json").read_text()) if (run / "pipeline.json").exists() else {}
    robot = load_robot(meta.get("robot", "a1"))
    standin = meta.get("standin_config")
    policy = Path(policy) if policy else run / "policy.onnx"
    needs = [run / "sysid" / "params.json", run / "actuator" / "actuator.pt"]
    if previous is not None:
        previous = Path(previous)
        needs += [previous / "sysid" / "params.json", previous / "actuator" / "actuator.pt"]
    if closed or not logs:  # the policy runs
        needs.append(policy)
    for need in needs:
        if not need.exists():
            raise FileNotFoundError(f"{need}: missing (run the pipeline first)")
    out = run / "fidelity"
    from_standin = not logs  # logs given by the user may come from a real robot
    if not logs:  # a fresh walking log, held out from stages 1 and 2 by construction
        from deploy.walking_log import collect_walking
        from robot_rl.standin_model import load_standin_config

        held = out / "walking_heldout.npz"
        if not held.exists():
            collect_walking(policy, robot, collect_seconds, held, load_standin_config(standin),
                            seed=1000, progress=progress)
        logs = [held]
    held = [read_log(p, robot) for p in logs]
    worlds: dict[str, World] = {v.name: _world(robot, run, v) for v in VARIANTS}
    if previous is not None:
        worlds[PREVIOUS] = _world(robot, previous, Variant(True, "net"))
    if from_standin:  # the reference for what identification can give (grading only)
        from robot_rl.standin_model import load_standin_config

        worlds[TRUTH] = truth_world(robot, load_standin_config(standin))
    # every simulator's windows start after the longest warm-up among them
    dt = held[0].control_dt if held else 0.0
    first = max([FIRST_WINDOW] + [warm_steps(w[1], dt) for w in worlds.values()]) if held else 0
    # a robot that fell at once leaves a log shorter than one window: no open-loop figure
    # from it (said in the report), the closed loop still runs
    usable = [bool(windows(log, window_s, first)) for log in held]
    short = [log for log, ok in zip(held, usable) if not ok]
    held = [log for log, ok in zip(held, usable) if ok]
    skipped = [f"{log.path}: {log.time[-1] - log.time[0]:.2f} s, shorter than one {window_s} s "
               f"window{' (the robot fell)' if log.extra.get('fell') else ''}" for log in short]
    for line in skipped:
        print(f"note: open loop skips {line}")

    def mean_replay(world: World) -> dict[str, float]:
        per = [replay(log, robot, run, None, window_s, world=world, first=first) for log in held]
        return {k: float(np.mean([r[k] for r in per])) for k in per[0]}

    open_loop: dict[str, Any] = {name: mean_replay(w) for name, w in worlds.items()} if held else {}
    truth = open_loop.get(TRUTH)
    base = open_loop.get("nominal+pd")
    for name, o in open_loop.items():
        o["ratio_vs_nominal_pd"] = {k: o[k] / base[k] for k in ("joint_rmse_rad", "base_vel_rmse_mps",
                                                                "base_pos_end_err_m") if base[k] > 0}
        if truth is not None and name != TRUTH:
            o["gap_closed"] = gap_closed(base["joint_rmse_rad"], o["joint_rmse_rad"],
                                         truth["joint_rmse_rad"])
    result = {"run": str(run), "policy": str(policy), "standin_config": standin,
              "previous": None if previous is None else str(previous),
              "logs": [str(p) for p in logs], "physics_dt": PHYSICS_DT, "open_loop": open_loop,
              "open_loop_skipped": skipped,
              "closed_loop": closed_loop(policy, robot, run, standin, progress=progress)
              if closed else None}
    atomic_write_json(out / "fidelity.json", result)
    atomic_write_bytes(out / "fidelity.md", markdown(result).encode())
    atomic_write_bytes(out / "fidelity.png", plot(result))
    return result


def markdown(r: dict[str, Any]) -> str:
    lines = ["# Simulator fidelity", "",
             f"Run `{r['run']}`, policy `{r['policy']}`, robot: stand-in "
             f"`{r['standin_config'] or 'default'}`; training physics step {r['physics_dt']} s.", "",
             "## Open loop (held-out walking logs, multiple shooting)", "",
             "| simulator | joint RMSE (rad) | base vel RMSE (m/s) | base pos at window end (m) "
             "| x nominal+pd (joints) | gap to the truth closed |", "|---|---|---|---|---|---|"]
    for line in r.get("open_loop_skipped", []):
        lines.append(f"| skipped: {line} | | | | | |")
    for name, o in r["open_loop"].items():
        closed = o.get("gap_closed")
        lines.append(f"| {name} | {o['joint_rmse_rad']:.4f} | {o['base_vel_rmse_mps']:.3f} | "
                     f"{o['base_pos_end_err_m']:.3f} | "
                     f"{o['ratio_vs_nominal_pd'].get('joint_rmse_rad', float('nan')):.2f} | "
                     f"{'' if closed is None else f'{closed:.0%}'} |")
    if PREVIOUS in r["open_loop"]:
        lines += ["", f"`{PREVIOUS}`: the simulator of `{r['previous']}` on the same logs."]
    if TRUTH in r["open_loop"]:
        lines += ["", f"`{TRUTH}`: the stand-in's hidden physics and its own actuator equations "
                  "in the training simulator, the reference for what identification can give "
                  "it; what is left is mostly MuJoCo's difference from PyBullet. Grading "
                  "only: no stage reads the truth."]
    if r["closed_loop"]:
        lines += ["", "## Closed loop (the same policy, the suite's commands)", "",
                  "| where | falls | vx err | vy err | yaw err | torque (N m) | falls agree with robot |",
                  "|---|---|---|---|---|---|---|"]
        for name, c in r["closed_loop"].items():
            errs = " | ".join("-" if c[k] is None else f"{c[k]:.{d}f}"  # None: every episode fell
                              for k, d in (("vx_abs_err", 3), ("vy_abs_err", 3),
                                           ("yaw_abs_err", 3), ("torque_mean", 2)))
            lines.append(f"| {name} | {c['falls']} | {errs} | {c['fall_agreement']:.0%} |")
    return "\n".join(lines) + "\n"


def plot(r: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(r["open_loop"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    if not names:
        for ax in axes:
            ax.text(0.5, 0.5, "no held-out log long enough for one window", ha="center",
                    va="center", transform=ax.transAxes)
    axes[0].bar(names, [r["open_loop"][n]["joint_rmse_rad"] for n in names], color="tab:blue")
    axes[0].set_ylabel("open-loop joint RMSE (rad)")
    axes[1].bar(names, [r["open_loop"][n]["base_vel_rmse_mps"] for n in names], color="tab:orange")
    axes[1].set_ylabel("open-loop base velocity RMSE (m/s)")
    for ax in axes:
        ax.tick_params(axis="x", rotation=20)
    fig.suptitle("simulator vs robot on held-out walking logs")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robot-rl fidelity",
        description="Measure how well the run's simulators ({nominal, identified} parameters x "
                    "{ideal PD, actuator network}) predict the robot: open loop on held-out "
                    "walking logs (multiple shooting from the logged state) and closed loop "
                    "(the same policy on the robot and in each simulator). Writes "
                    "<run>/fidelity/fidelity.{json,md,png}.")
    p.add_argument("--run", required=True, help="pipeline run folder (sysid/, actuator/, policy.onnx)")
    p.add_argument("--logs", nargs="*", default=None,
                   help="held-out logs with base state [default: collect a fresh walking log "
                        "with the run's policy into <run>/fidelity/walking_heldout.npz]")
    p.add_argument("--policy", default=None, help="policy.onnx [<run>/policy.onnx]")
    p.add_argument("--seconds", type=float, default=30.0, help="walking log length (s) [30]")
    p.add_argument("--window", type=float, default=0.5, help="open-loop window (s) [0.5]")
    p.add_argument("--previous", default=None, metavar="RUN",
                   help="also replay the held-out logs in this run's (e.g. the previous "
                        "round's) identified simulator with its network, to compare the two "
                        "on the same data")
    p.add_argument("--open-loop-only", action="store_true", help="skip the closed-loop runs")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if not 0.05 <= a.window <= 2.0:
        print(f"robot-rl fidelity: error: --window {a.window}: expected 0.05 to 2 s", file=sys.stderr)
        return 2
    r = fidelity(a.run, a.logs, a.policy, a.seconds, a.window, closed=not a.open_loop_only,
                 progress=not a.quiet, previous=a.previous)
    print(markdown(r))
    print(f"wrote {Path(a.run) / 'fidelity'}/fidelity.json, fidelity.md, fidelity.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
