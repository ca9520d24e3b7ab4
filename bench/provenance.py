"""Where a benchmark ran: the CPU model and the git commit, recorded with its results."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def machine() -> str:
    """The CPU model (``lscpu``), or what ``platform`` knows."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def commit() -> str:
    """The short hash of the repository's HEAD, or "" outside git."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
