"""The candidates' last training iterations one after the other vs side by side.

    python bench/bench_train_candidates.py --run runs/seeds/s4 [--iterations 60]

The pipeline's last training runs (phase 3 in the identified world, and the randomized
fork continuing phase 2) start from the same phase-2 checkpoint and are independent.  On
a finished run this copies that checkpoint, the run's sysid/actuator folders and the
hand-set ranges twice, then trains both candidates ``--iterations`` past phase 2: once
one after the other, each on every core (the pipeline before), once side by side, each on
one core (the pipeline now, ``robot_rl.app.pipeline._train_side_by_side``).  Prints both
wall times and their ratio.  Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from robot_rl.app import pipeline as P

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline_tail import report  # noqa: E402


def fresh_copy(run: Path, to: Path, fork: int) -> Path:
    """What the last training runs read, with phase 2's last checkpoint in both folders."""
    if to.exists():
        shutil.rmtree(to)
    for sub in ("sysid", "actuator", "randomized/sysid"):
        shutil.copytree(run / sub, to / sub)
    for folder in ("policy", "randomized/policy"):
        (to / folder).mkdir(parents=True)
        shutil.copy(run / "policy" / f"model_{fork}.pt", to / folder / f"model_{fork}.pt")
    return to


def runs_of(out: Path, meta: dict, iterations: int) -> dict[str, list[str]]:
    """The pipeline's two training calls (robot_rl.app.pipeline._train's arguments)."""
    common = ["--robot", meta["robot"], "--seed", str(meta["seed"]), "--resume", "--quiet",
              *P.BUDGETS[meta["budget"]]["train_args"], "--iterations", str(iterations)]
    return {"identified": [*common, "--out", str(out / "policy"), "--sysid", str(out / "sysid"),
                           "--actuator", str(out / "actuator")],
            "randomized": [*common, "--out", str(out / "randomized" / "policy"), "--sysid",
                           str(out / "randomized" / "sysid"), "--set", "env.actuation=pd_random"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a finished pipeline run folder")
    p.add_argument("--iterations", type=int, default=60, help="iterations past phase 2 [60]")
    p.add_argument("--work", default="/tmp/bench_train_candidates", help="scratch folder")
    a = p.parse_args(argv)
    run, work = Path(a.run), Path(a.work)
    meta = json.loads((run / "pipeline.json").read_text())
    fork = P.BUDGETS[meta["budget"]]["train"]
    end = fork + a.iterations
    times = {}
    seq = fresh_copy(run, work / "sequential", fork)
    t = time.perf_counter()
    for argv_ in runs_of(seq, meta, end).values():
        P._call("policies.cli", argv_)
    times["one after the other"] = time.perf_counter() - t
    par = fresh_copy(run, work / "side_by_side", fork)
    t = time.perf_counter()
    P._train_side_by_side(par, runs_of(par, meta, end))
    times["side by side"] = time.perf_counter() - t
    report(f"run {run}: both candidates {fork} -> {end} ({a.iterations} iterations each)", times)
    return 0


if __name__ == "__main__":
    sys.exit(main())
