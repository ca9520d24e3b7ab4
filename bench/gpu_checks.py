"""Issue 23's device measurements, with the project's existing tools.

``gpu_update()`` (``python bench/bench_trpo.py --gpu-update``) times one TRPO update with
4096 envs' worth of synthetic data on CPU and on CUDA.  ``gpu_mode(a)`` (``python
bench/bench_rsl_rl.py --gpu [--dry-run]``) runs the three measurements in turn: that
update, MuJoCo Warp env throughput at 1024-8192 worlds (``bench_warp.py``), and time to
walk with ``--physics warp`` on the GPU (``robot-rl train`` then
``bench_time_to_walk.py --run``).  Both say so and stop where torch sees no CUDA device.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

#: the repository root, where the commands of gpu_mode run
ROOT = Path(__file__).resolve().parent.parent


def time_update(device: str, repeats: int = 3) -> float:
    """Seconds for one TRPO update (defaults of AlgoConfig) on 4096 envs x 24 steps of synthetic data."""
    from robot_rl.rl import ActorCritic, AlgoConfig, PolicyConfig, make_algorithm

    num_envs, num_steps, obs_dim, act_dim = 4096, 24, 48, 12
    torch.manual_seed(0)
    policy = ActorCritic(
        obs_dim,
        act_dim,
        PolicyConfig(actor_hidden=(512, 256, 128), critic_hidden=(512, 256, 128), activation="elu"),
    )
    algo = make_algorithm(AlgoConfig(name="trpo"), policy, device)
    algo.init_storage(num_envs, num_steps, obs_dim, act_dim)
    dev = torch.device(device)
    no = torch.zeros(num_envs, dtype=torch.bool, device=dev)

    def fill():
        for _ in range(num_steps):
            obs = torch.randn(num_envs, obs_dim, device=dev)
            a = algo.act(obs)
            algo.process_env_step(-(a - obs[:, :act_dim]).pow(2).sum(-1), no, no)
        algo.compute_returns(torch.randn(num_envs, obs_dim, device=dev))

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    fill()
    algo.update()  # warm-up (allocator, kernels)
    times = []
    for _ in range(repeats):
        fill()
        sync()
        t0 = time.perf_counter()
        algo.update()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def gpu_update() -> None:
    if not torch.cuda.is_available():
        print("gpu-update: skipped (torch.cuda.is_available() is False on this machine)")
        return
    cpu = time_update("cpu")
    cuda = time_update("cuda")
    print(
        "one TRPO update, 4096 envs x 24 steps (98304 samples), obs 48, act 12, "
        "MLP 512-256-128 elu, 10 CG iters, value 5 epochs x 4 minibatches"
    )
    print(f"  cpu  ({torch.get_num_threads()} threads): {cpu:.3f} s")
    print(f"  cuda ({torch.cuda.get_device_name()}): {cuda:.3f} s")
    print(f"  speed-up cpu/cuda: {cpu / cuda:.1f}x")


def gpu_mode(a: argparse.Namespace) -> int:
    """The three device measurements of issue 23, with the project's existing tools."""
    py = sys.executable
    run_dir = Path(a.gpu_out) / "ttw_warp"
    cmds = [
        [py, "bench/bench_trpo.py", "--gpu-update"],
        *[[py, "bench/bench_warp.py", "--device", "cuda:0", "--num-envs", str(n)]
          for n in (1024, 2048, 4096, 8192)],
        [py, "-m", "robot_rl.app.cli", "train", "--physics", "warp", "--physics-device", "cuda:0",
         "--device", "cuda", "--num-envs", str(a.gpu_envs), "--iterations",
         str(a.gpu_iterations), "--out", str(run_dir), "--quiet"],
        [py, "bench/bench_time_to_walk.py", "--run", str(run_dir), "--every",
         str(a.gpu_every)],
    ]
    if a.dry_run:
        print("\n".join(shlex.join(c) for c in cmds))
        return 0
    if not torch.cuda.is_available():
        print("--gpu: skipped (torch.cuda.is_available() is False: no GPU on this machine)")
        return 0
    for c in cmds:
        print(f"$ {shlex.join(c)}", flush=True)
        t = time.perf_counter()
        rc = subprocess.run(c, cwd=ROOT).returncode
        print(f"  [{time.perf_counter() - t:.1f} s, rc {rc}]", flush=True)
    return 0
