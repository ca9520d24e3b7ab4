"""Fidelity: the open-loop replay reproduces a log made by the same simulator, and tells a
simulator with other parameters apart; the report and CLI."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from deploy.fidelity import VARIANTS, Variant, main, replay
from robot_rl.logs import RobotLog, write_log
from robot_rl.mujoco_robot import MujocoRobot
from robot_rl.robot import load_robot
from sysid.params import hand_set_table

A1 = load_robot("a1")


def sim_log(seconds: float = 1.5) -> RobotLog:
    """A standing A1 in MuJoCo (nominal model, ideal PD, 5 ms) tracking swaying targets."""
    r = MujocoRobot(A1, physics_dt=0.005)
    q0 = A1.array("nominal_pose")
    rows = {k: [] for k in ("time", "q_target", "q", "qd", "tau", "base_pos", "base_quat",
                            "base_linvel", "base_angvel")}
    for k in range(int(seconds / 0.005)):
        st, gt = r.read_state(), r.ground_truth()
        target = q0 + 0.15 * np.sin(2 * np.pi * 1.5 * k * 0.005 + np.arange(12))
        for name, v in (("time", st.stamp), ("q_target", target), ("q", st.q), ("qd", st.qd),
                        ("tau", st.tau), ("base_pos", gt.base_pos), ("base_quat", gt.base_quat),
                        ("base_linvel", gt.base_linvel), ("base_angvel", gt.base_angvel)):
            rows[name].append(v)
        r.send_targets(target)
        r.step()
    return RobotLog(**{k: np.array(v) for k, v in rows.items()}, robot="a1",
                    joint_names=list(A1.joint_names), experiment="walking", control_dt=0.005,
                    base_fixed=False, kp=A1.array("kp").tolist(), kd=A1.array("kd").tolist())


@pytest.fixture(scope="module")
def run(tmp_path_factory, small_actuator_net):
    run = tmp_path_factory.mktemp("run")
    table = hand_set_table(A1)
    table["trunk_mass"]["fitted"] *= 1.5  # the "identified" robot carries a payload
    (run / "sysid").mkdir()
    (run / "sysid" / "params.json").write_text(json.dumps({"robot": "a1", "parameters": table}))
    (run / "actuator").mkdir()
    shutil.copy(small_actuator_net("shared", 40.0)[0], run / "actuator" / "actuator.pt")
    write_log(run / "walk.npz", sim_log())
    return run


def test_replay_reproduces_its_own_simulator_and_separates_others(run):
    from robot_rl.logs import read_log

    log = read_log(run / "walk.npz", A1)
    same = replay(log, A1, run, Variant(False, "pd"), window_s=0.25)
    other = replay(log, A1, run, Variant(True, "pd"), window_s=0.25)
    assert same["windows"] >= 5
    # the log's own simulator, restarted from the logged state: float error only
    assert same["joint_rmse_rad"] < 1e-5 and same["base_vel_rmse_mps"] < 1e-5
    # a 50 % heavier trunk sags under the same targets
    assert other["joint_rmse_rad"] > 100 * same["joint_rmse_rad"]
    assert other["base_vel_rmse_mps"] > 1e-3


def test_fidelity_cli_writes_the_report(run, capsys):
    assert main(["--run", str(run), "--logs", str(run / "walk.npz"), "--open-loop-only",
                 "--quiet"]) == 0
    out = run / "fidelity"
    data = json.loads((out / "fidelity.json").read_text())
    assert set(data["open_loop"]) == {v.name for v in VARIANTS}
    assert data["open_loop"]["nominal+pd"]["ratio_vs_nominal_pd"]["joint_rmse_rad"] == 1.0
    assert (out / "fidelity.png").stat().st_size > 0 and "| identified+net |" in (
        out / "fidelity.md").read_text()
    assert main(["--run", str(run), "--window", "9", "--quiet"]) == 2


def test_a_log_too_short_for_one_window_is_skipped_and_said(run, capsys):
    """A robot that fell at once leaves a held-out log shorter than one window: the report
    names it and has no open-loop rows instead of failing the pipeline's last stage."""
    from deploy.fidelity import markdown

    write_log(run / "short.npz", sim_log(seconds=0.3))
    assert main(["--run", str(run), "--logs", str(run / "short.npz"), str(run / "walk.npz"),
                 "--open-loop-only", "--window", "0.25", "--quiet"]) == 0
    data = json.loads((run / "fidelity" / "fidelity.json").read_text())
    assert len(data["open_loop_skipped"]) == 1 and "short.npz" in data["open_loop_skipped"][0]
    assert data["open_loop"]["nominal+pd"]["windows"] >= 5  # from walk.npz alone
    assert main(["--run", str(run), "--logs", str(run / "short.npz"), "--open-loop-only",
                 "--window", "0.25", "--quiet"]) == 0
    data = json.loads((run / "fidelity" / "fidelity.json").read_text())
    assert data["open_loop"] == {} and "shorter than one 0.25 s window" in (
        run / "fidelity" / "fidelity.md").read_text()
    # every episode fell: no tracking errors (None), the table says "-"
    fell = {"falls": 6, "vx_abs_err": None, "vy_abs_err": None, "yaw_abs_err": None,
            "torque_mean": None, "fall_agreement": 1.0}
    md = markdown({**data, "closed_loop": {"robot": fell}})
    assert "| robot | 6 | - | - | - | - | 100% |" in md


def standin_log(reality: str, seconds: float = 1.5) -> tuple[RobotLog, object]:
    """The A1 standing on the PyBullet stand-in of ``reality`` under swaying targets, logged
    as a walking log is (encoders, motion capture)."""
    from deploy.walking_log import RecordingInterface
    from robot_rl.standin import PyBulletStandIn
    from robot_rl.standin_model import load_standin_config

    cfg = load_standin_config(reality)
    q0 = A1.array("nominal_pose")
    with PyBulletStandIn(A1, cfg) as s:
        rec = RecordingInterface(s)
        rec.reset()
        for k in range(int(seconds / rec.control_dt)):
            rec.send_targets(q0 + 0.2 * np.sin(2 * np.pi * 2.0 * k * rec.control_dt + np.arange(12)))
            rec.step()
    log = RobotLog(**{k: np.array(v) for k, v in rec.rows.items()}, robot="a1",
                   joint_names=list(A1.joint_names), experiment="walking",
                   control_dt=rec.control_dt, base_fixed=False, kp=A1.array("kp").tolist(),
                   kd=A1.array("kd").tolist())
    return log, cfg


@pytest.mark.parametrize("reality", ["driver_mismatch", "friction_backlash"])
def test_the_stand_in_truth_in_the_training_simulator_predicts_the_stand_in(reality, run):
    """The reference row of the report: the stand-in's hidden physics and its own actuator
    equations in MuJoCo predict the stand-in's joints to the engines' difference, ~0.02 rad
    RMS (0.019 and 0.015 measured), far better than the nominal model with ideal PD (0.13
    and 0.07: kp 0.7x and 20-28 ms of latency; 2-3x joint friction, backlash).  Counting the
    joint friction twice (the actuator's and the model's) gives 0.025 and 0.034, dropping
    the driver's latency 0.023 on driver_mismatch."""
    from deploy.fidelity import truth_world

    log, cfg = standin_log(reality)
    nominal = replay(log, A1, run, Variant(False, "pd"), window_s=0.25)
    truth = replay(log, A1, None, None, window_s=0.25, world=truth_world(A1, cfg))
    assert truth["windows"] == nominal["windows"] >= 4
    assert truth["joint_rmse_rad"] < 0.022
    assert truth["joint_rmse_rad"] < 0.3 * nominal["joint_rmse_rad"]
    assert truth["base_vel_rmse_mps"] < 0.5 * nominal["base_vel_rmse_mps"]


def test_the_simulator_reads_its_joints_through_the_encoder_offsets(run):
    """On a robot whose encoders read q_true + o (+-0.05 rad), the truth world predicts
    the logged joints only when it starts from, drives and reports through the offsets
    (0.25 s windows from the logged state: the rest of the error is the two engines')."""
    from deploy.fidelity import truth_world

    log, cfg = standin_log("encoder_offset")
    hook, act, offsets, floor = truth_world(A1, cfg)
    assert np.abs(offsets).max() > 0.02
    truth = replay(log, A1, None, None, window_s=0.25, world=(hook, act, offsets, floor))
    blind = replay(log, A1, None, None, window_s=0.25, world=(hook, act, 0 * offsets, floor))
    print(f"\nencoder offsets: joint RMSE {truth['joint_rmse_rad']:.4f} rad with, "
          f"{blind['joint_rmse_rad']:.4f} without")
    assert truth["joint_rmse_rad"] < 0.025  # 0.022 measured; the engines' difference
    assert truth["joint_rmse_rad"] < 0.85 * blind["joint_rmse_rad"]  # 0.029 measured


def test_gap_closed():
    from deploy.fidelity import gap_closed

    assert gap_closed(0.08, 0.02, 0.02) == pytest.approx(1.0)
    assert gap_closed(0.08, 0.05, 0.02) == pytest.approx(0.5)
    assert gap_closed(0.08, 0.08, 0.02) == pytest.approx(0.0)
    assert gap_closed(0.08, 0.08, 0.0799) is None


def test_windows_start_after_the_slowest_simulators_warm_up(run):
    """A driver with a 20 ms current loop behind a 12 ms bus needs 17 control steps of log
    before a window (latency + three time constants); the report starts every simulator's
    windows after the longest warm-up among them (a fixed start at 16 steps stopped the
    pipeline's last stage with a traceback on such a robot)."""
    import dataclasses

    from deploy.fidelity import FIRST_WINDOW, truth_world, warm_steps
    from robot_rl.logs import read_log
    from robot_rl.standin_model import load_standin_config

    cfg = load_standin_config("default")
    cfg = dataclasses.replace(cfg, actuator=dataclasses.replace(
        cfg.actuator, torque_time_constant=0.02, latency=0.012))
    world = truth_world(A1, cfg)
    log = read_log(run / "walk.npz", A1)
    warm = warm_steps(world[1], log.control_dt)
    assert warm == 17 > FIRST_WINDOW
    with pytest.raises(ValueError, match="needs 17 control steps of history"):
        replay(log, A1, None, None, window_s=0.25, world=world)
    r = replay(log, A1, None, None, window_s=0.25, world=world, first=warm)
    assert r["windows"] >= 4 and np.isfinite(r["joint_rmse_rad"])
    # the network's history reaches back (num_lags - 1) spacings: its warm-up covers it
    from deploy.fidelity import _actuation

    net = _actuation(A1, run / "actuator", 0.001)
    assert net.history_s > 0
    assert warm_steps(net, log.control_dt) * log.control_dt >= net.history_s + log.control_dt


def test_the_stand_in_truth_walks_the_policy_in_the_training_simulator_as_the_robot_does():
    """The closed loop's truth row: the stand-in's hidden physics and driver in MuJoCo, driven
    by the committed policy, walk as the PyBullet stand-in does on a reality whose drivers
    are far from the data sheet (`underdamped_drivers`: kp 1.35x, kd 0.6x, 25 ms bus), where
    the nominal model with ideal PD walks differently.  Measured at a 0.5 m/s command: the
    stand-in overshoots to 0.64 m/s at 4.3 N m mean torque, the truth world 0.61 at 4.4, the
    nominal model 0.42 at 3.0."""
    from deploy.evaluate import EvalConfig, evaluate
    from deploy.fidelity import SimRobot, truth_world
    from robot_rl.standin_model import load_standin_config

    policy = "policies/trained/a1/policy.onnx"
    kw = dict(robot="a1", seconds=4.0, commands=((0.5, 0.0, 0.0),), video=False)
    robot = evaluate(policy, None, EvalConfig(sim="pybullet", standin_config="underdamped_drivers",
                                             standin_seed=0, **kw), progress=False)
    world = truth_world(A1, load_standin_config("underdamped_drivers"))
    truth = evaluate(policy, None, EvalConfig(sim="mujoco", **kw),
                     interface=SimRobot(A1, None, None, world=world), progress=False)
    nominal = evaluate(policy, None, EvalConfig(sim="mujoco", **kw), progress=False)
    vx = {k: rep["episodes"][0]["vx_mean"] for k, rep in
          (("robot", robot), ("truth", truth), ("nominal", nominal))}
    tau = {k: rep["metrics"]["torque_mean"] for k, rep in
           (("robot", robot), ("truth", truth), ("nominal", nominal))}
    assert not any(rep["episodes"][0]["fell"] for rep in (robot, truth, nominal))
    assert abs(vx["truth"] - vx["robot"]) < 0.08 < abs(vx["nominal"] - vx["robot"]), vx
    assert abs(tau["truth"] - tau["robot"]) < 0.1 * tau["robot"] < abs(tau["nominal"] - tau["robot"]), tau
    with pytest.raises(ValueError, match="not both"):
        SimRobot(A1, None, Path("actuator"), world=world)


def test_the_stand_in_truth_on_a_soft_floor_predicts_its_height_only_with_the_pads():
    """The fidelity replay of a log from the stand-in on a 3000 N/m mat: its hidden truth in
    MuJoCo tracks the logged base height within ~2 mm with the floor's pads (each window
    starting with them pressed to the logged depth), 8 mm on MuJoCo's rigid contact."""
    from deploy.fidelity import replay, truth_world

    log, cfg = standin_log("soft_floor", seconds=2.0)
    hook, act, offsets, floor = truth_world(A1, cfg)
    assert (3000.0, 200.0) == (floor.stiffness, floor.damping)
    pad = replay(log, A1, None, None, window_s=0.25, world=(hook, act, offsets, floor))
    rigid = replay(log, A1, None, None, window_s=0.25, world=(hook, act, offsets, None))
    print(f"\nsoft floor, base height RMSE: {1e3 * pad['base_height_rmse_m']:.1f} mm with pads, "
          f"{1e3 * rigid['base_height_rmse_m']:.1f} mm rigid")
    assert pad["base_height_rmse_m"] < 0.5 * rigid["base_height_rmse_m"]
    assert pad["base_vel_rmse_mps"] < rigid["base_vel_rmse_mps"]
