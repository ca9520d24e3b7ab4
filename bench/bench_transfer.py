"""What stages 1 and 2 buy: the pipeline against baselines, on every shipped reality.

For each reality (``robot_rl/standin/*.json``) the full pipeline runs on that reality's own
logs, and five policies trained with the same budget are run through the transfer suite
on that reality (``deploy.suite``: 3 hidden seeds x 6 commands with pushes):

(a) ideal PD on the nominal model (no stage 1 or 2);
(b) ideal PD with broad hand-set randomization, as legged_gym and walk-these-ways do
    (``robot-rl sysid --hand-set`` ranges for masses, COM, friction, joint damping and
    friction, rotor inertia; ``env.actuation=pd_random`` for Kp, Kd, strength and latency);
(c) the reality's identified parameters (randomized in their ranges), ideal PD;
(d) the reality's actuator network, nominal model;
(e) the full pipeline (``robot-rl pipeline``): phase 1 as (a)'s, phase 2 as (b)'s start,
    phase 3 fine-tuned in the identified world (parameters and actuator network); of that
    and (b) at the same iteration, the one that tracks best on the robot (the reality's
    stand-in, 24 episodes of its own) is deployed (``robot-rl select --judge robot``).  The bench hands the pipeline phase 1 and (b) instead of
    training them again.

Every policy starts from the same phase-1 checkpoint (ideal PD on the nominal model, the
pipeline budget's ``pretrain`` iterations, trained once) and continues in its own world to
the iteration the pipeline's training ends at (``final_iteration``); (a) and (b) do not depend on the reality and are
trained once.  Prints, and writes to ``--out``/transfer.{json,md}, per reality and policy:
falls, success rate, forward/lateral/yaw tracking errors.

    python bench/bench_transfer.py --out runs/transfer                  # everything (hours)
    python bench/bench_transfer.py --budget smoke --suite-seconds 1     # the machinery
    python bench/bench_transfer.py --realities default,driver_mismatch --variants a,b,e
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import time
from pathlib import Path

from deploy.suite import run_suite, summarize_reality
from robot_rl.app.pipeline import BUDGETS, final_iteration
from robot_rl.config import atomic_write_bytes, atomic_write_json
from robot_rl.standin_model import realities

VARIANTS = {"a": "ideal PD, nominal", "b": "ideal PD, hand-set randomization",
            "c": "identified params, ideal PD", "d": "actuator net, nominal",
            "e": "pipeline (params + net)"}


def call(module: str, argv: list[str]) -> None:
    print(f"$ {module} {' '.join(argv)}", flush=True)
    rc = importlib.import_module(module).main(argv)
    if rc:
        raise RuntimeError(f"{module} failed with exit code {rc}")


def train(folder: Path, phase1: Path, iterations: int, seed: int, extra: list[str],
          budget: str) -> Path:
    """Continue phase 1's checkpoint in ``folder`` to ``iterations``; export; return the onnx."""
    from policies.artifact import read_policy

    onnx = folder / "policy.onnx"
    if onnx.exists() and read_policy(folder / "policy").meta.iteration == iterations:
        return onnx
    if not (folder / "policy").exists():
        shutil.copytree(phase1, folder / "policy")
    call("policies.cli", ["--out", str(folder / "policy"), "--seed", str(seed), "--resume",
                          "--iterations", str(iterations), "--quiet",
                          *BUDGETS[budget]["train_args"], *extra])
    call("deploy.export_cli", ["--policy", str(folder / "policy"), "--out", str(onnx)])
    return onnx


def _hand_over(out: Path, phase1: Path, run: Path, phase2_end: int) -> None:
    """Give the pipeline in ``run`` what (a)'s phase 1 and (b) already trained: its phases 1
    and 2 are (a)'s phase 1 and (b)'s first ``phase2_end`` iterations, its randomized
    candidate is (b) (same ranges, seed and budget), so it trains only phase 3."""
    from policies.train import checkpoint_iteration

    b = out / "b"
    if not (run / "policy").exists():
        shutil.copytree(b / "policy", run / "policy", ignore=lambda d, names: [
            n for n in names if n == "policy.pt" or (checkpoint_iteration(n) or 0) > phase2_end])
    if not (run / "baseline_pd" / "policy.pt").exists():
        (run / "baseline_pd").mkdir(parents=True, exist_ok=True)
        shutil.copy(phase1 / "policy.pt", run / "baseline_pd" / "policy.pt")
    if not (run / "randomized").exists():
        shutil.copytree(b / "policy", run / "randomized" / "policy")
        shutil.copytree(b / "sysid", run / "randomized" / "sysid")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/transfer", help="work folder [runs/transfer]")
    p.add_argument("--realities", default="", help=f"comma-separated subset of {realities()}")
    p.add_argument("--variants", default="abcde", help="which of a-e [abcde]")
    p.add_argument("--budget", default="default", choices=sorted(BUDGETS),
                   help="the pipeline's training budget, used by every policy [default]")
    p.add_argument("--seed", type=int, default=0, help="training seed [0]")
    p.add_argument("--suite-seeds", default="0,1,2", help="hidden seeds per reality [0,1,2]")
    p.add_argument("--suite-seconds", type=float, default=8.0, help="seconds per episode [8]")
    a = p.parse_args(argv)
    names = [x for x in a.realities.split(",") if x] or realities()
    variants = [v for v in a.variants.replace(",", "") if v in VARIANTS]
    seeds = tuple(int(x) for x in a.suite_seeds.split(","))
    out = Path(a.out)
    t0 = time.perf_counter()
    a.pretrain, a.iterations = BUDGETS[a.budget]["pretrain"], final_iteration(BUDGETS[a.budget])
    b_args = BUDGETS[a.budget]["train_args"]

    phase1 = out / "phase1" / "policy"
    if not (phase1 / "policy.pt").exists():
        call("policies.cli", ["--out", str(phase1), "--seed", str(a.seed), "--resume",
                              "--iterations", str(a.pretrain), "--quiet", *b_args])
    shared = {}
    if "a" in variants:
        shared["a"] = train(out / "a", phase1, a.iterations, a.seed, [], a.budget)
    if "b" in variants:
        if not (out / "b" / "sysid" / "params.json").exists():
            call("sysid.cli", ["--hand-set", "--out", str(out / "b" / "sysid")])
        shared["b"] = train(out / "b", phase1, a.iterations, a.seed,
                            ["--sysid", str(out / "b" / "sysid"), "--set", "env.actuation=pd_random"],
                            a.budget)

    results = json.loads((out / "transfer.json").read_text()) if (out / "transfer.json").exists() else {}
    for name in names:
        run = out / name
        policies = dict(shared)
        if set(variants) & set("cde"):  # the reality's logs, stage 1 and 2, and (e)
            if "b" in shared:
                _hand_over(out, phase1, run, BUDGETS[a.budget]["train"])
            call("robot_rl.app.pipeline", ["--out", str(run), "--standin-config", name,
                                       "--seed", str(a.seed), "--budget", a.budget])
            policies["e"] = run / "policy.onnx"
        if "c" in variants:
            policies["c"] = train(run / "c", phase1, a.iterations, a.seed,
                                  ["--sysid", str(run / "sysid")], a.budget)
        if "d" in variants:
            policies["d"] = train(run / "d", phase1, a.iterations, a.seed,
                                  ["--actuator", str(run / "actuator")], a.budget)
        for v in variants:
            key = f"{name}/{v}"
            if key in results:
                continue
            suite = run_suite(policies[v], None, names=[name], seeds=seeds,
                              seconds=a.suite_seconds, progress=True)
            results[key] = {"reality": name, "variant": v, "policy": str(policies[v]),
                            **suite["realities"][name]["summary"]}
            atomic_write_json(out / "transfer.json", results)
    present = sorted({r["variant"] for r in results.values()})
    md = table(results, realities(), present, seeds, a)
    atomic_write_bytes(out / "transfer.md", md.encode())
    print(md)
    print(f"wrote {out}/transfer.json, transfer.md ({time.perf_counter() - t0:.0f} s)")
    return 0


def table(results: dict, names: list[str], variants: list[str], seeds, a) -> str:
    """Per reality, every variant's falls, success and tracking errors."""
    lines = ["# Transfer: the pipeline against baselines", "",
             f"Training (budget `{a.budget}`): phase 1 ideal PD nominal {a.pretrain} iterations, "
             f"then each policy in its own world to {a.iterations}; seed {a.seed}. Evaluation: transfer suite, "
             f"hidden seeds {list(seeds)} x 6 commands x {a.suite_seconds} s with pushes.", "",
             "| reality | policy | falls | success | vx err | vy err | yaw err |",
             "|---|---|---|---|---|---|---|"]
    for name in names:
        for v in variants:
            r = results.get(f"{name}/{v}")
            if r is None:
                continue
            lines.append(f"| {name} | ({v}) {VARIANTS[v]} | {r['falls']}/{r['episodes']} | "
                         f"{r['success_rate']:.0%} | {r['vx_abs_err']:.3f} | "
                         f"{r['vy_abs_err']:.3f} | {r['yaw_abs_err']:.3f} |")
    return "\n".join(lines) + "\n"


__all__ = ["main", "summarize_reality"]

if __name__ == "__main__":
    sys.exit(main())
