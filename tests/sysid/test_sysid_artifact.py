"""params.json has one reader and writer (sysid.artifact); consumers use it."""

import json
import subprocess
import sys

import pytest

from robot_rl.config import ConfigError
from sysid.artifact import read_params, write_params


def test_round_trip_and_folder_or_file(tmp_path):
    params = {"robot": "a1", "parameters": {"foot_friction": {"fitted": 0.8, "range": [0.6, 1.0]}}}
    path = write_params(tmp_path, params)
    assert path == tmp_path / "params.json"
    for where in (tmp_path, path):
        p = read_params(where, robot="a1")
        assert p.values == {"foot_friction": 0.8} and p.ranges == {"foot_friction": (0.6, 1.0)}


@pytest.mark.parametrize("body, field", [
    ({"robot": "a1"}, "parameters"),
    ({"parameters": {"x": {"fitted": "a", "range": [0, 1]}}}, "parameters.x"),
    ({"parameters": {"x": {"fitted": 1.0, "range": [2, 1]}}}, "parameters.x"),
    ({"robot": "aliengo", "parameters": {"x": {"fitted": 1.0, "range": [0, 2]}}}, "robot"),
])
def test_bad_params_name_file_and_field(tmp_path, body, field):
    (tmp_path / "params.json").write_text(json.dumps(body))
    with pytest.raises(ConfigError, match=field) as e:
        read_params(tmp_path, robot="a1")
    assert str(tmp_path / "params.json") in str(e.value)


def test_policies_and_deploy_read_params_through_stage_1_reader():
    import deploy.evaluate
    import policies.randomization

    assert policies.randomization.load_sysid is read_params
    code = "import sys, sysid.artifact; print('sysid.identify' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # reading the artifact does not load the fitter
    assert "read_params" in deploy.evaluate.sysid_hook.__code__.co_names
