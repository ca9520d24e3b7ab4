"""The operating-regime experiment: a policy walking under random commands, logged."""

import numpy as np

from deploy.walking_log import collect_walking
from robot_rl.app.cli import main as cli_main
from robot_rl.logs import read_log
from robot_rl.robot import load_robot
from robot_rl.standin_model import load_standin_config

POLICY = "policies/trained/a1/policy.onnx"


def test_walking_log_records_every_robot_step(tmp_path):
    a1 = load_robot("a1")
    path = collect_walking(POLICY, a1, 4.0, tmp_path, load_standin_config(None), seed=1,
                           progress=False)
    log = read_log(path, a1)
    assert log.experiment == "walking" and not log.base_fixed
    # every 5 ms robot step (not the 20 ms policy period), with the base from motion capture
    np.testing.assert_allclose(np.diff(log.time), 0.005, atol=1e-9)
    assert log.base_linvel is not None and log.base_pos is not None
    # the target is held for the policy's period: it changes at most every 4th step
    changes = np.flatnonzero(np.any(np.diff(log.q_target, axis=0) != 0, axis=1)) + 1
    assert len(changes) > 10 and np.all(changes % 4 == changes[0] % 4)
    # it walked: the commands were followed by motion
    assert log.extra["commands"] and np.abs(log.base_linvel[:, :2]).max() > 0.2


def test_walking_needs_a_policy(tmp_path, capsys):
    rc = cli_main(["collect", "--experiment", "walking", "--out", str(tmp_path / "w")])
    assert rc == 2 and "--policy" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
