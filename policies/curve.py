"""Read a training run's TensorBoard scalars (for reports and for watching a run)."""

from __future__ import annotations

import sys
from pathlib import Path


def read_scalars(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """All scalar series of a run folder: tag -> [(iteration, value), ...]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    s = read_scalars(argv[0])
    tags = argv[1:] or ["episode/return_mean", "episode/length_mean", "reward/lin_vel", "train/kl"]
    for tag in tags:
        series = s.get(tag, [])
        tail = series[-1] if series else None
        print(f"{tag:28s} n={len(series):5d} last={tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
