"""The stage's artifacts: ``actuator.pt``, ``actuator.onnx``, ``metrics.json``, plots.

``actuator.pt`` (``torch.load(path, weights_only=True)``) is a dict::

    format          "robot_rl.actuator_net"
    version         1
    state_dict      ActuatorMLP weights and buffers (joint_type, in_mean, in_std, out_mean,
                    out_std: the input/output scaling, per actuator type; lin_w, lin_b:
                    the linear term, zero when absent)
    joint_names     J joint names, the order of the network's joint axis
    joint_type      J ints: which type's weights each joint uses
    type_names      one label per type
    history_spacing h (s): inputs at t, t - h, ..., t - (num_lags - 1) h
    num_lags        L
    hidden          hidden layer widths
    input_layout    data.INPUT_LAYOUT (each lag's target against the position now) or
                    data.LAG_ERROR_LAYOUT (each lag's own error; every checkpoint without
                    the field)
    config          the full ActuatorNetConfig (dict)
    metrics         validation RMSE summary (N m)

``config.json``: the resolved :class:`~actuator_net.config.ActuatorNetConfig` (num_lags as
chosen from the logs).

``actuator.onnx``: input ``x`` float32 (N, J, 2L) in the same layout, output ``tau``
float32 (N, J) in N m; scaling is inside the graph; metadata_props repeat joint_names,
joint_type, history_spacing, num_lags and input_layout.

:func:`render` builds all of them in memory (nothing touches the disk); :func:`write`
then writes each file atomically (temporary file, then rename).  So a failure while
training, exporting, checking or plotting leaves no artifact.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from actuator_net.data import LAG_ERROR_LAYOUT, LAYOUTS
from actuator_net.model import ActuatorMLP
from robot_rl.config import artifact_file, atomic_write_bytes
from robot_rl.onnx_io import export_onnx, max_abs_error, run_both

if TYPE_CHECKING:  # reading actuator.pt never imports the training code
    from actuator_net.train import TrainResult

FORMAT, VERSION = "robot_rl.actuator_net", 1
ACTUATOR_FILE = "actuator.pt"
#: keys load_checkpoint reads
_KEYS = ("state_dict", "joint_names", "joint_type", "history_spacing", "num_lags", "hidden")
#: onnxruntime must match torch within ONNX_ATOL + ONNX_RTOL * |tau| (N m), float32 rounding.
ONNX_ATOL, ONNX_RTOL = 1e-5, 1e-5


def checkpoint(result: TrainResult) -> dict:
    """The ``actuator.pt`` dict of a trained result."""
    m = result.model
    return {
        "format": FORMAT, "version": VERSION,
        "state_dict": {k: v.detach().clone() for k, v in m.state_dict().items()},
        "joint_names": list(result.joint_names),
        "joint_type": m.joint_type.tolist(),
        "type_names": list(result.type_names),
        "history_spacing": float(result.config.model.history_spacing),
        "num_lags": int(result.config.model.num_lags),
        "hidden": list(m.hidden),
        "input_layout": LAYOUTS[result.config.model.error_reference],
        "config": result.metrics["config"],
        "metrics": {"rmse_nm": result.metrics["rmse_nm"]},
    }


def actuator_path(path: str | Path) -> Path:
    """``<run>/actuator`` (a folder holding ``actuator.pt``) or the file itself."""
    return artifact_file(path, ACTUATOR_FILE)


def load_checkpoint(path: str | Path) -> tuple[ActuatorMLP, dict]:
    """(network in eval mode, the checkpoint dict) from an ``actuator.pt`` or its folder."""
    path = actuator_path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no actuator model (run `robot-rl actuator train`)")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not our file"
        raise ValueError(f"{path}: not a readable torch actuator model ({e})") from e
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise ValueError(f"{path}: field 'format': not an {FORMAT} checkpoint")
    if ck.get("version") != VERSION:
        raise ValueError(f"{path}: field 'version': {ck.get('version')!r}, expected {VERSION}")
    missing = [k for k in _KEYS if k not in ck]
    if missing:
        raise ValueError(f"{path}: field {missing[0]!r} is missing")
    ck.setdefault("input_layout", LAG_ERROR_LAYOUT)
    if ck["input_layout"] not in LAYOUTS.values():
        raise ValueError(f"{path}: field 'input_layout': {ck['input_layout']!r}, expected one "
                         f"of {sorted(LAYOUTS.values())}")
    model = ActuatorMLP(list(ck["joint_type"]), 2 * int(ck["num_lags"]), tuple(ck["hidden"]))
    state = dict(ck["state_dict"])
    for k in ("lin_w", "lin_b"):  # written before the linear term existed: no linear term
        state.setdefault(k, torch.zeros_like(getattr(model, k)))
    model.load_state_dict(state)
    model.eval()
    return model, ck


def onnx_bytes(model: ActuatorMLP, meta: dict) -> bytes:
    """Export ``model`` to ONNX (in memory) with ``meta`` as metadata_props (values that
    are not strings written as JSON)."""
    props = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    return export_onnx(model, torch.zeros(2, model.num_joints, model.num_inputs), "x", "tau",
                       props)


def check_onnx(data: bytes, model: ActuatorMLP, x: np.ndarray) -> float:
    """Max |onnxruntime - torch| on inputs ``x`` (N, J, 2L); raises beyond the tolerance."""
    from actuator_net.train import TrainingError

    got, want = run_both(model, data, x, "x", "tau")
    diff = max_abs_error(got, want)
    if not np.allclose(got, want, rtol=ONNX_RTOL, atol=ONNX_ATOL):
        raise TrainingError(f"ONNX export differs from torch by up to {diff:.3g} N m (beyond "
                            f"{ONNX_ATOL} + {ONNX_RTOL} |tau|)")
    return diff


def render(result: TrainResult) -> dict[str, bytes]:
    """Every artifact file of ``result``, by name, as bytes (metrics.json last)."""
    from actuator_net.plots import validation_plots

    ck = checkpoint(result)
    meta = {k: ck[k] for k in ("joint_names", "joint_type", "type_names", "history_spacing",
                                "num_lags", "input_layout")}
    onnx_data = onnx_bytes(result.model, meta)
    rng = np.random.default_rng(0)
    probe = np.concatenate([result.val.x[:2048], result.val.x[:64] * rng.uniform(0, 3, (1, 1, 1))])
    diff = check_onnx(onnx_data, result.model, probe)
    result.metrics["onnx_max_abs_diff_nm"] = diff
    buf = io.BytesIO()
    torch.save(ck, buf)
    files = {ACTUATOR_FILE: buf.getvalue(), "actuator.onnx": onnx_data}
    files.update(validation_plots(result))
    files["config.json"] = (json.dumps(result.metrics["config"], indent=2) + "\n").encode()
    files["metrics.json"] = (json.dumps(result.metrics, indent=2) + "\n").encode()
    return files


def write(out: str | Path, files: dict[str, bytes]) -> list[Path]:
    """Write rendered artifacts into ``out`` atomically, one file at a time."""
    out = Path(out)
    paths = []
    for name, data in files.items():
        atomic_write_bytes(out / name, data)
        paths.append(out / name)
    return paths
