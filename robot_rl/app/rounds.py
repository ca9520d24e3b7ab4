"""Closing the loop: ``robot-rl pipeline --rounds N``.

Round 0 is the pipeline as it runs without rounds.  Each next round ``r`` does what
practitioners do between hardware sessions, into ``<run>/round_<r>/``::

    logs/walking.npz      deploy the previous round's policy on the robot, random commands
                          and pushes (``robot-rl collect --experiment walking``)
    sysid/, actuator/     re-identify and re-learn the actuator from the rig and ground logs
                          plus every walking log so far (the regime the policy operates in)
    policy/, policy.onnx  continue training the previous policy in the new world
    eval/pybullet/        evaluate on the robot
    fidelity/             how well the new simulator predicts the robot (``robot-rl fidelity``)

The loop stops early when the identified simulator's open-loop error on held-out walking
(identified parameters + actuator network) did not improve by at least ``MIN_GAIN``
over the previous round's simulator, both replayed on the round's own held-out log: each
round walks differently, and errors on different logs do not compare (on one run the
stand-in's own physics scored 0.0224 rad on round 0's log and 0.0198 on round 1's).  Every
step is skipped when its output exists, like the stages.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

#: relative improvement of the open-loop fidelity a round must bring to continue the loop
MIN_GAIN = 0.05
#: the simulator the policy trains in
TRAINED = "identified+net"


def round_dir(out: Path, r: int) -> Path:
    """The folder of round ``r`` (round 0 is the run folder itself)."""
    return out if r == 0 else out / f"round_{r}"


def fidelity_error(run: Path, simulator: str = TRAINED) -> float | None:
    """Open-loop joint RMSE of ``simulator`` (the trained-in one) from ``<run>/fidelity``
    (None before it is measured or where the report has no such row; NaN when its held-out
    log was too short for one window)."""
    p = run / "fidelity" / "fidelity.json"
    if not p.exists():
        return None
    ol = json.loads(p.read_text())["open_loop"]
    if not ol:
        return float("nan")
    return float(ol[simulator]["joint_rmse_rad"]) if simulator in ol else None


def round_gain(out: Path, r: int) -> tuple[float | None, float | None]:
    """(before, after): round ``r``'s held-out walking replayed in round ``r - 1``'s
    simulator and in round ``r``'s (the same log for both)."""
    from deploy.fidelity import PREVIOUS  # fidelity.json's owner names the row

    here = round_dir(out, r)
    return fidelity_error(here, PREVIOUS), fidelity_error(here)


def run_round(out: Path, r: int, a: argparse.Namespace, budget: dict, call) -> Path:
    """One round of the loop; returns its folder."""
    from deploy.walking_log import collect_walking
    from policies.train import checkpoint_iteration, latest_checkpoint
    from robot_rl.robot import load_robot
    from robot_rl.standin_model import load_standin_config

    prev, here = round_dir(out, r - 1), round_dir(out, r)
    here.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "pipeline.json", here / "pipeline.json")
    walking = here / "logs" / "walking.npz"
    if not walking.exists():
        collect_walking(prev / "policy.onnx", load_robot(a.robot), budget["collect_s"], walking,
                        load_standin_config(a.standin_config), seed=r, progress=False)
    walks = [round_dir(out, k) / "logs" / "walking.npz" for k in range(1, r + 1)]
    base_logs = [out / "logs" / "suspended.npz", out / "logs" / "ground.npz"]
    if not (here / "sysid" / "params.json").exists():
        call("sysid.cli", ["--logs", *map(str, base_logs + walks), "--robot", a.robot,
                           "--out", str(here / "sysid")])
    if not (here / "actuator" / "actuator.pt").exists():
        call("actuator_net.cli", ["train", "--logs", str(base_logs[0]), *map(str, walks),
                                  "--robot", a.robot, "--out", str(here / "actuator")])
    if not (here / "policy.onnx").exists():
        from policies.artifact import read_policy
        from robot_rl.app.pipeline import chosen_folder, train_overrides

        deployed = chosen_folder(prev)  # the previous round's deployed policy, continued
        if not (here / "policy").exists():
            shutil.copytree(deployed, here / "policy")
        done = checkpoint_iteration(latest_checkpoint(here / "policy"))
        target = read_policy(deployed).meta.iteration + budget["round_train"]
        if done < target:
            call("policies.cli", ["--robot", a.robot, "--out", str(here / "policy"), "--seed",
                                  str(a.seed), "--resume", "--iterations", str(target),
                                  "--sysid", str(here / "sysid"), "--actuator",
                                  str(here / "actuator"), *budget["train_args"],
                                  *train_overrides(a)])
        call("deploy.export_cli", ["--policy", str(here / "policy"), "--out",
                                   str(here / "policy.onnx")])
    if not (here / "eval" / "pybullet" / "report.json").exists():
        reality = ["--standin-config", str(a.standin_config)] if a.standin_config else []
        call("deploy.eval_cli", ["--sim", "pybullet", "--policy", str(here / "policy.onnx"),
                                 "--robot", a.robot, "--out", str(here / "eval" / "pybullet"),
                                 "--no-video", *reality, *budget["eval"]])
    if fidelity_error(here) is None:
        call("deploy.fidelity", ["--run", str(here), "--seconds", str(budget["collect_s"]),
                                 "--previous", str(prev), "--quiet"])
    return here


def run_rounds(out: Path, a: argparse.Namespace, budget: dict, call) -> list[dict]:
    """Rounds 1..``a.rounds`` after round 0, stopping when fidelity stops improving."""
    done = []
    for r in range(1, a.rounds + 1):
        print(f"[round {r}/{a.rounds}] deploy, log, re-identify, retrain ...", flush=True)
        run_round(out, r, a, budget, call)
        before, after = round_gain(out, r)
        done.append({"round": r, "fidelity_before": before, "fidelity_after": after})
        if before is not None and after is not None and after > (1 - MIN_GAIN) * before:
            print(f"[round {r}] open-loop fidelity on this round's held-out walking: "
                  f"{after:.4f} rad vs {before:.4f} rad in round {r - 1}'s simulator: less "
                  f"than {MIN_GAIN:.0%} better, the loop stops", flush=True)
            break
    return done


def rounds_table(out: Path) -> list[str]:
    """Markdown lines: fidelity and transfer per round (for the summary)."""
    from deploy.fidelity import PREVIOUS, TRUTH  # fidelity.json's owner names its rows

    def num(x, spec: str) -> str:  # "-" where not measured (a skipped window, all fell)
        return "-" if x is None else format(x, spec)

    rows, r = [], 0
    while round_dir(out, r).is_dir():
        run = round_dir(out, r)
        fid = run / "fidelity" / "fidelity.json"
        ev = run / "eval" / "pybullet" / "report.json"
        if not fid.exists() and not ev.exists():
            break
        f = json.loads(fid.read_text()) if fid.exists() else None
        m = json.loads(ev.read_text())["metrics"] if ev.exists() else {}
        ol = f["open_loop"] if f else {}
        cl = (f or {}).get("closed_loop") or {}
        rows.append(
            f"| {r} | {num(ol.get(TRAINED, {}).get('joint_rmse_rad'), '.4f')} | "
            f"{num(ol.get(PREVIOUS, {}).get('joint_rmse_rad'), '.4f')} | "
            f"{num(ol.get('nominal+pd', {}).get('joint_rmse_rad'), '.4f')} | "
            f"{num(ol.get(TRUTH, {}).get('joint_rmse_rad'), '.4f')} | "
            f"{num(cl.get(TRAINED, {}).get('fall_agreement'), '.0%')} | "
            f"{m.get('falls', '-')} | {num(m.get('vx_abs_err'), '.3f')} | "
            f"{num(m.get('yaw_abs_err'), '.3f')} |")
        r += 1
    if len(rows) < 1:
        return []
    return ["## 5. Closing the loop: fidelity and transfer per round", "",
            "Open-loop joint RMSE on held-out walking logs (multiple shooting, 0.5 s windows) of "
            "the simulator the policy trains in, of the previous round's on the same log (the "
            "loop's stopping rule compares these two), of the nominal model and of the stand-in's "
            "hidden physics and actuator in the same simulator (the reference for what "
            "identification can give; grading only); closed-loop fall agreement with the robot; "
            "the round's policy on the robot (PyBullet stand-in). Each round's log is new: compare "
            "within a row.", "",
            f"| round | {TRAINED} (rad) | previous round's (rad) | nominal+pd (rad) | {TRUTH} (rad) "
            "| falls agree | robot falls | vx err (m/s) | yaw err (rad/s) |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows, ""]
