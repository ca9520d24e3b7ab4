"""The robot-rl command: help, dispatch, collect, robots --check."""

import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "robot_rl.cli", *args], capture_output=True, text=True)


def test_help_lists_every_stage():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("collect", "sysid", "actuator", "train", "export", "eval", "pipeline"):
        assert cmd in r.stdout


def test_unknown_command():
    r = run("fly")
    assert r.returncode == 2 and "unknown command" in r.stderr


def test_robots_check():
    r = run("robots", "--check")
    assert r.returncode == 0, r.stderr
    assert "a1" in r.stdout and "12.458 kg" in r.stdout
