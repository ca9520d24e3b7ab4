"""Bad input gives a clear error (exit code 2, no params.json) or an explicit "not identifiable"."""

import json

import numpy as np
import pytest

from robot_rl.collect import collect
from robot_rl.logs import RobotLog, read_log, write_log
from robot_rl.robot import load_robot
from robot_rl.standin import PyBulletStandIn
from robot_rl.standin_model import StandInConfig
from sysid.cli import main

A1 = load_robot("a1")


def constant_target_log(path, seconds=4.0):
    """A suspended log whose targets never move: the joints are not excited."""
    with PyBulletStandIn(A1, StandInConfig(seed=3), suspended=True) as s:
        st, rows = s.reset(), []
        q0 = A1.array("nominal_pose")
        for _ in range(int(seconds / s.control_dt)):
            s.send_targets(q0)
            rows.append(st)
            st = s.step()
    # the joints only: a rig log has no base state to report
    arr = {k: np.array([getattr(r, k) for r in rows]) for k in ("q", "qd", "tau")}
    log = RobotLog(time=np.array([r.stamp for r in rows]), q_target=np.tile(q0, (len(rows), 1)),
                   robot="a1", joint_names=list(A1.joint_names), experiment="constant",
                   control_dt=0.005, base_fixed=True, **arr)
    return write_log(path, log)


def run(tmp_path, *logs, robot="a1", extra=()):
    out = tmp_path / "sysid"
    rc = main(["--logs", *map(str, logs), "--robot", robot, "--out", str(out), "--no-plots", *extra])
    return rc, out


def test_log_of_another_robot_is_rejected(tmp_path, capsys):
    log = collect(load_robot("aliengo"), "suspended", 3.0, tmp_path / "aliengo.npz",
                  StandInConfig(seed=1), progress=False)
    rc, out = run(tmp_path, log, robot="a1")
    assert rc == 2
    err = capsys.readouterr().err
    assert "aliengo" in err and "meta.robot" in err and "aliengo.npz" in err
    assert not (out / "params.json").exists()


def test_too_short_log_is_rejected(tmp_path, capsys):
    log = collect(A1, "suspended", 1.0, tmp_path / "short.npz", StandInConfig(seed=1), progress=False)
    rc, out = run(tmp_path, log)
    assert rc == 2
    assert "too short" in capsys.readouterr().err
    assert not (out / "params.json").exists()


def test_unexcited_log_is_not_identifiable(tmp_path, capsys):
    log = constant_target_log(tmp_path / "constant.npz")
    rc, out = run(tmp_path, log)
    assert rc == 2
    err = capsys.readouterr().err
    assert "nothing identifiable" in err and "not excited" in err
    assert not (out / "params.json").exists()


def test_ground_logs_alone_and_missing_files_are_rejected(tmp_path, capsys):
    g = collect(A1, "ground", 3.0, tmp_path / "ground.npz", StandInConfig(seed=1), progress=False)
    rc, out = run(tmp_path, g)
    assert rc == 2 and "suspended" in capsys.readouterr().err
    rc, out = run(tmp_path, tmp_path / "nope.npz")
    assert rc == 2 and "no such log file" in capsys.readouterr().err
    assert not (out / "params.json").exists()


def test_bad_config_override_is_rejected(tmp_path, capsys):
    log = collect(A1, "suspended", 3.0, tmp_path / "s.npz", StandInConfig(seed=1), progress=False)
    rc, out = run(tmp_path, log, extra=["--set", "joints.no_such_key=1"])
    assert rc == 2 and "joints.no_such_key" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture(scope="module")
def collapsed_ground(tmp_path_factory):
    """Weak drivers (a tenth of the commanded gains): the ground experiment leaves A1
    resting on its thighs (a quarter does too with its kneeling stance, not with a level one)."""
    from robot_rl.standin_actuator import ReferenceActuatorConfig

    tmp = tmp_path_factory.mktemp("collapsed")
    cfg = StandInConfig(seed=2)
    weak = StandInConfig(seed=2, actuator=ReferenceActuatorConfig(kp_scale=0.1, kd_scale=0.5))
    susp = collect(A1, "suspended", 10.0, tmp / "suspended.npz", cfg, progress=False)
    ground = collect(A1, "ground", 8.0, tmp / "ground.npz", weak, progress=False)
    return tmp, susp, ground


def test_ground_log_without_valid_stance_gives_explicit_not_identifiable(collapsed_ground):
    tmp, susp, ground = collapsed_ground
    rc, out = run(tmp, susp, ground)
    assert rc == 0
    data = json.loads((out / "params.json").read_text())
    p = data["parameters"]
    for k in ("trunk_mass", "trunk_com/x", "trunk_com/y", "trunk_com/z", "foot_friction"):
        assert not p[k]["identifiable"], k
        assert p[k]["reason"], k
        assert p[k]["range"][0] <= p[k]["fitted"] <= p[k]["range"][1]
        assert p[k]["range"][1] == p[k]["bounds"][1]  # whole physical range upwards
    assert "non-foot geometry" in p["trunk_mass"]["reason"]
    assert p["trunk_mass"]["range"] == p["trunk_mass"]["bounds"]
    assert data["ground"]["excluded_fraction"]["non-foot geometry near the floor"] > 0.5
    # the joints were still identified from the suspended log
    assert all(p[f"damping/{j}"]["identifiable"] for j in A1.joint_names)


def test_a_shin_that_ends_at_the_toe_does_not_void_the_ground_log(tmp_path):
    # laikago's lower-leg mesh reaches into its toe sphere: counted as "non-foot geometry
    # near the floor", it voided 99 % of the ground log and left the trunk unidentified
    from sysid.config import GroundFitConfig
    from sysid.ground import ground_data

    laikago = load_robot("laikago")
    path = collect(laikago, "ground", 3.0, tmp_path / "ground.npz", StandInConfig(seed=0),
                   progress=False)
    data = ground_data(read_log(path), laikago, {}, GroundFitConfig())
    assert data.reasons["non-foot geometry near the floor"] < 0.1, data.reasons
