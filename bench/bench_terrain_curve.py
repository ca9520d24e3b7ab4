"""Time to terrain success: a curriculum run's checkpoints through the terrain suite.

    python bench/bench_terrain_curve.py --run runs/terr2/s0/policy [--every 250] \
        [--seeds 0 1 2] [--terrains rough,slope,stairs_up,stairs_down] [--out curve.json]

Each checkpoint (``model_<it>.pt``, every ``--every`` iterations, and the last) is
exported to ONNX and run through the terrain part of the transfer suite
(:func:`deploy.suite.run_terrains`: PyBullet stand-in, default reality, the terrain issue's
tiles: +-3 cm rough ground, 15 deg slope, 8 cm stairs up and down; one tile and hidden seed
per ``--seeds``, four commands each).  The x axis is the run's training wall-clock from
its first logged iteration, read from its TensorBoard event times with restarts closed up
(evaluation time is not counted); a run resumed from a flat-ground policy counts only the
curriculum's time, which the printout says.  Prints one row per checkpoint, then per
terrain the first checkpoint at its goal and the ratio of that time to the issue's 30 min;
writes the rows as JSON and the curve as a PNG beside it (temporary name, then rename).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

GOAL_MIN = 30.0  # the terrain issue's training budget (min)
NAMES = {"rough": "rough 3 cm", "slope": "slope 15 deg", "stairs_up": "stairs up 8 cm",
         "stairs_down": "stairs down 8 cm"}


def closed_up_minutes(steps: list[int], times: list[float]) -> dict[int, float]:
    """Minutes of training at each logged iteration: consecutive wall-time differences
    summed, a difference that is negative or over 10x the median (a restart, a pause) taken
    as the median; the first iteration counts one median interval."""
    order = np.argsort(steps)
    s = np.asarray(steps)[order]
    t = np.asarray(times, dtype=np.float64)[order]
    if len(s) < 2:
        raise ValueError("the run has fewer than two logged iterations: no wall-clock to read")
    dt = np.diff(t)
    med = float(np.median(dt[dt > 0])) if np.any(dt > 0) else 0.0
    dt = np.where((dt <= 0) | (dt > 10 * med), med, dt)
    elapsed = np.concatenate(([med], med + np.cumsum(dt)))
    return {int(k): float(v) / 60 for k, v in zip(s, elapsed)}


def run_minutes(run: Path) -> dict[int, float]:
    """:func:`closed_up_minutes` of the run's ``perf/env_steps`` events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    if "perf/env_steps" not in acc.Tags().get("scalars", []):
        raise ValueError(f"{run}: no TensorBoard scalars 'perf/env_steps' (not a training run?)")
    events = {e.step: e.wall_time for e in acc.Scalars("perf/env_steps")}  # last write wins
    return closed_up_minutes(list(events), list(events.values()))


def time_to_goal(rows: list[dict[str, Any]], names: list[str]) -> dict[str, dict[str, Any] | None]:
    """Per terrain name, the first row whose success rate reaches that terrain's goal (or
    None)."""
    out: dict[str, dict[str, Any] | None] = {}
    timed = [r for r in rows if r["minutes"] is not None]
    for n in names:
        hit = [r for r in timed if r["terrains"][n]["success"] >= r["terrains"][n]["goal"]]
        out[n] = min(hit, key=lambda r: r["iteration"]) if hit else None
    return out


def checkpoints(run: Path, every: int) -> list[Path]:
    """The first ``model_<it>.pt``, then the first at or after every ``every`` iterations
    from it (checkpoints are saved every few iterations, not at every multiple), and the
    last; other files named model_* are not checkpoints."""
    from policies.train import checkpoint_iteration

    found = sorted((it, p) for p in run.glob("model_*.pt")
                   if (it := checkpoint_iteration(p)) is not None)
    if not found:
        raise ValueError(f"{run}: no model_<iteration>.pt checkpoints")
    its, ck = [it for it, _ in found], [p for _, p in found]
    pick: list[Path] = []
    for target in range(its[0], its[-1] + 1, every):
        p = next(p for p, it in zip(ck, its) if it >= target)
        if p not in pick:
            pick.append(p)
    return pick if pick[-1] == ck[-1] else pick + [ck[-1]]


def grade(run: Path, ckpts: list[Path], seeds: tuple[int, ...], kinds: list[str],
          minutes: dict[int, float]) -> list[dict[str, Any]]:
    from bench_time_to_walk import checkpoint_policy
    from tqdm import tqdm

    from deploy.export import export_policy
    from deploy.suite import TERRAIN_GOALS, run_terrains

    goals = {NAMES[k]: TERRAIN_GOALS[NAMES[k]] for k in kinds}
    rows = []
    with tempfile.TemporaryDirectory(prefix="terrain_curve_") as tmp:
        for ck in tqdm(ckpts, desc="checkpoints", unit="ckpt"):
            it = int(ck.stem.split("_")[1])
            try:
                pol = checkpoint_policy(run, ck, Path(tmp) / "policy.pt")
                onnx = export_policy(pol, Path(tmp) / "policy.onnx").path
            except (ValueError, RuntimeError, OSError) as e:
                raise ValueError(f"{ck}: cannot be read and exported ({e})") from e
            tiles = run_terrains(onnx, seeds=seeds, progress=False, goals=goals)
            # the run's start checkpoint (copied in to resume from) comes before its first
            # log; a checkpoint without a logged time (events not flushed) has none
            start = 0.0 if it < min(minutes) else None
            row = {"iteration": it, "minutes": minutes.get(it, start), "terrains": {
                n: {"success": t["summary"]["success_rate"], "goal": t["goal"],
                    "falls": t["summary"]["falls"], "episodes": t["summary"]["episodes"],
                    "vx_abs_err": t["summary"]["vx_abs_err"]} for n, t in tiles.items()}}
            rows.append(row)
            when = "     ? min" if row["minutes"] is None else f"{row['minutes']:6.1f} min"
            tqdm.write(f"iteration {it:5d}  {when}  " + "  ".join(
                f"{n} {100 * v['success']:3.0f}% ({v['falls']} falls)"
                for n, v in row["terrains"].items()))
    return rows


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    rows = [r for r in rows if r["minutes"] is not None]
    x = [r["minutes"] for r in rows]
    for n in (rows[0]["terrains"] if rows else ()):
        line, = ax.plot(x, [100 * r["terrains"][n]["success"] for r in rows], "o-", label=n)
        ax.axhline(100 * rows[0]["terrains"][n]["goal"], color=line.get_color(), ls=":", lw=1)
    ax.axvline(GOAL_MIN, color="k", ls="--", lw=1, label=f"{GOAL_MIN:.0f} min budget")
    ax.set_xlabel("training wall-clock of the run (min)")
    ax.set_ylabel("success on the stand-in (%)")
    ax.set_ylim(-5, 105)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="training run folder (model_<it>.pt, policy.pt, events)")
    p.add_argument("--every", type=int, default=250, help="grade every this many iterations [250]")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="tile and hidden seeds [0 1 2]")
    p.add_argument("--terrains", default="rough,slope,stairs_up,stairs_down",
                   help=f"comma-separated, of {','.join(NAMES)} [all]")
    p.add_argument("--out", help="JSON to write [<run>/terrain_curve.json]; the PNG beside it")
    a = p.parse_args(argv)
    run = Path(a.run)
    kinds = [k.strip() for k in a.terrains.split(",") if k.strip()]
    bad = [k for k in kinds if k not in NAMES]
    if bad or not kinds:
        print(f"--terrains: unknown {bad}; expected some of {', '.join(NAMES)}", file=sys.stderr)
        return 2
    if a.every < 1:
        print(f"--every: need >= 1 iteration, got {a.every}", file=sys.stderr)
        return 2
    try:
        if not (run / "policy.pt").is_file():
            raise ValueError(f"{run}: no policy.pt (expected a training run folder)")
        from policies.artifact import read_policy

        try:
            read_policy(run)
        except Exception as e:  # the artifact reader's own errors name the file and field
            raise ValueError(f"{run}/policy.pt: {e}") from e
        ckpts = checkpoints(run, a.every)
        minutes = run_minutes(run)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    print(f"{run}: {len(ckpts)} checkpoints, iterations {ckpts[0].stem[6:]}..{ckpts[-1].stem[6:]}; "
          f"minutes count this run's training from its first logged iteration (a run resumed "
          f"from a flat-ground policy: the curriculum's time only)")
    try:
        rows = grade(run, ckpts, tuple(a.seeds), kinds, minutes)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    hits = time_to_goal(rows, list(rows[0]["terrains"]))
    for n, r in hits.items():
        if r is None:
            print(f"{n}: goal {100 * rows[0]['terrains'][n]['goal']:.0f} % not reached "
                  f"(best {100 * max(x['terrains'][n]['success'] for x in rows):.0f} %)")
        else:
            print(f"{n}: goal reached at iteration {r['iteration']}, {r['minutes']:.1f} min; "
                  f"ratio to the {GOAL_MIN:.0f}-min goal {r['minutes'] / GOAL_MIN:.2f}")
    out = Path(a.out) if a.out else run / "terrain_curve.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"run": str(run), "seeds": a.seeds, "rows": rows}, indent=1))
    os.replace(tmp, out)
    plot(rows, out.with_suffix(".png"), f"{run}: terrain suite, seeds {a.seeds}")
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
