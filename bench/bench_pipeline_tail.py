"""The pipeline's last stages one after the other vs side by side, on a finished run.

    python bench/bench_pipeline_tail.py --run runs/pipe_judge_s1 [--work /tmp/tail]

Copies the run twice without the output folders of the stages the pipeline runs side by
side (PyBullet evaluation, baseline (a), fidelity with its held-out walking log), then
reruns them: once one after the other in this process (the
pipeline before), once side by side in worker processes (the pipeline now).
Prints both wall times and their ratio.  Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from robot_rl.app import pipeline as P


def fresh_copy(run: Path, to: Path, group: list[tuple[int, P.Stage]]) -> Path:
    """``run`` copied to ``to`` without the folders the stages of ``group`` write."""
    if to.exists():
        shutil.rmtree(to)
    shutil.copytree(run, to, ignore=shutil.ignore_patterns("pipeline_logs"))
    for _, st in group:
        for path in st.outputs(to):
            shutil.rmtree(path.parent, ignore_errors=True)
    return to


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a finished pipeline run folder")
    p.add_argument("--work", default="/tmp/bench_pipeline_tail", help="scratch folder")
    a = p.parse_args(argv)
    run, work = Path(a.run), Path(a.work)
    meta = json.loads((run / "pipeline.json").read_text())
    args = P.build_parser().parse_args(["--robot", meta["robot"], "--out", "-", "--budget",
                                        meta["budget"], "--seed", str(meta["seed"])]
                                       + (["--standin-config", meta["standin_config"]]
                                          if meta.get("standin_config") else []))
    group = [(i, st) for i, st in enumerate(P.stages(args), 1) if st.side_by_side]
    times = {}
    seq = fresh_copy(run, work / "sequential", group)
    t = time.perf_counter()
    for _, st in group:
        st.run(seq, args)
    times["one after the other"] = time.perf_counter() - t
    par = fresh_copy(run, work / "side_by_side", group)
    t = time.perf_counter()
    P.run_side_by_side(group, par, args, len(P.stages(args)))
    times["side by side"] = time.perf_counter() - t
    report(f"run {run}: stages {', '.join(st.name for _, st in group)}", times)
    return 0


def report(title: str, times: dict[str, float]) -> None:
    """Print both wall times and the ratio side by side / one after the other."""
    print(f"\n{title}")
    for k, v in times.items():
        print(f"{k:22s} {v:7.1f} s")
    print(f"ratio side by side / one after the other: "
          f"{times['side by side'] / times['one after the other']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
