"""Which policy goes on the robot?  ``robot-rl select``: the candidate that tracks best, on
the robot itself (``--judge robot``, the pipeline's choice) or in the identified simulator.

The identified simulator (stage 1's parameters and stage 2's actuator network in MuJoCo)
predicts the robot far better than the nominal model (``robot-rl fidelity``; bench/RESULTS.md,
issue 20), but it is not always a world TRPO learns well in: on a robot whose drivers are
weak and late, training in it settles on standing where a policy trained under broad
randomization walks, *in that same simulator* and on the robot (RESULTS, "Why the pipeline
does not walk on driver_mismatch").  So the pipeline trains candidates from the same phase 1
(one fine-tuned in the identified world, one under broad hand-set randomization) and picks
one.

Each candidate (an exported ``.onnx``) runs through the onboard controller for ``episodes``
episodes, each with a velocity command drawn from the training command ranges and pushes
of the base; commands and pushes are seeded, so every candidate meets the same episodes.
An episode's score is its worst tracking error over the success thresholds of the
transfer suite (forward, lateral, yaw; at most 1 = the episode meets every goal, the
suite's success), or :data:`FALL_SCORE` when it falls or faults; a candidate's score is
the mean over its episodes, lower is better, ties go to the candidate listed first.

* In the identified simulator (:class:`deploy.fidelity.SimRobot`, always run): with
  ``draws`` (the default) every episode's parameters are drawn from stage 1's
  randomization ranges, so a candidate meets robots the identification cannot rule out.
  This judge is lenient to the candidate trained in its own world: on seven of eight
  realities it preferred the fine-tuned candidate, which passed fewer suite episodes on
  the robot than the randomized one on six of them (RESULTS, "Selection on the robot").
* On the robot (``judge="robot"``): the same episodes on the robot the logs came from (here
  the PyBullet stand-in; on a real robot, a test session whose tracking errors need
  ground truth, i.e. motion capture, as :meth:`RobotInterface.ground_truth` says).  Its
  scores decide; the simulator's are recorded beside them.  This is the deployment test an
  engineer runs before handing a policy over; it uses commands and pushes of its own,
  drawn from the training ranges, not the transfer suite's.

Writes ``select.json`` (both judges' scores, per-episode errors, the commands, the choice)
and copies the chosen candidate to ``--out-policy``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.config import atomic_write_bytes, atomic_write_json, seed_argument

#: who decides: the identified simulator alone, or the robot (the simulator's scores recorded)
JUDGES = ("sim", "robot")
#: an episode that falls or faults scores this (tracking errors at the goal score 1)
FALL_SCORE = 10.0


def episode_score(e: dict[str, Any], thresholds: dict[str, float]) -> float:
    """The worst tracking error over its threshold (<= 1: every goal met), or
    :data:`FALL_SCORE` for a fall or fault.

    The worst axis, not the mean: an episode that tracks forward speed well and lateral
    speed badly misses the goal, and a mean would let the one hide the other (measured:
    the policy fine-tuned in the identified world has the lower mean error and the fewer
    successes where the two differ; bench/RESULTS.md, issue 20)."""
    if e["fell"] or e["fault"] is not None or any(e[k] is None for k in thresholds):
        return FALL_SCORE
    return float(max(e[k] / v for k, v in thresholds.items()))


def draw_commands(ranges: Any, n: int, seed: int) -> tuple[tuple[float, float, float], ...]:
    """``n`` commands uniform in the training ranges (``vx``, ``vy``, ``yaw`` pairs)."""
    rng = np.random.default_rng(seed)
    cols = [rng.uniform(*getattr(ranges, k), n) for k in ("vx", "vy", "yaw")]
    return tuple((float(a), float(b), float(c)) for a, b, c in zip(*cols))


def _score(rep: dict[str, Any], commands) -> list[dict[str, Any]]:
    from deploy.suite import SUCCESS

    return [{"command": list(c), "score": episode_score(e, SUCCESS), "fell": bool(e["fell"]),
             **{k: e[k] for k in SUCCESS}} for c, e in zip(commands, rep["episodes"])]


def _judge_one(job: tuple) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """One candidate's episodes in the identified simulator and, with the robot judge, on
    the robot (a top-level function: it runs in a worker process)."""
    from deploy.evaluate import evaluate
    from deploy.fidelity import SimRobot, Variant
    from robot_rl.robot import load_robot

    run, robot_name, policy, cfg, draw_seed, judge, standin_config, progress = job
    sim = SimRobot.of_run(load_robot(robot_name), run, Variant(True, "net"),
                   draws=None if draw_seed is None else np.random.default_rng(draw_seed))
    sim_eps = _score(evaluate(policy, None, cfg, interface=sim, progress=progress), cfg.commands)
    if judge != "robot":
        return sim_eps, None
    rcfg = replace(cfg, sim="pybullet", standin_config=standin_config)
    return sim_eps, _score(evaluate(policy, None, rcfg, progress=progress), cfg.commands)


def select(run: str | Path, candidates: dict[str, Path], episodes: int = 24,
           seconds: float = 8.0, seed: int = 0, progress: bool = True,
           draws: bool = True, judge: str = "sim", standin_config: str = "",
           workers: int = 1) -> dict[str, Any]:
    """Score every candidate in ``run``'s identified simulator and, with ``judge="robot"``,
    on the robot (the stand-in of ``standin_config``); the judge's scores decide.  Returns
    the report.  ``workers`` > 1: candidates in that many processes at once (the same
    seeded episodes; the progress bars are then off)."""
    from deploy.evaluate import EvalConfig
    from deploy.suite import SUCCESS
    from policies.config import CommandConfig

    if judge not in JUDGES:
        raise ValueError(f"judge must be one of {JUDGES}, got {judge!r}")
    run = Path(run)
    for need in (run / "sysid" / "params.json", run / "actuator" / "actuator.pt",
                 *candidates.values()):
        if not Path(need).exists():
            raise FileNotFoundError(f"{need}: missing (run the pipeline's earlier stages first)")
    robot_name = _robot_of(run)
    commands = draw_commands(CommandConfig(), episodes, seed)
    cfg = EvalConfig(sim="mujoco", robot=robot_name, seconds=seconds, commands=commands,
                     push_interval_s=3.0, push_speed=0.4, push_seed=seed, video=False)
    jobs = [(run, robot_name, str(policy), cfg, seed if draws else None, judge, standin_config,
             progress and workers == 1) for policy in candidates.values()]
    if workers > 1 and len(jobs) > 1:  # one process per candidate: the episodes are seeded
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(jobs)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_judge_one, jobs))
    else:
        results = [_judge_one(j) for j in jobs]
    sim_episodes = {name: r[0] for name, r in zip(candidates, results)}
    robot_episodes = {name: r[1] for name, r in zip(candidates, results) if r[1] is not None}
    sim_scores = {k: float(np.mean([e["score"] for e in v])) for k, v in sim_episodes.items()}
    robot_scores = {k: float(np.mean([e["score"] for e in v])) for k, v in robot_episodes.items()}
    scores, per_episode = (robot_scores, robot_episodes) if judge == "robot" else (sim_scores, sim_episodes)
    chosen = min(scores, key=lambda k: (scores[k], list(candidates).index(k)))
    return {"judge": judge, "simulator": "identified+net", "parameters": "drawn" if draws else "fitted",
            "standin_config": standin_config if judge == "robot" else None,
            "run": str(run), "seed": seed, "seconds": seconds,
            "commands": [list(c) for c in commands], "thresholds": SUCCESS,
            "fall_score": FALL_SCORE, "candidates": {k: str(v) for k, v in candidates.items()},
            "scores": scores, "episodes": per_episode, "sim_scores": sim_scores,
            "sim_episodes": sim_episodes, "chosen": chosen}


def _robot_of(run: Path) -> str:
    meta = run / "pipeline.json"
    return json.loads(meta.read_text()).get("robot", "a1") if meta.exists() else "a1"


def markdown(r: dict[str, Any]) -> str:
    params = ("parameters drawn from the identified ranges" if r.get("parameters") == "drawn"
              else "the fitted parameters")
    robot = r.get("judge") == "robot"
    where = (f"on the robot (stand-in `{r.get('standin_config') or 'default'}`), with the "
             f"{r['simulator']} simulator's verdict beside it" if robot
             else f"in the {r['simulator']} simulator")
    lines = [f"Policy selection {where}: {len(r['commands'])} "
             f"episodes of {r['seconds']:g} s, training-range commands (seed {r['seed']}), "
             f"pushes; simulator with {params}; score = worst tracking error over the success "
             f"thresholds (fall: {r['fall_score']:g}), lower is better; goals met = episodes "
             "within every threshold.", ""]
    judges = [("robot", r["scores"], r["episodes"]), ("simulator", r["sim_scores"], r["sim_episodes"])] \
        if robot else [("simulator", r["scores"], r["episodes"])]
    head = " | ".join(f"{j} score | {j} goals met | {j} falls" for j, _, _ in judges)
    lines += [f"| candidate | {head} | chosen |", "|---|" + "---|---|---|" * len(judges) + "---|"]
    for name in r["scores"]:
        cells = []
        for _, scores, episodes in judges:
            eps = episodes[name]
            falls, met = sum(e["fell"] for e in eps), sum(e["score"] <= 1.0 for e in eps)
            cells.append(f"{scores[name]:.2f} | {met}/{len(eps)} | {falls}/{len(eps)}")
        lines.append(f"| {name} | {' | '.join(cells)} | {'yes' if name == r['chosen'] else ''} |")
    return "\n".join(lines) + "\n"


def _candidate(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--candidate {text!r}: expected NAME=PATH.onnx")
    return name, Path(path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robot-rl select",
        description="Choose the policy to deploy: run every candidate (exported ONNX) in the "
                    "run's identified simulator (stage 1 parameters + stage 2 actuator network) "
                    "and, with --judge robot, on the robot, on commands drawn from the training "
                    "ranges, with pushes, and pick the one (by the judge's episodes) "
                    "with the lowest mean over episodes of the worst tracking error over the "
                    f"success thresholds (a fall scores {FALL_SCORE:g}). Writes select.json and "
                    "copies the choice.")
    p.add_argument("--run", required=True, help="pipeline run folder (sysid/, actuator/)")
    p.add_argument("--candidate", action="append", type=_candidate, required=True,
                   help="NAME=PATH.onnx, two or more; ties go to the first")
    p.add_argument("--out", required=True, help="select.json to write")
    p.add_argument("--out-policy", default=None, help="copy the chosen .onnx here")
    p.add_argument("--episodes", type=int, default=24, help="episodes per candidate [24]")
    p.add_argument("--seconds", type=float, default=8.0, help="policy control per episode (s) [8]")
    p.add_argument("--seed", type=seed_argument, default=0, help="commands and pushes [0]")
    p.add_argument("--fitted", action="store_true",
                   help="every episode at stage 1's fitted parameters (default: each episode "
                        "draws them from the identified randomization ranges)")
    p.add_argument("--judge", choices=JUDGES, default="sim",
                   help="who decides: 'sim', the identified simulator alone; 'robot', the same "
                        "episodes on the robot (here the PyBullet stand-in of --standin-config; "
                        "tracking errors need the robot's ground truth: a stand-in, or motion "
                        "capture on a real one), the simulator's scores recorded beside [sim]")
    p.add_argument("--standin-config", default="",
                   help="with --judge robot: the stand-in's config file or reality name "
                        "[the default stand-in]")
    p.add_argument("--workers", type=int, default=0,
                   help="candidates judged at once, one process each (0: one per CPU core, "
                        "at most one per candidate) [0]")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    names = [n for n, _ in a.candidate]
    if len(set(names)) != len(names):
        print(f"robot-rl select: error: --candidate: names must differ, got {names}", file=sys.stderr)
        return 2
    if a.workers < 0:
        print(f"robot-rl select: error: --workers must be >= 0, got {a.workers}", file=sys.stderr)
        return 2
    if a.episodes < 1 or a.seconds <= 0:
        print("robot-rl select: error: --episodes must be >= 1 and --seconds > 0", file=sys.stderr)
        return 2
    if a.standin_config and a.judge != "robot":
        print("robot-rl select: error: --standin-config needs --judge robot", file=sys.stderr)
        return 2
    if a.judge == "robot":
        from robot_rl.config import ConfigError
        from robot_rl.standin_model import load_standin_config

        try:
            load_standin_config(a.standin_config or None)
        except (ConfigError, FileNotFoundError, ValueError) as e:
            print(f"robot-rl select: error: --standin-config: {e}", file=sys.stderr)
            return 2
    r = select(a.run, dict(a.candidate), a.episodes, a.seconds, a.seed, progress=not a.quiet,
               draws=not a.fitted, judge=a.judge, standin_config=a.standin_config,
               workers=a.workers or os.cpu_count() or 1)
    out = Path(a.out)
    atomic_write_json(out, r)
    atomic_write_bytes(out.with_suffix(".md"), markdown(r).encode())
    if a.out_policy:
        tmp = Path(a.out_policy).with_name(f".{Path(a.out_policy).name}.tmp")
        shutil.copyfile(r["candidates"][r["chosen"]], tmp)
        tmp.replace(a.out_policy)
    print(markdown(r))
    print(f"chosen: {r['chosen']}; wrote {out}" + (f", {a.out_policy}" if a.out_policy else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
