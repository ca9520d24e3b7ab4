"""The pipeline over training seeds: its deployed policy against its own baselines.

``bench_transfer.py`` compares policies trained from one seed; this bench takes pipeline
runs of several seeds (``robot-rl pipeline --seed S --out R``, same robot and reality) and
runs every policy each run holds through the transfer suite on one reality:

(a) ``baseline_pd/policy.onnx``: phase 1, ideal PD on the nominal model (the pipeline's
    ``pretrain`` iterations);
(b) ``select/randomized.onnx``: ideal PD under broad hand-set randomization, to the end;
(i) ``select/identified.onnx``: phase 3 in the identified world (parameters + actuator net);
(e) ``policy.onnx``: what the pipeline deployed (``robot-rl select``: (b) or (i)).

Per policy it prints the interquartile mean over seeds of success rate, falls and forward
error with a 95 % percentile-bootstrap interval (``bench/stats.py``), and, because the
policies of one seed share phases 1 and 2, the IQM of the paired difference (e) - (b) and
(e) - (a) per seed. A policy file identical to one already run (the deployed one is
always one of the candidates) is not run twice.

    python bench/bench_seeds.py --runs runs/pipe_judge,runs/pipe_judge_s1,runs/seeds/s2 \\
        --reality default --out runs/seeds/default
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stats import bootstrap_ci, fmt_ci  # noqa: E402

from deploy.suite import run_suite  # noqa: E402
from robot_rl.config import atomic_write_bytes, atomic_write_json  # noqa: E402
from robot_rl.standin_model import realities  # noqa: E402

POLICIES = {"a": ("baseline_pd/policy.onnx", "ideal PD, nominal (phase 1)"),
            "b": ("select/randomized.onnx", "ideal PD, hand-set randomization"),
            "i": ("select/identified.onnx", "identified params + actuator net"),
            "e": ("policy.onnx", "deployed by the pipeline")}
METRICS = (("success_rate", "success", 2), ("falls", "falls", 1), ("vx_abs_err", "vx err", 3))


def run_seed(run: Path, reality: str) -> int:
    """The training seed recorded in a pipeline run's ``pipeline.json``; the run must have
    been made on ``reality``'s logs."""
    path = run / "pipeline.json"
    try:
        meta = json.loads(path.read_text())
        seed, trained_on = int(meta["seed"]), meta["standin_config"] or "default"
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: fields 'seed' and 'standin_config' expected "
                         f"(a finished pipeline run): {e}") from None
    if trained_on != reality:
        raise ValueError(f"{path}: field 'standin_config' is {trained_on!r}, expected {reality!r} "
                         "(the reality the bench evaluates on)")
    return seed


def measure(runs: list[Path], reality: str, seeds: tuple[int, ...], seconds: float,
            out: Path) -> dict:
    """Suite summaries per run and policy, cached in ``out/seeds.json``."""
    cache = out / "seeds.json"
    results = json.loads(cache.read_text()) if cache.exists() else {}
    by_md5: dict[str, dict] = {}
    for run in runs:
        for key, (rel, _) in POLICIES.items():
            onnx = run / rel
            if not onnx.exists():
                raise ValueError(f"{onnx}: file expected (a finished pipeline run)")
            md5 = hashlib.md5(onnx.read_bytes()).hexdigest()
            name = f"{run}/{key}"
            prior = results.get(name)
            if prior and prior["md5"] == md5 and prior["reality"] == reality:
                by_md5.setdefault(md5, prior)
                continue
            if md5 in by_md5:
                summary = by_md5[md5]["summary"]
            else:
                suite = run_suite(onnx, None, names=[reality], seeds=seeds, seconds=seconds)
                summary = suite["realities"][reality]["summary"]
            results[name] = {"run": str(run), "seed": run_seed(run, reality), "policy": key, "md5": md5,
                             "reality": reality, "summary": summary}
            by_md5[md5] = results[name]
            atomic_write_json(cache, results)
    return results


def table(results: dict, runs: list[Path], reality: str, suite_seeds, seconds: float) -> str:
    """Per seed rows, then IQMs with bootstrap intervals and paired differences."""
    rows = {str(r): {k: results[f"{r}/{k}"] for k in POLICIES} for r in runs}
    lines = [f"# The pipeline over {len(runs)} training seeds, reality `{reality}`", "",
             f"Transfer suite: hidden seeds {list(suite_seeds)} x 6 commands x {seconds:g} s with "
             "pushes per policy. IQM over training seeds, 95 % percentile-bootstrap interval.", "",
             "| seed | run | chosen | " + " | ".join(f"({k}) success / falls / vx" for k in POLICIES) + " |",
             "|---|---|---|" + "---|" * len(POLICIES)]
    for r in runs:
        row = rows[str(r)]
        chosen = next(k for k in ("i", "b") if row[k]["md5"] == row["e"]["md5"])
        cells = [f"{row[k]['summary']['success_rate']:.0%} / {row[k]['summary']['falls']} / "
                 f"{row[k]['summary']['vx_abs_err']:.3f}" for k in POLICIES]
        lines.append(f"| {row['e']['seed']} | `{r}` | ({chosen}) | " + " | ".join(cells) + " |")
    lines += ["", "| policy | " + " | ".join(m[1] for m in METRICS) + " |",
              "|---|" + "---|" * len(METRICS)]
    for k, (_, label) in POLICIES.items():
        cells = [fmt_ci(bootstrap_ci([rows[str(r)][k]["summary"][m] for r in runs]), d)
                 for m, _, d in METRICS]
        lines.append(f"| ({k}) {label} | " + " | ".join(cells) + " |")
    for base in ("b", "a"):
        cells = [fmt_ci(bootstrap_ci([rows[str(r)]["e"]["summary"][m] - rows[str(r)][base]["summary"][m]
                                      for r in runs]), d) for m, _, d in METRICS]
        lines.append(f"| (e) - ({base}), paired | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", required=True, help="comma-separated pipeline run folders, one per seed")
    p.add_argument("--reality", default="default", help=f"one of {realities()} [default]")
    p.add_argument("--suite-seeds", default="0,1,2", help="hidden seeds of the suite [0,1,2]")
    p.add_argument("--suite-seconds", type=float, default=8.0, help="seconds per episode [8]")
    p.add_argument("--out", default="runs/seeds/default", help="where seeds.{json,md} go")
    a = p.parse_args(argv)
    runs = [Path(x) for x in a.runs.split(",") if x]
    if a.reality not in realities():
        print(f"--reality: expected one of {realities()}, got {a.reality!r}", file=sys.stderr)
        return 2
    try:
        suite_seeds = tuple(int(x) for x in a.suite_seeds.split(","))
        seeds = [run_seed(r, a.reality) for r in runs]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"--runs: one run per training seed expected, got seeds {seeds}")
        t0 = time.perf_counter()
        results = measure(runs, a.reality, suite_seeds, a.suite_seconds, Path(a.out))
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    md = table(results, runs, a.reality, suite_seeds, a.suite_seconds)
    atomic_write_bytes(Path(a.out) / "seeds.md", md.encode())
    print(md)
    print(f"wrote {a.out}/seeds.json, seeds.md ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
