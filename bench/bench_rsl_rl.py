"""Head to head on the locomotion task: our TRPO and PPO-clip against rsl_rl's PPO.

rsl_rl (``rsl-rl-lib`` on PyPI, the PPO legged-robot engineers use) drives this project's
``LeggedEnv`` through ``bench/rsl_rl_adapter.py``; ours drive the same env through
``robot_rl.rl.OnPolicyRunner`` as ``policies.train.train`` does.  rsl_rl is not a
dependency of the package, only of the ``bench`` extra: ``pip install -e '.[bench]'`` or
``pip install 'rsl-rl-lib>=5.5,<6'`` (pulls tensordict, GitPython, onnxscript; keeps an
installed torch >= 2.6, CPU builds included; checked with 5.5.1 on torch 2.13.0+cpu).

Per (algorithm, seed), in a fresh process each (so one side's thread and BLAS settings
cannot leak into the other's):

* same env: ``EnvConfig`` defaults (A1, ideal PD, nominal model, cost curriculum advanced
  per 48 env steps per env on both sides, see the adapter), ``--num-envs`` envs,
  ``--env-threads`` physics threads, env seeded with the run's seed;
* same budget: ``--iterations`` of our runner (48 steps per env each) = the same env steps
  in twice as many rsl_rl iterations (24 steps per env each, rsl_rl's default);
* same networks: actor and critic MLPs ``--hidden`` (default ours, 128-128), ELU;
* same threads: ``torch.set_num_threads(--torch-threads)`` on both sides (0: torch's
  default), our runner's numpy BLAS at its default (1 thread, threadpoolctl); one-off
  imports (torch._dynamo on the first Adam) are paid before the clock starts;
* same seeds: ``--seeds`` (>= 3 for a measurement), python/numpy/torch seeded alike;
* hyperparameters: each side's defaults.  Ours: ``policies.train.LocomotionConfig`` (TRPO
  max_kl 0.01, 10 CG iterations, value 5 epochs x 4 minibatches, init log std -0.5,
  observation normalization; PPO-clip: the same with ``algo.name = "ppo_clip"``, lr 3e-4,
  5 epochs x 4 minibatches, clip 0.2).  rsl_rl: legged_gym's ``LeggedRobotCfgPPO`` /
  Isaac Lab's locomotion ``RslRlPpoAlgorithmCfg`` (``RSL_ALGORITHM`` below: lr 1e-3 with
  the adaptive KL schedule, desired_kl 0.01, 5 epochs x 4 minibatches, clip 0.2, entropy
  0.01, gamma 0.99, lambda 0.95, max_grad_norm 1, clipped value loss; Gaussian init std
  1.0; no observation normalization; 24 steps per env).

Measured per run: env steps/s during training (all env steps / training wall-clock,
env construction included, evaluation excluded) split into env time (inside
``env.step``), update time and the rest (policy inference, storage, returns); wall-clock
and env steps to walk; the final tracking errors.  "Walk" is bench_time_to_walk.py's
criterion (its ``GOAL_VX`` / ``GOAL_YAW``): the deterministic policy, exported to ONNX and
run by the onboard runtime in MuJoCo over the default command set (``deploy.evaluate``,
7 commands x ``--eval-seconds``), has mean |forward error| <= 0.15 m/s, mean |yaw-rate
error| <= 0.2 rad/s and no falls.  Snapshots are taken every ``--eval-every`` of our
iterations (the same env steps on both sides) and at the end, and graded after training
in order until the first pass; the last snapshot is always graded (final errors).

Printed: per run, then per algorithm the IQM over seeds with a percentile-bootstrap 95 %
interval (``bench/stats.py``), and the ratios ours/rsl_rl of the IQMs with their intervals
(time to walk only over seeds that walked; the count is printed).  Goal (issue 23): our
TRPO at most rsl_rl's wall-clock and env steps to walk; our PPO-clip at most 0.8x rsl_rl's
wall-clock.

    python bench/bench_rsl_rl.py --seeds 0 1 2 --iterations 800 --num-envs 128 --eval-every 50
    python bench/bench_rsl_rl.py --seeds 0 --iterations 2 --num-envs 16 --eval-every 2 \\
        --eval-seconds 2 --env-threads 1 --torch-threads 1 --json /tmp/rsl_smoke.json  # smoke
    python bench/bench_rsl_rl.py --gpu [--dry-run]   # the GPU measurements of issue 23

``--gpu`` runs the three device measurements of issue 23 (``bench/gpu_checks.py``; only
where torch sees CUDA).  It needs the ``warp`` extra installed.  No test depends on it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

ALGOS = ("trpo", "ppo_clip", "rsl_ppo")
OURS = ("trpo", "ppo_clip")
RSL_STEPS_PER_ENV = 24
#: rsl_rl's PPO for legged robots: legged_gym LeggedRobotCfgPPO.algorithm, the same in
#: Isaac Lab's locomotion-velocity RslRlPpoAlgorithmCfg (keys of rsl_rl 5.x ``PPO``)
RSL_ALGORITHM = {
    "class_name": "PPO", "value_loss_coef": 1.0, "use_clipped_value_loss": True,
    "clip_param": 0.2, "entropy_coef": 0.01, "num_learning_epochs": 5, "num_mini_batches": 4,
    "learning_rate": 1.0e-3, "schedule": "adaptive", "gamma": 0.99, "lam": 0.95,
    "desired_kl": 0.01, "max_grad_norm": 1.0,
}
RSL_INIT_STD = 1.0
LABEL = {"trpo": "ours TRPO", "ppo_clip": "ours PPO-clip", "rsl_ppo": "rsl_rl PPO"}


# -- configs ---------------------------------------------------------------------------------
def env_config(a: argparse.Namespace):
    from policies.config import EnvConfig

    return EnvConfig(num_envs=a.num_envs, threads=a.env_threads)


def our_config(a: argparse.Namespace, algo: str, seed: int):
    """``policies.train.LocomotionConfig``'s learner, with the run's seed, networks, threads."""
    from policies.train import LocomotionConfig

    t = LocomotionConfig().train
    pol = replace(t.policy, actor_hidden=tuple(a.hidden), critic_hidden=tuple(a.hidden))
    run = replace(t.runner, iterations=a.iterations, save_interval=0, log_dir="", seed=seed,
                  progress=False, torch_threads=a.torch_threads, device=a.device)
    return replace(t, algo=replace(t.algo, name=algo), policy=pol, runner=run)


def rsl_config(a: argparse.Namespace) -> dict[str, Any]:
    from policies.train import LocomotionConfig

    act = LocomotionConfig().train.policy.activation
    model = {"class_name": "MLPModel", "hidden_dims": list(a.hidden), "activation": act,
             "obs_normalization": False}
    return {
        "num_steps_per_env": RSL_STEPS_PER_ENV, "save_interval": 10**9,
        "obs_groups": {"actor": ["policy"], "critic": ["policy"]},
        "algorithm": dict(RSL_ALGORITHM),
        "actor": {**model, "distribution_cfg": {"class_name": "GaussianDistribution",
                                                "init_std": RSL_INIT_STD, "std_type": "scalar"}},
        "critic": dict(model),
    }


def steps_per_env(a: argparse.Namespace) -> tuple[int, int]:
    """Our steps per env per iteration, and the run's total steps per env."""
    from policies.train import LocomotionConfig

    ours = LocomotionConfig().train.runner.num_steps_per_env
    if ours % RSL_STEPS_PER_ENV:
        raise SystemExit(f"our num_steps_per_env {ours} is not a multiple of rsl_rl's "
                         f"{RSL_STEPS_PER_ENV}: the budgets would differ")
    return ours, ours * a.iterations


# -- one run (worker process) ----------------------------------------------------------------
class Clock:
    """Training wall-clock since construction, minus the time spent taking snapshots."""

    def __init__(self) -> None:
        self.t0, self.paused = time.perf_counter(), 0.0

    def now(self) -> float:
        return time.perf_counter() - self.t0 - self.paused


def timed(fn, acc: dict[str, float], key: str):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[key] += time.perf_counter() - t
    return wrapper


def curriculum(env_cfg):
    r = env_cfg.rewards
    return lambda i: r.curriculum_start ** (r.curriculum_rate ** i)


def train_ours(a, algo: str, seed: int, clock: Clock, snaps: list, acc: dict) -> tuple[Any, int]:
    from policies.env import LeggedEnv
    from robot_rl.rl.runner import OnPolicyRunner

    ecfg = env_config(a)
    env = LeggedEnv(ecfg, seed=seed)
    env.step = timed(env.step, acc, "env_s")
    cur = curriculum(ecfg)

    def callback(iteration: int, log: dict) -> None:  # as policies.train.train
        env.set_curriculum(cur(iteration))

    runner = OnPolicyRunner.from_config(env, our_config(a, algo, seed), callback=callback)
    runner.algo.update = timed(runner.algo.update, acc, "update_s")
    per_env, _ = steps_per_env(a)
    try:
        while runner.iteration < a.iterations:
            runner.learn(min(a.eval_every, a.iterations - runner.iteration))
            t = time.perf_counter()
            wall = clock.now()
            snaps.append({"iteration": runner.iteration, "env_steps": runner.env_steps,
                          "wall_s": wall, "model": copy.deepcopy(runner.policy).cpu().eval()})
            clock.paused += time.perf_counter() - t
        assert runner.env_steps == a.num_envs * per_env * a.iterations
    finally:
        runner.close()
    return env, runner.env_steps


def train_rsl(a, seed: int, clock: Clock, snaps: list, acc: dict) -> tuple[Any, int]:
    from rsl_rl.runners import OnPolicyRunner as RslRunner
    from rsl_rl_adapter import RslRlLeggedEnv

    from policies.env import LeggedEnv
    from robot_rl.rl.process import seed_everything

    per_env, total_per_env = steps_per_env(a)
    if a.torch_threads > 0:
        import torch

        torch.set_num_threads(a.torch_threads)
    seed_everything(seed)
    ecfg = env_config(a)
    env = LeggedEnv(ecfg, seed=seed)
    venv = RslRlLeggedEnv(env, device=a.device, seed=seed, curriculum=curriculum(ecfg),
                          curriculum_every=per_env)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints both models
        runner = RslRunner(venv, rsl_config(a), log_dir=None, device=a.device)
    runner.alg.update = timed(runner.alg.update, acc, "update_s")
    chunk = a.eval_every * per_env // RSL_STEPS_PER_ENV
    total_it = total_per_env // RSL_STEPS_PER_ENV
    done = 0
    while done < total_it:
        n = min(chunk, total_it - done)
        runner.learn(n)
        done += n
        t = time.perf_counter()
        wall = clock.now()
        model = runner.alg.get_policy().as_onnx(verbose=False).cpu().eval()  # deep copies
        snaps.append({"iteration": done * RSL_STEPS_PER_ENV // per_env,
                      "env_steps": done * RSL_STEPS_PER_ENV * a.num_envs, "wall_s": wall,
                      "model": model})
        clock.paused += time.perf_counter() - t
    acc["env_s"] = venv.env_seconds
    return env, venv.env_calls * a.num_envs


def warm_up(algo: str) -> None:
    """Pay one-off import costs before the clock starts (the first Adam imports
    ``torch._dynamo``, about 1-2 s), so neither side carries them."""
    import torch

    import policies.env  # noqa: F401
    import robot_rl.rl.runner  # noqa: F401

    if algo == "rsl_ppo":
        import rsl_rl.runners  # noqa: F401
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def run_one(a: argparse.Namespace, algo: str, seed: int) -> dict[str, Any]:
    import torch
    from bench_time_to_walk import grade_model

    warm_up(algo)
    acc = {"env_s": 0.0, "update_s": 0.0}
    snaps: list[dict] = []
    clock = Clock()
    if algo == "rsl_ppo":
        env, env_steps = train_rsl(a, seed, clock, snaps, acc)
    else:
        env, env_steps = train_ours(a, algo, seed, clock, snaps, acc)
    train_s = snaps[-1]["wall_s"]
    torch.set_num_threads(max(1, a.torch_threads))
    graded, walk = [], None
    for i, s in enumerate(snaps):
        last = i == len(snaps) - 1
        if walk is not None and not last and not a.grade_all:
            continue
        g = grade_model(s["model"], env, s["iteration"], a.eval_seconds)
        row = {k: s[k] for k in ("iteration", "env_steps", "wall_s")} | g
        graded.append(row)
        if g["pass"] and walk is None:
            walk = row
    env.close()
    final = graded[-1]
    return {
        "algo": algo, "seed": seed, "num_envs": a.num_envs, "env_steps": env_steps,
        "train_s": train_s, "steps_per_s": env_steps / train_s, "env_s": acc["env_s"],
        "update_s": acc["update_s"], "other_s": train_s - acc["env_s"] - acc["update_s"],
        "walk_wall_s": walk["wall_s"] if walk else None,
        "walk_env_steps": walk["env_steps"] if walk else None,
        "final_vx_err": final["vx_err"], "final_yaw_err": final["yaw_err"],
        "final_falls": final["falls"], "graded": graded,
    }


# -- driver ----------------------------------------------------------------------------------
def worker_argv(a: argparse.Namespace, algo: str, seed: int) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", algo, str(seed),
            "--iterations", str(a.iterations), "--num-envs", str(a.num_envs),
            "--eval-every", str(a.eval_every), "--eval-seconds", str(a.eval_seconds),
            "--env-threads", str(a.env_threads), "--torch-threads", str(a.torch_threads),
            "--device", a.device, "--hidden", *map(str, a.hidden)]
    return argv + (["--grade-all"] if a.grade_all else [])


def run_worker(a: argparse.Namespace, algo: str, seed: int) -> dict[str, Any]:
    argv = worker_argv(a, algo, seed)
    p = subprocess.run(argv, capture_output=True, text=True, cwd=HERE.parent)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    sys.stderr.write(p.stdout[-4000:] + p.stderr[-4000:])
    raise SystemExit(f"worker failed ({p.returncode}): {shlex.join(argv)}")


def summarize(results: list[dict], algos: list[str]) -> dict[str, Any]:
    from stats import bootstrap_ci, ratio_ci

    out: dict[str, Any] = {"per_algo": {}, "ratios": {}}
    keys = ("steps_per_s", "train_s", "walk_wall_s", "walk_env_steps", "final_vx_err",
            "final_yaw_err")
    vals = {al: {k: [r[k] for r in results if r["algo"] == al and r[k] is not None]
                 for k in keys} for al in algos}
    for al in algos:
        rows = [r for r in results if r["algo"] == al]
        out["per_algo"][al] = {"seeds": [r["seed"] for r in rows],
                               "walked": sum(r["walk_wall_s"] is not None for r in rows)}
        for k in keys:
            if vals[al][k]:
                out["per_algo"][al][k] = bootstrap_ci(vals[al][k])
    if "rsl_ppo" in algos:
        for al in (x for x in algos if x != "rsl_ppo"):
            out["ratios"][al] = {k: ratio_ci(vals[al][k], vals["rsl_ppo"][k])
                                 for k in keys if vals[al][k] and vals["rsl_ppo"][k]}
    return out


def print_summary(s: dict[str, Any]) -> None:
    from stats import fmt_ci

    print("\nIQM over seeds [bootstrap 95 % interval]:")
    for al, d in s["per_algo"].items():
        parts = [f"{LABEL[al]:14s} seeds {d['seeds']}, walked {d['walked']}/{len(d['seeds'])}"]
        for k, lab, dig in (("steps_per_s", "env steps/s", 0), ("walk_wall_s", "walk s", 0),
                            ("walk_env_steps", "walk env steps", 0),
                            ("final_vx_err", "final vx err", 3), ("final_yaw_err", "yaw err", 3)):
            if k in d:
                parts.append(f"{lab} {fmt_ci(d[k], dig)}")
        print("  " + "; ".join(parts))
    for al, d in s["ratios"].items():
        print(f"ratios {LABEL[al]} / rsl_rl PPO (IQM ratio [95 %]):")
        for k, v in d.items():
            print(f"  {k:15s} {fmt_ci(v)}")


#: settings that must match for runs of two results files to be summarized together
SAME = ("iterations", "num_envs", "eval_every", "eval_seconds", "grade_all", "env_threads",
        "torch_threads", "hidden", "device")


def merged_runs(a: argparse.Namespace) -> list[dict]:
    """The runs of the ``--merge`` files, checked against this invocation's settings; an
    (algorithm, seed) may appear once across them and this run."""
    runs, seen = [], {(algo, seed) for algo in a.algos for seed in a.seeds}
    for path in map(Path, a.merge):
        try:
            data = json.loads(path.read_text())
            args, results = data["args"], data["results"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: fields 'args' and 'results' expected: {e}") from None
        for k in SAME:
            if args.get(k) != getattr(a, k):
                raise ValueError(f"{path}: field 'args.{k}' is {args.get(k)!r}, this run's is "
                                 f"{getattr(a, k)!r}: only runs of the same settings merge")
        for r in results:
            key = (r["algo"], r["seed"])
            if key in seen:
                raise ValueError(f"{path}: {r['algo']} seed {r['seed']} is already in this run or "
                                 "an earlier --merge file")
            seen.add(key)
            runs.append(r)
    return runs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS))
    p.add_argument("--iterations", type=int, default=800,
                   help="budget in our iterations (48 steps per env); rsl_rl runs the same "
                        "env steps in 24-step iterations")
    p.add_argument("--num-envs", type=int, default=128)
    p.add_argument("--eval-every", type=int, default=100,
                   help="snapshot every this many of our iterations (same env steps for rsl_rl)")
    p.add_argument("--eval-seconds", type=float, default=20.0,
                   help="policy-controlled seconds per evaluation command")
    p.add_argument("--grade-all", action="store_true",
                   help="grade every snapshot (default: stop at the first pass, then the last)")
    p.add_argument("--env-threads", type=int, default=0, help="physics threads (0: all cores)")
    p.add_argument("--torch-threads", type=int, default=0,
                   help="torch intra-op threads on both sides (0: torch's default)")
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 128],
                   help="hidden widths of actor and critic, both sides")
    p.add_argument("--device", default="cpu", help="torch device of both learners")
    p.add_argument("--json", default=None, help="results file [bench/results/rsl_rl_....json]")
    p.add_argument("--merge", nargs="+", default=[], metavar="JSON",
                   help="earlier results files of the same settings: their runs join this "
                        "one's in the summary (more seeds without rerunning the first)")
    p.add_argument("--worker", nargs=2, metavar=("ALGO", "SEED"), help=argparse.SUPPRESS)
    p.add_argument("--gpu", action="store_true", help="run issue 23's GPU measurements")
    p.add_argument("--dry-run", action="store_true", help="with --gpu: print the commands")
    p.add_argument("--gpu-out", default="bench/out/gpu", help="--gpu: run folder")
    p.add_argument("--gpu-envs", type=int, default=4096)
    p.add_argument("--gpu-iterations", type=int, default=300)
    p.add_argument("--gpu-every", type=int, default=20)
    a = p.parse_args()
    if a.gpu:
        from gpu_checks import gpu_mode

        return gpu_mode(a)
    if a.worker:
        algo, seed = a.worker[0], int(a.worker[1])
        print("RESULT " + json.dumps(run_one(a, algo, seed)), flush=True)
        return 0
    try:
        import rsl_rl  # noqa: F401
    except ImportError:
        if "rsl_ppo" in a.algos:
            raise SystemExit("rsl_rl is not installed: pip install rsl-rl-lib") from None
    try:
        earlier = merged_runs(a)
    except ValueError as e:
        print(f"bench_rsl_rl: {e}", file=sys.stderr)
        return 2
    _, total = steps_per_env(a)
    print(f"{a.num_envs} envs x {total} steps per env = {a.num_envs * total} env steps per run; "
          f"seeds {a.seeds}; algos {a.algos}; env threads {a.env_threads}, torch threads "
          f"{a.torch_threads}, hidden {a.hidden}, device {a.device}", flush=True)
    results = []
    for seed in a.seeds:
        for algo in a.algos:
            r = run_worker(a, algo, seed)
            results.append(r)
            walk = (f"walked at {r['walk_wall_s']:.0f} s / {r['walk_env_steps']} steps"
                    if r["walk_wall_s"] is not None else "did not walk")
            print(f"{LABEL[algo]:14s} seed {seed}: {r['steps_per_s']:.0f} env steps/s "
                  f"(train {r['train_s']:.1f} s = env {r['env_s']:.1f} + update "
                  f"{r['update_s']:.1f} + other {r['other_s']:.1f}); {walk}; final vx err "
                  f"{r['final_vx_err']:.3f} yaw err {r['final_yaw_err']:.3f} falls "
                  f"{r['final_falls']}", flush=True)
    summary = summarize(earlier + results, a.algos)
    print_summary(summary)
    path = Path(a.json) if a.json else HERE / "results" / (
        f"rsl_rl_{a.num_envs}envs_{a.iterations}it_seeds{'_'.join(map(str, a.seeds))}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"args": {k: v for k, v in vars(a).items() if k != "worker"},
                                "cpu_count": os.cpu_count(), "merged": a.merge,
                                "results": earlier + results,
                                "summary": summary}, indent=1, default=_nan_safe))
    print(f"results: {path}")
    return 0


def _nan_safe(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


if __name__ == "__main__":
    sys.exit(main())
