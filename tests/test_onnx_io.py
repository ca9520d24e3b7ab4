"""robot_rl/onnx_io.py: the one ONNX export-and-check both stages use."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from robot_rl.onnx_io import OPSET, export_onnx, max_abs_error, ort_session, run_both

ROOT = Path(__file__).resolve().parents[1]


class Affine(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x):
        return torch.tanh(self.lin(x)).clamp(-0.5, 0.5)


def test_export_carries_names_metadata_and_dynamic_batch():
    torch.manual_seed(0)
    model = Affine()
    data = export_onnx(model, torch.zeros(1, 3), "inp", "out", {"robot": "a1", "n": "2"},
                       producer="test", doc="a doc")
    proto = onnx.load_from_string(data)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == OPSET
    assert (proto.producer_name, proto.doc_string) == ("test", "a doc")
    assert {p.key: p.value for p in proto.metadata_props} == {"robot": "a1", "n": "2"}
    assert [i.name for i in proto.graph.input] == ["inp"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    x = np.random.default_rng(0).normal(size=(9, 3)) * 3
    got, want = run_both(model, data, x, "inp", "out")
    assert got.shape == want.shape == (9, 2) and got.dtype == np.float32
    assert max_abs_error(got, want) < 1e-6
    # the onnxruntime side really is the exported graph: another model disagrees
    other = Affine()
    got2, want2 = run_both(other, data, x, "inp", "out")
    assert max_abs_error(got2, want2) > 1e-3
    assert ort_session(data).get_inputs()[0].name == "inp"


def test_metadata_values_must_be_strings():
    with pytest.raises(TypeError, match="'n'"):
        export_onnx(Affine(), torch.zeros(1, 3), "inp", "out", {"n": 2})


def test_max_abs_error_refuses_other_shapes():
    assert max_abs_error(np.zeros((0, 2)), np.zeros((0, 2))) == 0.0
    with pytest.raises(ValueError, match="shape"):
        max_abs_error(np.zeros((2, 2)), np.zeros((2, 3)))


def test_importing_it_pulls_in_neither_torch_nor_onnx():
    code = ("import json, sys; import robot_rl.onnx_io; "
            "print(json.dumps([m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


def test_torch_onnx_export_is_called_in_one_place():
    """Stage 2 (actuator network) and stage 4 (policy) export through onnx_io."""
    callers = []
    for package in ("robot_rl", "sysid", "actuator_net", "policies", "deploy"):
        for p in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(p.read_text())):
                if (isinstance(node, ast.Attribute) and node.attr == "export"
                        and isinstance(node.value, ast.Attribute) and node.value.attr == "onnx"):
                    callers.append(p.relative_to(ROOT).as_posix())
    assert sorted(set(callers)) == ["robot_rl/onnx_io.py"]
