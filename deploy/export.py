"""Export a trained ``policy.pt`` to ONNX: normalization + deterministic action head + metadata.

The exported graph is ``actions = actor(clip((obs - mean) / sqrt(var + eps)))``: the
observation normalizer's statistics are constants inside the graph, so the onboard
runtime feeds raw observations built by :func:`robot_rl.obs_spec.build_observation`.
Input ``obs`` is float32 ``[batch, obs_dim]`` with a dynamic batch; output ``actions`` is
float32 ``[batch, action_dim]``.  The graph carries the metadata of
:mod:`deploy.metadata` (robot, joint order, observation layout, action scale, nominal
pose, joint limits, control period, format version).

The write is atomic (temporary file, then rename) and happens only after
``onnx.checker`` has passed and onnxruntime has reproduced torch's actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from deploy.metadata import INPUT_NAME, OUTPUT_NAME, MetadataError, PolicyMetadata
from policies.artifact import PolicyArtifact, read_policy
from robot_rl.config import atomic_write_bytes, to_dict
from robot_rl.onnx_io import (
    export_onnx,
    max_abs_error,
    ort_session,  # noqa: F401 - re-exported (tests, bench)
    run_both,
)

#: largest tolerated |onnxruntime - torch| on the check observations (absolute, per action).
#: Both run the float32 MLP with different sgemm kernels (MLAS vs MKL/OpenBLAS), so the sums
#: of each layer come in another order: a few float32 ulps of the action apart.  Actions
#: reach ~13 on the check observations (ulp 1e-6), so the committed A1 policy differs by
#: 2.4e-6 on them (3.8e-6 worst over 5 x 4096 more); 1e-5 is ~10 ulps at that size, while
#: a wrong graph (normalizer left out, clip missing) differs by 1e-3 and more.
TOLERANCE = 1e-5


class ExportError(RuntimeError):
    """The exported graph failed its checks (nothing was written)."""


@dataclass
class ExportResult:
    """What :func:`export_policy` wrote and how well it matched torch."""

    path: Path
    meta: PolicyMetadata
    max_abs_error: float
    num_checked: int


def onnx_bytes(model: torch.nn.Module, obs_dim: int, meta: PolicyMetadata) -> bytes:
    """Serialized ONNX model of ``model.forward`` (raw obs -> mean action) with metadata."""
    return export_onnx(
        model, torch.zeros(1, obs_dim), INPUT_NAME, OUTPUT_NAME, meta.to_props(),
        producer="robot-rl export",
        doc=(f"robot_rl policy for robot {meta.robot!r}: raw observation "
             f"[{meta.obs_dim}] -> joint position actions [{meta.action_dim}]"))


def compare_with_torch(model: torch.nn.Module, onnx_model: bytes | str | Path,
                       obs: np.ndarray) -> float:
    """Largest |onnxruntime - torch| over the observations ``obs`` (N, obs_dim)."""
    got, want = run_both(model, onnx_model, obs, INPUT_NAME, OUTPUT_NAME)
    if got.shape != want.shape:
        raise ExportError(f"onnxruntime output shape {got.shape} != torch {want.shape}")
    return max_abs_error(got, want)


def check_observations(meta: PolicyMetadata, n: int = 256, seed: int = 0) -> np.ndarray:
    """Random observations for the export check: standard normal, plus large outliers
    (beyond the normalizer's clip) so clipping inside the graph is exercised."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, meta.obs_dim)).astype(np.float32)
    obs[: n // 8] *= 50.0
    return obs


def export_policy(policy: str | Path, out: str | Path, extra_obs: np.ndarray | None = None,
                  tolerance: float = TOLERANCE) -> ExportResult:
    """Export ``<run>/policy`` (or a ``policy.pt``) to the ONNX file ``out``, atomically.

    The graph is checked with ``onnx.checker`` and onnxruntime's actions are compared
    with torch's on random observations (and ``extra_obs``, e.g. recorded ones); a
    difference above ``tolerance`` raises :class:`ExportError` and nothing is written.
    """
    loaded = read_policy(policy)
    meta = onnx_metadata(loaded)
    data = onnx_bytes(loaded.model, meta.obs_dim, meta)
    obs = check_observations(meta)
    if extra_obs is not None:
        obs = np.concatenate([obs, np.asarray(extra_obs, np.float32).reshape(-1, meta.obs_dim)])
    err = compare_with_torch(loaded.model, data, obs)
    if not err <= tolerance:
        raise ExportError(f"{loaded.path}: onnxruntime differs from torch by {err:.3g} "
                          f"(tolerance {tolerance:g}); {out} not written")
    out = Path(out)
    atomic_write_bytes(out, data)
    return ExportResult(path=out, meta=meta, max_abs_error=err, num_checked=len(obs))


def onnx_metadata(policy: PolicyArtifact) -> PolicyMetadata:
    """The exported model's metadata for a checked ``policy.pt`` (stage 3's artifact)."""
    m = policy.meta
    meta = PolicyMetadata(
        robot=m.robot, joint_names=m.joint_names, observation=m.observation, obs_dim=m.obs_dim,
        action_dim=m.action_dim, action_scale=m.action_scale, nominal_pose=m.nominal_pose,
        q_min=m.q_min, q_max=m.q_max, control_dt=m.control_dt, iteration=m.iteration,
        policy_config=to_dict(policy.policy_config), source_sha256=policy.sha256,
        commands=m.commands)
    meta.validate(str(policy.path))
    return meta


def read_metadata(path: str | Path) -> PolicyMetadata:
    """Parse and check the metadata of an exported ``policy.onnx``; a missing file raises
    FileNotFoundError, one that is not an ONNX model :class:`MetadataError`, naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX model (run `robot-rl export`)")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and onnx's own errors
        raise MetadataError(f"{path}: not an ONNX model (expected an exported policy.onnx; "
                            f"{type(e).__name__}: {e})") from e
    props = {p.key: p.value for p in proto.metadata_props}
    return PolicyMetadata.from_props(props, where=str(path))
