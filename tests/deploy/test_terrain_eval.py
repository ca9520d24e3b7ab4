"""Evaluation on a terrain tile (robot-rl eval --terrain) in both simulators.

A random policy does not walk: these tests check the tile, the crossing and fall tests
measured from the ground, the report fields and the command-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deploy.eval_cli import main as eval_main
from deploy.evaluate import EvalConfig, evaluate, run_episode
from deploy.export import export_policy
from deploy.runtime import OnboardController
from deploy.safety import SafetyConfig
from deploy.testing import FakeRobot, write_random_policy
from robot_rl.app.cli import main as cli_main
from robot_rl.robot import load_robot
from robot_rl.terrain import TerrainConfig, generate

A1 = load_robot("a1")
TINY = dict(seconds=0.6, settle_s=0.2, safety=SafetyConfig(hold_s=0.1, ramp_s=0.2), commands=((0.4, 0.0, 0.0),),
            video=False)
ROUGH = TerrainConfig(kind="rough", difficulty=0.5, seed=1)


@pytest.fixture(scope="module")
def onnx_a1(tmp_path_factory):
    root = tmp_path_factory.mktemp("terrain_eval")
    write_random_policy(root / "policy", "a1", seed=2)
    return export_policy(root / "policy", root / "policy.onnx").path


@pytest.mark.parametrize("sim", ["mujoco", "pybullet"])
def test_short_eval_on_rough_terrain(onnx_a1, tmp_path, sim):
    report = evaluate(onnx_a1, tmp_path, EvalConfig(sim=sim, terrain=ROUGH, **TINY))
    t = generate(ROUGH)
    assert report["terrain"]["kind"] == "rough" and report["terrain"]["difficulty"] == 0.5
    assert report["terrain"]["spawn_height_m"] == pytest.approx(t.spawn_height) and t.spawn_height > 0
    s = report["metrics"]
    assert s["success_rate"] == 0.0  # 0.6 s is too short to cross a 8 m tile
    assert 0 <= s["distance_mean"] < 1.0 and s["falls"] == 0  # standing on the rough ground
    (e,) = report["episodes"]
    assert e["crossed"] is False and e["success"] is False
    md = (tmp_path / f"report_{sim}.md").read_text()
    assert "terrain: rough, difficulty 0.5" in md and "| success_rate |" in md


def _fake_on(terrain, x: float, lift: float) -> FakeRobot:
    robot = FakeRobot(A1)
    robot.base_pos = np.array([x, 0.0, float(terrain.height_at(x, 0.0)) + lift])
    return robot


def test_falls_and_crossing_are_measured_from_the_ground(onnx_a1):
    t = generate(TerrainConfig(kind="stairs_down", difficulty=0.5))
    cfg = EvalConfig(sim="mujoco", terrain=t.config, **TINY)

    def episode(robot, terrain=t):
        ctl = OnboardController(onnx_a1, A1, robot, SafetyConfig(hold_s=0.1, ramp_s=0.2))
        return run_episode(ctl, robot, (0.4, 0.0, 0.0), cfg, terrain=terrain)[0]

    standing = episode(_fake_on(t, 0.0, A1.nominal_base_height))
    assert not standing["fell"] and not standing["crossed"] and standing["distance"] == 0.0
    # 1.4 m above the plane, but lying on the stairs: a fall
    lying = episode(_fake_on(t, 0.0, 0.05))
    assert lying["fell"] and not lying["success"]
    assert lying["distance"] == 0.0
    # past the goal (near the tile's edge) and standing on the ground there: crossed
    far = episode(_fake_on(t, t.goal_distance + 0.05, A1.nominal_base_height))
    assert far["crossed"] and far["success"] and far["distance"] == pytest.approx(
        t.goal_distance + 0.05)
    # without a terrain no crossing test, and the plane is the ground
    plain = episode(_fake_on(t, 0.0, A1.nominal_base_height), terrain=None)
    assert "success" not in plain and not plain["fell"]


def test_eval_cli_terrain_options_and_bad_input(onnx_a1, tmp_path, capsys):
    out = tmp_path / "out"
    common = ["--policy", str(onnx_a1), "--out", str(out), "--seconds", "0.3", "--settle",
              "0.1", "--no-video", "--quiet", "--sim", "mujoco"]
    assert eval_main([*common, "--terrain", "slope", "--difficulty", "0.2",
                      "--terrain-seed", "3"]) == 0
    report = json.loads((out / "report_mujoco.json").read_text())
    assert report["terrain"]["kind"] == "slope" and report["terrain"]["seed"] == 3
    assert len(report["episodes"]) == 4  # the terrain command set: forwards and backwards
    capsys.readouterr()
    for extra, field in ((["--terrain", "lava"], "terrain.kind"),
                         (["--terrain", "rough", "--difficulty", "1.5"], "terrain.difficulty"),
                         (["--difficulty", "0.5"], "terrain.difficulty")):
        assert cli_main(["eval", *common, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"robot-rl eval: error: {field}:") and "\n" not in err, err
