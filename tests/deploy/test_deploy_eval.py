"""MujocoRobot and the evaluation machinery on both simulators (tiny durations).

A random policy does not walk: these tests check files, report structure and finite
metrics, not locomotion quality.
"""

from __future__ import annotations

import dataclasses
import json
import math

import mujoco
import numpy as np
import pytest

from deploy.eval_cli import build_parser
from deploy.eval_cli import main as eval_main
from deploy.evaluate import EvalConfig, evaluate, make_interface, run_episode
from deploy.export import export_policy
from deploy.runtime import Mode, OnboardController
from deploy.safety import SafetyConfig
from deploy.testing import FakeRobot, write_random_policy
from robot_rl.mujoco_robot import MujocoRobot
from robot_rl.obs_spec import quat_rotate_inverse
from robot_rl.robot import load_robot

A1 = load_robot("a1")
TINY = dict(seconds=0.6, settle_s=0.2, safety=SafetyConfig(hold_s=0.1, ramp_s=0.2),
            commands=((0.4, 0.0, 0.0), (0.0, 0.0, 0.5)), video_seconds=0.4)


@pytest.fixture(scope="module")
def onnx_a1(tmp_path_factory):
    root = tmp_path_factory.mktemp("ev")
    write_random_policy(root / "policy", "a1", seed=2)
    return export_policy(root / "policy", root / "policy.onnx").path


# -- MujocoRobot ------------------------------------------------------------------------------
def test_mujoco_robot_push_adds_to_the_base_velocity_only():
    sim = MujocoRobot(A1)
    sim.reset()
    before = sim.ground_truth()
    q = sim.read_state().q
    sim.push(np.array([0.4, -0.3, 0.0]))
    after = sim.ground_truth()
    np.testing.assert_allclose(after.base_linvel - before.base_linvel, [0.4, -0.3, 0.0], atol=1e-12)
    np.testing.assert_array_equal(after.base_angvel, before.base_angvel)
    np.testing.assert_array_equal(sim.read_state().q, q)


def test_mujoco_robot_with_encoder_offsets_reports_and_tracks_through_them():
    """A miscalibrated encoder reads q + o, and the joint's PD acts on that reading."""
    o = np.linspace(-0.05, 0.05, A1.num_joints)
    sim = MujocoRobot(A1, encoder_offset=o)
    s = sim.reset()
    q_true = sim.data.qpos[sim.idx.qpos].copy()
    np.testing.assert_allclose(s.q, q_true + o, atol=1e-12)
    target = A1.array("nominal_pose") + 0.01
    sim.send_targets(target)
    sim.step()
    want = np.clip(A1.array("kp") * (target - (q_true + o)), -A1.array("tau_max"), A1.array("tau_max"))
    np.testing.assert_allclose(sim.read_state().tau, want, atol=1e-9)  # at rest before the step
    with pytest.raises(ValueError, match="encoder_offset"):
        MujocoRobot(A1, encoder_offset=np.zeros(3))


def test_mujoco_robot_interface_frames_and_pd():
    sim = MujocoRobot(A1)
    s = sim.reset()
    assert sim.control_dt == 0.005 and s.stamp == 0.0
    np.testing.assert_allclose(s.q, A1.nominal_pose)
    np.testing.assert_allclose(s.base_quat, [1, 0, 0, 0])
    # frames: world linear velocity, base-frame angular velocity (as the sensors measure)
    d = sim.data
    d.qpos[3:7] = np.array([math.cos(0.4), 0.3, 0.2, 0.1]) / np.linalg.norm(
        [math.cos(0.4), 0.3, 0.2, 0.1])
    d.qvel[0:6] = [0.5, -0.2, 0.1, 0.3, -0.7, 1.1]
    mujoco.mj_forward(sim.model, d)
    s = sim.read_state()
    sens = {sim.model.sensor(i).name: d.sensordata[sim.model.sensor_adr[i]:
                                                   sim.model.sensor_adr[i] + sim.model.sensor_dim[i]]
            for i in range(sim.model.nsensor)}
    np.testing.assert_allclose(s.base_angvel, sens["base_gyro"], atol=1e-9)
    np.testing.assert_allclose(s.base_acc, sens["base_acc"], atol=1e-9)
    np.testing.assert_allclose(s.base_quat, sens["base_quat"], atol=1e-9)
    # a robot measures no base position or linear velocity: only the ground truth has them
    assert s.base_pos is None and s.base_linvel is None
    gt = sim.ground_truth()
    np.testing.assert_allclose(quat_rotate_inverse(gt.base_quat[None], gt.base_linvel[None])[0],
                               sens["base_linvel_local"], atol=1e-9)
    np.testing.assert_allclose(gt.base_linvel_b, sens["base_linvel_local"], atol=1e-9)
    np.testing.assert_allclose(gt.base_pos, d.qpos[0:3])
    # ideal PD at every physics step, torques clipped
    sim.reset()
    target = A1.array("nominal_pose") + 0.1
    sim.send_targets(target)
    s = sim.step()
    assert s.stamp == pytest.approx(0.005)
    assert np.all(np.abs(s.tau) <= A1.array("tau_max"))
    with pytest.raises(ValueError, match="finite targets"):
        sim.send_targets(np.full(12, np.nan))


def test_mujoco_robot_stands_with_nominal_targets_and_model_hook():
    seen = []

    def hook(model):
        seen.append(model.nbody)
        model.dof_damping[6:] = 0.1

    sim = MujocoRobot(A1, decimation=4, model_hook=hook)
    assert seen and sim.control_dt == pytest.approx(0.02)
    assert np.allclose(sim.model.dof_damping[6:], 0.1)
    sim.reset()
    for _ in range(50):
        s = sim.step()
    assert s.stamp == pytest.approx(1.0)
    assert sim.ground_truth().base_pos[2] > 0.5 * A1.nominal_base_height and s.base_quat[0] > 0.95


# -- evaluation ---------------------------------------------------------------------------------
def test_run_episode_metrics(onnx_a1):
    sim = MujocoRobot(A1)
    ctl = OnboardController(onnx_a1, A1, sim, SafetyConfig(hold_s=0.1, ramp_s=0.2))
    cfg = EvalConfig(sim="mujoco", **TINY)
    metrics, data = run_episode(ctl, sim, (0.4, 0.0, 0.0), cfg)
    assert list(data["mode"][:5]) == ["HOLD"] * 5 and data["mode"][15] == "POLICY"
    assert metrics["policy_seconds"] == pytest.approx(0.6) and metrics["tracking_samples"] == 20
    err = np.mean(np.abs(data["vx"][data["mode"] == "POLICY"][10:] - 0.4))
    assert metrics["vx_abs_err"] == pytest.approx(err)
    tracked = data["mode"] == "POLICY"
    tracked[np.flatnonzero(tracked)[:10]] = False
    assert metrics["vy_mean"] == pytest.approx(np.mean(data["vy"][tracked]))
    assert metrics["yaw_mean"] == pytest.approx(np.mean(data["yaw"][tracked]))
    assert metrics["vy_abs_err"] == pytest.approx(np.mean(np.abs(data["vy"][tracked])))
    for k in ("vx_abs_err", "yaw_abs_err", "torque_mean", "power_mean"):
        assert math.isfinite(metrics[k]) and metrics[k] >= 0
    assert ctl.mode is Mode.POLICY


def test_run_episode_takes_metrics_from_ground_truth_not_the_controller_state(onnx_a1):
    robot = FakeRobot(A1)
    # ground truth only: turned 90 deg, moving along world y = its own x at 0.5 m/s
    robot.base_quat = np.array([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)])
    robot.base_linvel = np.array([0.0, 0.5, 0.0])
    ctl = OnboardController(onnx_a1, A1, robot, SafetyConfig(hold_s=0.1, ramp_s=0.2))
    cfg = EvalConfig(sim="mujoco", **TINY)
    metrics, data = run_episode(ctl, robot, (0.4, 0.0, 0.0), cfg)
    np.testing.assert_allclose(data["vx"], 0.5, atol=1e-9)
    np.testing.assert_allclose(data["vy"], 0.0, atol=1e-9)
    assert metrics["vx_abs_err"] == pytest.approx(0.1) and not metrics["fell"]
    assert metrics["vy_mean"] == pytest.approx(0.0, abs=1e-9)
    # the onboard estimate (no foot loaded, at rest: ~0) is graded against the truth
    assert metrics["estimator_vx_rmse"] == pytest.approx(0.5, abs=0.01)
    robot.base_pos = np.array([0.0, 0.0, 0.05])  # the truth says: on the floor
    metrics, _ = run_episode(ctl, robot, (0.4, 0.0, 0.0), cfg)
    assert metrics["fell"]


def test_run_episode_records_fault_and_fall(onnx_a1):
    sim = MujocoRobot(A1)
    ctl = OnboardController(onnx_a1, A1, sim, SafetyConfig(hold_s=0.1, ramp_s=0.2))
    calls = [0]

    def thrash(obs):  # a policy that slams the joints from one side to the other
        calls[0] += 1
        return np.full((1, 12), 10.0 * (-1) ** (calls[0] // 5), np.float32)

    ctl._infer = thrash
    cfg = EvalConfig(sim="mujoco", **dict(TINY, seconds=3.0))
    metrics, data = run_episode(ctl, sim, (0.4, 0.0, 0.0), cfg)
    assert metrics["fault"] is not None and "DAMPING" in data["mode"]
    assert metrics["fell"] and metrics["fall_time_s"] < 1.5
    assert len(data["t"]) < 15 + 150  # the episode ended early
    assert math.isfinite(metrics["vx_abs_err"]) and math.isfinite(metrics["power_mean"])


def _check_report(report, sim, n_episodes=2):
    assert report["sim"] == sim and report["robot"] == "a1"
    s = report["metrics"]
    assert s["episodes"] == n_episodes and len(report["episodes"]) == n_episodes
    for k in ("vx_abs_err", "yaw_abs_err", "torque_mean", "power_mean", "policy_seconds"):
        assert isinstance(s[k], float) and math.isfinite(s[k]), k
    assert isinstance(s["falls"], int) and isinstance(s["faults"], int)
    t = report["timing"]
    assert 0 < t["policy_step_us_p50"] <= t["policy_step_us_p99"] and t["simulated_s"] > 0
    for e in report["episodes"]:
        assert set(e["command"]) == {"vx", "vy", "yaw_rate"}
        assert isinstance(e["fell"], bool) and "events" in e


def test_evaluate_both_sims_with_sim_to_sim_table(onnx_a1, tmp_path):
    out = tmp_path / "eval"
    mj = evaluate(onnx_a1, out, EvalConfig(sim="mujoco", **TINY))
    _check_report(mj, "mujoco")
    assert (out / "report_mujoco.json").exists() and (out / "report.json").exists()
    pyb = evaluate(onnx_a1, out, EvalConfig(sim="pybullet", **TINY))
    _check_report(pyb, "pybullet")
    for f in ("report.json", "report.md", "report_pybullet.json", "report_pybullet.md",
              "report_mujoco.json", "report_mujoco.md", "velocity_pybullet.png",
              "velocity_mujoco.png", "rollout.gif"):
        assert (out / f).stat().st_size > 0, f
    assert (out / "velocity_pybullet.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "rollout.gif").read_bytes()[:3] == b"GIF"
    head = json.loads((out / "report.json").read_text())
    assert head["sim"] == "pybullet"
    comp = head["compare"]
    assert comp["a"] == "pybullet" and comp["b"] == "mujoco"
    row = {r["metric"]: r for r in comp["metrics"]}["vx_abs_err"]
    assert row["gap"] == pytest.approx(row["pybullet"] - row["mujoco"])
    assert len(comp["per_command"]) == 2
    md = (out / "report.md").read_text()
    assert "Sim-to-sim gap (pybullet vs mujoco)" in md and "rollout.gif" in md
    assert "| vx cmd | vy cmd | yaw cmd | vx mean | vy mean | yaw mean |" in md
    assert not list(out.glob(".*.tmp"))


def test_mujoco_with_sysid_parameters(onnx_a1, tmp_path):
    params = {"robot": "a1", "parameters": {
        "damping/FR_hip_joint": {"fitted": 0.25, "std": 0.01, "range": [0.2, 0.3]},
        "armature/RL_lower_joint": {"fitted": 0.004, "std": 0.001, "range": [0.003, 0.005]}}}
    (tmp_path / "sysid").mkdir()
    (tmp_path / "sysid" / "params.json").write_text(json.dumps(params))
    cfg = EvalConfig(sim="mujoco", **TINY)
    sim = make_interface(cfg, A1, tmp_path / "sysid")
    m = sim.model
    assert m.dof_damping[m.jnt_dofadr[m.joint("FR_hip_joint").id]] == pytest.approx(0.25)
    assert m.dof_armature[m.jnt_dofadr[m.joint("RL_lower_joint").id]] == pytest.approx(0.004)
    report = evaluate(onnx_a1, tmp_path / "eval", dataclasses.replace(cfg, commands=((0.2, 0, 0),)),
                      sysid=tmp_path / "sysid")
    assert report["sysid"] == str(tmp_path / "sysid")
    assert "sysid parameters" in (tmp_path / "eval" / "report.md").read_text()
    params["robot"] = "aliengo"
    (tmp_path / "sysid" / "params.json").write_text(json.dumps(params))
    with pytest.raises(ValueError, match="for robot 'aliengo', expected 'a1'"):
        make_interface(cfg, A1, tmp_path / "sysid")


def test_eval_cli_no_video_and_compare(onnx_a1, tmp_path, capsys):
    opts = {o for a in build_parser()._actions for o in a.option_strings}
    assert {"--sim", "--policy", "--out", "--seconds", "--robot", "--sysid", "--compare",
            "--no-video"} <= opts
    mj_out = tmp_path / "mj"
    common = ["--policy", str(onnx_a1), "--seconds", "0.4", "--settle", "0.1",
              "--commands", "0.2,0,0", "--quiet"]
    assert eval_main(["--sim", "mujoco", "--out", str(mj_out), *common,
                      "--set", "safety.ramp_s=0.3"]) == 0
    resolved = json.loads((mj_out / "config_mujoco.json").read_text())
    assert resolved["safety"]["ramp_s"] == 0.3 and resolved["seconds"] == 0.4
    assert resolved == json.loads((mj_out / "report_mujoco.json").read_text())["config"]
    out = tmp_path / "pb"
    assert eval_main(["--sim", "pybullet", "--out", str(out), "--no-video",
                      "--compare", str(mj_out / "report_mujoco.json"), *common]) == 0
    assert not (out / "rollout.gif").exists()
    report = json.loads((out / "report.json").read_text())
    _check_report(report, "pybullet", n_episodes=1)
    assert report["compare"]["b"] == "mujoco"
    assert report["config"]["seconds"] == 0.4
    # a model for another robot is refused with a clear message (exit 2: bad input)
    assert eval_main(["--sim", "mujoco", "--robot", "aliengo", "--out", str(tmp_path / "x"),
                      *common]) == 2
    assert "model was exported for robot 'a1', this robot is 'aliengo'" in capsys.readouterr().err


def test_run_episode_records_the_tilt_the_start_sequence_hands_over(onnx_a1):
    """A stand that tilts during HOLD and RAMP falls on its own; the episode says how tilted
    the robot was when the policy took over (here a base rolled 20 degrees)."""
    fake = FakeRobot(A1)
    half = math.radians(20.0) / 2
    fake.base_quat = np.array([math.cos(half), math.sin(half), 0.0, 0.0])
    ctl = OnboardController(onnx_a1, A1, fake, SafetyConfig(hold_s=0.1, ramp_s=0.2))
    metrics, _ = run_episode(ctl, fake, (0.4, 0.0, 0.0), EvalConfig(sim="mujoco", **TINY))
    assert metrics["handover_tilt_deg"] == pytest.approx(20.0, abs=1e-6)
