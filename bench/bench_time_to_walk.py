"""Time to walk: wall-clock of a training run until the MuJoCo evaluation passes.

Pass = over the default command set (forward -0.8..0.8 m/s, yaw +-0.5 rad/s, 20 s each):
mean |forward-velocity error| <= 0.15 m/s, mean |yaw-rate error| <= 0.2 rad/s, no falls.

    python bench/bench_time_to_walk.py --run runs/a1-default/policy        # grade a run's checkpoints
    python bench/bench_time_to_walk.py --train --out /tmp/ttw              # train (default config) and grade

Checkpoints (``model_<it>.pt``, every save_interval iterations) are exported and evaluated
in order; wall-clock comes from the TensorBoard event times of the run, so evaluation
time is not counted.  The ratio printed is wall-clock / 60 min (the goal: below 1).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

GOAL_VX, GOAL_YAW, GOAL_MIN = 0.15, 0.2, 60.0


def grade_model(model, env, iteration: int, seconds: float) -> dict[str, Any]:
    """This benchmark's MuJoCo evaluation of a raw-obs -> mean-action torch module;
    ``pass`` is the walking criterion (``bench_rsl_rl.py`` grades both sides' snapshots)."""
    from deploy.evaluate import EvalConfig, evaluate
    from deploy.export import onnx_bytes
    from deploy.metadata import PolicyMetadata
    from policies.train import policy_meta

    m = policy_meta(env, iteration)
    meta = PolicyMetadata(
        robot=m.robot, joint_names=m.joint_names, observation=m.observation, obs_dim=m.obs_dim,
        action_dim=m.action_dim, action_scale=m.action_scale, nominal_pose=m.nominal_pose,
        q_min=m.q_min, q_max=m.q_max, control_dt=m.control_dt, iteration=iteration,
        commands=m.commands)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.onnx"
        path.write_bytes(onnx_bytes(model, meta.obs_dim, meta))
        r = evaluate(path, cfg=EvalConfig(sim="mujoco", seconds=seconds, video=False))["metrics"]
    ok = r["vx_abs_err"] <= GOAL_VX and r["yaw_abs_err"] <= GOAL_YAW and r["falls"] == 0
    return {"vx_err": r["vx_abs_err"], "yaw_err": r["yaw_abs_err"], "falls": r["falls"],
            "pass": bool(ok)}


def checkpoint_policy(run: Path, ckpt: Path, out: Path) -> Path:
    """A policy.pt for checkpoint ``ckpt`` (metadata from the run's policy.pt)."""
    from dataclasses import replace

    from policies.artifact import read_policy, write_policy

    template = read_policy(run)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    template.model.load_state_dict(state["algo"]["policy"])
    return write_policy(out, template.model, replace(template.meta, iteration=int(state["iteration"])))


def wall_clock(run: Path) -> dict[int, float]:
    """Seconds since the run's first event, per iteration."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    ev = acc.Scalars("perf/env_steps")
    t0 = ev[0].wall_time - (ev[1].wall_time - ev[0].wall_time)
    return {e.step: e.wall_time - t0 for e in ev}


def grade(run: Path, seconds: float, every: int, stop_at_pass: bool = True) -> list[dict]:
    from deploy.evaluate import EvalConfig, evaluate
    from deploy.export import export_policy

    clock = wall_clock(run)
    ckpts = sorted(run.glob("model_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ck in ckpts:
            it = int(ck.stem.split("_")[1])
            if it % every:
                continue
            pol = checkpoint_policy(run, ck, Path(tmp) / "policy.pt")
            onnx = Path(tmp) / "policy.onnx"
            export_policy(pol, onnx)
            m = evaluate(onnx, cfg=EvalConfig(sim="mujoco", seconds=seconds, video=False))["metrics"]
            ok = m["vx_abs_err"] <= GOAL_VX and m["yaw_abs_err"] <= GOAL_YAW and m["falls"] == 0
            row = {"iteration": it, "wall_min": clock.get(it, float("nan")) / 60, "vx_err": m["vx_abs_err"],
                   "yaw_err": m["yaw_abs_err"], "falls": m["falls"], "pass": ok}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if ok and stop_at_pass:
                break
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="training run folder with model_<it>.pt checkpoints")
    p.add_argument("--train", action="store_true", help="train the default configuration first")
    p.add_argument("--out", default="bench/out/time_to_walk", help="run folder for --train")
    p.add_argument("--seconds", type=float, default=20.0, help="evaluation episode length (s)")
    p.add_argument("--every", type=int, default=100, help="grade every this many iterations")
    a = p.parse_args()
    run = Path(a.run or a.out)
    if a.train:
        subprocess.run([sys.executable, "-m", "robot_rl.app.cli", "train", "--out", str(run), "--quiet"],
                       check=True)
    rows = grade(run, a.seconds, a.every)
    passed = [r for r in rows if r["pass"]]
    if passed:
        r = passed[0]
        print(f"time to walk: {r['wall_min']:.1f} min (iteration {r['iteration']}); "
              f"ratio to the {GOAL_MIN:.0f}-min goal: {r['wall_min'] / GOAL_MIN:.2f}")
    else:
        print("did not pass at any graded checkpoint")
    return 0


if __name__ == "__main__":
    sys.exit(main())
