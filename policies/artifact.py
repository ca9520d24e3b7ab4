"""``policy.pt``, stage 3's artifact: its schema, its atomic writer and its validating reader.

The file is a ``torch.save`` dict, read with ``weights_only=True`` (so it cannot run code)::

    {"format": "robot_rl.policy", "version": 1,
     "model_state": ActorCritic.state_dict(), "policy_config": {PolicyConfig fields},
     "obs_dim": int, "action_dim": int,
     "meta": {"robot", "joint_names", "observation" (ObservationSpec.layout()),
              "control_dt", "nominal_pose", "action_scale", "q_min", "q_max", "iteration",
              "commands" (the training command ranges; absent in older files)}}

:func:`write_policy` (training, ``robot-rl train``) writes it atomically after checking
the metadata; :func:`read_policy` (export, the pipeline, benchmarks) accepts the policy
folder or the file and raises :class:`PolicyFileError` naming the file and the field.
This module imports the network and config definitions (``robot_rl.rl``), never the
training code (env, runner).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from robot_rl.config import ConfigError, artifact_file, atomic_write_bytes, from_dict, to_dict
from robot_rl.obs_spec import FORMAT_VERSION as OBS_FORMAT_VERSION
from robot_rl.obs_spec import ObservationSpec, command_ranges, interface_problem
from robot_rl.rl.config import PolicyConfig
from robot_rl.rl.models import ActorCritic

POLICY_FORMAT = "robot_rl.policy"
POLICY_VERSION = 1
POLICY_FILE = "policy.pt"


class PolicyFileError(ValueError):
    """``policy.pt`` is missing, of another format, or inconsistent."""


@dataclass(frozen=True)
class PolicyMeta:
    """What ``policy.pt`` says about its network (``obs_dim``/``action_dim`` are top-level
    keys of the file, the rest sit under ``meta``)."""

    # robot description name the policy was trained for
    robot: str
    # canonical joint order of actions and joint observations
    joint_names: tuple[str, ...]
    # observation layout, as ObservationSpec.layout() returns it
    observation: dict[str, Any]
    # observation width (-)
    obs_dim: int
    # action width (-)
    action_dim: int
    # policy control period (s)
    control_dt: float
    # nominal joint positions the actions are relative to (rad)
    nominal_pose: tuple[float, ...]
    # q_target = nominal_pose + action_scale * action (rad per unit action)
    action_scale: float
    # lower joint limits used in training (rad)
    q_min: tuple[float, ...]
    # upper joint limits used in training (rad)
    q_max: tuple[float, ...]
    # training iteration of the weights (-)
    iteration: int = 0
    # the command ranges the policy was trained on: (low, high) of forward velocity (m/s),
    # lateral velocity (m/s), yaw rate (rad/s); None in files written before it was recorded
    commands: tuple[tuple[float, float], ...] | None = None

    def validate(self, where: str) -> None:
        """Raise :class:`PolicyFileError` naming ``where`` and the field (as in the file)."""
        problem = interface_problem(self, lambda: self.spec(where))
        if problem:  # obs_dim and action_dim are top-level keys of the file, the rest meta.*
            fname, msg = problem
            fname = fname if fname in ("obs_dim", "action_dim") else f"meta.{fname}"
            raise PolicyFileError(f"{where}: field {fname!r}: {msg}")

    def spec(self, where: str = POLICY_FILE) -> ObservationSpec:
        """The :class:`ObservationSpec` the policy was trained with."""
        layout = self.observation
        label = f"{where}: field 'meta.observation'"
        version = layout.get("format_version") if isinstance(layout, dict) else None
        if version != OBS_FORMAT_VERSION:
            raise PolicyFileError(f"{label}: observation format version {version!r}, this "
                                  f"code builds version {OBS_FORMAT_VERSION}")
        try:
            return ObservationSpec.from_layout(layout)
        except (KeyError, TypeError, ValueError) as e:
            raise PolicyFileError(f"{label}: {e}") from e

    def header(self) -> dict[str, Any]:
        """The ``meta`` dict of the file."""
        return {"robot": self.robot, "joint_names": list(self.joint_names),
                "observation": self.observation, "control_dt": float(self.control_dt),
                "nominal_pose": [float(x) for x in self.nominal_pose],
                "action_scale": float(self.action_scale),
                "q_min": [float(x) for x in self.q_min], "q_max": [float(x) for x in self.q_max],
                "iteration": int(self.iteration),
                **({} if self.commands is None else {"commands": command_ranges(self.commands)})}



@dataclass
class PolicyArtifact:
    """A checked ``policy.pt``: the network (eval mode, CPU), its config and metadata."""

    path: Path
    model: ActorCritic
    meta: PolicyMeta
    policy_config: PolicyConfig
    # SHA-256 of the file's bytes
    sha256: str


def policy_path(path: str | Path) -> Path:
    """``<run>/policy`` (a folder holding ``policy.pt``) or the file itself."""
    return artifact_file(path, POLICY_FILE)


def policy_state(model: ActorCritic, meta: PolicyMeta) -> dict[str, Any]:
    """The dict ``policy.pt`` holds (the schema above)."""
    return {"format": POLICY_FORMAT, "version": POLICY_VERSION,
            "model_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "policy_config": to_dict(model.cfg), "obs_dim": int(meta.obs_dim),
            "action_dim": int(meta.action_dim), "meta": meta.header()}


def write_state(path: str | Path, state: dict[str, Any]) -> Path:
    """``torch.save`` a state dict to ``path`` atomically (temporary file, then rename);
    :func:`write_policy` builds and checks the dict first."""
    buf = io.BytesIO()
    torch.save(state, buf)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_policy(path: str | Path, model: ActorCritic, meta: PolicyMeta) -> Path:
    """Write ``policy.pt`` (into ``<path>/policy.pt`` for a folder) atomically."""
    path = Path(path)
    path = path if path.suffix == ".pt" else path / POLICY_FILE
    meta.validate(str(path))
    if (model.obs_dim, model.action_dim) != (meta.obs_dim, meta.action_dim):
        raise PolicyFileError(f"{path}: network is {model.obs_dim}->{model.action_dim}, "
                              f"metadata says {meta.obs_dim}->{meta.action_dim}")
    return write_state(path, policy_state(model, meta))


def read_policy(path: str | Path) -> PolicyArtifact:
    """Load and validate ``policy.pt``; raise :class:`PolicyFileError` naming file and field."""
    path = policy_path(path)
    if not path.exists():
        raise PolicyFileError(f"{path}: no such policy file (train one with `robot-rl train`)")
    raw = path.read_bytes()
    try:
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
        raise bad("version", f"is {data.get('version')!r}, this code reads version "
                             f"{POLICY_VERSION}")
    for key, tp in (("model_state", dict), ("policy_config", dict), ("obs_dim", int),
                    ("action_dim", int), ("meta", dict)):
        if key not in data:
            raise bad(key, "is missing")
        if not isinstance(data[key], tp) or isinstance(data[key], bool):
            raise bad(key, f"expected {tp.__name__}, got {type(data[key]).__name__}")
    meta = _meta(data, bad)
    meta.validate(str(path))
    try:
        cfg = from_dict(PolicyConfig, dict(data["policy_config"]),
                        where=f"{path}: field 'policy_config'")
    except ConfigError as e:
        raise PolicyFileError(str(e)) from e
    model = ActorCritic(meta.obs_dim, meta.action_dim, cfg)
    state = data["model_state"]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        raise bad("model_state", f"does not fit ActorCritic(obs_dim={meta.obs_dim}, "
                                 f"action_dim={meta.action_dim}, {cfg}): {detail}") from e
    for name, value in state.items():
        if torch.is_tensor(value) and value.is_floating_point() and \
                not bool(torch.isfinite(value).all()):
            raise bad(f"model_state.{name}", "contains NaN/Inf")
    model.eval()
    return PolicyArtifact(path=path, model=model, meta=meta, policy_config=cfg,
                          sha256=hashlib.sha256(raw).hexdigest())


def _meta(data: dict[str, Any], bad) -> PolicyMeta:
    m = data["meta"]
    for key in ("robot", "joint_names", "observation", "control_dt", "nominal_pose",
                "action_scale", "q_min", "q_max"):
        if key not in m:
            raise bad(f"meta.{key}", "is missing")

    def field_(key: str, parse):
        try:
            return parse(m[key])
        except (TypeError, ValueError) as e:
            raise bad(f"meta.{key}", f"malformed: {e}") from e

    floats = lambda v: tuple(float(x) for x in v)  # noqa: E731
    if not isinstance(m["observation"], dict):
        raise bad("meta.observation", f"expected a dict, got {type(m['observation']).__name__}")
    return PolicyMeta(
        robot=field_("robot", str), joint_names=field_("joint_names", lambda v: tuple(map(str, v))),
        observation=dict(m["observation"]), obs_dim=int(data["obs_dim"]),
        action_dim=int(data["action_dim"]), control_dt=field_("control_dt", float),
        nominal_pose=field_("nominal_pose", floats), action_scale=field_("action_scale", float),
        q_min=field_("q_min", floats), q_max=field_("q_max", floats),
        iteration=field_("iteration", int) if "iteration" in m else 0,
        commands=field_("commands", command_ranges) if "commands" in m else None)
