"""Training through the CLI on synthetic logs: artifacts, ONNX == torch, bad input, determinism."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from actuator_net.artifacts import load_checkpoint
from actuator_net.cli import build_parser, main
from actuator_net.synthetic import pendulum_log
from robot_rl.logs import write_log

FAST = ["--max-steps", "300", "--quiet"]


@pytest.fixture(scope="module")
def pendulum_npz(tmp_path_factory):
    d = tmp_path_factory.mktemp("logs")
    write_log(d / "p0.npz", pendulum_log(seconds=12.0, num_joints=2, seed=0))
    write_log(d / "p1.npz", pendulum_log(seconds=6.0, num_joints=2, seed=1))
    return d


@pytest.fixture(scope="module")
def trained(pendulum_npz, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "actuator"
    assert main(["train", "--logs", str(pendulum_npz), "--out", str(out), *FAST]) == 0
    return out


def test_artifacts_and_metrics(trained):
    names = sorted(p.name for p in trained.iterdir())
    assert names == ["actuator.onnx", "actuator.pt", "config.json", "metrics.json",
                     "validation_scatter.png", "validation_torque.png"]
    m = json.loads((trained / "metrics.json").read_text())
    # the resolved config (flags and lags chosen from the logs) next to the outputs
    assert json.loads((trained / "config.json").read_text()) == m["config"]
    assert m["config"]["train"]["max_steps"] == 300 and m["config"]["model"]["num_lags"] == 3
    rm = m["rmse_nm"]
    for model in ("network", "ideal_pd", "best_fit_pd"):
        assert set(rm[model]["per_joint"]) == {"pendulum_0", "pendulum_1"}
    # latency, lag and saturation: the network beats both PD models on every joint
    for j in ("pendulum_0", "pendulum_1"):
        assert rm["network"]["per_joint"][j] < 0.5 * rm["ideal_pd"]["per_joint"][j]
        assert rm["network"]["per_joint"][j] < rm["best_fit_pd"]["per_joint"][j]
    # saturated (bang-bang) pendulums: the torque does not follow the commands linearly,
    # and the history keeps the paper's 3 lags (actuator_net.response)
    assert m["history_spacing_s"] == 0.01 and m["num_lags"] == 3
    assert m["history_choice"]["how"] == "chosen from the logs"
    assert [lg["validation"] for lg in m["logs"]] == [480, 240]  # last 20 % of 2400 / 1200 rows
    assert m["samples"]["validation"] == 720
    assert m["logs"][0]["history"] == "index stride 2"
    assert m["onnx_max_abs_diff_nm"] <= 1e-4
    assert (trained / "validation_torque.png").read_bytes()[:4] == b"\x89PNG"


def test_checkpoint_format(trained):
    model, ck = load_checkpoint(trained / "actuator.pt")
    assert ck["joint_names"] == ["pendulum_0", "pendulum_1"]
    assert ck["history_spacing"] == 0.01 and ck["num_lags"] == 3 and ck["hidden"] == [32, 32, 32]
    assert ck["joint_type"] == [0, 0]  # equal gains: one shared network
    for buf in ("in_mean", "in_std", "out_mean", "out_std", "joint_type"):
        assert buf in ck["state_dict"]
    assert ck["config"]["model"]["history_spacing"] == 0.01


def test_onnx_matches_torch(trained):
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(trained / "actuator.onnx"))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["joint_names"]) == ["pendulum_0", "pendulum_1"]
    assert float(meta["history_spacing"]) == 0.01
    model, ck = load_checkpoint(trained / "actuator.pt")
    nl = ck["num_lags"]
    assert int(meta["num_lags"]) == nl
    x = np.random.default_rng(0).normal(size=(500, 2, 2 * nl)).astype(np.float32)
    x[..., :nl] *= 0.3
    x[..., nl:] *= 3.0
    sess = ort.InferenceSession(str(trained / "actuator.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(["tau"], {"x": x})[0]
    with torch.inference_mode():
        want = model(torch.from_numpy(x)).numpy()
    assert got.shape == (500, 2)
    # onnxruntime's float32 kernels against torch's: sums in another order, a few ulps
    # (measured 2.9e-6 N m)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_deterministic(pendulum_npz, tmp_path):
    args = ["train", "--logs", str(pendulum_npz / "p1.npz"), *FAST, "--max-steps", "60"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    sa = torch.load(tmp_path / "a" / "actuator.pt", weights_only=True)["state_dict"]
    sb = torch.load(tmp_path / "b" / "actuator.pt", weights_only=True)["state_dict"]
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_per_joint_types_and_interpolated_history(pendulum_npz, tmp_path):
    out = tmp_path / "o"
    assert main(["train", "--logs", str(pendulum_npz / "p1.npz"), "--out", str(out), *FAST,
                 "--max-steps", "40", "--joint-types", "per_joint",
                 "--history-spacing", "0.0125"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["logs"][0]["history"] == "linear interpolation"
    assert m["joint_types"]["types"] == ["pendulum_0", "pendulum_1"]
    _, ck = load_checkpoint(out / "actuator.pt")
    assert ck["joint_type"] == [0, 1]


def test_default_spacing_follows_a_slow_log(tmp_path, capsys):
    write_log(tmp_path / "slow.npz", pendulum_log(seconds=10.0, log_dt=0.02, seed=2))
    assert main(["train", "--logs", str(tmp_path / "slow.npz"), "--out", str(tmp_path / "o"),
                 *FAST, "--max-steps", "20"]) == 0
    out = capsys.readouterr().out
    assert "history spacing 0.02 s (the logs' own sample period" in out
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["history_spacing_s"] == 0.02


def _raw_npz(path, log, **replace):
    """Write a log bypassing write_log's validation (to plant bad data)."""
    arrays = {k: np.asarray(getattr(log, k), dtype=np.float64)
              for k in ("time", "q_target", "q", "qd", "tau")}
    arrays.update(replace)
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(log.meta())), **arrays)
    path.write_bytes(buf.getvalue())
    return path


def _fails(capsys, args, out, pattern):
    assert main(["train", *args, "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert pytest.importorskip("re").search(pattern, err), err
    assert not out.exists()


def test_bad_inputs_write_nothing(tmp_path, capsys):
    log = pendulum_log(seconds=4.0, seed=3)
    tau = log.tau.copy()
    tau[10, 0] = np.nan
    nan = _raw_npz(tmp_path / "nan.npz", log, tau=tau)
    _fails(capsys, ["--logs", str(nan)], tmp_path / "o1", r"nan\.npz.*'tau'.*NaN")

    slow = write_log(tmp_path / "slow.npz", pendulum_log(seconds=4.0, log_dt=0.02))
    _fails(capsys, ["--logs", str(slow), "--history-spacing", "0.01"], tmp_path / "o2",
           r"slow\.npz: field 'time'.*too low")

    const = pendulum_log(seconds=4.0, seed=4)
    const.tau[:] = 1.5
    const_p = write_log(tmp_path / "const.npz", const)
    _fails(capsys, ["--logs", str(const_p)], tmp_path / "o3",
           r"const\.npz: field 'tau' \(joint 'pendulum_0'\).*constant")

    idle = pendulum_log(seconds=4.0, seed=5)
    idle.q_target[:] = idle.q  # never commanded away from where it is
    idle_p = write_log(tmp_path / "idle.npz", idle)
    _fails(capsys, ["--logs", str(idle_p)], tmp_path / "o4", r"idle\.npz: field 'q_target - q'")

    (tmp_path / "bad.csv").write_text("joint_pos_target_0,joint_pos_0,joint_vel_0,tau_est_0\n"
                                      + "\n".join(f"{i % 3},{i % 5},{i % 7}," for i in range(99)))
    _fails(capsys, ["--logs", str(tmp_path / "bad.csv")], tmp_path / "o5",
           r"bad\.csv: field 'tau_est_0'.*NaN")


def test_failure_after_training_writes_nothing(pendulum_npz, tmp_path, monkeypatch, capsys):
    import actuator_net.plots

    def boom(result):
        raise RuntimeError("plotting failed")

    monkeypatch.setattr(actuator_net.plots, "validation_plots", boom)
    out = tmp_path / "o"
    assert main(["train", "--logs", str(pendulum_npz / "p1.npz"), "--out", str(out), *FAST,
                 "--max-steps", "20"]) == 2
    assert "plotting failed" in capsys.readouterr().err
    assert not out.exists()


def test_parser_has_the_documented_flags():
    a = build_parser().parse_args(["train", "--logs", "x", "--out", "y", "--robot", "a1",
                                   "--history-spacing", "0.02", "--format", "ankle_csv"])
    assert (a.robot, a.history_spacing, a.format) == ("a1", 0.02, "ankle_csv")
