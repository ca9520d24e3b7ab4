"""``robot-rl export``: ``policy.pt`` -> ``policy.onnx`` (normalization + action head + metadata)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploy.export import TOLERANCE, ExportError, export_policy
from deploy.metadata import MetadataError
from policies.artifact import PolicyFileError, policy_path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robot-rl export",
        description="Export a trained policy (<run>/policy/policy.pt) to ONNX. The graph holds "
                    "the observation normalization and the deterministic action head; input "
                    "'obs' float32 [batch, obs_dim], output 'actions'. Metadata: robot, joint "
                    "order, observation layout, action scale, nominal pose, joint limits, "
                    "control period, format version. The file is written atomically, only "
                    "after onnx.checker passed and onnxruntime matched torch.")
    p.add_argument("--policy", required=True,
                   help="policy folder <run>/policy (holding policy.pt) or a policy.pt file")
    p.add_argument("--out", default=None,
                   help="output .onnx file [default: policy.onnx next to policy.pt]")
    p.add_argument("--tolerance", type=float, default=TOLERANCE,
                   help=f"largest accepted |onnxruntime - torch| on check observations [{TOLERANCE:g}]")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    src = Path(a.policy)
    out = Path(a.out) if a.out else policy_path(src).parent / "policy.onnx"
    try:
        r = export_policy(src, out, tolerance=a.tolerance)
    except (PolicyFileError, MetadataError) as e:  # the user's input
        print(f"robot-rl export: error: {e}", file=sys.stderr)
        return 2
    except ExportError as e:  # the graph does not reproduce torch: not the user's input
        print(f"robot-rl export: {e}", file=sys.stderr)
        return 1
    m = r.meta
    print(f"wrote {r.path}: robot {m.robot}, obs {m.obs_dim} -> actions {m.action_dim}, "
          f"control period {m.control_dt} s, iteration {m.iteration}; onnxruntime vs torch "
          f"max |diff| {r.max_abs_error:.2e} on {r.num_checked} observations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
