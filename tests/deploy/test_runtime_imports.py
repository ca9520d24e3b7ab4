"""The robot's computer stays small: the onboard runtime imports neither torch nor onnx."""

import json
import subprocess
import sys


def test_onboard_runtime_imports_no_torch_or_onnx():
    code = ("import json, sys; import deploy.runtime, deploy.estimator; "
            "print(json.dumps(sorted(m for m in ('torch', 'onnx', 'policies', 'sysid', "
            "'actuator_net') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
