"""Validation plots: measured vs predicted torque (matplotlib Agg, rendered to PNG bytes).

Uses ``matplotlib.figure.Figure`` with the Agg canvas directly, so no global pyplot state
or backend is touched.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Longest stretch of validation time drawn in the time-series plot (s).
MAX_PLOT_SECONDS = 10.0


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return math.ceil(n / cols), cols


def validation_plots(result) -> dict[str, bytes]:
    """``validation_torque.png`` (time series, first log) and ``validation_scatter.png``."""
    va, names = result.val, result.joint_names
    rm = result.metrics["rmse_nm"]
    rows, cols = _grid(len(names))
    out = {}

    sel = va.series == va.series[0]
    sel &= va.time <= va.time[sel][0] + MAX_PLOT_SECONDS
    t = va.time[sel] - va.time[sel][0]
    fig = Figure(figsize=(5 * cols, 2.8 * rows), layout="constrained")
    for j, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, j + 1)
        ax.plot(t, va.y[sel, j], color="k", lw=1.2, label="measured")
        ax.plot(t, result.pred_net[sel, j], color="tab:red", lw=1.0,
                label=f"network ({rm['network']['per_joint'][name]:.3g} N m)")
        ax.plot(t, result.pred_fit[sel, j], color="tab:blue", lw=0.8, alpha=0.6,
                label=f"best-fit PD ({rm['best_fit_pd']['per_joint'][name]:.3g})")
        if result.pred_ideal is not None:
            ax.plot(t, result.pred_ideal[sel, j], color="tab:green", lw=0.8, alpha=0.5,
                    label=f"ideal PD ({rm['ideal_pd']['per_joint'][name]:.3g})")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("validation time (s)")
        ax.set_ylabel("torque (N m)")
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"validation: measured vs predicted torque ({Path(result.sources[0]).name})",
                 fontsize=9)
    out["validation_torque.png"] = _png(fig)

    fig = Figure(figsize=(3.6 * cols, 3.4 * rows), layout="constrained")
    for j, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, j + 1)
        y, p = va.y[:, j], result.pred_net[:, j]
        lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=0.8)
        ax.scatter(y, p, s=2, alpha=0.3, color="tab:red")
        ax.set_title(f"{name}: RMSE {rm['network']['per_joint'][name]:.3g} N m", fontsize=9)
        ax.set_xlabel("measured (N m)")
        ax.set_ylabel("network (N m)")
    out["validation_scatter.png"] = _png(fig)
    return out

