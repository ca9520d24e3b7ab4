"""ONNX export and its check against torch: one definition for every exported network.

Two stages export a torch module to ONNX (stage 2's actuator network, stage 4's policy);
both go through :func:`export_onnx` (torch export, metadata, ``onnx.checker``) and
:func:`run_both` (the same inputs through onnxruntime and through torch), and apply their
own tolerance to the difference.  :func:`ort_session` is the onnxruntime session both the
check and the onboard runtime use.

torch, onnx and onnxruntime are imported inside the functions: the onboard runtime imports
this module for :func:`ort_session` and must not pull in torch or onnx.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnxruntime
    import torch

#: ONNX opset of every exported graph
OPSET = 17


def ort_session(model: bytes | str | Path, threads: int = 1) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session with ``threads`` intra-op threads, sequential execution
    (the onboard setting; export checks its graph with the same session)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, sess_options=so, providers=["CPUExecutionProvider"])


def export_onnx(model: torch.nn.Module, example: torch.Tensor, input_name: str,
                output_name: str, props: Mapping[str, str], *, producer: str | None = None,
                doc: str | None = None) -> bytes:
    """Serialized ONNX graph of ``model.forward`` (one input, one output, dynamic batch on
    axis 0) carrying ``props`` as metadata; it has passed ``onnx.checker`` (full check).

    ``example`` fixes every axis but the first.  ``model`` is put in eval mode.
    """
    import onnx
    import torch

    model = model.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of torch.export + onnxscript,
        # which is not a dependency of this project; the graphs are MLPs either way
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), buf, dynamo=False, opset_version=OPSET,
            input_names=[input_name], output_names=[output_name],
            dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
            do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    if producer is not None:
        proto.producer_name = producer
    if doc is not None:
        proto.doc_string = doc
    del proto.metadata_props[:]
    bad = [k for k, v in props.items() if not isinstance(v, str)]
    if bad:
        raise TypeError(f"ONNX metadata values must be strings; {bad[0]!r} is not")
    onnx.helper.set_model_props(proto, dict(props))
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def run_both(model: torch.nn.Module, onnx_model: bytes | str | Path, x: np.ndarray,
             input_name: str, output_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(onnxruntime's output, torch's output) of the inputs ``x``, cast to float32."""
    import torch

    x = np.ascontiguousarray(x, dtype=np.float32)
    got = ort_session(onnx_model).run([output_name], {input_name: x})[0]
    with torch.inference_mode():
        want = model.eval()(torch.from_numpy(x)).numpy()
    return got, want


def max_abs_error(got: np.ndarray, want: np.ndarray) -> float:
    """Largest |got - want| (0 for empty arrays); shapes must agree."""
    if got.shape != want.shape:
        raise ValueError(f"onnxruntime output shape {got.shape} != torch {want.shape}")
    return float(np.max(np.abs(got - want))) if got.size else 0.0

