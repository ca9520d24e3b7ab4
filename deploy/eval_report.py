"""The evaluation's outputs: report JSON and markdown, the sim-to-sim comparison, the
velocity plot and the rollout GIF (each written atomically), for :mod:`deploy.evaluate`."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from deploy.runtime import Mode
from robot_rl.config import atomic_write_bytes, atomic_write_json

#: metrics of a report (averaged over episodes), with units, in report order
METRICS = (("vx_abs_err", "m/s"), ("yaw_abs_err", "rad/s"), ("falls", "-"),
                   ("faults", "-"), ("torque_mean", "N m"), ("power_mean", "W"),
                   ("policy_seconds", "s"))
#: metrics of a report on a terrain tile, added to :data:`METRICS`
TERRAIN_METRICS = (("success_rate", "-"), ("distance_mean", "m"))


def _metrics(*reports: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The report metrics to show: :data:`METRICS`, and :data:`TERRAIN_METRICS` when any
    of ``reports`` ran on a terrain tile."""
    return METRICS + (TERRAIN_METRICS if any(r.get("terrain") for r in reports) else ())


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def compare_reports(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Side-by-side metrics and per-command vx error of two reports (gap = a - b)."""
    rows = []
    for key, unit in _metrics(a, b):
        va, vb = a["metrics"].get(key), b["metrics"].get(key)
        gap = va - vb if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else None
        rows.append({"metric": key, "unit": unit, a["sim"]: va, b["sim"]: vb, "gap": gap})
    per_cmd = []
    for ea, eb in zip(a["episodes"], b["episodes"]):
        if ea["command"] != eb["command"]:
            continue
        per_cmd.append({"command": ea["command"],
                        **{f"{a['sim']}_{k}": ea[k] for k in ("vx_abs_err", "yaw_abs_err", "fell")},
                        **{f"{b['sim']}_{k}": eb[k] for k in ("vx_abs_err", "yaw_abs_err", "fell")}})
    return {"a": a["sim"], "b": b["sim"], "a_policy": a["policy"], "b_policy": b["policy"],
            "metrics": rows, "per_command": per_cmd}


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}" if math.isfinite(v) else str(v)
    return str(v)


def report_markdown(report: dict[str, Any]) -> str:
    """The human-readable report."""
    s = report["metrics"]
    cfg = report["config"]
    lines = [f"# Evaluation in {report['sim']} ({report['robot']})", "",
             f"- policy: `{report['policy']}` (iteration {report['model']['iteration']})",
             f"- episodes: {s['episodes']} x {cfg['seconds']} s of policy control after a "
             f"{_safety(cfg)['hold_s']} s hold and {_safety(cfg)['ramp_s']} s ramp; tracking measured after "
             f"{cfg['settle_s']} s",
             f"- simulated {report['timing']['simulated_s']:.1f} s in "
             f"{report['timing']['wall_s']:.1f} s wall; controller step in POLICY mode: p50 "
             f"{_fmt(report['timing']['policy_step_us_p50'])} us, p99 "
             f"{_fmt(report['timing']['policy_step_us_p99'])} us", ""]
    if report.get("sim") == "mujoco":
        lines.insert(3, "- joints driven by " + (f"the actuator network `{report['actuator']}`"
                                                 if report.get("actuator") else "an ideal PD"))
    if report.get("sysid"):
        lines.insert(3, f"- sysid parameters: `{report['sysid']}`")
    if report.get("standin"):
        st = report["standin"]
        lines.insert(3, f"- reality (stand-in): `{st['config_file']}`, hidden-physics seed "
                        f"{st['seed']}" + (f"; pushes of {cfg['push_speed']} m/s every "
                                           f"{cfg['push_interval_s']} s" if cfg.get("push_interval_s") else ""))
    if report.get("terrain"):
        t = report["terrain"]
        lines.insert(3, f"- terrain: {t['kind']}, difficulty {t['difficulty']}, seed {t['seed']}: "
                        f"success = walked {t['goal_distance_m']:.2f} m from the spawn point "
                        "without falling")
    lines += ["## Metrics", "", "| metric | value | unit |", "|---|---|---|"]
    for key, unit in _metrics(report):
        lines.append(f"| {key} | {_fmt(s.get(key))} | {unit} |")
    lines += ["", "## Episodes", "",
              "| vx cmd | vy cmd | yaw cmd | vx mean | vy mean | yaw mean | vx err | vy err | yaw err "
              "| torque | power | tilt at handover (deg) | fell | fault |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in report["episodes"]:
        c = e["command"]
        lines.append(f"| {c['vx']:+.2f} | {c['vy']:+.2f} | {c['yaw_rate']:+.2f} | "
                     f"{_fmt(e['vx_mean'])} | {_fmt(e.get('vy_mean'))} | {_fmt(e.get('yaw_mean'))} | "
                     f"{_fmt(e['vx_abs_err'])} | {_fmt(e['vy_abs_err'])} | {_fmt(e['yaw_abs_err'])} | "
                     f"{_fmt(e['torque_mean'])} | {_fmt(e['power_mean'])} | "
                     f"{_fmt(e.get('handover_tilt_deg'))} | {_fmt(e['fell'])} | "
                     f"{e['fault'] or '-'} |")
    comp = report.get("compare")
    if comp:
        a, b = comp["a"], comp["b"]
        lines += ["", f"## Sim-to-sim gap ({a} vs {b})", "",
                  f"{b} report: policy `{comp['b_policy']}`", "",
                  f"| metric | {a} | {b} | gap ({a} - {b}) | unit |", "|---|---|---|---|---|"]
        for r in comp["metrics"]:
            lines.append(f"| {r['metric']} | {_fmt(r[a])} | {_fmt(r[b])} | {_fmt(r['gap'])} "
                         f"| {r['unit']} |")
        if comp["per_command"]:
            lines += ["", f"| vx cmd | yaw cmd | vx err {a} | vx err {b} | fell {a} | fell {b} |",
                      "|---|---|---|---|---|---|"]
            for r in comp["per_command"]:
                c = r["command"]
                lines.append(f"| {c['vx']:+.2f} | {c['yaw_rate']:+.2f} | "
                             f"{_fmt(r[f'{a}_vx_abs_err'])} | {_fmt(r[f'{b}_vx_abs_err'])} | "
                             f"{_fmt(r[f'{a}_fell'])} | {_fmt(r[f'{b}_fell'])} |")
    files = report.get("files")
    if files:
        lines += ["", "## Files", ""] + [f"- `{f}`" for f in files]
        if "rollout.gif" in files:
            lines += ["", "![rollout](rollout.gif)"]
        for f in files:
            if f.endswith(".png"):
                lines += ["", f"![{f}]({f})"]
    return "\n".join(lines) + "\n"


def plot_velocity(traces: list[dict[str, np.ndarray]], sim: str) -> bytes:
    """PNG: commanded vs measured forward velocity and yaw rate, episodes side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    offset = 0.0
    for i, d in enumerate(traces):
        t = d["t"] + offset
        for ax, key, col in ((axes[0], "vx", 0), (axes[1], "yaw", 2)):
            ax.plot(t, d[key], color="tab:blue", lw=0.8, label="measured" if i == 0 else None)
            ax.plot(t, d["command"][:, col], color="tab:orange", lw=1.2,
                    label="commanded" if i == 0 else None)
            ax.axvline(offset, color="0.8", lw=0.6)
            start = t[d["mode"] != Mode.POLICY.value]
            if start.size:  # the start sequence (HOLD, RAMP) and any DAMPING, shaded
                ax.axvspan(start[0], min(start[-1], t[-1]), color="0.92", lw=0)
        offset = t[-1] + 0.5 if len(t) else offset
    axes[0].set_ylabel("forward velocity (m/s)")
    axes[1].set_ylabel("yaw rate (rad/s)")
    axes[1].set_xlabel("time (s), episodes one after another")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[0].set_title(f"{sim}: commanded vs measured (base frame)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def gif_bytes(frames: list[np.ndarray], fps: int) -> bytes:
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", np.stack(frames), extension=".gif",
                       duration=int(1000 / fps), loop=0)


def write_outputs(out: Path, report: dict[str, Any], traces, frames, fps: int,
                  compare: str | Path | None = None) -> None:
    """Write the report files, plot and GIF (each atomically) and the headline report."""
    out.mkdir(parents=True, exist_ok=True)
    sim = report["sim"]
    files = [f"report_{sim}.json", f"report_{sim}.md", f"velocity_{sim}.png"]
    atomic_write_bytes(out / f"velocity_{sim}.png", plot_velocity(traces, sim))
    if frames:
        atomic_write_bytes(out / "rollout.gif", gif_bytes(frames, fps))
        files.append("rollout.gif")
    report["files"] = files
    other = None
    if compare is not None:
        other = json.loads(Path(compare).read_text())
    else:
        peer = out / f"report_{'mujoco' if sim == 'pybullet' else 'pybullet'}.json"
        if peer.exists():
            other = json.loads(peer.read_text())
    if other is not None:
        report["compare"] = compare_reports(report, other)
    atomic_write_json(out / f"report_{sim}.json", report)
    atomic_write_bytes(out / f"report_{sim}.md", report_markdown(report).encode())
    # the headline: the PyBullet (stand-in) report when there is one, with the gap table
    pb_path = out / "report_pybullet.json"
    head = report
    if sim == "mujoco" and pb_path.exists():
        head = json.loads(pb_path.read_text())
        head["compare"] = compare_reports(head, report)
    atomic_write_json(out / "report.json", head)
    atomic_write_bytes(out / "report.md", report_markdown(head).encode())


def _safety(cfg: dict[str, Any]) -> dict[str, Any]:
    """The start sequence of a report's config (reports before EvalConfig.safety: top level)."""
    return cfg.get("safety", cfg)
