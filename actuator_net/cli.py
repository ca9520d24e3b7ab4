"""``robot-rl actuator train``: learn the actuator network from logs.

    robot-rl actuator train --logs runs/x/logs/ --out runs/x/actuator/
    robot-rl actuator train --logs anymal_sea_LH_KFE_input.f64 --format anymal --out out/
    robot-rl actuator train --logs humanoid_ankle_4joints_50hz.csv --format ankle_csv --out out/

Writes ``actuator.pt``, ``actuator.onnx``, ``metrics.json``, the resolved ``config.json``
(num_lags as chosen) and validation plots into
``--out`` (each atomically; nothing at all when anything fails).  Without
``--history-spacing`` the paper's 0.01 s is used when every log is sampled at least that
fast, else the slowest log's own sample period (e.g. 0.02 s for a 50 Hz log).  Without
``--num-lags`` the number of history steps is chosen from the logs: the fewest (at least
the paper's 3) whose span covers how long the actuator takes to respond (latency, torque
lag; at most 60 ms and 8 steps: ``--set model.max_history_span=...``).  Both choices and
the estimated lag are printed and written to ``metrics.json`` (``history_choice``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from actuator_net.config import PAPER_HISTORY_SPACING, ActuatorNetConfig
from actuator_net.importers import FORMATS
from robot_rl.config import add_config_arguments, config_from_args, seed_argument


def build_parser() -> argparse.ArgumentParser:
    """The ``robot-rl actuator`` argument parser (sub-command ``train``)."""
    p = argparse.ArgumentParser(prog="robot-rl actuator",
                                description="Stage 2: learn the actuator network from logs.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train on logs, write actuator.pt/.onnx, metrics, plots",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--logs", nargs="+", required=True,
                   help="log files or folders (robot_rl .npz, ANYmal *_input.f64, ankle .csv)")
    t.add_argument("--out", required=True, help="output folder, e.g. runs/<name>/actuator/")
    t.add_argument("--format", choices=FORMATS, default=None,
                   help="input format [guessed per file from its suffix: .npz robot_rl, "
                        ".f64 anymal, .csv ankle_csv]")
    t.add_argument("--robot", default=None,
                   help="robot description to validate robot_rl logs against [the log's own]")
    t.add_argument("--history-spacing", type=float, default=None,
                   help="spacing h of the history inputs t, t-h, t-2h (s) [0.01 if the logs "
                        "are fast enough, else the slowest log's sample period]")
    t.add_argument("--num-lags", type=int, default=None,
                   help="history steps per signal [chosen from the logs: the fewest, at least "
                        "3, spanning the actuator's response, at most 60 ms]")
    t.add_argument("--joint-types", default=None,
                   help="which joints share a network: auto, shared, per_joint or one label "
                        "per joint, comma-separated [auto]")
    t.add_argument("--val-fraction", type=float, default=None,
                   help="last fraction of each log held out for validation [0.2]")
    t.add_argument("--epochs", type=int, default=None, help="max epochs [600]")
    t.add_argument("--max-steps", type=int, default=None, help="max optimizer steps [3000]")
    t.add_argument("--batch-size", type=int, default=None, help="minibatch size [256]")
    t.add_argument("--lr", type=float, default=None, help="Adam learning rate [3e-3]")
    t.add_argument("--seed", type=seed_argument, default=None, help="random seed [0]")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads [1]")
    add_config_arguments(t, "train.patience=50 model.hidden=[64,64] (ActuatorNetConfig)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def default_spacing(periods: list[float]) -> tuple[float, str]:
    """History spacing for logs with these sample periods, and why."""
    slowest = max(periods)
    if slowest <= PAPER_HISTORY_SPACING * (1 + 1e-6):
        return PAPER_HISTORY_SPACING, f"the paper's {PAPER_HISTORY_SPACING} s"
    return slowest, (f"the logs' own sample period: the paper's {PAPER_HISTORY_SPACING} s is "
                     f"shorter than the slowest log's period {slowest:.6g} s "
                     f"({1 / slowest:.4g} Hz)")


def _config(a: argparse.Namespace) -> ActuatorNetConfig:
    """The config from --config, the flags and --set (checked before any log is read)."""
    return config_from_args(ActuatorNetConfig(), a, flags={
        "model.history_spacing": a.history_spacing, "model.num_lags": a.num_lags,
        "split.val_fraction": a.val_fraction, "train.max_epochs": a.epochs,
        "train.max_steps": a.max_steps, "train.batch_size": a.batch_size, "train.lr": a.lr,
        "train.seed": a.seed, "train.num_threads": a.threads, "joint_types": a.joint_types,
        "train.progress": False if a.quiet else None})


def _spacing(a: argparse.Namespace, cfg: ActuatorNetConfig,
             periods: list[float]) -> tuple[ActuatorNetConfig, str]:
    """``cfg`` with the default history spacing for these logs unless one was given."""
    explicit = a.history_spacing is not None or any(
        s.startswith("model.history_spacing=") for s in a.set) or (
        a.config and "history_spacing" in json.loads(Path(a.config).read_text()).get("model", {}))
    if explicit:
        return cfg, "given"
    spacing, why = default_spacing(periods)
    return replace(cfg, model=replace(cfg.model, history_spacing=spacing)), why


def history_line(choice: dict) -> str:
    """One line on the number of lags: how it came about and the estimated response."""
    est = ""
    if choice["estimated_lag_s"] is not None:
        est = (f"; the logged actuator responds after {1e3 * choice['estimated_lag_s']:.3g} ms "
               f"(90 % by {1e3 * choice['response_end_s']:.3g} ms)")
    line = (f"actuator: {choice['num_lags']} lags spanning {1e3 * choice['span_s']:.3g} ms "
            f"({choice['how']}{est})")
    if choice["how"] == "given" and choice["suggested_num_lags"] > choice["num_lags"]:
        line += (f"\nactuator: warning: the logs suggest {choice['suggested_num_lags']} lags: "
                 "the given window may not reach the command that produced the torque")
    elif choice["capped"] and choice["how"] != "given":
        line += ("\nactuator: warning: even the longest window allowed misses part of the "
                 "response (model.max_history_span, model.max_num_lags)")
    return line


def _train(a: argparse.Namespace) -> int:
    from actuator_net.artifacts import render, write
    from actuator_net.importers import load_series
    from actuator_net.train import train
    from robot_rl.robot import load_robot

    cfg = _config(a)
    robot = load_robot(a.robot) if a.robot else None
    series = load_series(a.logs, a.format, robot)
    cfg, why = _spacing(a, cfg, [s.sample_period() for s in series])
    print(f"actuator: {len(series)} log(s), joints {series[0].joint_names}")
    print(f"actuator: history spacing {cfg.model.history_spacing:.6g} s ({why})")
    result = train(series, cfg)
    files = render(result)
    paths = write(a.out, files)
    m = result.metrics
    print(history_line(m["history_choice"]))
    print(f"actuator: types {m['joint_types']['per_joint']}")
    print(f"actuator: samples train {m['samples']['train']}, early stop "
          f"{m['samples']['early_stop']}, validation {m['samples']['validation']} (last "
          f"{cfg.split.val_fraction:.0%} of each log)")
    rm = m["rmse_nm"]
    header = f"{'joint':24s} {'network':>9s} {'best-fit PD':>12s} {'ideal PD':>9s}"
    print("validation RMSE (N m)\n" + header)
    for name in result.joint_names + ["overall"]:
        def cell(block, name=name):
            if block is None:
                return "n/a"
            return f"{block['overall'] if name == 'overall' else block['per_joint'][name]:.3f}"
        print(f"{name:24s} {cell(rm['network']):>9s} {cell(rm['best_fit_pd']):>12s} "
              f"{cell(rm['ideal_pd']):>9s}")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``robot-rl actuator``; returns the exit status."""
    a = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if a.command == "train":
            return _train(a)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        print(f"robot-rl actuator {a.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
