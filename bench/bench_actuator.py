"""Benchmark of stage 2 (issue 5): accuracy on real and stand-in data, evaluator cost.

    python bench/bench_actuator.py              # everything (about 2 minutes on 2 cores)
    python bench/bench_actuator.py --only cost  # just the evaluator timing

Prints, side by side in one run:
- held-out RMSE (last 20 % of each log) of the network, the ideal PD with the controller's
  gains and the best-fit PD, on the ANYmal SEA data (paper's 0.01 s history spacing and
  0.0075 s, several seeds), the 50 Hz humanoid ankle, and the PyBullet stand-in (if there);
- the cost of one physics step of ActuatorNetEvaluator for N = 64 and 4096 envs x 12
  joints, against an ideal PD computed on the same tensors, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from actuator_net.artifacts import checkpoint
from actuator_net.config import ActuatorNetConfig, ModelConfig, TrainConfig
from actuator_net.importers import ANKLE_CSV, from_robot_log, read_anymal, read_csv, read_robot_log
from actuator_net.runtime import ActuatorNetEvaluator
from actuator_net.train import train

# shared/ lies beside the repository; ROBOT_RL_SHARED overrides (as in tests/actuator)
DATA = Path(os.environ.get("ROBOT_RL_SHARED", Path(__file__).resolve().parents[1].parent / "shared"),
            "data", "real_actuator_logs")


def _cfg(h: float, seed: int = 0, **train_kw) -> ActuatorNetConfig:
    return ActuatorNetConfig(model=ModelConfig(history_spacing=h),
                             train=TrainConfig(seed=seed, progress=False, **train_kw))


def _row(label: str, m: dict) -> str:
    rm = m["rmse_nm"]
    ideal = "n/a" if rm["ideal_pd"] is None else f"{rm['ideal_pd']['overall']:.3f}"
    return (f"{label:42s} net {rm['network']['overall']:.3f}  best-fit PD "
            f"{rm['best_fit_pd']['overall']:.3f}  ideal PD {ideal}  "
            f"({m['num_lags']} lags, {m['training']['seconds']:.1f} s, "
            f"{m['training']['epochs_run']} epochs)")


def bench_anymal(seeds: int) -> None:
    s = read_anymal(DATA / "anymal_sea_LH_KFE_input.f64")
    print("\n## ANYmal SEA LH_KFE, 400 Hz, validation = last 20 % (455 samples)")
    for h in (0.01, 0.0075):
        vals = []
        for seed in range(seeds):
            m = train([s], _cfg(h, seed)).metrics
            vals.append(m["rmse_nm"]["network"]["overall"])
            print(_row(f"h = {h} s, seed {seed}", m))
        print(f"  h = {h} s: network RMSE mean {np.mean(vals):.3f}, min {min(vals):.3f}, "
              f"max {max(vals):.3f} N m over {seeds} seeds")


def bench_ankle() -> None:
    s = read_csv(DATA / "humanoid_ankle_4joints_50hz.csv", ANKLE_CSV)
    print("\n## humanoid ankle, 50 Hz, 4 joints, h = 0.02 s, validation = last 20 %")
    for label, kw in (("default config", {}), ("test config (batch 512, 600 steps)",
                                               {"batch_size": 512, "max_steps": 600})):
        m = train([s], _cfg(0.02, 0, **kw)).metrics
        print(_row(label, m))
        rm = m["rmse_nm"]
        for j in s.joint_names:
            print(f"    {j}: network {rm['network']['per_joint'][j]:.3f}  best-fit PD "
                  f"{rm['best_fit_pd']['per_joint'][j]:.3f}")


def bench_standin(seconds: float) -> Path | None:
    try:
        from robot_rl.collect import collect
        from robot_rl.robot import load_robot
        from robot_rl.standin_model import load_standin_config
    except ImportError as e:
        print(f"\n## stand-in not available ({e})")
        return None
    tmp = Path(tempfile.mkdtemp(prefix="bench_actuator_"))
    log = collect(load_robot("a1"), "suspended", seconds, tmp, load_standin_config(), seed=0,
                  progress=False)
    s = read_robot_log(log)
    print(f"\n## PyBullet stand-in, A1 suspended {seconds:g} s at {1 / s.sample_period():g} Hz, "
          "h = 0.01 s")
    r = train([s], _cfg(0.01, 0))
    print(_row("default config (2 actuator types)", r.metrics))
    rm = r.metrics["rmse_nm"]
    for j in s.joint_names:
        print(f"    {j:16s} network {rm['network']['per_joint'][j]:.3f}  best-fit PD "
              f"{rm['best_fit_pd']['per_joint'][j]:.3f}  ideal PD "
              f"{rm['ideal_pd']['per_joint'][j]:.3f}")
    path = tmp / "actuator.pt"
    torch.save(checkpoint(r), path)
    return path


def _synthetic_a1_checkpoint() -> Path:
    """A 12-joint, 2-type network (untrained quality is irrelevant for timing)."""
    from actuator_net.synthetic import pendulum_log

    log = pendulum_log(seconds=4.0, num_joints=12)
    s = from_robot_log(log)
    cfg = ActuatorNetConfig(model=ModelConfig(history_spacing=0.01),
                            train=TrainConfig(max_steps=5, progress=False),
                            joint_types=",".join(["hip", "leg", "leg"] * 4))
    path = Path(tempfile.mkdtemp(prefix="bench_actuator_")) / "actuator.pt"
    torch.save(checkpoint(train([s], cfg)), path)
    return path


def _time_interleaved(fns: dict, reps: int, rounds: int = 9) -> dict:
    """Per call seconds of each fn: (median, min) over ``rounds`` interleaved rounds of
    ``reps`` calls, so that every fn sees the same machine load."""
    for fn in fns.values():
        for _ in range(min(reps, 20)):
            fn()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            times[k].append((time.perf_counter() - t0) / reps)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def bench_cost(ck: Path, threads: int) -> None:
    torch.set_num_threads(threads)
    nj, dt = 12, 0.005
    print(f"\n## evaluator cost per physics step (dt {dt} s, {nj} joints, torch threads {threads},"
          f" {platform.machine()}); median (min) over 9 interleaved rounds")
    for n in (64, 4096):
        ev = ActuatorNetEvaluator(ck, num_envs=n, physics_dt=dt)
        g = torch.Generator().manual_seed(0)
        qt, q, qd = (torch.randn(n, nj, generator=g) for _ in range(3))
        qtn, qn, qdn = (x.double().numpy() for x in (qt, q, qd))
        kp, kd = torch.full((nj,), 20.0), torch.full((nj,), 0.5)
        kpn, kdn = kp.double().numpy(), kd.double().numpy()

        def pd(qt=qt, q=q, qd=qd, kp=kp, kd=kd):
            with torch.inference_mode():
                return kp * (qt - q) - kd * qd

        r = _time_interleaved({
            "net": lambda ev=ev, a=qt, b=q, c=qd: ev(a, b, c),
            "net_numpy": lambda ev=ev, a=qtn, b=qn, c=qdn: ev(a, b, c),
            "pd": pd,
            "pd_numpy": lambda a=qtn, b=qn, c=qdn, p=kpn, d=kdn: p * (a - b) - d * c,
        }, reps=200 if n == 64 else 10)
        us = {k: f"{v[0] * 1e6:.1f} ({v[1] * 1e6:.1f})" for k, v in r.items()}
        print(f"N = {n:5d} envs: network {us['net']} us/step = {r['net'][0] / n * 1e9:.0f} ns per "
              f"env; ideal PD {us['pd']} us; ratio network / PD {r['net'][0] / r['pd'][0]:.0f} "
              f"(min/min {r['net'][1] / r['pd'][1]:.0f})")
        print(f"      numpy float64 in/out: network {us['net_numpy']} us, ideal PD (numpy) "
              f"{us['pd_numpy']} us; ratio {r['net_numpy'][0] / r['pd_numpy'][0]:.0f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=["accuracy", "cost"], default=None)
    p.add_argument("--seeds", type=int, default=3, help="ANYmal seeds per spacing [3]")
    p.add_argument("--standin-seconds", type=float, default=20.0)
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    a = p.parse_args()
    torch.set_num_threads(1)
    ck = None
    if a.only in (None, "accuracy"):
        if DATA.exists():
            bench_anymal(a.seeds)
            bench_ankle()
        else:
            print(f"{DATA}: real data not on this machine")
        ck = bench_standin(a.standin_seconds)
    if a.only in (None, "cost"):
        ck = ck or _synthetic_a1_checkpoint()
        for th in a.threads:
            bench_cost(ck, th)


if __name__ == "__main__":
    main()
