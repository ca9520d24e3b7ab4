"""A training run's process-wide state: seeding, threads and device; the random generators'
state a checkpoint carries; the git state a run folder records.
"""

from __future__ import annotations

import os
import random
import subprocess
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python ``random``, numpy, torch (CPU and CUDA); optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def limit_threads(torch_threads: int, blas_threads: int) -> None:
    """Set torch's intra-op threads and numpy's BLAS threads for the rest of the process
    (0 leaves a library's default).  Idle BLAS workers spin-wait for the next matmul and
    take the cores the physics threads need during rollouts."""
    if torch_threads > 0:
        torch.set_num_threads(torch_threads)
    if blas_threads > 0:
        threadpool_limits(limits=blas_threads, user_api="blas")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def rng_state() -> dict[str, Any]:
    """The python, numpy, torch (and CUDA) generators' states, as a checkpoint stores them
    (tensors, so ``torch.load(weights_only=True)`` reads them back)."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators from :func:`rng_state`'s dict."""
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def git_state() -> dict[str, Any] | None:
    """``{"commit": HEAD, "status": porcelain lines}`` of the working directory's git tree,
    or None when git is missing or this is not a git tree."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "status": dirty.splitlines()}
