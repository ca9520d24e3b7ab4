"""The robot-rl command: help, dispatch, collect, robots --check."""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "robot_rl.app.cli", *args], capture_output=True, text=True)


def test_help_lists_every_stage():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("collect", "sysid", "actuator", "train", "export", "eval", "pipeline"):
        assert cmd in r.stdout


def test_unknown_command():
    r = run("fly")
    assert r.returncode == 2 and "unknown command" in r.stderr


def _urdf_mass(robot) -> float:
    root = ET.parse(robot.urdf_path).getroot()
    return sum(float(m.get("value")) for m in root.iterfind("link/inertial/mass"))


def test_robots_check():
    from robot_rl.robot import load_robot

    r = run("robots", "--check")
    assert r.returncode == 0, r.stderr
    assert "a1" in r.stdout and f"{_urdf_mass(load_robot('a1')):.3f} kg" in r.stdout


# -- user errors: one line naming the file or field, exit 2, nothing written ----------------

REPO = Path(__file__).resolve().parents[1]


def _string_column_log(tmp_path: Path) -> Path:
    """A schema-valid log whose 'q' column holds strings (e.g. written from a CSV reader)."""
    from actuator_net.synthetic import pendulum_log
    from robot_rl.logs import write_log

    good = write_log(tmp_path / "good.npz", pendulum_log(seconds=2.0, num_joints=3, seed=7))
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["q"] = arrays["q"].astype(str)
    bad = tmp_path / "strings.npz"
    np.savez(bad, **arrays)
    return bad


def _corrupt_onnx(tmp_path: Path) -> Path:
    """The committed policy.onnx cut short, as an interrupted copy leaves it."""
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes((REPO / "policies" / "trained" / "a1" / "policy.onnx").read_bytes()[:3000])
    return bad


def _a_file(tmp_path: Path) -> Path:
    """A plain file where the command's output folder would go."""
    f = tmp_path / "afile"
    f.write_text("not a folder")
    return f


CASES = {
    # name: (make input (tmp_path) -> path or None, argv (input, out), what the line names)
    "eval corrupt onnx": (_corrupt_onnx, lambda i, o: ["eval", "--policy", i, "--out", o],
                          ["corrupt.onnx", "not an ONNX model"]),
    "train unknown key": (None, lambda i, o: ["train", "--out", o, "--budget", "smoke",
                                               "--set", "env.bogus=1"],
                          ["env.bogus", "unknown config key 'bogus'", "num_envs"]),
    "train negative num_envs": (None, lambda i, o: ["train", "--out", o, "--budget", "smoke",
                                                     "--set", "env.num_envs=-3"],
                                ["env.num_envs", ">= 1", "-3"]),
    "train reversed command range": (None, lambda i, o: ["train", "--out", o, "--budget",
                                                          "smoke", "--set", "env.commands.vy=[0.3,-0.3]"],
                                     ["env.commands.vy", "low <= high"]),
    "export missing policy": (lambda t: t / "no_policy", lambda i, o: ["export", "--policy", i,
                                                                      "--out", o],
                              ["no_policy", "no such policy file"]),
    "export into a file": (lambda t: _a_file(t), lambda i, o: [
        "export", "--policy", str(REPO / "policies" / "trained" / "a1" / "policy.pt"),
        "--out", f"{i}/policy.onnx"], ["afile/policy.onnx", "cannot write"]),
    "collect negative duration": (None, lambda i, o: ["collect", "--experiment", "ground",
                                                       "--seconds", "-5", "--out", o],
                                  ["--seconds", "> 0 s", "-5"]),
    "sysid string column": (_string_column_log, lambda i, o: ["sysid", "--logs", i, "--out", o,
                                                              "--no-plots"],
                            ["strings.npz", "field 'q'", "expected real numbers", "<U"]),
    "actuator string column": (_string_column_log, lambda i, o: ["actuator", "train", "--logs",
                                                                 i, "--out", o],
                               ["strings.npz", "field 'q'", "expected real numbers", "<U"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_error_is_one_line_and_exit_2(case, tmp_path, capsys):
    from robot_rl.app.cli import main

    make, argv, names = CASES[case]
    src = str(make(tmp_path)) if make else ""
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    rc = main(argv(src, str(out)))
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert rc == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"robot-rl {argv('', '')[0]}"), lines[0]
    assert "Traceback" not in captured.err + captured.out
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == before


def test_pipeline_rounds_must_be_a_whole_number_of_at_least_0(tmp_path, capsys):
    from robot_rl.app.cli import main

    with pytest.raises(SystemExit) as e:
        main(["pipeline", "--out", str(tmp_path / "run"), "--rounds", "-1"])
    assert e.value.code == 2 and "--rounds: expected a whole number >= 0, got '-1'" in \
        capsys.readouterr().err
    assert not (tmp_path / "run").exists()


SEED_FLAGS = {  # stage: argv with a negative seed (numpy's generators raise a traceback on it)
    "pipeline": ["pipeline", "--out", "{out}", "--seed", "-1"],
    "train": ["train", "--out", "{out}", "--budget", "smoke", "--seed", "-1"],
    "collect": ["collect", "--experiment", "ground", "--out", "{out}", "--seed", "-1"],
    "collect standin": ["collect", "--experiment", "ground", "--out", "{out}",
                        "--standin-seed", "x"],
    "actuator": ["actuator", "train", "--logs", "{out}.npz", "--out", "{out}", "--seed", "-1"],
    "select": ["select", "--run", "{out}", "--seed", "-1"],
    "eval": ["eval", "--policy", "p.onnx", "--out", "{out}", "--standin-seed", "-2"],
}


@pytest.mark.parametrize("case", sorted(SEED_FLAGS))
def test_a_negative_seed_is_a_usage_error(case, tmp_path, capsys):
    from robot_rl.app.cli import main

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main([a.format(out=out) for a in SEED_FLAGS[case]])
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert "seed: expected a non-negative integer" in err and "Traceback" not in err, err
    assert not out.exists()


@pytest.mark.parametrize("argv, field", [
    (["train", "--budget", "smoke", "--set", "train.runner.seed=-1"], "RunnerConfig.seed"),
    (["sysid", "--logs", "x.npz", "--set", "seed=-1"], "seed"),
    (["actuator", "train", "--logs", "x.npz", "--set", "train.seed=-1"], "train.seed"),
])
def test_a_negative_seed_in_a_config_is_refused(argv, field, tmp_path, capsys):
    from robot_rl.app.cli import main

    out = tmp_path / "out"
    rc = main([*argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and field in err and ("non-negative" in err or ">= 0" in err), err
    assert len(err.strip().splitlines()) == 1 and not out.exists(), err
