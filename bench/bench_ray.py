"""Rollout collection on Ray workers against the single-process collector (issue 9).

Measures, in one run and on the same env config:

* ``single``: ``OnPolicyRunner.collect()`` over one ``LeggedEnv`` with all ``--num-envs``
  envs (physics threads = ``--threads``, default all cores), and the same with one thread;
* ``ray xM``: ``DistributedRunner.collect()`` with M local workers (M = 1, 2), the envs
  split among them, one physics thread each: broadcast, worker rollouts, transfer, the
  learner's batched recomputation of values/log-probs and the storage fill;
* ``ray x2 per-step``: the plain runner stepping ``RayVectorEnv`` (one round trip a step);
* the learner's ``algo.update()`` time (the default TRPO config) at two batch sizes, for
  the scaling projection in bench/RESULTS.md.

Env steps per second are the median of ``--repeats`` collections after one warm-up.
Run: ``python bench/bench_ray.py [--num-envs 32] [--steps 48] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # noqa: E402

from policies.env import LeggedEnv  # noqa: E402
from policies.train import LocomotionConfig, make_env  # noqa: E402
from robot_rl.config import apply_overrides  # noqa: E402
from robot_rl.rl.algorithms import make_algorithm  # noqa: E402
from robot_rl.rl.distributed import DistributedRunner, RayVectorEnv, init_ray  # noqa: E402
from robot_rl.rl.models import ActorCritic  # noqa: E402
from robot_rl.rl.runner import OnPolicyRunner  # noqa: E402


def _cfg(num_envs: int, steps: int, threads: int):
    return apply_overrides(LocomotionConfig(), {
        "env.num_envs": num_envs, "env.threads": threads,
        "train.runner.num_steps_per_env": steps, "train.runner.progress": False,
        "train.runner.device": "cpu", "train.runner.save_interval": 0})


def _collect_sps(runner: OnPolicyRunner, repeats: int) -> float:
    n = runner.cfg.num_steps_per_env * runner.num_envs
    runner.collect()
    runner.algo.storage.clear()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        runner.collect()
        times.append(time.perf_counter() - t)
        runner.algo.storage.clear()
    return n / statistics.median(times)


def _update_s(runner: OnPolicyRunner, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        runner.collect()
        t = time.perf_counter()
        runner.algo.update()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-envs", type=int, default=32)
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="single-process physics threads")
    a = ap.parse_args()
    N, T = a.num_envs, a.steps
    threads = a.threads or os.cpu_count() or 1
    print(f"{N} envs x {T} steps per collection, {os.cpu_count()} cores, "
          f"single-process physics threads {threads}")

    cfg = _cfg(N, T, threads)
    single = OnPolicyRunner.from_config(LeggedEnv(cfg.env, seed=0), cfg.train)
    sps = {"single": _collect_sps(single, a.repeats)}
    upd = {N * T: _update_s(single, a.repeats)}
    c1 = _cfg(N, T, 1)
    sps["single 1 thread"] = _collect_sps(
        OnPolicyRunner.from_config(LeggedEnv(c1.env, seed=0), c1.train), a.repeats)
    big = _cfg(4 * N, T, threads)
    single4 = OnPolicyRunner.from_config(LeggedEnv(big.env, seed=0), big.train)
    upd[4 * N * T] = _update_s(single4, max(a.repeats - 1, 1))

    init_ray(num_cpus=os.cpu_count())
    wcfg = _cfg(N, T, 1)
    factory = partial(make_env, wcfg.env, None, None)
    for m in (1, 2):
        r = DistributedRunner.from_factory(factory, N, m, wcfg.train)
        sps[f"ray x{m}"] = _collect_sps(r, a.repeats)
        r.close()
    env = RayVectorEnv(factory, N, 2, policy_cfg=wcfg.train.policy)
    policy = ActorCritic(single.obs_dim, single.action_dim, wcfg.train.policy)
    r = OnPolicyRunner(env, make_algorithm(wcfg.train.algo, policy, "cpu"), wcfg.train.runner)
    sps["ray x2 per-step"] = _collect_sps(r, 1)
    env.close()
    ray.shutdown()

    print(f"\n{'collector':<18} {'env steps/s':>12} {'vs single':>10}")
    for k, v in sps.items():
        print(f"{k:<18} {v:12.0f} {v / sps['single']:10.2f}")
    print("\nlearner update (TRPO, default config): " + ", ".join(
        f"batch {b}: {t * 1e3:.0f} ms" for b, t in upd.items()))
    (b0, t0), (b1, t1) = sorted(upd.items())
    slope = (t1 - t0) / (b1 - b0)
    print(f"update time ~ {t0 - slope * b0:.3f} s + {slope * 1e6:.2f} us x batch")


if __name__ == "__main__":
    main()
