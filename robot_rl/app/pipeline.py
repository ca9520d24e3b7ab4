"""``robot-rl pipeline``: collect -> sysid -> actuator -> train -> export -> eval, one robot.

Each stage reads the files the previous one wrote and writes its own under ``--out``::

    logs/suspended.npz, logs/ground.npz   collect (hardware stand-in)
    sysid/params.json                     stage 1
    actuator/actuator.pt                  stage 2
    policy/policy.pt                      stage 3, in phases (one folder, one curve):
                                          1. ideal PD on the nominal model
                                          2. broad hand-set randomization (randomized/sysid, pd_random)
                                          3. the identified parameters and the actuator network:
                                          candidate "identified"
    randomized/policy/policy.pt           phase 2 continued as long as phase 3: candidate "randomized"
    select/select.json, policy.onnx       stage 4: both exported; the one that tracks best on the
                                          robot (stand-in) is policy.onnx, the identified
                                          simulator's verdict beside it (deploy/select.py)
    eval/mujoco/report.json               evaluation in MuJoCo's identified world (sysid/ parameters,
                                          actuator/ network driving the joints: phase 3's)
    eval/pybullet/report.json             evaluation in PyBullet: the stand-in the logs came from
    baseline_pd/policy.pt, .onnx          baseline (a): phase 1's policy (ideal PD, nominal model)
    eval/baseline_pd/report.json          the baseline on the same stand-in
    summary.md, summary.html              every stage's figures, read from the artifacts
                                          (robot_rl.app.summary)

A stage whose outputs exist and validate is skipped (``--force`` redoes all); training
resumes from its latest checkpoint, so a killed pipeline picks up where it stopped.
Stages are called through their own command-line entry points, exactly as a user would.
The last three (the PyBullet evaluation, the baseline and fidelity) read only what the
stages before them wrote, so they run side by side, one process per core; their output
goes to ``pipeline_logs/<stage>.log`` and its last lines are printed when they finish.
So do the two candidates' last iterations (phase 3 and the randomized fork), each on one
core (``pipeline_logs/train-<candidate>.log``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from robot_rl.app.summary import write_summary
from robot_rl.config import ConfigError, atomic_write_bytes, override, seed_argument
from robot_rl.robot import DEFAULT_ROBOT, ROBOTS

#: per budget: seconds of each collected log; training phases, each to an iteration count:
#: ``pretrain`` ideal PD on the nominal model (learns to walk fast), ``train`` broad hand-set
#: randomization (a robust gait; baseline (b)'s world), then ``finetune`` more iterations in
#: the identified world (parameters and actuator network); eval options.
BUDGETS = {
    "smoke": {"collect_s": 6.0, "pretrain": 1, "train": 2, "finetune": 1, "round_train": 1,
              "train_args": ["--budget", "smoke"], "eval": ["--seconds", "3", "--no-video"],
              "select": ["--episodes", "4", "--seconds", "4"]},
    "default": {"collect_s": 30.0, "pretrain": 500, "train": 950, "finetune": 300,
                "round_train": 300, "train_args": [], "eval": [], "select": []},
}

#: the policy candidates, trained to the same iteration: name -> training folder under the run
CANDIDATES = {"identified": "policy", "randomized": "randomized/policy"}


def final_iteration(budget: dict) -> int:
    """The iteration the pipeline's training ends at (phase 3's end)."""
    return budget["train"] + budget["finetune"]


class StageFailed(RuntimeError):
    """A stage's command returned a non-zero exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass
class Stage:
    name: str
    outputs: Callable[[Path], list[Path]]
    run: Callable[[Path, argparse.Namespace], None]
    validate: Callable[[Path], None]
    # reads only what the stages before it wrote and writes nothing another stage of its
    # group reads: the consecutive stages marked so run side by side in worker processes
    side_by_side: bool = False


def _call(module: str, argv: list[str]) -> None:
    import importlib

    from robot_rl.app.cli import STAGES

    name = next((k for k, (m, _) in STAGES.items() if m == module), module)
    print(f"$ robot-rl {name} {' '.join(argv)}", flush=True)
    rc = importlib.import_module(module).main(argv)
    if rc:
        raise StageFailed(f"stage {name} failed with exit code {rc} (its message is above)", rc)


def _collect(out: Path, a: argparse.Namespace) -> None:
    from robot_rl.collect import collect
    from robot_rl.robot import load_robot
    from robot_rl.standin_model import load_standin_config

    cfg = load_standin_config(a.standin_config)
    for exp in ("suspended", "ground"):
        path = out / "logs" / f"{exp}.npz"
        if not path.exists() or a.force:
            collect(load_robot(a.robot), exp, BUDGETS[a.budget]["collect_s"], path, cfg, seed=a.seed)


def _train(out: Path, a: argparse.Namespace) -> None:
    """Phases in ``policy/``, each resumed from the last: 1. ideal PD on the nominal model
    (snapshot: ``baseline_pd/``, baseline (a)); 2. broad hand-set randomization of masses,
    friction, motor gains, strength and latency, no identification (baseline (b)'s world);
    3. the identified parameters (randomized within their uncertainty) and the actuator
    network: candidate "identified".  ``randomized/policy/`` forks at the end of phase 2 and
    continues it for as many iterations as phase 3: candidate "randomized", same budget.
    Phase 3 fine-tunes a policy that already walks under broad randomization: trained in
    the identified world from phase 1 directly, a policy learned to stand on a robot with
    weak, late drivers (bench/RESULTS.md, issue 20).  Every call resumes, so a killed run
    continues."""
    from policies.train import checkpoint_iteration, latest_checkpoint

    b = BUDGETS[a.budget]
    common = ["--robot", a.robot, "--seed", str(a.seed), "--resume", *b["train_args"],
              *train_overrides(a)]
    pol, rand = out / "policy", out / "randomized"
    done = checkpoint_iteration(latest_checkpoint(pol)) or 0
    if done < b["pretrain"]:
        _call("policies.cli", [*common, "--out", str(pol), "--iterations", str(b["pretrain"])])
    _snapshot(out, out / "baseline_pd", b["pretrain"])
    if not (rand / "sysid" / "params.json").exists():
        _call("sysid.cli", ["--hand-set", "--robot", a.robot, "--out", str(rand / "sysid")])
    randomized = ["--sysid", str(rand / "sysid"), "--set", "env.actuation=pd_random"]
    if done < b["train"]:
        _call("policies.cli", [*common, "--out", str(pol), *randomized, "--iterations", str(b["train"])])
    if latest_checkpoint(rand / "policy") is None:  # the fork: phase 2's last checkpoint
        fork = pol / f"model_{b['train']}.pt"
        atomic_write_bytes(rand / "policy" / fork.name, fork.read_bytes())
    # a candidate already trained to the end (a resumed run) is left out, so the other one
    # trains alone on every core instead of on one beside a worker with nothing to do
    last = {}
    if (checkpoint_iteration(latest_checkpoint(rand / "policy")) or 0) < final_iteration(b):
        last["randomized"] = [*common, "--out", str(rand / "policy"), *randomized,
                              "--iterations", str(final_iteration(b))]
    if done < final_iteration(b):
        last["identified"] = [*common, "--out", str(pol), "--sysid", str(out / "sysid"),
                              "--actuator", str(out / "actuator"),
                              "--iterations", str(final_iteration(b))]
    if len(last) == 2 and _cores() >= 2:
        _train_side_by_side(out, last)
    else:
        for argv in last.values():
            _call("policies.cli", argv)


def train_overrides(a: argparse.Namespace) -> list[str]:
    """The ``--set`` arguments every training run of the pipeline gets (phases, the
    randomized fork, rounds): the user's training config overrides, or none."""
    return ["--set", *a.set] if getattr(a, "set", None) else []


def check_train_overrides(a: argparse.Namespace) -> None:
    """Raise :class:`robot_rl.config.ConfigError` naming the field when ``--set`` does not
    apply to the training config (before anything runs)."""
    from policies.train import LocomotionConfig

    if a.set:
        override(LocomotionConfig(), a.set)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _train_side_by_side(out: Path, runs: dict[str, list[str]]) -> None:
    """The candidates' last training runs (``name -> policies.cli argv``) at once, each in a
    spawned process on one core (physics and torch on one thread: two processes of two
    threads would fight for the cores); output into ``pipeline_logs/train-<name>.log``.
    Independent runs from one checkpoint."""
    logs = {name: out / "pipeline_logs" / f"train-{name}.log" for name in runs}
    print(f"candidates {', '.join(runs)}: trained side by side, one core each (output: "
          f"{out / 'pipeline_logs'}/train-<candidate>.log) ...", flush=True)
    failed = None
    with ProcessPoolExecutor(len(runs), mp_context=multiprocessing.get_context("spawn"),
                             max_tasks_per_child=1) as pool:
        running = {pool.submit(_train_worker, argv, logs[name]): name for name, argv in runs.items()}
        for fut in as_completed(running):
            name = running[fut]
            try:
                seconds = fut.result()
            except (StageFailed, BrokenProcessPool) as e:
                print(_tail(logs[name], 30), flush=True)
                failed = failed or (e if isinstance(e, StageFailed) else StageFailed(
                    f"training of candidate {name}: its worker process died ({e})"))
                continue
            print(_tail(logs[name], 3), flush=True)
            print(f"candidate {name}: trained in {seconds:.1f} s", flush=True)
    if failed is not None:
        raise failed


def _train_worker(argv: list[str], log: Path) -> float:
    """One training run in this (worker) process on one thread, output into ``log``."""
    import torch

    torch.set_num_threads(1)
    t = time.perf_counter()
    with _output_to(log):
        _call("policies.cli", [*argv, "--set", "env.threads=1"])
    return time.perf_counter() - t


def _snapshot(out: Path, to: Path, iteration: int) -> None:
    """Copy ``policy/policy.pt`` to ``to`` when it is the policy of ``iteration`` (the end of
    a phase) and ``to`` has none yet."""
    from policies.artifact import read_policy

    if (to / "policy.pt").exists():
        return
    policy = read_policy(out / "policy")
    if policy.meta.iteration != iteration:
        raise RuntimeError(f"{policy.path}: iteration {policy.meta.iteration}, expected the end "
                           f"of a phase ({iteration}); the snapshot {to / 'policy.pt'} is missing "
                           "(rerun with --force)")
    atomic_write_bytes(to / "policy.pt", policy.path.read_bytes())


def _select(out: Path, a: argparse.Namespace) -> None:
    """Export both candidates; the one that tracks best on the robot the logs came from (the
    stand-in), on commands drawn from the training ranges, becomes ``policy.onnx``; the
    identified simulator's verdict is recorded beside it (deploy/select.py says why)."""
    argv = ["--run", str(out), "--out", str(out / "select" / "select.json"),
            "--out-policy", str(out / "policy.onnx"), "--seed", str(a.seed), "--quiet",
            "--judge", "robot", *_reality(a), *BUDGETS[a.budget]["select"]]
    for name, folder in CANDIDATES.items():
        onnx = out / "select" / f"{name}.onnx"
        _call("deploy.export_cli", ["--policy", str(out / folder), "--out", str(onnx)])
        argv += ["--candidate", f"{name}={onnx}"]
    _call("deploy.select", argv)


def chosen_folder(out: Path) -> Path:
    """The training folder of the candidate ``select`` chose (``policy/`` where there was no
    selection, as in a round): the next round continues it."""
    sel = out / "select" / "select.json"
    chosen = json.loads(sel.read_text())["chosen"] if sel.exists() else "identified"
    return out / CANDIDATES[chosen]


def _validate_policy(out: Path, budget: dict) -> None:
    from policies.artifact import read_policy

    wanted = {**{f: final_iteration(budget) for f in CANDIDATES.values()},
              "baseline_pd": budget["pretrain"]}
    for folder, iterations in wanted.items():
        policy = read_policy(out / folder)
        if policy.meta.iteration != iterations:
            raise ValueError(f"{policy.path}: field 'meta.iteration' is {policy.meta.iteration}, "
                             f"expected {iterations}")


def _validate_logs(out: Path) -> None:
    from robot_rl.logs import read_log
    from robot_rl.robot import load_robot

    for p in sorted((out / "logs").glob("*.npz")):
        read_log(p, load_robot(_robot_of(out)))


def _validate_json(*keys: str) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        data = json.loads(path.read_text())
        for k in keys:
            if k not in data:
                raise ValueError(f"{path}: field {k!r} missing")
    return check


def _robot_of(out: Path) -> str:
    meta = out / "pipeline.json"
    return json.loads(meta.read_text())["robot"] if meta.exists() else DEFAULT_ROBOT


def stages(a: argparse.Namespace) -> list[Stage]:
    b = BUDGETS[a.budget]
    logs = lambda o: [o / "logs" / "suspended.npz", o / "logs" / "ground.npz"]  # noqa: E731
    return [
        Stage("collect", logs, _collect, _validate_logs),
        Stage("sysid", lambda o: [o / "sysid" / "params.json"],
              lambda o, a: _call("sysid.cli", ["--logs", *map(str, logs(o)), "--robot", a.robot,
                                               "--out", str(o / "sysid")]),
              lambda o: _validate_json("parameters")(o / "sysid" / "params.json")),
        Stage("actuator", lambda o: [o / "actuator" / "actuator.pt", o / "actuator" / "metrics.json"],
              lambda o, a: _call("actuator_net.cli", ["train", "--logs", str(o / "logs" / "suspended.npz"),
                                                      "--robot", a.robot, "--out", str(o / "actuator")]),
              lambda o: None),
        Stage("train", lambda o: [o / f / "policy.pt" for f in (*CANDIDATES.values(), "baseline_pd")],
              _train, lambda o: _validate_policy(o, b)),
        Stage("select", lambda o: [o / "select" / "select.json", o / "policy.onnx"], _select,
              lambda o: _validate_json("chosen", "scores")(o / "select" / "select.json")),
        Stage("eval-mujoco", lambda o: [o / "eval" / "mujoco" / "report.json"],
              lambda o, a: _call("deploy.eval_cli", ["--sim", "mujoco", "--policy", str(o / "policy.onnx"),
                                                     "--robot", a.robot, "--sysid", str(o / "sysid"),
                                                     "--actuator", str(o / "actuator"),
                                                     "--out", str(o / "eval" / "mujoco"), *b["eval"]]),
              lambda o: _validate_json("metrics")(o / "eval" / "mujoco" / "report.json")),
        Stage("eval-pybullet", lambda o: [o / "eval" / "pybullet" / "report.json"],
              lambda o, a: _call("deploy.eval_cli", ["--sim", "pybullet", "--policy", str(o / "policy.onnx"),
                                                     "--robot", a.robot, "--out", str(o / "eval" / "pybullet"),
                                                     "--compare", str(o / "eval" / "mujoco" / "report.json"),
                                                     *_reality(a), *b["eval"]]),
              lambda o: _validate_json("metrics")(o / "eval" / "pybullet" / "report.json"),
              side_by_side=True),
        Stage("baseline", lambda o: [o / "eval" / "baseline_pd" / "report.json"], _baseline,
              lambda o: _validate_json("metrics")(o / "eval" / "baseline_pd" / "report.json"),
              side_by_side=True),
        Stage("fidelity", lambda o: [o / "fidelity" / "fidelity.json"],
              lambda o, a: _call("deploy.fidelity", ["--run", str(o), "--seconds",
                                                     str(b["collect_s"]), "--quiet"]),
              lambda o: _validate_json("open_loop", "closed_loop")(o / "fidelity" / "fidelity.json"),
              side_by_side=True),
    ]


def _reality(a: argparse.Namespace) -> list[str]:
    """The stand-in the logs came from, for the PyBullet evaluations and the selection."""
    return ["--standin-config", str(a.standin_config)] if a.standin_config else []


def _baseline(out: Path, a: argparse.Namespace) -> None:
    """Baseline (a), phase 1's ideal-PD policy, evaluated on the same stand-in as the pipeline's."""
    pt = out / "baseline_pd" / "policy.pt"
    onnx = out / "baseline_pd" / "policy.onnx"
    _call("deploy.export_cli", ["--policy", str(pt), "--out", str(onnx)])
    _call("deploy.eval_cli", ["--sim", "pybullet", "--policy", str(onnx), "--robot", a.robot,
                              "--out", str(out / "eval" / "baseline_pd"), "--no-video",
                              *_reality(a), *BUDGETS[a.budget]["eval"]])


def stage_done(stage: Stage, out: Path) -> bool:
    """Outputs exist and validate."""
    if not all(p.exists() for p in stage.outputs(out)):
        return False
    try:
        stage.validate(out)
    except Exception as e:  # noqa: BLE001 - any invalid artifact means: redo the stage
        print(f"[{stage.name}] existing output invalid ({e}); redoing", flush=True)
        return False
    return True


def run(a: argparse.Namespace) -> Path:
    from robot_rl.standin_model import load_standin_config

    check_train_overrides(a)
    load_standin_config(a.standin_config)  # a bad robot config stops here, nothing written
    out = Path(a.out)
    meta = out / "pipeline.json"
    if meta.exists():
        prev = json.loads(meta.read_text())
        if prev.get("robot") != a.robot:
            raise SystemExit(f"{out} holds a pipeline for robot {prev.get('robot')!r}, not {a.robot!r}")
        trained = prev.get("train_set", [])
        if trained != a.set and (out / "policy").exists():  # checkpoints would mix them
            raise ConfigError(f"{meta}: field 'train_set': this run was trained with --set "
                              f"{trained}, not {a.set}: use another --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(meta, json.dumps({"robot": a.robot, "budget": a.budget, "seed": a.seed,
                                         "standin_config": a.standin_config,
                                         "train_set": a.set}).encode())
    timings: dict[str, float] = {}
    all_stages = stages(a)
    n = len(all_stages)
    todo = []
    for i, st in enumerate(all_stages, 1):
        if not a.force and stage_done(st, out):
            print(f"[{i}/{n}] {st.name}: outputs present and valid, skipped", flush=True)
        else:
            todo.append((i, st))
    group: list[tuple[int, Stage]] = []
    for k, (i, st) in enumerate(todo):
        if st.side_by_side:  # collected, then run when the group ends
            group.append((i, st))
            if k + 1 < len(todo) and todo[k + 1][1].side_by_side:
                continue
            timings.update(run_side_by_side(group, out, a, n))
            group = []
            continue
        print(f"[{i}/{n}] {st.name} ...", flush=True)
        t = time.perf_counter()
        st.run(out, a)
        timings[st.name] = time.perf_counter() - t
        _check_outputs(st, out)
        print(f"[{i}/{n}] {st.name}: done in {timings[st.name]:.1f} s", flush=True)
    if a.rounds:
        from robot_rl.app.rounds import run_rounds

        run_rounds(out, a, BUDGETS[a.budget], _call)
    path = write_summary(out, BUDGETS)
    print(f"summary: {path}")
    return path


def _check_outputs(st: Stage, out: Path) -> None:
    missing = [str(p) for p in st.outputs(out) if not p.exists()]
    if missing:
        raise RuntimeError(f"stage {st.name} finished but did not write {missing}")
    st.validate(out)


def _stage_worker(name: str, out: Path, a: argparse.Namespace, log: Path) -> float:
    """Run stage ``name`` in this (worker) process, its output into ``log`` (Python's and
    the C libraries', file descriptors 1 and 2 included); seconds taken."""
    st = next(s for s in stages(a) if s.name == name)
    t = time.perf_counter()
    with _output_to(log):
        st.run(out, a)
    return time.perf_counter() - t


@contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Python's output and the C libraries' (file descriptors 1 and 2) into ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(log, "w") as f, redirect_stdout(f), redirect_stderr(f):
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            yield
            f.flush()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _tail(log: Path, lines: int = 12) -> str:
    """The last lines of a stage's log, progress bars reduced to their final state."""
    text = log.read_text(errors="replace") if log.exists() else ""
    rows = [ln.rsplit("\r", 1)[-1] for ln in text.splitlines()]
    return "\n".join([r for r in rows if r.strip()][-lines:])


def run_side_by_side(group: list[tuple[int, Stage]], out: Path, a: argparse.Namespace,
                     n: int) -> dict[str, float]:
    """Run the stages of ``group`` (``(number, stage)``) in worker processes, one per
    available core, a fresh interpreter each (spawned: the training's OpenMP threads must
    not be forked); seconds per stage.  A failing stage's log tail is printed and its
    :class:`StageFailed` (or a crashed worker, as one) raised once the others finish."""
    workers = max(1, min(len(group), _cores()))
    print(f"[{group[0][0]}-{group[-1][0]}/{n}] {', '.join(st.name for _, st in group)}: side by "
          f"side in {workers} processes (output: {out / 'pipeline_logs'}/<stage>.log) ...",
          flush=True)
    timings, failed = {}, None
    logs = {st.name: out / "pipeline_logs" / f"{st.name}.log" for _, st in group}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             max_tasks_per_child=1) as pool:
        running = {pool.submit(_stage_worker, st.name, out, a, logs[st.name]): (i, st)
                   for i, st in group}
        for fut in as_completed(running):
            i, st = running[fut]
            try:
                timings[st.name] = fut.result()
            except StageFailed as e:
                print(_tail(logs[st.name], 30), flush=True)
                failed = failed or e
                continue
            except BrokenProcessPool as e:
                print(_tail(logs[st.name], 30), flush=True)
                failed = failed or StageFailed(f"stage {st.name}: its worker process died ({e})")
                continue
            print(_tail(logs[st.name]), flush=True)
            _check_outputs(st, out)
            print(f"[{i}/{n}] {st.name}: done in {timings[st.name]:.1f} s", flush=True)
    if failed is not None:
        raise failed
    return timings


def _rounds(text: str) -> int:
    """``--rounds``: a whole number >= 0."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robot-rl pipeline",
        description="Run the four stages on one robot: collect logs from the hardware stand-in, "
                    "identify parameters, learn the actuator network, train TRPO policy candidates, "
                    "export them to ONNX, deploy the one that tracks best on the robot, and "
                    "evaluate it in MuJoCo and PyBullet.  Stages whose outputs are "
                    "present and valid are skipped; a killed run resumes.")
    p.add_argument("--robot", default=DEFAULT_ROBOT, choices=sorted(ROBOTS))
    p.add_argument("--out", required=True, help="run folder, e.g. runs/a1-demo")
    p.add_argument("--budget", default="default", choices=sorted(BUDGETS),
                   help="smoke: minutes, to check the machinery; default: a walking policy")
    p.add_argument("--force", action="store_true", help="redo every stage")
    p.add_argument("--seed", type=seed_argument, default=0)
    p.add_argument("--rounds", type=_rounds, default=0,
                   help="after round 0, this many rounds of: deploy the policy on the robot and "
                        "log it walking, re-identify and re-learn the actuator with those logs, "
                        "retrain, evaluate, measure fidelity; stops early when fidelity no "
                        "longer improves [0]")
    p.add_argument("--standin-config", default=None,
                   help="the robot: a stand-in config JSON or a shipped reality's name "
                        "(robot_rl/standin/*.json); logs are collected from it and the PyBullet "
                        "evaluations run on it [default]")
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="training config overrides for every training run of the pipeline "
                        "(phases 1-3, the randomized candidate, rounds), as robot-rl train "
                        "--set takes them, e.g. --set env.gait_stride_turn=true; checked before "
                        "anything runs")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(a)
    except StageFailed as e:
        print(f"robot-rl pipeline: error: {e}", file=sys.stderr)
        return e.code
    except ConfigError as e:
        print(f"robot-rl pipeline: error: {e}", file=sys.stderr)
        return 2
    return 0
