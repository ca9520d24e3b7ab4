"""Importers: column mappings of the ankle CSV, ANYmal binary pair and robot_rl logs."""

from __future__ import annotations

import numpy as np
import pytest

from actuator_net.data import ActuatorDataError
from actuator_net.importers import (
    ANKLE_CSV,
    expand_paths,
    load_series,
    read_anymal,
    read_csv,
    read_robot_log,
)
from actuator_net.synthetic import pendulum_log
from robot_rl.logs import write_log


def write_ankle_csv(path, rows=60, joints=2, seed=0, bad=None):
    """A small ankle-format CSV, columns in a scrambled order, tau_cal as a decoy."""
    rng = np.random.default_rng(seed)
    cols = {}
    for i in range(joints):
        cols[f"tau_cal_{i}"] = rng.normal(size=rows) * 100
        cols[f"joint_vel_{i}"] = rng.normal(size=rows)
        cols[f"tau_est_{i}"] = rng.normal(size=rows)
        cols[f"joint_pos_{i}"] = rng.normal(size=rows)
        cols[f"joint_pos_target_{i}"] = rng.normal(size=rows)
    names = list(cols)[::-1]
    lines = [",".join(names)]
    for r in range(rows):
        cells = [repr(float(cols[n][r])) for n in names]
        if bad and r == bad[1]:
            cells[names.index(bad[0])] = bad[2]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return cols


def test_ankle_csv_column_mapping(tmp_path):
    cols = write_ankle_csv(tmp_path / "a.csv", rows=60, joints=3)
    s = read_csv(tmp_path / "a.csv", ANKLE_CSV)
    assert s.joint_names == ["ankle_0", "ankle_1", "ankle_2"]
    for i in range(3):
        np.testing.assert_allclose(s.pos_error[:, i],
                                   cols[f"joint_pos_target_{i}"] - cols[f"joint_pos_{i}"])
        np.testing.assert_allclose(s.vel[:, i], cols[f"joint_vel_{i}"])
        np.testing.assert_allclose(s.tau[:, i], cols[f"tau_est_{i}"])  # not tau_cal
    np.testing.assert_allclose(np.diff(s.time), 0.02)
    assert s.kp is None and s.actuator_keys is None
    assert s.field_name("tau", 2) == "tau_est_2"


@pytest.mark.parametrize("cell", ["nan", "", "inf"])
def test_ankle_csv_rejects_nan(tmp_path, cell):
    write_ankle_csv(tmp_path / "a.csv", bad=("joint_vel_1", 17, cell))
    with pytest.raises(ActuatorDataError, match=r"a\.csv.*joint_vel_1.*row 17"):
        read_csv(tmp_path / "a.csv")


def test_ankle_csv_missing_column(tmp_path):
    (tmp_path / "a.csv").write_text("joint_pos_0,joint_vel_0,tau_est_0\n1,2,3\n")
    with pytest.raises(ActuatorDataError, match="joint_pos_target_0.*missing column"):
        read_csv(tmp_path / "a.csv")


def write_anymal(tmp_path, n=200, seed=0, name="anymal_sea_X_input.f64"):
    """A chained-window ANYmal pair from a known series of n + 15 steps."""
    rng = np.random.default_rng(seed)
    T = n + 15
    vel, perr, tau = rng.normal(size=T), rng.normal(size=T) * 0.1, rng.normal(size=T) * 5
    rows = np.stack([np.concatenate([vel[k:k + 16], perr[k:k + 16], tau[k:k + 16]])
                     for k in range(n)])
    inp = tmp_path / name
    rows.astype("<f8").tofile(inp)
    tau[15:].astype("<f8").tofile(tmp_path / name.replace("_input", "_target"))
    return inp, vel, perr, tau


def test_anymal_reconstructs_series(tmp_path):
    inp, vel, perr, tau = write_anymal(tmp_path)
    s = read_anymal(inp)
    np.testing.assert_array_equal(s.vel[:, 0], vel)
    np.testing.assert_array_equal(s.pos_error[:, 0], perr)
    np.testing.assert_array_equal(s.tau[15:, 0], tau[15:])
    assert s.first_label == 15  # labels are exactly the target file's 200 samples
    assert s.num_rows - s.first_label == 200
    np.testing.assert_allclose(np.diff(s.time), 1 / 400)
    assert s.kp.tolist() == [50.0] and s.kd.tolist() == [0.1]
    # either file of the pair names it; a folder lists the input once
    assert read_anymal(tmp_path / "anymal_sea_X_target.f64").num_rows == s.num_rows
    assert expand_paths([tmp_path]) == [inp]


def test_anymal_model_never_sees_torque_window(tmp_path):
    """Scrambling the torque window (values 32-47) changes nothing: only the target is a label."""
    inp, *_ = write_anymal(tmp_path)
    a = read_anymal(inp)
    raw = np.fromfile(inp, "<f8").reshape(-1, 48)
    raw[:, 32:48] = np.random.default_rng(1).normal(size=(raw.shape[0], 16))
    raw.tofile(inp)
    b = read_anymal(inp)
    np.testing.assert_array_equal(a.pos_error, b.pos_error)
    np.testing.assert_array_equal(a.vel, b.vel)
    np.testing.assert_array_equal(a.tau[a.first_label:], b.tau[b.first_label:])


def test_anymal_rejects_nan_and_broken_windows(tmp_path):
    inp, *_ = write_anymal(tmp_path)
    raw = np.fromfile(inp, "<f8").reshape(-1, 48)
    bad = raw.copy()
    bad[40, 20] = np.nan
    bad.tofile(inp)
    with pytest.raises(ActuatorDataError, match=r"anymal_sea_X_input\.f64.*position error.*sample 40"):
        read_anymal(inp)
    bad = raw.copy()
    bad[41, 3] += 1.0  # window 41 no longer continues window 40
    bad.tofile(inp)
    with pytest.raises(ActuatorDataError, match="velocity.*not one contiguous"):
        read_anymal(inp)
    raw.tofile(inp)
    t = np.fromfile(tmp_path / "anymal_sea_X_target.f64", "<f8")
    t[5] = np.nan
    t.tofile(tmp_path / "anymal_sea_X_target.f64")
    with pytest.raises(ActuatorDataError, match=r"_target\.f64.*target.*sample 5"):
        read_anymal(inp)
    t[:-1].tofile(tmp_path / "anymal_sea_X_target.f64")
    with pytest.raises(ActuatorDataError, match="199 values, expected 200"):
        read_anymal(inp)


def test_robot_log_mapping_and_types(tmp_path):
    log = pendulum_log(seconds=2.0, num_joints=2)
    path = write_log(tmp_path / "p.npz", log)
    s = read_robot_log(path)
    np.testing.assert_allclose(s.pos_error, log.q_target - log.q)
    np.testing.assert_allclose(s.vel, log.qd)
    np.testing.assert_allclose(s.tau, log.tau)
    assert s.kp.tolist() == [20.0, 20.0]
    assert s.actuator_keys[0] == s.actuator_keys[1]


def test_robot_log_a1_types_from_description(tmp_path):
    """A1: hips (20 N m) and thigh/calf (55 N m) motors are two actuator types under 'auto'."""
    from actuator_net.train import resolve_joint_types
    from robot_rl.logs import RobotLog
    from robot_rl.robot import load_robot

    a1 = load_robot("a1")
    rng = np.random.default_rng(0)
    n, nj = 50, a1.num_joints
    log = RobotLog(time=np.arange(n) * 0.005, q_target=rng.normal(size=(n, nj)),
                   q=rng.normal(size=(n, nj)), qd=rng.normal(size=(n, nj)),
                   tau=rng.normal(size=(n, nj)), robot="a1", joint_names=list(a1.joint_names),
                   experiment="t", control_dt=0.005, base_fixed=True, kp=list(a1.kp),
                   kd=list(a1.kd))
    s = read_robot_log(write_log(tmp_path / "a1.npz", log), a1)
    types, names = resolve_joint_types("auto", [s])
    assert len(names) == 2
    assert types == [0, 1, 1] * 4
    assert resolve_joint_types("shared", [s])[0] == [0] * 12
    assert resolve_joint_types("per_joint", [s])[0] == list(range(12))


def test_load_series_rejects_mixed_joints(tmp_path):
    write_log(tmp_path / "a.npz", pendulum_log(seconds=1.0, num_joints=1))
    write_log(tmp_path / "b.npz", pendulum_log(seconds=1.0, num_joints=2))
    with pytest.raises(ActuatorDataError, match=r"b\.npz.*joint_names"):
        load_series([tmp_path])
