"""Tracking over a command sweep: two sides of policies (e.g. one training change, >= 5 seeds
each), each policy evaluated on the same commands, compared by interquartile mean.

    python bench/bench_command_sweep.py --side base=runs/a/p.onnx,runs/b/p.onnx \\
        --side wide_vy=runs/c/p.onnx,runs/d/p.onnx [--sim mujoco|pybullet] \\
        [--standin-config default] [--push-interval 0] [--out runs/sweep.json]

Every policy runs the onboard runtime (``deploy.evaluate``) for each command of the sweep
(default: lateral +-0.25 and +-0.45 m/s, forward 0.6, backward -0.5, turning 0.5 rad/s,
combined (0.4, -0.15, -0.3)), ``--seconds`` of policy control each, errors measured from
ground truth after the 2 s settle.  Per policy: the lateral error (mean |vy - cmd| over the
pure lateral commands), the forward error (|vx - cmd| over forward and backward), the yaw
error (turning and combined), the fraction of the commanded lateral speed reached, falls,
and the success rate (the transfer suite's: no fall or fault, every axis within its bar).
Per side: interquartile mean with a 95 % percentile-bootstrap interval (bench/stats.py);
and the difference of the sides' IQMs with an interval from resampling both sides.

A side may instead name transfer-suite results (``robot-rl eval --suite ... --out D``:
``D/suite.json``), all files of one kind: then nothing runs, the same figures are read
from the suite's episodes on ``--reality`` (its commands, hidden seeds and kicks; several
realities comma-separated, or ``all``, pool their episodes) and the falls are counted
from them:

    python bench/bench_command_sweep.py --side base=runs/s0/suite_default/suite.json,... \
        --side fine=runs/kw/pfine_s0/suite_default/suite.json,... [--reality default]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stats import bootstrap_ci, difference_ci, fmt_ci  # noqa: E402

from deploy.evaluate import EvalConfig, evaluate  # noqa: E402
from deploy.suite import episode_success  # noqa: E402

SWEEP = ((0.0, 0.25, 0.0), (0.0, -0.25, 0.0), (0.0, 0.45, 0.0), (0.0, -0.45, 0.0),
         (0.6, 0.0, 0.0), (-0.5, 0.0, 0.0), (0.0, 0.0, 0.5), (0.4, -0.15, -0.3))
METRICS = ("lateral_err", "lateral_reached", "forward_err", "yaw_err", "falls", "success")


def score(report: dict) -> dict[str, float]:
    """The sweep's per-policy figures from one evaluation report."""
    lat, fwd, yaw, reached = [], [], [], []
    for e in report["episodes"]:
        c = e["command"]
        if c["vx"] == 0 and c["yaw_rate"] == 0 and c["vy"] != 0:
            lat.append(e["vy_abs_err"])
            if "vy_mean" in e:  # suites written before it was recorded lack it
                reached.append(e["vy_mean"] / c["vy"])
        elif c["vy"] == 0 and c["yaw_rate"] == 0 and c["vx"] != 0:
            fwd.append(e["vx_abs_err"])
        if c["yaw_rate"] != 0:
            yaw.append(e["yaw_abs_err"])

    def mean(x: list) -> float:
        return float(np.mean(x)) if x else float("nan")

    falls = (report["metrics"]["falls"] if "metrics" in report
             else sum(bool(e["fell"]) for e in report["episodes"]))
    return {"lateral_err": mean(lat), "lateral_reached": mean(reached), "forward_err": mean(fwd),
            "yaw_err": mean(yaw), "falls": float(falls),
            "success": mean([float(episode_success(e)) for e in report["episodes"]])}


def suite_report(path: str, reality: str) -> dict:
    """The episodes of ``reality`` in a transfer-suite result (``suite.json``); names
    comma-separated, or ``all`` (every reality the suite ran), pool their episodes."""
    data = json.loads(Path(path).read_text())
    realities = data.get("realities", {})
    names = sorted(realities) if reality == "all" else reality.split(",")
    for name in names:
        if name not in realities:
            raise KeyError(f"{path}: field 'realities' has no {name!r} (has {sorted(realities)})")
    return {"episodes": [e for name in names for e in realities[name]["episodes"]]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--side", action="append", required=True, metavar="NAME=P1,P2,...",
                   help="a side: a name and its policy.onnx files (give two --side)")
    p.add_argument("--sim", default="mujoco", choices=("mujoco", "pybullet"))
    p.add_argument("--standin-config", default="", help="pybullet: the reality [default]")
    p.add_argument("--push-interval", type=float, default=0.0, help="pybullet kicks (s) [0]")
    p.add_argument("--seconds", type=float, default=12.0, help="policy seconds per command [12]")
    p.add_argument("--reality", default="default",
                   help="suite.json sides: the reality whose episodes are read; comma-separated "
                        "names or 'all' pool them [default]")
    p.add_argument("--out", type=Path, help="write the per-policy figures and summary (JSON)")
    a = p.parse_args(argv)
    sides: dict[str, list[str]] = {}
    for s in a.side:
        name, _, files = s.partition("=")
        paths = [f for f in files.split(",") if f]
        missing = [f for f in paths if not Path(f).is_file()]
        if not name or not paths or missing:
            print(f"bench_command_sweep: --side {s!r}: need NAME=file.onnx,...; missing "
                  f"{missing}", file=sys.stderr)
            return 2
        sides[name] = paths
    kinds = {Path(f).suffix for paths in sides.values() for f in paths}
    if len(kinds) != 1 or not kinds <= {".onnx", ".json"}:
        print(f"bench_command_sweep: --side files must be all policy .onnx or all suite .json, "
              f"got {sorted(kinds)}", file=sys.stderr)
        return 2
    from_suite = kinds == {".json"}
    cfg = EvalConfig(sim=a.sim, commands=SWEEP, seconds=a.seconds, video=False,
                     standin_config=a.standin_config, push_interval_s=a.push_interval)
    per: dict[str, list[dict]] = {}
    for name, paths in sides.items():
        per[name] = []
        for path in paths:
            try:
                report = suite_report(path, a.reality) if from_suite else evaluate(path, None, cfg)
            except (KeyError, ValueError) as e:
                if not from_suite:
                    raise
                print(f"bench_command_sweep: {e.args[0]}", file=sys.stderr)
                return 2
            row = {"policy": path, **score(report)}
            per[name].append(row)
            print(f"{name:12s} {path:44s} " + "  ".join(f"{k} {row[k]:.3f}" for k in METRICS),
                  flush=True)
    summary = {name: {k: bootstrap_ci([r[k] for r in rows]) for k in METRICS}
               for name, rows in per.items()}
    what = (f"transfer suite on {a.reality!r}" if from_suite else
            f"{a.sim} {a.standin_config or ''} sweep {SWEEP}, {a.seconds:g} s each")
    print(f"\n{what}; IQM [95 % bootstrap]")
    print(f"{'side':12s} " + " ".join(f"{k:>24s}" for k in METRICS))
    for name, s in summary.items():
        print(f"{name:12s} " + " ".join(f"{fmt_ci(s[k], 3):>24s}" for k in METRICS))
    names = list(per)
    diffs = {}
    for other in names[1:]:
        diffs[other] = {k: difference_ci([r[k] for r in per[names[0]]],
                                         [r[k] for r in per[other]]) for k in METRICS}
        print(f"{other + ' - ' + names[0]:12s} " +
              " ".join(f"{fmt_ci(diffs[other][k], 3):>24s}" for k in METRICS))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = a.out.with_name(f".{a.out.name}.tmp")
        tmp.write_text(json.dumps({"source": "suite" if from_suite else "sweep",
                                   "reality": a.reality if from_suite else None, "sim": a.sim, "standin_config": a.standin_config,
                                   "push_interval": a.push_interval, "seconds": a.seconds,
                                   "sweep": SWEEP, "policies": per, "summary": summary,
                                   "difference": diffs}, indent=1))
        tmp.replace(a.out)
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
