"""The network's history is chosen from the logs so that it spans the actuator's response.

A network whose window (t .. t - (L - 1) h) ends before the command that produced the
current torque cannot learn the actuator: on a stand-in with 20 ms latency and an 8 ms
torque lag the paper's 3 lags (20 ms) gave a held-error stiffness 24 % below the driver's.
"""

from __future__ import annotations

import json

import pytest

from actuator_net.config import ActuatorNetConfig, ModelConfig
from actuator_net.importers import from_robot_log
from actuator_net.response import candidate_lags
from actuator_net.synthetic import pendulum_log
from actuator_net.train import resolve_num_lags
from robot_rl.config import ConfigError, from_dict

TC = 0.006  # the synthetic actuator's torque time constant (s)


def _choice(log, **model):
    return resolve_num_lags([from_robot_log(log)],
                            ActuatorNetConfig(model=ModelConfig(history_spacing=0.01, **model)))


@pytest.mark.parametrize("latency", [0.0, 0.01, 0.02, 0.03, 0.045])
def test_window_spans_the_logged_latency(latency):
    """Pendulums driven by a PD through a known latency and a 6 ms torque lag (unsaturated):
    the chosen window reaches back past latency + lag, and not much further."""
    log = pendulum_log(seconds=20.0, num_joints=2, tau_max=40.0, latency=latency, tc=TC, seed=1)
    cfg, rec = _choice(log)
    nl = cfg.model.num_lags
    span = (nl - 1) * 0.01
    assert rec["how"] == "chosen from the logs" and rec["num_lags"] == nl
    assert rec["span_s"] == pytest.approx(span) and not rec["capped"]
    assert latency + TC <= span <= max(0.02, latency + TC + 0.02)
    # the command's response: after the latency, most of it within the torque lag (plus up
    # to one 5 ms log period of the target's hold and the 5 ms lag grid)
    assert latency <= rec["estimated_lag_s"] <= latency + TC + 0.01
    assert rec["estimated_lag_s"] <= rec["response_end_s"] <= latency + 4 * TC + 0.01
    for joint in rec["per_joint"].values():  # the command weights sum to the driver's kp
        assert joint["static_stiffness"] == pytest.approx(20.0, rel=0.03)


def test_longest_window_when_the_response_lies_beyond_the_cap():
    log = pendulum_log(seconds=20.0, num_joints=1, tau_max=40.0, latency=0.07, tc=TC, seed=2)
    cfg, rec = _choice(log)
    assert cfg.model.num_lags == 7 and rec["capped"]  # 60 ms at most
    cfg, rec = _choice(log, max_history_span=0.1)
    assert cfg.model.num_lags == 8 and rec["capped"]  # 8 lags at most
    assert rec["estimated_lag_s"] >= 0.07


def test_saturated_actuator_keeps_the_papers_window():
    """An 8 N m actuator saturated most of the time (bang-bang): its torque does not follow
    the commands linearly, a longer window explains nothing more; 3 lags, no lag claimed."""
    log = pendulum_log(seconds=20.0, num_joints=2, latency=0.03, seed=0)
    cfg, rec = _choice(log)
    assert cfg.model.num_lags == 3 and rec["estimated_lag_s"] is None
    json.dumps(rec, allow_nan=False)  # metrics.json stays strict JSON


def test_given_num_lags_is_kept_and_the_estimate_recorded():
    log = pendulum_log(seconds=20.0, num_joints=1, tau_max=40.0, latency=0.03, tc=TC, seed=3)
    cfg, rec = _choice(log, num_lags=3)
    assert cfg.model.num_lags == 3 and rec["how"] == "given"
    assert rec["suggested_num_lags"] >= 5 and rec["estimated_lag_s"] >= 0.03


def test_candidates_and_config():
    assert candidate_lags(0.01, 0.06, 8) == [3, 4, 5, 6, 7]
    assert candidate_lags(0.0075, 0.06, 8) == [3, 4, 5, 6, 7, 8]
    assert candidate_lags(0.02, 0.06, 8) == [3, 4]
    assert candidate_lags(0.04, 0.06, 8) == [3]  # never fewer than the paper's 3
    assert ModelConfig().num_lags is None
    assert from_dict(ModelConfig, {"num_lags": 3}).num_lags == 3  # configs written before
    assert from_dict(ModelConfig, {"num_lags": None}).num_lags is None
    with pytest.raises(ConfigError, match="num_lags"):
        ModelConfig(num_lags=0)
    with pytest.raises(ConfigError, match="max_history_span"):
        ModelConfig(max_history_span=0.0)


def test_cli_records_the_choice(tmp_path, capsys):
    """Through ``robot-rl actuator train``: the chosen number of lags reaches the checkpoint,
    the ONNX graph and metrics.json; the runtime reads it back."""
    from actuator_net.artifacts import load_checkpoint
    from actuator_net.cli import main
    from actuator_net.runtime import ActuatorNetEvaluator
    from robot_rl.logs import write_log

    write_log(tmp_path / "late.npz", pendulum_log(seconds=12.0, num_joints=2, tau_max=40.0,
                                                  latency=0.03, tc=TC, seed=4))
    out = tmp_path / "o"
    assert main(["train", "--logs", str(tmp_path / "late.npz"), "--out", str(out),
                 "--max-steps", "30", "--quiet"]) == 0
    printed = capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    nl = m["num_lags"]
    assert nl >= 5 and m["history_choice"]["num_lags"] == nl
    assert m["config"]["model"]["num_lags"] == nl
    assert f"actuator: {nl} lags spanning" in printed and "chosen from the logs" in printed
    _, ck = load_checkpoint(out / "actuator.pt")
    assert ck["num_lags"] == nl
    assert ActuatorNetEvaluator(out / "actuator.pt", num_envs=1, physics_dt=0.005).num_lags == nl
    assert m["onnx_max_abs_diff_nm"] <= 1e-4
    # a given number of lags wins, with a warning when the logs suggest more
    assert main(["train", "--logs", str(tmp_path / "late.npz"), "--out", str(tmp_path / "g"),
                 "--max-steps", "10", "--quiet", "--num-lags", "3"]) == 0
    assert "warning: the logs suggest" in capsys.readouterr().out
    assert json.loads((tmp_path / "g" / "metrics.json").read_text())["num_lags"] == 3
