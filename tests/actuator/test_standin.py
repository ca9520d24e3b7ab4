"""End to end on the PyBullet hardware stand-in: collect a suspended log, learn its actuator."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pybullet")
standin = pytest.importorskip("robot_rl.standin")


#: stand-in actuator settings: the defaults, and a slower, laggier, weaker actuator
SETTINGS = {
    "default": {},
    "slow-weak": {"latency": 0.02, "torque_time_constant": 0.008, "tau_max_scale": 0.7,
                  "noload_speed_scale": 0.8, "kp_scale": 1.2, "kd_scale": 0.8},
}


@pytest.fixture(scope="module", params=sorted(SETTINGS))
def suspended_log(tmp_path_factory, request):
    from robot_rl.collect import collect
    from robot_rl.robot import load_robot
    from robot_rl.standin_model import load_standin_config

    cfg = load_standin_config()
    cfg = load_standin_config(None, seed=3, actuator={**vars(cfg.actuator), **SETTINGS[request.param]})
    out = tmp_path_factory.mktemp("logs")
    return collect(load_robot("a1"), "suspended", 12.0, out, cfg, seed=0, progress=False)


def test_network_beats_pd_models_on_standin(suspended_log, tmp_path, request):
    from actuator_net.cli import main

    out = tmp_path / "actuator"
    assert main(["train", "--logs", str(suspended_log), "--out", str(out), "--robot", "a1",
                 "--max-steps", "800", "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    rm = m["rmse_nm"]
    assert len(m["joint_types"]["types"]) == 2  # hip motors vs thigh/calf motors
    assert rm["network"]["overall"] < 0.5 * rm["best_fit_pd"]["overall"]
    assert rm["network"]["overall"] < 0.25 * rm["ideal_pd"]["overall"]
    net = np.array(list(rm["network"]["per_joint"].values()))
    ideal = np.array(list(rm["ideal_pd"]["per_joint"].values()))
    np.testing.assert_array_less(net, ideal)
    # the history spans the actuator's response, as the logs show it (actuator_net.response):
    # the paper's 3 lags (20 ms) for the default's 10 ms latency and 4 ms lag; for
    # "slow-weak"'s 20 ms latency and 8 ms lag the 20 ms window ended before the command
    # that produced the torque (legs: stiffness 15 N m/rad for the driver's 24)
    setting = SETTINGS[request.node.callspec.params["suspended_log"]]
    span = (m["num_lags"] - 1) * m["history_spacing_s"]
    assert m["history_choice"]["how"] == "chosen from the logs"
    latency = setting.get("latency", 0.01) + setting.get("torque_time_constant", 0.004)
    assert latency <= span + 1e-9
    # at rest with a held position error (a leg carrying the robot; rare on the rig) the
    # network gives the driver's static torque kp_a e (kp_a = kp x kp_scale): without the
    # linear term it gave 14 % less at 0.5 rad and the identified robot sagged and fell in
    # training (issue 20).  "slow-weak" with the paper's 20 ms window: 62-70 % of it on the
    # legs, 82-85 % on the hips; 30 ms: 90-92 %; the 40 ms chosen: 95-98 % (its thigh
    # motors work on their torque-speed line most of the rig log, and the legs' network
    # gives 4-5 % less at 0.5 rad with 40, 50 or 60 ms alike)
    rtol = 0.05 if not setting else 0.07
    from actuator_net.runtime import ActuatorNetEvaluator

    kp_a = 20.0 * setting.get("kp_scale", 1.0)
    held = np.array([-0.5, -0.25, 0.25, 0.5])
    ev = ActuatorNetEvaluator(out / "actuator.pt", num_envs=len(held), physics_dt=0.005)
    e = np.repeat(held[:, None], ev.num_joints, axis=1)
    for _ in range(ev.buffer_len + 1):
        tau = ev(e, np.zeros_like(e), np.zeros_like(e))
    np.testing.assert_allclose(tau, kp_a * e, rtol=rtol)
