"""The transfer suite: one policy over every shipped reality x several hidden seeds.

A *reality* is a stand-in config in ``robot_rl/standin/*.json`` (each says in its
``description`` which real effect it stands for: drivers not as described, weak and hot
motors, friction and backlash, series elasticity, payload, slippery floor).  For every
reality and seed the policy runs the suite's commands (forward, backward, lateral,
turning, combined, standing), each an episode with pushes of the base during policy
control, through the same onboard controller and :func:`deploy.evaluate.evaluate` as
``robot-rl eval``.

An episode *succeeds* when the robot does not fall and its tracking errors stay within
:data:`SUCCESS` (the goals of the close-the-loop issue: 0.15 m/s forward and lateral,
0.2 rad/s yaw rate).  Per reality the suite reports falls, success rate and mean tracking
errors; ``suite.json`` holds every episode, ``suite.md`` the table and ``suite.png`` a
picture of it.
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from deploy.evaluate import EvalConfig, _fmt, evaluate, summarize
from deploy.safety import SafetyConfig
from robot_rl.config import atomic_write_bytes, atomic_write_json
from robot_rl.standin_model import realities

#: (vx m/s, vy m/s, yaw rate rad/s) and a name, one episode each
SUITE_COMMANDS: tuple[tuple[str, tuple[float, float, float]], ...] = (
    ("forward", (0.7, 0.0, 0.0)),
    ("backward", (-0.5, 0.0, 0.0)),
    ("lateral", (0.0, 0.25, 0.0)),
    ("turn", (0.0, 0.0, 0.5)),
    ("combined", (0.4, -0.15, -0.3)),
    ("stand", (0.0, 0.0, 0.0)),
)
#: success thresholds on an episode's mean absolute tracking errors
SUCCESS = {"vx_abs_err": 0.15, "vy_abs_err": 0.15, "yaw_abs_err": 0.2}
DEFAULT_SEEDS = (0, 1, 2)
#: the terrain part (``terrains=True``): name -> (kind, relief, goal success rate); relief
#: as :func:`robot_rl.terrain.difficulty_for` reads it (m; slope in deg); the goals are
#: the terrain issue's (95 % on +-3 cm rough ground and 15 deg slopes, 80 % on 8 cm stairs)
TERRAIN_GOALS: dict[str, tuple[str, float, float]] = {
    "rough 3 cm": ("rough", 0.03, 0.95),
    "slope 15 deg": ("slope", 15.0, 0.95),
    "stairs up 8 cm": ("stairs_up", 0.08, 0.80),
    "stairs down 8 cm": ("stairs_down", 0.08, 0.80),
}
#: policy-controlled seconds of a terrain episode (it ends when the tile is crossed):
#: 3.7 m at 0.4 m/s takes 9.3 s
TERRAIN_SECONDS = 20.0


def episode_success(e: dict[str, Any]) -> bool:
    """No fall, no fault, every tracking error within :data:`SUCCESS`."""
    if e["fell"] or e["fault"] is not None:
        return False
    return all(e[k] is not None and e[k] <= v for k, v in SUCCESS.items())


def summarize_reality(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Falls, success rate and mean tracking errors over one reality's episodes."""

    def mean(key: str) -> float | None:
        vals = [e[key] for e in episodes if e[key] is not None]
        return float(np.mean(vals)) if vals else None

    return {"episodes": len(episodes), "falls": int(sum(e["fell"] for e in episodes)),
            "faults": int(sum(e["fault"] is not None for e in episodes)),
            "success_rate": float(np.mean([episode_success(e) for e in episodes])),
            "vx_abs_err": mean("vx_abs_err"), "vy_abs_err": mean("vy_abs_err"),
            "yaw_abs_err": mean("yaw_abs_err"), "torque_mean": mean("torque_mean")}


def run_terrains(policy: str | Path, seeds: tuple[int, ...] = DEFAULT_SEEDS, robot: str = "",
                 progress: bool = True, goals: dict[str, tuple[str, float, float]] | None = None,
                 seconds: float = TERRAIN_SECONDS,
                 safety: SafetyConfig | None = None) -> dict[str, Any]:
    """The terrain part of the suite: per :data:`TERRAIN_GOALS` entry and seed (terrain and
    hidden-physics seed alike, default reality, no pushes), the terrain commands
    (:data:`deploy.evaluate.TERRAIN_COMMANDS`) from the tile's centre outwards; success =
    crossed the tile without falling.  ``goals``, ``seconds``: other tiles, episode length;
    ``safety``: as :func:`run_suite`'s."""
    safety = safety or EvalConfig().safety
    from deploy.evaluate import TERRAIN_COMMANDS
    from robot_rl.terrain import TerrainConfig, difficulty_for

    goals = TERRAIN_GOALS if goals is None else goals
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(goals) * len(seeds), desc="terrain suite", unit="tile")
    out: dict[str, Any] = {}
    for name, (kind, relief, goal) in goals.items():
        d = difficulty_for(kind, relief)
        episodes = []
        for seed in seeds:
            cfg = EvalConfig(sim="pybullet", robot=robot, seconds=seconds,
                             commands=TERRAIN_COMMANDS, standin_config="default",
                             standin_seed=seed, video=False, safety=safety,
                             terrain=TerrainConfig(kind=kind, difficulty=d, seed=seed))
            episodes += [{**e, "seed": seed} for e in evaluate(policy, None, cfg)["episodes"]]
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(name)
        out[name] = {"kind": kind, "relief": relief, "difficulty": d, "goal": goal,
                     "episodes": episodes, "summary": summarize(episodes)}
    if bar is not None:
        bar.close()
    return out


def run_suite(policy: str | Path, out: str | Path | None = None,
              names: list[str] | None = None, seeds: tuple[int, ...] = DEFAULT_SEEDS,
              seconds: float = 8.0, push_interval_s: float = 3.0, push_speed: float = 0.4,
              robot: str = "", progress: bool = True, terrains: bool = False,
              safety: SafetyConfig | None = None) -> dict[str, Any]:
    """Run ``policy`` (an exported ``.onnx``) over ``names`` (default: every shipped
    reality) x ``seeds`` and, with ``terrains``, over the terrain tiles of
    :data:`TERRAIN_GOALS` (:func:`run_terrains`); write ``suite.json``, ``suite.md`` and
    ``suite.png`` to ``out``.  ``safety``: the onboard controller's start sequence and
    limits (default: evaluation's, :class:`~deploy.evaluate.EvalConfig`)."""
    safety = safety or EvalConfig().safety
    names = list(names) if names else realities()
    # a shipped reality's name, or the path of a stand-in config of one's own
    unknown = sorted(n for n in set(names) if n not in realities() and not Path(n).is_file())
    if unknown:
        raise ValueError(f"realities: unknown {unknown}; shipped: {realities()}, or the path "
                         "of a stand-in config JSON")
    commands = tuple(c for _, c in SUITE_COMMANDS)
    labels = {c: n for n, c in SUITE_COMMANDS}
    jobs = [(n, s) for n in names for s in seeds]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="transfer suite", unit="reality-seed")
    t0 = time.perf_counter()
    per: dict[str, dict[str, Any]] = {}
    for name, seed in jobs:
        cfg = EvalConfig(sim="pybullet", robot=robot, seconds=seconds, commands=commands,
                         standin_config=name, standin_seed=seed, push_interval_s=push_interval_s,
                         push_speed=push_speed, push_seed=seed, video=False, safety=safety)
        rep = evaluate(policy, None, cfg)
        entry = per.setdefault(name, {"config_file": rep["standin"]["config_file"],
                                      "description": rep["standin"]["config"]["description"],
                                      "episodes": []})
        for e in rep["episodes"]:
            c = e["command"]
            e = {**e, "seed": seed, "name": labels[(c["vx"], c["vy"], c["yaw_rate"])],
                 "success": episode_success(e)}
            entry["episodes"].append(e)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(name)
    if bar is not None:
        bar.close()
    for entry in per.values():
        entry["summary"] = summarize_reality(entry["episodes"])
    every = [e for entry in per.values() for e in entry["episodes"]]
    suite = {"policy": str(policy), "seeds": list(seeds), "seconds": seconds,
             "push_interval_s": push_interval_s, "push_speed": push_speed,
             "safety": asdict(safety), "commands": {n: list(c) for n, c in SUITE_COMMANDS},
             "success": SUCCESS, "realities": per, "overall": summarize_reality(every)}
    if terrains:
        suite["terrains"] = run_terrains(policy, seeds, robot, progress, safety=safety)
    suite["wall_s"] = time.perf_counter() - t0
    if out is not None:
        out = Path(out)
        atomic_write_json(out / "suite.json", suite)
        atomic_write_bytes(out / "suite.md", suite_markdown(suite).encode())
        atomic_write_bytes(out / "suite.png", plot_suite(suite))
    return suite


def suite_markdown(suite: dict[str, Any], title: str = "Transfer suite") -> str:
    """The per-reality table."""
    n_cmd = len(suite["commands"])
    lines = [f"# {title}", "",
             f"Policy `{suite['policy']}`; per reality {len(suite['seeds'])} hidden-physics "
             f"seeds {suite['seeds']} x {n_cmd} commands ({', '.join(suite['commands'])}), "
             f"{suite['seconds']} s of policy control each, pushes of {suite['push_speed']} m/s "
             f"every {suite['push_interval_s']} s. Success: no fall and mean errors within "
             f"{SUCCESS['vx_abs_err']} m/s forward and lateral, {SUCCESS['yaw_abs_err']} rad/s "
             "yaw.", "",
             "| reality | falls | success | vx err (m/s) | vy err (m/s) | yaw err (rad/s) |",
             "|---|---|---|---|---|---|"]
    rows = [(n, e["summary"]) for n, e in suite["realities"].items()]
    rows.append(("**all**", suite["overall"]))
    for name, s in rows:
        lines.append(f"| {name} | {s['falls']}/{s['episodes']} | {s['success_rate']:.0%} | "
                     f"{_fmt(s['vx_abs_err'])} | {_fmt(s['vy_abs_err'])} | "
                     f"{_fmt(s['yaw_abs_err'])} |")
    if suite.get("terrains"):
        lines += ["", "## Terrain (default reality, no pushes)", "",
                  f"Per tile {len(suite['seeds'])} seeds (terrain and hidden physics) x "
                  "forward and backward at 0.4 and 0.8 m/s from the tile's centre; success: "
                  "crossed the tile without falling.", "",
                  "| terrain | difficulty | falls | success | goal | vx err (m/s) | mean distance (m) |",
                  "|---|---|---|---|---|---|---|"]
        for name, t in suite["terrains"].items():
            s = t["summary"]
            met = "met" if s["success_rate"] >= t["goal"] else "not met"
            lines.append(f"| {name} | {t['difficulty']:.3f} | {s['falls']}/{s['episodes']} | "
                         f"{s['success_rate']:.0%} | {t['goal']:.0%} ({met}) | "
                         f"{_fmt(s['vx_abs_err'])} | {s['distance_mean']:.2f} |")
    lines += ["", "## Realities", ""]
    for name, e in suite["realities"].items():
        lines.append(f"- **{name}** (`{Path(e['config_file']).name}`): {e['description']}")
    lines += ["", "## Per command (all realities and seeds)", "",
              "| command | falls | success | vx err | vy err | yaw err |", "|---|---|---|---|---|---|"]
    every = [e for r in suite["realities"].values() for e in r["episodes"]]
    for name in suite["commands"]:
        s = summarize_reality([e for e in every if e["name"] == name])
        lines.append(f"| {name} | {s['falls']}/{s['episodes']} | {s['success_rate']:.0%} | "
                     f"{_fmt(s['vx_abs_err'])} | {_fmt(s['vy_abs_err'])} | "
                     f"{_fmt(s['yaw_abs_err'])} |")
    return "\n".join(lines) + "\n"


def plot_suite(suite: dict[str, Any]) -> bytes:
    """PNG: success rate and forward tracking error per reality."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(suite["realities"])
    summ = [suite["realities"][n]["summary"] for n in names]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].barh(names, [s["success_rate"] for s in summ], color="tab:green")
    axes[0].set_xlim(0, 1)
    axes[0].set_xlabel("success rate")
    vx = [s["vx_abs_err"] or 0.0 for s in summ]
    axes[1].barh(names, vx, color="tab:blue")
    axes[1].axvline(SUCCESS["vx_abs_err"], color="tab:red", lw=1, label="goal")
    axes[1].set_xlabel("forward tracking error (m/s)")
    axes[1].legend(fontsize=8)
    for ax in axes[1:]:
        ax.set_yticklabels([])
    fig.suptitle(f"{Path(suite['policy']).name}: transfer suite")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


__all__ = ["run_suite", "run_terrains", "suite_markdown", "SUITE_COMMANDS", "SUCCESS",
           "TERRAIN_GOALS", "episode_success"]
