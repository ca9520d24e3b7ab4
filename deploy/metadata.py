"""What an exported policy says about itself: the ONNX ``metadata_props`` schema, defined once.

``robot-rl export`` writes these keys into ``policy.onnx``; the onboard runtime reads and
checks them before it runs anything.  Every value is a string (ONNX metadata is
string-to-string); structured values are JSON.

==================  ==========================================================  =========
key                 meaning                                                     example
==================  ==========================================================  =========
``format``          always ``robot_rl.onnx_policy``                             -
``format_version``  version of this schema (:data:`ONNX_FORMAT_VERSION`)        ``1``
``robot``           robot description name the policy was trained for           ``a1``
``joint_names``     canonical joint order of actions and observations (JSON)    ``[...]``
``observation``     :meth:`robot_rl.obs_spec.ObservationSpec.layout` (JSON)     ``{...}``
``signals``         what the robot must provide (JSON), from the layout:         ``[...]``
                    :meth:`~robot_rl.obs_spec.ObservationSpec.signals`; absent
                    in files written before it existed (derived on reading)
``obs_dim``         observation width, the ``obs`` input's second dimension      ``96``
``action_dim``      action width, the ``actions`` output's second dimension      ``12``
``action_scale``    ``q_target = nominal_pose + action_scale * action`` (rad)    ``0.25``
``nominal_pose``    joint positions the actions are relative to (rad, JSON)     ``[...]``
``q_min/q_max``     joint position limits used in training (rad, JSON)          ``[...]``
``control_dt``      policy control period (s)                                   ``0.02``
``iteration``       training iteration of the exported weights                  ``600``
``commands``        the training command ranges, [low, high] of forward (m/s),   ``[[..]]``
                    lateral (m/s) and yaw rate (rad/s) (JSON): the runtime keeps
                    commands inside them; absent in files written before it
``policy_config``   :class:`robot_rl.rl.config.PolicyConfig` fields (JSON)      ``{...}``
``source_sha256``   SHA-256 of the ``policy.pt`` it was exported from           ``ab12..``
==================  ==========================================================  =========
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from robot_rl.obs_spec import FORMAT_VERSION as OBS_FORMAT_VERSION
from robot_rl.obs_spec import ObservationSpec, command_ranges, interface_problem

#: value of the ``format`` key
ONNX_FORMAT = "robot_rl.onnx_policy"
#: version of the metadata schema this code writes and reads
ONNX_FORMAT_VERSION = 1
#: graph input and output names
INPUT_NAME, OUTPUT_NAME = "obs", "actions"


class MetadataError(ValueError):
    """An exported model's metadata is missing, malformed or does not fit this robot."""


@dataclass(frozen=True)
class PolicyMetadata:
    """The facts about a policy that export writes and the onboard runtime checks."""

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
    # q_target = nominal_pose + action_scale * action (rad per unit action)
    action_scale: float
    # nominal joint positions the actions are relative to (rad)
    nominal_pose: tuple[float, ...]
    # lower joint limits used in training (rad)
    q_min: tuple[float, ...]
    # upper joint limits used in training (rad)
    q_max: tuple[float, ...]
    # policy control period (s)
    control_dt: float
    # training iteration of the weights (-)
    iteration: int = 0
    # PolicyConfig fields of the network (JSON-ready)
    policy_config: dict[str, Any] = field(default_factory=dict)
    # SHA-256 of the policy.pt the model was exported from ("" if unknown)
    source_sha256: str = ""
    # training command ranges: (low, high) of forward (m/s), lateral (m/s), yaw rate
    # (rad/s); None where unknown (older files)
    commands: tuple[tuple[float, float], ...] | None = None
    # metadata schema version
    format_version: int = ONNX_FORMAT_VERSION

    def validate(self, where: str, prefix: str = "") -> None:
        """Raise :class:`MetadataError` naming ``where`` and the field (``prefix`` + name)."""
        problem = interface_problem(self, lambda: self.spec(where, prefix))
        if problem:
            fname, msg = problem
            raise MetadataError(f"{where}: metadata field '{prefix}{fname}': {msg}")

    def spec(self, where: str = "metadata", prefix: str = "") -> ObservationSpec:
        """The :class:`ObservationSpec` this policy was trained with."""
        layout = self.observation
        label = f"{where}: metadata field '{prefix}observation'"
        version = layout.get("format_version") if isinstance(layout, dict) else None
        if version != OBS_FORMAT_VERSION:
            raise MetadataError(f"{label}: observation format version {version!r}, this "
                                f"runtime builds version {OBS_FORMAT_VERSION}")
        try:
            spec = ObservationSpec.from_layout(layout)
        except (KeyError, TypeError, ValueError) as e:
            raise MetadataError(f"{label}: {e}") from e
        if layout.get("size") is not None and int(layout["size"]) != spec.size:
            raise MetadataError(f"{label}: size {layout['size']} does not match its blocks "
                                f"({spec.size})")
        return spec

    @property
    def signals(self) -> list[str]:
        """The signals the policy needs from the robot (robot_rl.interface.SIGNALS names,
        plus ``base_linear_velocity_estimate`` for the onboard estimator's output)."""
        return self.spec().signals()

    # -- ONNX metadata_props -------------------------------------------------------------
    def to_props(self) -> dict[str, str]:
        """String-to-string metadata for ``onnx.ModelProto.metadata_props``."""
        return {
            "format": ONNX_FORMAT, "format_version": str(self.format_version),
            "robot": self.robot, "joint_names": json.dumps(list(self.joint_names)),
            "observation": json.dumps(_jsonable(self.observation)),
            "signals": json.dumps(self.signals),
            "obs_dim": str(self.obs_dim), "action_dim": str(self.action_dim),
            "action_scale": repr(float(self.action_scale)),
            "nominal_pose": json.dumps(list(self.nominal_pose)),
            "q_min": json.dumps(list(self.q_min)), "q_max": json.dumps(list(self.q_max)),
            "control_dt": repr(float(self.control_dt)), "iteration": str(self.iteration),
            "policy_config": json.dumps(_jsonable(self.policy_config)),
            "source_sha256": self.source_sha256,
            **({} if self.commands is None else
               {"commands": json.dumps([list(r) for r in command_ranges(self.commands)])}),
        }

    @classmethod
    def from_props(cls, props: dict[str, str], where: str) -> PolicyMetadata:
        """Parse and check metadata read from an ONNX file; errors name ``where`` and the key."""
        fmt = props.get("format")
        if fmt != ONNX_FORMAT:
            raise MetadataError(
                f"{where}: metadata field 'format' is {fmt!r}, expected {ONNX_FORMAT!r} "
                f"(was this model written by `robot-rl export`?)")
        try:
            version = int(props.get("format_version", ""))
        except ValueError:
            raise MetadataError(f"{where}: metadata field 'format_version' is "
                                f"{props.get('format_version')!r}, not an integer") from None
        if version != ONNX_FORMAT_VERSION:
            raise MetadataError(f"{where}: metadata field 'format_version': model has format "
                                f"version {version}, this runtime reads version {ONNX_FORMAT_VERSION}")

        def get(key: str, parse):
            if key not in props:
                raise MetadataError(f"{where}: metadata field {key!r} is missing")
            try:
                return parse(props[key])
            except (ValueError, TypeError) as e:
                raise MetadataError(f"{where}: metadata field {key!r} is malformed: {e}") from e

        def floats(s: str) -> tuple[float, ...]:
            return tuple(float(x) for x in json.loads(s))

        meta = cls(
            robot=get("robot", str), joint_names=get("joint_names", lambda s: tuple(json.loads(s))),
            observation=get("observation", json.loads), obs_dim=get("obs_dim", int),
            action_dim=get("action_dim", int), action_scale=get("action_scale", float),
            nominal_pose=get("nominal_pose", floats), q_min=get("q_min", floats),
            q_max=get("q_max", floats), control_dt=get("control_dt", float),
            iteration=int(props.get("iteration", "0") or 0),
            policy_config=json.loads(props.get("policy_config", "{}") or "{}"),
            source_sha256=props.get("source_sha256", ""), format_version=version,
            commands=(get("commands", lambda v: command_ranges(json.loads(v)))
                      if "commands" in props else None),
        )
        meta.validate(where)
        if "signals" in props:
            listed = get("signals", json.loads)
            if listed != meta.signals:
                raise MetadataError(f"{where}: metadata field 'signals' lists {listed}, but the "
                                    f"observation layout needs {meta.signals}")
        return meta


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj
