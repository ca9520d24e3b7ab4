"""``robot-rl select``'s scoring and command draw, and its command-line errors."""

import pytest

from deploy.select import FALL_SCORE, draw_commands, episode_score, main
from deploy.suite import SUCCESS
from policies.config import CommandConfig


def _episode(**kw):
    return {"fell": False, "fault": None, "vx_abs_err": 0.15, "vy_abs_err": 0.15,
            "yaw_abs_err": 0.2, **kw}


def test_an_episode_scores_its_worst_axis_over_the_thresholds():
    assert episode_score(_episode(), SUCCESS) == pytest.approx(1.0)
    assert episode_score(_episode(vx_abs_err=0.45), SUCCESS) == pytest.approx(3.0)
    # one axis far off the goal is not hidden by the others being perfect
    assert episode_score(_episode(vx_abs_err=0.0, yaw_abs_err=0.0, vy_abs_err=0.3),
                         SUCCESS) == pytest.approx(2.0)
    assert episode_score(_episode(vx_abs_err=0.0, vy_abs_err=0.0, yaw_abs_err=0.0), SUCCESS) == 0.0


def test_a_fall_or_fault_scores_worse_than_any_tracking_within_the_training_ranges():
    assert episode_score(_episode(fell=True), SUCCESS) == FALL_SCORE
    assert episode_score(_episode(fault="joint limit"), SUCCESS) == FALL_SCORE
    # standing still under the largest training command is still better than falling
    c = CommandConfig()
    worst = _episode(vx_abs_err=c.vx[1], vy_abs_err=c.vy[1], yaw_abs_err=c.yaw[1])
    assert episode_score(worst, SUCCESS) < FALL_SCORE


def test_commands_are_drawn_in_the_training_ranges_and_repeat_with_the_seed():
    c = CommandConfig()
    cmds = draw_commands(c, 50, seed=3)
    assert len(cmds) == 50 and cmds == draw_commands(c, 50, seed=3)
    assert cmds != draw_commands(c, 50, seed=4)
    for (vx, vy, yaw) in cmds:
        assert c.vx[0] <= vx <= c.vx[1] and c.vy[0] <= vy <= c.vy[1] and c.yaw[0] <= yaw <= c.yaw[1]


@pytest.mark.parametrize("argv, msg", [
    (["--candidate", "nopath"], "expected NAME=PATH.onnx"),
    (["--candidate", "a=x.onnx", "--candidate", "a=y.onnx"], "names must differ"),
    (["--candidate", "a=x.onnx", "--episodes", "0"], "--episodes must be >= 1"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, msg):
    with pytest.raises(SystemExit) as e:
        rc = main(["--run", str(tmp_path), "--out", str(tmp_path / "s.json"), *argv])
        raise SystemExit(rc)
    assert e.value.code == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()
