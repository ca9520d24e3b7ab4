"""Realities: the shipped stand-in configs, the actuator effects they use, bad input, the
evaluation on a chosen reality (with pushes) and the transfer suite."""

import json

import numpy as np
import pytest

from deploy.eval_cli import main as eval_main
from deploy.suite import SUCCESS, episode_success, run_suite
from robot_rl.app.pipeline import _reality, build_parser, stages
from robot_rl.config import ConfigError
from robot_rl.robot import load_robot
from robot_rl.standin import PyBulletStandIn
from robot_rl.standin_actuator import ReferenceActuator, ReferenceActuatorConfig
from robot_rl.standin_model import (
    HiddenParams,
    StandInConfig,
    load_standin_config,
    realities,
)

A1 = load_robot("a1")
POLICY = "policies/trained/a1/policy.onnx"


def hidden(rotor=0.001):
    z = np.zeros(12)
    return HiddenParams(0.0, np.zeros(3), np.ones(4), z, z, np.full(12, rotor), 0.8)


def test_every_shipped_reality_loads_is_documented_and_differs():
    names = realities()
    assert names[0] == "default" and len(names) >= 7
    default = load_standin_config("default")
    for n in names:
        cfg = load_standin_config(n)
        assert len(cfg.description) > 40, n
        if n != "default":
            assert cfg != default.__class__(**{**vars(default), "description": cfg.description}), n


@pytest.mark.parametrize("patch, field", [
    ({"bogus": 1}, "bogus"),
    ({"actuator": {"latency": -0.01}}, "latency"),
    ({"actuator": {"spring_stiffness": -5.0}}, "spring_stiffness"),
    ({"seed": "seven"}, "seed"),
    ({"seed": 1.5}, "seed"),
])
def test_bad_stand_in_config_names_file_and_field(tmp_path, patch, field, capsys):
    data = json.loads(load_standin_config.__globals__["STANDIN_DIR"].joinpath("default.json").read_text())
    for k, v in patch.items():
        data[k] = {**data[k], **v} if isinstance(v, dict) else v
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=field) as e:
        load_standin_config(bad)
    assert str(bad) in str(e.value)
    # through the command line: one line, exit 2, nothing written
    out = tmp_path / "eval"
    assert eval_main(["--policy", POLICY, "--standin-config", str(bad), "--out", str(out),
                      "--seconds", "0.5", "--quiet", "--no-video"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err and field in err
    assert not out.exists()


def test_series_spring_deflects_by_torque_over_stiffness_and_sensor_reads_it():
    k = 60.0
    act = ReferenceActuator(ReferenceActuatorConfig(latency=0.0, spring_stiffness=k,
                                                    spring_damping=0.3), A1, 0.001, hidden())
    q0 = A1.array("nominal_pose")
    act.reset(q0)
    act.push_target(q0 + 0.05)
    z = np.zeros(12)
    lag = []
    for _ in range(3000):  # link held still: the motor winds the spring up
        meas, joint = act.step(q0, z)
        # the torque sensor reads the spring, which is what the link gets (no friction here)
        np.testing.assert_allclose(meas, joint, rtol=1e-9, atol=1e-12)
        lag.append(np.abs(act.tau - meas).max())
    assert max(lag) > 0.1  # while winding up, the spring lags the motor's torque
    # the driver's PD sees the link error only: kp * 0.05 N m, carried by the spring
    np.testing.assert_allclose(meas, A1.array("kp") * 0.05, rtol=2e-3)
    np.testing.assert_allclose(act.theta - q0, meas / k, rtol=2e-3)


def test_backlash_transmits_nothing_inside_the_play():
    act = ReferenceActuator(ReferenceActuatorConfig(latency=0.0, backlash=0.04), A1, 0.001,
                            hidden())
    rigid = ReferenceActuator(ReferenceActuatorConfig(latency=0.0), A1, 0.001, hidden())
    q0 = A1.array("nominal_pose")
    z = np.zeros(12)
    for a in (act, rigid):
        a.reset(q0)
        a.push_target(q0 + 0.1)
    gap = []
    for _ in range(20):
        m_b, j_b = act.step(q0, z)
        m_r, j_r = rigid.step(q0, z)
        gap.append((m_b[0], j_b[0], j_r[0]))
    gap = np.array(gap)
    # the motor's current builds up while the joint gets nothing, then the mesh engages
    free = (gap[:, 0] > 0.5) & (gap[:, 1] == 0.0)
    assert free.any() and (gap[free, 2] > 0.5).all()
    assert gap[-1, 1] > 0.5


def test_i2t_foldback_to_continuous_torque():
    c, t_i2t = 0.4, 0.2
    act = ReferenceActuator(ReferenceActuatorConfig(latency=0.0, i2t_seconds=t_i2t,
                                                    continuous_torque_fraction=c), A1, 0.001,
                            hidden())
    q0 = A1.array("nominal_pose")
    act.reset(q0)
    act.push_target(q0 + 10.0)  # demands far more than the stall torque
    z = np.zeros(12)
    taus = [act.step(q0, z)[0] for _ in range(3000)]
    t_max = A1.array("tau_max")
    assert np.all(np.asarray(taus[30]) > 0.9 * t_max)  # stall torque at first
    np.testing.assert_allclose(taus[-1], c * t_max, rtol=0.02)  # then the continuous torque


def test_latency_jitter_keeps_order_and_bounds():
    dt, lat, jit = 0.001, 0.01, 0.006
    act = ReferenceActuator(ReferenceActuatorConfig(latency=lat, latency_jitter=jit), A1, dt,
                            hidden(), rng=np.random.default_rng(3))
    q0 = A1.array("nominal_pose")
    act.reset(q0)
    used, sent_at = [], {}
    for k in range(400):
        if k % 5 == 0:
            sent_at[k // 5] = k
            act.push_target(q0 + (k // 5 + 1) * 1e-3)
        act.step(q0, np.zeros(12))
        used.append(int(round((act.target[0] - q0[0]) / 1e-3)) - 1)
    used = np.array(used)
    assert np.all(np.diff(used) >= 0)  # never out of order
    delays = [k - sent_at[i] for k, i in enumerate(used) if i >= 0 and (k == 0 or used[k - 1] != i)]
    assert min(delays) >= round(lat / dt) and max(delays) <= round((lat + jit) / dt) + 1
    assert max(delays) > min(delays)  # the jitter is there


def test_torque_sensor_scale():
    act = ReferenceActuator(ReferenceActuatorConfig(latency=0.0, torque_sensor_scale=1.1), A1,
                            0.001, hidden())
    q0 = A1.array("nominal_pose")
    act.reset(q0)
    act.push_target(q0 + 0.05)
    for _ in range(50):
        meas, joint = act.step(q0, np.zeros(12))
    np.testing.assert_allclose(meas, 1.1 * joint, rtol=1e-9)


def test_push_adds_to_the_base_velocity():
    with PyBulletStandIn(A1, StandInConfig(seed=0)) as s:
        s.reset()
        import pybullet as pb

        client, body = s.pybullet
        before = np.array(pb.getBaseVelocity(body, physicsClientId=client)[0])
        s.push(np.array([0.5, -0.2, 0.0]))
        after = np.array(pb.getBaseVelocity(body, physicsClientId=client)[0])
        np.testing.assert_allclose(after - before, [0.5, -0.2, 0.0], atol=1e-9)


def test_episode_success_thresholds():
    ok = {"fell": False, "fault": None, **{k: v * 0.99 for k, v in SUCCESS.items()}}
    assert episode_success(ok)
    for k in SUCCESS:
        assert not episode_success({**ok, k: SUCCESS[k] * 1.01})
    assert not episode_success({**ok, "fell": True})


def test_suite_runs_each_reality_and_seed(tmp_path):
    suite = run_suite(POLICY, tmp_path, names=["default", "series_elastic"], seeds=(0, 4),
                      seconds=1.0, push_interval_s=0.5, progress=False)
    for f in ("suite.json", "suite.md", "suite.png"):
        assert (tmp_path / f).stat().st_size > 0
    assert set(suite["realities"]) == {"default", "series_elastic"}
    for entry in suite["realities"].values():
        eps = entry["episodes"]
        assert len(eps) == 2 * 6 and {e["seed"] for e in eps} == {0, 4}
        assert {e["name"] for e in eps} == {"forward", "backward", "lateral", "turn", "combined",
                                            "stand"}
        assert all(e["pushes"] >= 1 for e in eps if not e["fell"])
        assert entry["summary"]["success_rate"] == np.mean([e["success"] for e in eps])
    md = (tmp_path / "suite.md").read_text()
    assert "| series_elastic |" in md and "60 N m/rad" in md


def test_suite_takes_a_stand_in_config_of_ones_own_and_names_unknown_ones(tmp_path):
    own = tmp_path / "late_bus.json"
    own.write_text(json.dumps({"description": "a 40 ms bus", "actuator": {"latency": 0.04}}))
    suite = run_suite(POLICY, None, names=[str(own)], seeds=(0,), seconds=0.5,
                      push_interval_s=0.0, progress=False)
    entry = suite["realities"][str(own)]
    assert entry["config_file"].endswith("late_bus.json") and entry["description"] == "a 40 ms bus"
    assert len(entry["episodes"]) == 6
    with pytest.raises(ValueError, match=r"unknown \['no_such_reality'\].*path of a stand-in"):
        run_suite(POLICY, None, names=["no_such_reality"], progress=False)


def test_suite_cli_takes_the_controllers_safety_settings_only(tmp_path, capsys):
    out = tmp_path / "s"
    assert eval_main(["--policy", POLICY, "--suite", "--realities", "default", "--suite-seeds",
                      "0", "--seconds", "0.5", "--out", str(out), "--quiet",
                      "--set", "safety.command_accel=1.5", "safety.command_yaw_accel=3"]) == 0
    safety = json.loads((out / "suite.json").read_text())["safety"]
    assert safety["command_accel"] == 1.5 and safety["command_yaw_accel"] == 3
    assert safety["ramp_s"] == 1.0  # evaluation's start ramp kept
    capsys.readouterr()
    assert eval_main(["--policy", POLICY, "--suite", "--out", str(tmp_path / "x"),
                      "--set", "seconds=3"]) == 2
    assert "--set seconds=3: the suite sets its own" in capsys.readouterr().err
    assert eval_main(["--policy", POLICY, "--suite", "--out", str(tmp_path / "x"),
                      "--set", "safety.command_accel=-1"]) == 2
    assert "command_accel must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_eval_records_the_reality_and_the_pipeline_passes_it(tmp_path):
    out = tmp_path / "e"
    assert eval_main(["--policy", POLICY, "--standin-config", "driver_mismatch",
                      "--standin-seed", "2", "--seconds", "0.5", "--out", str(out), "--quiet",
                      "--no-video", "--commands", "0.3,0,0"]) == 0
    rep = json.loads((out / "report_pybullet.json").read_text())
    assert rep["standin"]["config_file"].endswith("driver_mismatch.json")
    assert rep["standin"]["seed"] == 2 and rep["standin"]["config"]["actuator"]["kp_scale"] == 0.7
    a = build_parser().parse_args(["--out", str(tmp_path / "p"), "--standin-config", "x.json"])
    assert _reality(a) == ["--standin-config", "x.json"]
    names = [st.name for st in stages(a)]
    assert names[-3:] == ["eval-pybullet", "baseline", "fidelity"]


def test_suite_with_terrains_reports_each_tile_against_its_goal(tmp_path, capsys):
    from deploy.suite import TERRAIN_GOALS, run_terrains, suite_markdown

    goals = {"stairs up 8 cm": TERRAIN_GOALS["stairs up 8 cm"]}
    tiles = run_terrains(POLICY, seeds=(0, 1), progress=False, goals=goals, seconds=1.0)
    t = tiles["stairs up 8 cm"]
    assert t["difficulty"] == pytest.approx(0.3) and t["goal"] == 0.8
    assert len(t["episodes"]) == 2 * 4 and {e["seed"] for e in t["episodes"]} == {0, 1}
    # 1 s cannot cross a 3.7 m half tile: nothing succeeds, every episode walked a little
    assert t["summary"]["success_rate"] == 0.0 and 0.0 < t["summary"]["distance_mean"] < 1.5
    md = suite_markdown({"policy": POLICY, "seeds": [0, 1], "seconds": 1.0, "push_speed": 0.4,
                         "push_interval_s": 3.0, "commands": {},
                         "realities": {}, "overall": {"episodes": 0, "falls": 0, "success_rate": 0.0,
                                                       "vx_abs_err": None, "vy_abs_err": None,
                                                       "yaw_abs_err": None},
                         "terrains": tiles})
    assert "| stairs up 8 cm | 0.300 | " in md and "| 0% | 80% (not met) |" in md
    assert eval_main(["--policy", POLICY, "--terrains", "--out", str(tmp_path)]) == 2
    assert "--terrains: needs --suite" in capsys.readouterr().err
