"""Evaluate an exported policy with the onboard runtime, in PyBullet or MuJoCo.

The same :class:`~deploy.runtime.OnboardController` that a robot computer runs drives a
:class:`~robot_rl.interface.RobotInterface`:

* ``pybullet``: the hardware stand-in (:class:`robot_rl.standin.PyBulletStandIn`: hidden
  physics, reference actuator with latency and saturation), the "real world" here;
* ``mujoco``: :class:`robot_rl.mujoco_robot.MujocoRobot`, the training simulator with an
  ideal PD (optionally with stage 1's identified parameters applied, ``--sysid``).

Both run the same fixed command set: one episode per command, each starting from a reset
with the controller's start sequence (HOLD, RAMP), then ``seconds`` of policy control.
The controller sees only what the robot measures; the metrics come from the simulator's
ground truth (:meth:`~robot_rl.interface.RobotInterface.ground_truth`).  Metrics per
episode (tracking errors use POLICY periods after ``settle_s``), averaged over episodes
in the report's ``metrics``:

* ``vx_abs_err``: mean |base-frame forward velocity - commanded| (m/s);
* ``yaw_abs_err``: mean |base-frame yaw rate - commanded| (rad/s);
* ``fell``: base height below ``fall_height_fraction`` x nominal, or the base's up axis
  z-component below ``fall_up_z``; ``fault``: the controller's DAMPING reason, if any;
* ``torque_mean``: mean |tau| over joints and time (N m); ``power_mean``: mean of
  sum_j |tau_j qd_j| (W);
* ``estimator_vx_rmse``, ``estimator_vy_rmse``: when the policy observes the onboard base
  velocity estimate, its RMS error against the true base-frame velocity (m/s).

On a terrain tile (``terrain``, :mod:`robot_rl.terrain`; both simulators load the same
height field) the base height of the fall test is measured from the ground under the
base, and an episode also reports ``distance`` (horizontal, from the spawn point, m),
``crossed`` (walked the tile's :attr:`~robot_rl.terrain.Terrain.goal_distance`; the episode
ends there) and ``success`` (crossed without falling); the report adds ``success_rate``
and ``distance_mean``.  Without a terrain the robot walks on the simulators' plane.

Files in ``out``: ``report_<sim>.json`` and ``report_<sim>.md``; ``report.json`` and
``report.md`` hold the headline (the PyBullet report when there is one) with the
sim-to-sim gap when both simulators (or ``compare``) are available; ``velocity_<sim>.png``;
for PyBullet ``rollout.gif`` unless ``video=False``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploy.eval_report import METRICS, _fmt, _jsonable, compare_reports, write_outputs  # noqa: F401
from deploy.export import read_metadata
from deploy.runtime import Mode, OnboardController
from deploy.safety import SafetyConfig
from robot_rl.config import to_dict
from robot_rl.interface import RobotInterface
from robot_rl.robot import FALL_HEIGHT_FRACTION, FALL_UP_Z, RobotDescription, load_robot
from robot_rl.terrain import Terrain, TerrainConfig, generate

SIMS = ("pybullet", "mujoco")
#: (vx m/s, vy m/s, yaw rate rad/s), one episode each: forward sweep, turning on the spot,
#: stepping sideways (the lateral error then grades lateral commands, not only drift)
DEFAULT_COMMANDS: tuple[tuple[float, float, float], ...] = (
    (-0.8, 0.0, 0.0), (-0.4, 0.0, 0.0), (0.0, 0.0, 0.0), (0.4, 0.0, 0.0), (0.8, 0.0, 0.0),
    (0.0, 0.0, -0.5), (0.0, 0.0, 0.5), (0.0, 0.25, 0.0), (0.0, -0.25, 0.0))
#: commands on a terrain tile: each must cross it, forwards or backwards
TERRAIN_COMMANDS: tuple[tuple[float, float, float], ...] = (
    (0.4, 0.0, 0.0), (0.8, 0.0, 0.0), (-0.4, 0.0, 0.0), (-0.8, 0.0, 0.0))


#: the start sequence's ramp in evaluation (s): 1.0, where the onboard controller's default
#: (SafetyConfig.ramp_s) is 1.5 s; every committed report and RESULTS figure used 1.0
EVAL_RAMP_S = 1.0


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation: simulator, command set, durations, fall criteria, outputs."""

    # simulator: "pybullet" (hardware stand-in) or "mujoco" (ideal PD)
    sim: str = "pybullet"
    # robot description name; "" = the robot named in the model's metadata
    robot: str = ""
    # policy-controlled duration of each command episode, after the start sequence (s)
    seconds: float = 20.0
    # time after the handover to the policy excluded from tracking errors (s)
    settle_s: float = 2.0
    # one episode per command: (forward m/s, lateral m/s, yaw rate rad/s)
    commands: tuple[tuple[float, float, float], ...] = DEFAULT_COMMANDS
    # the onboard controller's start sequence and fault thresholds; evaluation ramps in
    # EVAL_RAMP_S, not the controller's default (every evaluation figure was measured so)
    safety: SafetyConfig = field(default_factory=lambda: SafetyConfig(ramp_s=EVAL_RAMP_S))
    # fall: base height below this fraction of the nominal base height (-), as in training
    fall_height_fraction: float = FALL_HEIGHT_FRACTION
    # fall: z-component of the base's up axis below this (-), as in training
    fall_up_z: float = FALL_UP_Z
    # time simulated after a fault (in DAMPING) to see whether the robot falls (s)
    after_fault_s: float = 1.0
    # PyBullet stand-in: config file or shipped reality name ("" = robot_rl/standin/default.json)
    standin_config: str = ""
    # PyBullet stand-in: hidden-physics seed (None: the config's own seed)
    standin_seed: int | None = None
    # pushes: interval between kicks of the base during policy control (s; 0 = none)
    push_interval_s: float = 0.0
    # pushes: horizontal speed added to the base, in a random direction (m/s)
    push_speed: float = 0.5
    # pushes: seed of the push directions
    push_seed: int = 0
    # render a short GIF (PyBullet only)
    video: bool = True
    # GIF: seconds of policy control recorded, frame rate (1/s), size (px)
    video_seconds: float = 3.0
    video_fps: int = 10
    video_size: tuple[int, int] = (160, 120)
    # terrain tile under the robot (None: the simulators' plane, no crossing test)
    terrain: TerrainConfig | None = None

    def __post_init__(self) -> None:
        if self.sim not in SIMS:
            raise ValueError(f"sim must be one of {SIMS}, got {self.sim!r}")
        if not self.seconds > 0 or self.settle_s < 0:
            raise ValueError("seconds must be > 0 and settle_s >= 0")
        if not self.commands or any(len(c) != 3 for c in self.commands):
            raise ValueError("commands: need at least one (vx, vy, yaw_rate) triple")
        if self.push_interval_s < 0 or self.push_speed < 0:
            raise ValueError("push_interval_s and push_speed must be >= 0")
        if self.standin_seed is not None and (isinstance(self.standin_seed, bool) or not isinstance(
                self.standin_seed, int) or self.standin_seed < 0):
            raise ValueError(f"standin_seed must be a non-negative integer, got "
                             f"{self.standin_seed!r}")


# -- simulators -----------------------------------------------------------------------------
def sysid_hook(robot: RobotDescription, sysid: str | Path):
    """``model_hook`` applying stage 1's fitted parameters (``<run>/sysid/params.json``)."""
    from sysid.apply import apply_params  # stage 1's single definition of the mapping
    from sysid.artifact import read_params  # and of its artifact

    values = read_params(sysid, robot=robot.name).values
    return lambda model: apply_params(model, values, robot)


def sysid_offsets(robot: RobotDescription, sysid: str | Path | None) -> np.ndarray:
    """Stage 1's encoder zero offsets (J,) rad from ``<run>/sysid/params.json`` (zeros for
    the nominal model, ``sysid`` None): a simulated robot measures q + offset."""
    from sysid.apply import encoder_offsets
    from sysid.artifact import read_params

    if sysid is None:
        return np.zeros(robot.num_joints)
    return encoder_offsets(read_params(sysid, robot=robot.name).values, robot)


def sysid_floor(robot: RobotDescription, sysid: str | Path | None):
    """The compliant floor stage 1 measured (a :class:`~robot_rl.sim_mujoco.FloorPad`), None
    for a rigid or unidentified floor and for the nominal model (``sysid`` None)."""
    from sysid.artifact import read_params

    return None if sysid is None else read_params(sysid, robot=robot.name).floor


def make_interface(cfg: EvalConfig, robot: RobotDescription, sysid: str | Path | None = None,
                   actuator: str | Path | None = None) -> RobotInterface:
    """The simulated robot for ``cfg.sim`` (on ``cfg.terrain``); in MuJoCo with stage 1's
    parameters from ``sysid`` and, with ``actuator``, stage 2's network driving the joints
    (the world phase 3 trains in) instead of an ideal PD."""
    terrain = generate(cfg.terrain) if cfg.terrain is not None else None
    if cfg.sim == "pybullet":
        from robot_rl.standin import PyBulletStandIn
        from robot_rl.standin_model import load_standin_config

        seed = {} if cfg.standin_seed is None else {"seed": cfg.standin_seed}
        return PyBulletStandIn(robot, load_standin_config(cfg.standin_config or None, **seed),
                               terrain=terrain)
    if actuator is not None:
        from deploy.fidelity import SimRobot

        return SimRobot(robot, None if sysid is None else Path(sysid), Path(actuator),
                        terrain=terrain)
    from robot_rl.mujoco_robot import MujocoRobot
    from robot_rl.sim_mujoco import MujocoModelConfig

    hook = sysid_hook(robot, sysid) if sysid is not None else None
    return MujocoRobot(robot, physics_dt=0.005, model_hook=hook, terrain=terrain,
                       encoder_offset=sysid_offsets(robot, sysid),
                       model_config=MujocoModelConfig(timestep=0.005,
                                                      floor=sysid_floor(robot, sysid)))


# -- one episode ------------------------------------------------------------------------------
class _Video:
    """Headless PyBullet frames (TinyRenderer), following the base."""

    def __init__(self, iface, cfg: EvalConfig):
        import pybullet as pb

        self.pb, (self.client, self.body) = pb, iface.pybullet
        self.w, self.h = cfg.video_size
        self.proj = pb.computeProjectionMatrixFOV(60, self.w / self.h, 0.05, 10.0)
        self.frames: list[np.ndarray] = []

    def capture(self) -> None:
        pb = self.pb
        pos, _ = pb.getBasePositionAndOrientation(self.body, physicsClientId=self.client)
        view = pb.computeViewMatrixFromYawPitchRoll(pos, 1.0, 50, -20, 0, 2)
        img = pb.getCameraImage(self.w, self.h, view, self.proj, renderer=pb.ER_TINY_RENDERER,
                                physicsClientId=self.client)
        self.frames.append(np.asarray(img[2], dtype=np.uint8).reshape(self.h, self.w, 4)[..., :3])


def run_episode(ctl: OnboardController, iface: RobotInterface, command, cfg: EvalConfig,
                video: _Video | None = None, terrain: Terrain | None = None,
                ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Reset, start sequence, then ``cfg.seconds`` of policy control under ``command``
    (on ``terrain``: until the robot crosses the tile, falls or the time is up)."""
    robot = ctl.robot
    iface.reset()
    ctl.set_command(*command)
    ctl.start()
    dt = ctl.control_dt
    n_start = int(round((cfg.safety.hold_s + cfg.safety.ramp_s) / dt))
    n_total = n_start + int(round(cfg.seconds / dt))
    n_after_fault = int(round(cfg.after_fault_s / dt))
    every = max(1, int(round(1.0 / (cfg.video_fps * dt))))
    n_video = int(round(cfg.video_seconds / dt))
    rec: dict[str, list] = {k: [] for k in ("t", "mode", "vx", "vy", "yaw", "tau", "power",
                                             "compute_us", "vx_est", "vy_est")}
    fell_at = None
    fault_steps = 0
    t_policy0 = None
    handover_tilt: float | None = None  # base tilt (deg) when the policy took over
    k_policy0 = 0
    n_push = int(round(cfg.push_interval_s / dt)) if cfg.push_interval_s > 0 else 0
    if n_push and not hasattr(iface, "push"):
        raise ValueError(f"push_interval_s: {type(iface).__name__} cannot be pushed")
    push_rng = np.random.default_rng(cfg.push_seed)
    pushes = 0
    start = np.asarray(terrain.spawn if terrain is not None else (0.0, 0.0))
    distance, crossed = 0.0, False
    for k in range(n_total):
        if n_push and t_policy0 is not None and k > k_policy0 and (k - k_policy0) % n_push == 0:
            angle = push_rng.uniform(0, 2 * math.pi)
            iface.push(cfg.push_speed * np.array([math.cos(angle), math.sin(angle), 0.0]))
            pushes += 1
        step = ctl.step()
        s = step.state
        # the true state at the end of the period (never measured), and the estimate then
        truth = iface.ground_truth()
        v_b, up_z = truth.base_linvel_b, truth.up_z
        est = ctl.estimator.velocity if ctl.estimator is not None else (np.nan, np.nan)
        rec["vx_est"].append(float(est[0]))
        rec["vy_est"].append(float(est[1]))
        if step.mode is Mode.POLICY and t_policy0 is None:
            t_policy0, k_policy0 = k * dt, k
            # how the start sequence hands the robot over: a tilted stand falls on its own
            handover_tilt = math.degrees(math.acos(max(-1.0, min(1.0, float(up_z)))))
        rec["t"].append(k * dt)
        rec["mode"].append(step.mode.value)
        rec["vx"].append(v_b[0])
        rec["vy"].append(v_b[1])
        rec["yaw"].append(float(truth.base_angvel[2]))
        rec["tau"].append(float(np.mean(np.abs(s.tau))))
        rec["power"].append(float(np.sum(np.abs(np.asarray(s.tau) * np.asarray(s.qd)))))
        rec["compute_us"].append(1e6 * ctl.last_compute_s)
        if video is not None and t_policy0 is not None and k - k_policy0 < n_video \
                and (k - k_policy0) % every == 0:
            video.capture()
        ground = 0.0 if terrain is None else float(terrain.height_at(*truth.base_pos[:2]))
        if fell_at is None and (truth.base_pos[2] - ground < cfg.fall_height_fraction
                                * robot.nominal_base_height or up_z < cfg.fall_up_z):
            fell_at = k * dt
            break
        if terrain is not None:
            distance = float(np.hypot(*(truth.base_pos[:2] - start)))
            if distance >= terrain.goal_distance:
                crossed = True
                break
        if ctl.mode is Mode.DAMPING:
            fault_steps += 1
            if fault_steps > n_after_fault:
                break
    data = {k: np.asarray(v) for k, v in rec.items()}
    mode = data["mode"]
    policy = mode == Mode.POLICY.value
    settled = policy & (data["t"] >= (t_policy0 if t_policy0 is not None else 0.0) + cfg.settle_s)
    use = settled if settled.any() else policy
    cmd = np.asarray(command, dtype=np.float64)

    def mean(x: np.ndarray) -> float | None:
        return float(np.mean(x)) if x.size else None

    def rms(x: np.ndarray) -> float | None:
        return float(np.sqrt(np.mean(x ** 2))) if x.size and np.all(np.isfinite(x)) else None

    metrics = {
        "command": {"vx": float(cmd[0]), "vy": float(cmd[1]), "yaw_rate": float(cmd[2])},
        "policy_seconds": float(policy.sum() * dt),
        "tracking_samples": int(use.sum()),
        "settled": bool(settled.any()),
        "vx_mean": mean(data["vx"][use]),
        "vy_mean": mean(data["vy"][use]),
        "yaw_mean": mean(data["yaw"][use]),
        "vx_abs_err": mean(np.abs(data["vx"][use] - cmd[0])),
        "vy_abs_err": mean(np.abs(data["vy"][use] - cmd[1])),
        "yaw_abs_err": mean(np.abs(data["yaw"][use] - cmd[2])),
        "estimator_vx_rmse": rms(data["vx_est"][use] - data["vx"][use]),
        "estimator_vy_rmse": rms(data["vy_est"][use] - data["vy"][use]),
        "torque_mean": mean(data["tau"][policy]),
        "power_mean": mean(data["power"][policy]),
        "pushes": pushes,
        "fell": fell_at is not None,
        "fall_time_s": None if fell_at is None or t_policy0 is None else fell_at - t_policy0,
        "handover_tilt_deg": handover_tilt,
        "fault": ctl.fault,
    }
    if terrain is not None:
        metrics.update(distance=distance, crossed=crossed,
                       success=crossed and fell_at is None and ctl.fault is None)
    data["command"] = np.tile(cmd, (len(mode), 1))
    return metrics, data


def summarize(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Averages over episodes (those with samples), counts of falls and faults."""

    def avg(key: str) -> float | None:
        vals = [e[key] for e in episodes if e[key] is not None]
        return float(np.mean(vals)) if vals else None

    terrain = {}
    if episodes and "success" in episodes[0]:
        terrain = {"success_rate": float(np.mean([e["success"] for e in episodes])),
                   "distance_mean": float(np.mean([e["distance"] for e in episodes]))}
    return {"episodes": len(episodes), "falls": sum(e["fell"] for e in episodes),
            "faults": sum(e["fault"] is not None for e in episodes),
            "vx_abs_err": avg("vx_abs_err"), "yaw_abs_err": avg("yaw_abs_err"),
            "vy_abs_err": avg("vy_abs_err"), "torque_mean": avg("torque_mean"),
            "power_mean": avg("power_mean"), "estimator_vx_rmse": avg("estimator_vx_rmse"),
            "estimator_vy_rmse": avg("estimator_vy_rmse"),
            "policy_seconds": float(sum(e["policy_seconds"] for e in episodes)), **terrain}


# -- the evaluation ----------------------------------------------------------------------------
def evaluate(policy: str | Path, out: str | Path | None = None, cfg: EvalConfig | None = None,
             sysid: str | Path | None = None, compare: str | Path | None = None,
             progress: bool = False, interface: RobotInterface | None = None,
             actuator: str | Path | None = None) -> dict[str, Any]:
    """Run the onboard runtime with ``policy`` (an exported ``.onnx``) in ``cfg.sim``.

    Returns the report dict; with ``out``, writes the report files, plot and GIF there.
    ``sysid`` (MuJoCo only) applies stage 1's fitted parameters to the model, ``actuator``
    (MuJoCo only) drives the joints with stage 2's network instead of an ideal PD; ``compare``
    names another report.json for the sim-to-sim table.  ``interface``: run on this robot
    instead of the one ``cfg.sim`` builds (it is closed afterwards).
    """
    cfg = cfg or EvalConfig()
    policy = Path(policy)
    meta = read_metadata(policy)
    robot = load_robot(cfg.robot or meta.robot)
    if (sysid is not None or actuator is not None) and cfg.sim != "mujoco":
        print(f"note: --sysid and --actuator apply to --sim mujoco only; ignored for {cfg.sim}")
        sysid = actuator = None
    safety = cfg.safety
    iface = interface if interface is not None else make_interface(cfg, robot, sysid, actuator)
    terrain = getattr(iface, "terrain", None)
    if cfg.terrain is not None and terrain is None:
        terrain = generate(cfg.terrain)
    episodes, traces = [], []
    frames: list[np.ndarray] = []
    t0 = time.perf_counter()
    try:
        ctl = OnboardController(policy, robot, iface, safety=safety)
        cmds = cfg.commands
        if progress:
            from tqdm import tqdm

            cmds = tqdm(cmds, desc=f"eval {cfg.sim}", unit="episode")
        video_ep = _video_episode(cfg.commands)
        for i, command in enumerate(cmds):
            video = _Video(iface, cfg) if (cfg.video and out is not None and cfg.sim == "pybullet"
                                           and i == video_ep) else None
            n_events = len(ctl.events)
            metrics, data = run_episode(ctl, iface, command, cfg, video, terrain)
            metrics["events"] = ctl.event_log[n_events:]
            episodes.append(metrics)
            traces.append(data)
            if video is not None:
                frames = video.frames
    finally:
        iface.close()
    wall = time.perf_counter() - t0
    sim_seconds = sum(len(d["t"]) for d in traces) * meta.control_dt
    compute = np.concatenate([d["compute_us"][d["mode"] == Mode.POLICY.value] for d in traces])
    report = {
        "sim": cfg.sim, "robot": robot.name, "policy": str(policy),
        "model": {"iteration": meta.iteration, "source_sha256": meta.source_sha256,
                  "control_dt": meta.control_dt, "obs_dim": meta.obs_dim},
        "sysid": None if sysid is None else str(sysid),
        "actuator": None if actuator is None else str(actuator),
        "standin": _standin_record(cfg, iface),
        "terrain": None if cfg.terrain is None else {
            **to_dict(cfg.terrain), "goal_distance_m": terrain.goal_distance,
            "spawn_height_m": terrain.spawn_height},
        "config": _jsonable(to_dict(cfg)),
        "metrics": summarize(episodes),
        "episodes": episodes,
        "timing": {"wall_s": wall, "simulated_s": sim_seconds,
                   "realtime_factor": sim_seconds / wall if wall > 0 else None,
                   # the controller's decision per period in POLICY mode (checks, observation,
                   # onnxruntime, clipping), measured inside the evaluation loop
                   "policy_step_us_p50": float(np.percentile(compute, 50)) if compute.size else None,
                   "policy_step_us_p99": float(np.percentile(compute, 99)) if compute.size else None},
    }
    if out is not None:
        write_outputs(Path(out), report, traces, frames, cfg.video_fps, compare)
    return report


def _standin_record(cfg: EvalConfig, iface: RobotInterface) -> dict[str, Any] | None:
    """Which reality the PyBullet evaluation ran on: the config file and its values."""
    if cfg.sim != "pybullet" or not hasattr(iface, "cfg"):
        return None
    from robot_rl.standin_model import resolve_standin_path

    return {"config_file": str(resolve_standin_path(cfg.standin_config or None)),
            "seed": iface.cfg.seed, "config": _jsonable(to_dict(iface.cfg))}


def _video_episode(commands) -> int:
    """The episode filmed: the first with a forward command, else the first."""
    for i, c in enumerate(commands):
        if c[0] > 0:
            return i
    return 0



__all__ = ["EvalConfig", "evaluate", "run_episode", "compare_reports", "make_interface",
           "DEFAULT_COMMANDS", "TERRAIN_COMMANDS", "SIMS"]
