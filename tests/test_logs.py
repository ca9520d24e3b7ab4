"""Log schema: the reader rejects each kind of bad log naming file and field; writes are atomic."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from robot_rl.collect import collect
from robot_rl.logs import LogError, RobotLog, read_log, write_log
from robot_rl.robot import load_robot


def make_log(n=50, nj=12, **kw) -> RobotLog:
    robot = load_robot("a1")
    rng = np.random.default_rng(0)
    base = dict(
        time=np.arange(n) * 0.005, q_target=rng.normal(size=(n, nj)), q=rng.normal(size=(n, nj)),
        qd=rng.normal(size=(n, nj)), tau=rng.normal(size=(n, nj)), robot="a1",
        joint_names=list(robot.joint_names[:nj]), experiment="test", control_dt=0.005,
        base_fixed=True, kp=list(robot.kp[:nj]), kd=list(robot.kd[:nj]))
    base.update(kw)
    return RobotLog(**base)


def rewrite(path, drop=(), meta_update=None, arrays_update=None):
    """Write a raw npz bypassing the validating writer (to build corrupt logs)."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("meta")))
    meta.update(meta_update or {})
    arrays.update(arrays_update or {})
    for k in drop:
        arrays.pop(k, None)
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
    path.write_bytes(buf.getvalue())


@pytest.fixture
def good(tmp_path):
    return write_log(tmp_path / "good.npz", make_log())


def test_round_trip(good):
    log = read_log(good, load_robot("a1"))
    ref = make_log()
    np.testing.assert_array_equal(log.q, ref.q)
    assert log.joint_names == ref.joint_names and log.control_dt == 0.005


def test_missing_column(good):
    rewrite(good, drop=("qd",))
    with pytest.raises(LogError, match=r"good\.npz.*'qd'.*missing"):
        read_log(good)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_inf(good, value):
    tau = make_log().tau
    tau[7, 3] = value
    rewrite(good, arrays_update={"tau": tau})
    with pytest.raises(LogError, match=r"good\.npz.*'tau'.*NaN/Inf at sample 7, joint 'FL_hip_joint'"):
        read_log(good)


@pytest.mark.parametrize("column", ["time", "q", "tau"])
@pytest.mark.parametrize("dtype, shown", [(str, "<U"), (bool, "bool"), (complex, "complex")])
def test_non_numeric_column(good, column, dtype, shown):
    # e.g. a converter that wrote numbers as text: the column is named, not a numpy TypeError
    rewrite(good, arrays_update={column: getattr(make_log(), column).astype(dtype)})
    with pytest.raises(LogError, match=rf"good\.npz: field '{column}': expected real numbers, "
                                       rf"got dtype {shown}"):
        read_log(good)


@pytest.mark.parametrize("key, value", [("control_dt", "0.005"), ("joint_names", "FR_hip_joint")])
def test_malformed_meta(good, key, value):
    rewrite(good, meta_update={key: value})
    with pytest.raises(LogError, match=rf"good\.npz: field 'meta\.{key}': expected"):
        read_log(good)


def test_non_increasing_time(good):
    t = make_log().time
    t[10] = t[9]
    rewrite(good, arrays_update={"time": t})
    with pytest.raises(LogError, match=r"good\.npz.*'time'.*strictly increasing"):
        read_log(good)


def test_wrong_joint_count(tmp_path):
    path = write_log(tmp_path / "eleven.npz", make_log(nj=11))
    with pytest.raises(LogError, match=r"eleven\.npz.*'joint_names'.*11 joints.*12"):
        read_log(path, load_robot("a1"))


def test_wrong_joint_names(good):
    names = list(load_robot("a1").joint_names)
    names[0], names[1] = names[1], names[0]
    rewrite(good, meta_update={"joint_names": names})
    with pytest.raises(LogError, match=r"'joint_names'.*FR_upper_joint.*FR_hip_joint"):
        read_log(good, load_robot("a1"))


def test_other_robot(good):
    rewrite(good, meta_update={"robot": "aliengo"})
    with pytest.raises(LogError, match=r"'meta.robot'.*aliengo.*'a1'"):
        read_log(good, load_robot("a1"))


def test_unknown_unit(good):
    meta_units = make_log().meta()["units"] | {"tau": "kg cm"}
    rewrite(good, meta_update={"units": meta_units})
    with pytest.raises(LogError, match=r"'tau'.*unit 'kg cm'.*'N m'"):
        read_log(good)


def test_unknown_schema_version(good):
    rewrite(good, meta_update={"schema_version": 99})
    with pytest.raises(LogError, match=r"schema_version.*99"):
        read_log(good)


def test_not_a_log(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"not a zip")
    with pytest.raises(LogError, match="junk.npz"):
        read_log(p)
    with pytest.raises(LogError, match="no such log"):
        read_log(tmp_path / "absent.npz")


def test_writer_refuses_bad_log_and_writes_nothing(tmp_path):
    bad = make_log()
    bad.q[3, 3] = np.nan
    with pytest.raises(LogError):
        write_log(tmp_path / "bad.npz", bad)
    assert os.listdir(tmp_path) == []


def test_collect_writes_valid_logs(tmp_path):
    robot = load_robot("a1")
    for exp in ("suspended", "ground"):
        path = collect(robot, exp, 2.0, tmp_path, progress=False)
        log = read_log(path, robot)
        assert log.num_samples == 400 and log.base_fixed == (exp == "suspended")
        assert np.all(log.tau.std(axis=0) > 0.05), "joints must be excited"
        assert np.all(log.q_target >= robot.array("q_min")) and np.all(log.q_target <= robot.array("q_max"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ground.npz", "suspended.npz"]


def test_interrupted_collection_leaves_nothing(tmp_path, monkeypatch):
    import robot_rl.standin as standin

    calls = {"n": 0}
    real_step = standin.PyBulletStandIn.step

    def dying_step(self):
        calls["n"] += 1
        if calls["n"] > 50:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(standin.PyBulletStandIn, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        collect(load_robot("a1"), "suspended", 2.0, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_cli_collect(tmp_path):
    out = tmp_path / "logs" / "x"
    r = subprocess.run([sys.executable, "-m", "robot_rl.app.cli", "collect", "--experiment", "suspended",
                        "--seconds", "1", "--out", str(out), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert read_log(out / "suspended.npz").experiment == "suspended"
