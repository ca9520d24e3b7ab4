"""Read and check ``policy.pt``, the deployable policy written by the policy stage.

The file is a ``torch.save`` dict (read with ``weights_only=True``, so it cannot run code)::

    {"format": "robot_rl.policy", "version": 1,
     "model_state": ActorCritic.state_dict(), "policy_config": {PolicyConfig fields},
     "obs_dim": int, "action_dim": int,
     "meta": {"robot", "joint_names", "observation" (ObservationSpec.layout()),
              "control_dt", "nominal_pose", "action_scale", "q_min", "q_max", "iteration"}}

Every problem raises :class:`PolicyFileError` naming the file and the field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from deploy.metadata import MetadataError, PolicyMetadata
from robot_rl.config import ConfigError, from_dict
from robot_rl.rl.config import PolicyConfig
from robot_rl.rl.models import ActorCritic

POLICY_FORMAT = "robot_rl.policy"
POLICY_VERSION = 1
POLICY_FILE = "policy.pt"
_META_KEYS = ("robot", "joint_names", "observation", "control_dt", "nominal_pose",
              "action_scale", "q_min", "q_max")


class PolicyFileError(ValueError):
    """``policy.pt`` is missing, of another format, or inconsistent."""


@dataclass
class LoadedPolicy:
    """A checked ``policy.pt``: the network (eval mode, CPU) and its metadata."""

    path: Path
    model: ActorCritic
    meta: PolicyMetadata


def resolve_policy_path(path: str | Path) -> Path:
    """``<run>/policy`` (a folder holding ``policy.pt``) or the file itself."""
    path = Path(path)
    if path.is_dir():
        path = path / POLICY_FILE
    if not path.exists():
        raise PolicyFileError(f"{path}: no such policy file (train one with `robot-rl train`)")
    return path


def load_policy_file(path: str | Path) -> LoadedPolicy:
    """Load and validate ``policy.pt``; raise :class:`PolicyFileError` naming file and field."""
    path = resolve_policy_path(path)
    raw = path.read_bytes()
    try:
        import io

        data = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not our file"
        raise PolicyFileError(f"{path}: not a readable torch policy file ({e})") from e

    def bad(fname: str, msg: str) -> PolicyFileError:
        return PolicyFileError(f"{path}: field {fname!r}: {msg}")

    if not isinstance(data, dict):
        raise PolicyFileError(f"{path}: expected a dict saved by the policy stage, got "
                              f"{type(data).__name__}")
    if data.get("format") != POLICY_FORMAT:
        raise bad("format", f"is {data.get('format')!r}, expected {POLICY_FORMAT!r}")
    if data.get("version") != POLICY_VERSION:
        raise bad("version", f"is {data.get('version')!r}, this exporter reads version "
                             f"{POLICY_VERSION}")
    for key, tp in (("model_state", dict), ("policy_config", dict), ("obs_dim", int),
                    ("action_dim", int), ("meta", dict)):
        if key not in data:
            raise bad(key, "is missing")
        if not isinstance(data[key], tp) or isinstance(data[key], bool):
            raise bad(key, f"expected {tp.__name__}, got {type(data[key]).__name__}")
    meta_in = data["meta"]
    for key in _META_KEYS:
        if key not in meta_in:
            raise bad(f"meta.{key}", "is missing")
    try:
        cfg = from_dict(PolicyConfig, dict(data["policy_config"]), where=f"{path}: field 'policy_config'")
    except ConfigError as e:
        msg = str(e) if str(path) in str(e) else f"{path}: field 'policy_config': {e}"
        raise PolicyFileError(msg) from e
    obs_dim, action_dim = int(data["obs_dim"]), int(data["action_dim"])
    try:
        meta = PolicyMetadata(
            robot=str(meta_in["robot"]), joint_names=tuple(meta_in["joint_names"]),
            observation=dict(meta_in["observation"]), obs_dim=obs_dim, action_dim=action_dim,
            action_scale=float(meta_in["action_scale"]),
            nominal_pose=tuple(float(x) for x in meta_in["nominal_pose"]),
            q_min=tuple(float(x) for x in meta_in["q_min"]),
            q_max=tuple(float(x) for x in meta_in["q_max"]),
            control_dt=float(meta_in["control_dt"]), iteration=int(meta_in.get("iteration", 0)),
            policy_config=dict(data["policy_config"]),
            source_sha256=hashlib.sha256(raw).hexdigest())
    except (TypeError, ValueError) as e:
        raise bad("meta", f"malformed: {e}") from e
    try:
        meta.validate(str(path), prefix="meta.")
    except MetadataError as e:
        msg = str(e).replace("metadata field 'meta.obs_dim'", "field 'obs_dim'")
        msg = msg.replace("metadata field 'meta.action_dim'", "field 'action_dim'")
        raise PolicyFileError(msg.replace("metadata field", "field")) from e
    model = ActorCritic(obs_dim, action_dim, cfg)
    state = data["model_state"]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        raise bad("model_state", f"does not fit ActorCritic(obs_dim={obs_dim}, "
                                 f"action_dim={action_dim}, {cfg}): {detail}") from e
    for name, value in state.items():
        if torch.is_tensor(value) and value.is_floating_point() and \
                not bool(torch.isfinite(value).all()):
            raise bad(f"model_state.{name}", "contains NaN/Inf")
    model.eval()
    return LoadedPolicy(path=path, model=model, meta=meta)
