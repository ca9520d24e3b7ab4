"""Figures of stage 1 (matplotlib, Agg backend, PNG), written atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from robot_rl.config import atomic_write_bytes  # noqa: E402
from robot_rl.logs import RobotLog  # noqa: E402
from robot_rl.robot import RobotDescription  # noqa: E402
from sysid.model import kind_of  # noqa: E402
from sysid.replay import Replay  # noqa: E402


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def plot_replay(path: Path, robot: RobotDescription, log: RobotLog, nom: Replay, ident: Replay,
                max_windows: int = 8) -> Path:
    """Measured vs simulated joint angles on held-out windows, nominal and identified model."""
    nj = robot.num_joints
    ncol = 3 if nj % 3 == 0 else 4
    nrow = int(np.ceil(nj / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 2.2 * nrow), sharex=True, squeeze=False)
    n = nom.q_sim.shape[1]
    w = 1  # consecutive windows of the first held-out stretch
    while w < min(max_windows, len(nom.starts)) and nom.starts[w] - nom.starts[w - 1] == n:
        w += 1
    t0 = log.time[nom.starts[0]]
    for j in range(nj):
        ax = axes[j // ncol, j % ncol]
        for k, s in enumerate(nom.starts[:w]):
            t = log.time[s:s + n + 1] - t0
            ax.plot(t, log.q[s:s + n + 1, j], color="k", lw=1.2, label="measured" if k == 0 else None)
            ax.plot(t, np.r_[log.q[s, j], nom.q_sim[k, :, j]], color="tab:red", lw=0.9,
                    label="nominal model" if k == 0 else None)
            ax.plot(t, np.r_[log.q[s, j], ident.q_sim[k, :, j]], color="tab:blue", lw=0.9, ls="--",
                    label="identified model" if k == 0 else None)
            ax.axvline(t[0], color="0.85", lw=0.6)
        ax.set_title(f"{robot.joint_names[j]}  RMSE {ident.rmse_per_joint[j]:.3f} / "
                     f"{nom.rmse_per_joint[j]:.3f} rad", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="best")
    for ax in axes[-1]:
        ax.set_xlabel("time (s), held-out windows", fontsize=8)
    fig.suptitle(f"{robot.name}: held-out open-loop torque replay ({n * log.control_dt:.2f} s windows "
                 f"from the logged state); RMSE identified {ident.rmse:.4f} rad vs nominal "
                 f"{nom.rmse:.4f} rad", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_params(path: Path, table: dict[str, dict[str, Any]]) -> Path:
    """Fitted value +- 2 std and randomization range per parameter, grouped by kind."""
    kinds: dict[str, list[str]] = {}
    for name in table:
        kinds.setdefault(kind_of(name), []).append(name)
    fig, axes = plt.subplots(len(kinds), 1, figsize=(11, 2.1 * len(kinds)), squeeze=False)
    for ax, (kind, names) in zip(axes[:, 0], kinds.items()):
        x = np.arange(len(names))
        v = np.array([table[n]["fitted"] for n in names])
        s = np.array([table[n]["std"] for n in names])
        lo = np.array([table[n]["range"][0] for n in names])
        hi = np.array([table[n]["range"][1] for n in names])
        ok = np.array([table[n]["identifiable"] for n in names])
        ax.bar(x, hi - lo, bottom=lo, color=np.where(ok, "tab:blue", "0.8"), alpha=0.3, width=0.6,
               label="randomization range")
        ax.errorbar(x[ok], v[ok], yerr=2 * s[ok], fmt="o", color="tab:blue", ms=3, label="fitted +- 2 std")
        ax.plot(x, [table[n]["nominal"] for n in names], "x", color="tab:red", label="nominal (URDF)")
        ax.set_xticks(x, [n.split("/", 1)[-1] for n in names], fontsize=6, rotation=30)
        ax.set_xlim(-0.7, max(len(names), 4) - 0.3)
        ax.set_ylabel(f"{kind}\n({table[names[0]]['unit']})", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, ncol=3)
    fig.suptitle("identified parameters (grey: not identifiable, whole physical range)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_friction(path: Path, ratio: np.ndarray, speed: np.ndarray, entry: dict[str, Any],
                  slip_speed: float) -> Path:
    """|F_t| / F_n of loaded feet against contact-point speed, with the friction estimate."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(speed, ratio, s=2, alpha=0.3)
    ax.axvline(slip_speed, color="0.5", ls=":", label="slip threshold")
    if entry["identifiable"]:
        ax.axhline(entry["fitted"], color="tab:red", label=f"mu = {entry['fitted']:.3f}")
    ax.axhspan(*entry["range"], color="tab:red", alpha=0.1, label="range")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlim(0, max(1.0, float(np.nanmax(speed)) if len(speed) else 1.0))
    ax.set_ylim(0, max(2.0, entry["range"][1] * 1.1))
    ax.set_xlabel("foot contact-point speed (m/s)")
    ax.set_ylabel("|F_t| / F_n")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
