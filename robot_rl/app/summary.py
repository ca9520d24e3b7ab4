"""The pipeline's ``summary.md`` and ``summary.html``: every stage's figures, read from the
artifacts of a run folder (none typed in by hand).

Sections, each present when its artifacts are: 1. system identification
(``sysid/params.json`` and its plots), 2. actuator network (``actuator/metrics.json``),
3. policy training (the TensorBoard scalars of ``policy/``, with the return curve), 4.
deployment (``eval/<sim>/report.json``, against baseline (a) when
``eval/baseline_pd/report.json`` exists, and the onboard step timing), then the rounds
table (:func:`robot_rl.app.rounds.rounds_table`).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path

from robot_rl.config import atomic_write_bytes


def _fmt(x, nd=3) -> str:
    if isinstance(x, bool) or isinstance(x, int):
        return str(x)
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def write_summary(out: Path, budgets: Mapping[str, Mapping]) -> Path:
    """summary.md and summary.html from the artifacts (no figure is typed in by hand).

    ``budgets`` are the pipeline's (:data:`robot_rl.app.pipeline.BUDGETS`): the run's
    budget, read from ``pipeline.json``, gives baseline (a)'s iteration count."""
    lines = [f"# robot_rl pipeline: {out.name}", ""]
    meta = json.loads((out / "pipeline.json").read_text())
    lines += [f"Robot `{meta['robot']}`, budget `{meta['budget']}`, seed {meta['seed']}; logs "
              f"from and PyBullet evaluation on the stand-in "
              f"`{meta.get('standin_config') or 'robot_rl/standin/default.json'}`.", ""]
    if meta.get("train_set"):
        lines += ["Training config overrides (`--set`, every training run): "
                  + ", ".join(f"`{kv}`" for kv in meta["train_set"]) + ".", ""]
    images: list[Path] = []
    p = out / "sysid" / "params.json"
    if p.exists():
        params = json.loads(p.read_text())
        method = params.get("method", "?")
        method_lines = ([f"- **{k}**: {v}" for k, v in method.items()] if isinstance(method, dict)
                        else [f"Method: {method}"])
        val = params.get("validation", {})
        if "ratio" in val:
            method_lines.append(f"- **held-out replay RMSE**: identified / nominal model = "
                                f"{val['ratio']:.3f}")
        from sysid.artifact import describe_floor  # stage 1's artifact, its owner's words

        floor = describe_floor((params.get("ground") or {}).get("floor") or {})
        if floor:
            method_lines.append(f"- **floor**: {floor}")
        lines += ["## 1. System identification", "", *method_lines, "",
                  "| parameter | nominal | fitted | std | identifiable | randomization range |",
                  "|---|---|---|---|---|---|"]
        for k, v in params["parameters"].items():
            rng = v.get("range", ["?", "?"])
            lines.append(f"| {k} | {_fmt(v.get('nominal'), 4)} | {_fmt(v.get('fitted'), 4)} | "
                         f"{_fmt(v.get('std'), 4)} | {v.get('identifiable', '?')} | "
                         f"[{_fmt(rng[0], 4)}, {_fmt(rng[1], 4)}] |")
        lines.append("")
        images += sorted((out / "sysid").glob("*.png"))
    p = out / "actuator" / "metrics.json"
    if p.exists():
        m = json.loads(p.read_text())
        lines += ["## 2. Actuator network", "", "Validation RMSE (N m) on the held-out end of each log:", ""]
        rmse = m.get("rmse_nm", {})
        models = [k for k in ("network", "ideal_pd", "best_fit_pd") if isinstance(rmse.get(k), dict)]
        if models:
            lines += ["| joint | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
            for joint in [*rmse[models[0]].get("per_joint", {}), "overall"]:
                vals = [rmse[k]["overall"] if joint == "overall" else rmse[k]["per_joint"].get(joint)
                        for k in models]
                lines.append(f"| {joint} | " + " | ".join(_fmt(v) for v in vals) + " |")
        lines.append("")
        images += sorted((out / "actuator").glob("*.png"))
    if (out / "policy").exists():
        lines += ["## 3. Policy training", ""]
        try:
            from policies.curve import read_scalars

            s = read_scalars(out / "policy")
            ret = s.get("episode/return_mean", [])
            if ret:
                lines.append(f"Episode return: first {ret[0][1]:.2f} (iteration {ret[0][0]}), "
                             f"last {ret[-1][1]:.2f} (iteration {ret[-1][0]}).")
            fps = s.get("perf/fps", [])
            if fps:
                lines.append(f"Throughput: {sum(v for _, v in fps) / len(fps):.0f} env steps/s (mean).")
            curve = _plot_curve(s, out / "policy" / "curve.png")
            if curve:
                images.append(curve)
        except Exception as e:  # noqa: BLE001
            lines.append(f"(training curve unavailable: {e})")
        lines.append("")
    rows, mujoco_world = {}, "an ideal PD"
    for sim in ("mujoco", "pybullet"):
        p = out / "eval" / sim / "report.json"
        if p.exists():
            report = json.loads(p.read_text())
            rows[sim] = report.get("metrics", {})
            images += sorted((out / "eval" / sim).glob("*.png"))
            if sim == "mujoco" and report.get("actuator"):
                mujoco_world = "stage 2's actuator network driving the joints (phase 3's world)"
    if rows:
        keys = sorted({k for r in rows.values() for k in r if isinstance(r[k], (int, float))})
        lines += ["## 4. Deployment: evaluation", "",
                  "MuJoCo: the training simulator with stage 1's identified parameters applied "
                  f"(`--sysid`) and {mujoco_world}; PyBullet: the hardware stand-in the logs "
                  "came from (its reference actuator and hidden physics).", "",
                  "| metric | " + " | ".join(rows) + " |",
                  "|---|" + "---|" * len(rows)]
        for k in keys:
            lines.append(f"| {k} | " + " | ".join(_fmt(rows[s].get(k, float('nan'))) for s in rows) + " |")
        lines.append("")
    sel = out / "select" / "select.json"
    if sel.exists():
        from deploy.select import markdown as select_markdown  # the report's owner

        r = json.loads(sel.read_text())
        lines += ["### Which candidate was deployed", "",
                  "Both candidates, trained to the same iteration (randomized: phase 2's "
                  "broad hand-set randomization continued, no identification; identified: "
                  "phase 3, fine-tuned with the identified parameters and the actuator "
                  "network), ran " + ("on the robot and in the identified simulator; the "
                                      "robot's scores decide; " if r.get("judge") == "robot"
                                      else "in the identified simulator; ") +
                  f"`{r['chosen']}` is `policy.onnx`.", "",
                  select_markdown(r)]
    pb_path, base_path = out / "eval" / "pybullet" / "report.json", out / "eval" / "baseline_pd" / "report.json"
    if pb_path.exists() and base_path.exists():
        mine, base = (json.loads(p.read_text())["metrics"] for p in (pb_path, base_path))
        lines += ["### Against baseline (a) on the same stand-in", "",
                  "Baseline (a) is phase 1 of this run's training: ideal PD on the nominal model, "
                  f"{budgets[meta['budget']]['pretrain']} iterations; the pipeline's candidates "
                  "continued from it (phase 2 and 3; the chosen one is above).", "",
                  "| metric | pipeline | baseline (a) ideal PD |", "|---|---|---|"]
        for k in ("falls", "vx_abs_err", "vy_abs_err", "yaw_abs_err", "torque_mean"):
            lines.append(f"| {k} | {_fmt(mine.get(k))} | {_fmt(base.get(k))} |")
        lines.append("")
    for sim in ("mujoco", "pybullet"):
        p = out / "eval" / sim / "report.json"
        timing = json.loads(p.read_text()).get("timing", {}) if p.exists() else {}
        if timing.get("policy_step_us_p50") is not None:  # None: no step under the policy
            lines += [f"Onboard control step in {sim} (observation, ONNX inference, clipping): "
                      f"p50 {timing['policy_step_us_p50']:.0f} us, p99 "
                      f"{timing['policy_step_us_p99']:.0f} us.", ""]
    from robot_rl.app.rounds import rounds_table

    lines += rounds_table(out)
    md = "\n".join(lines) + "\n"
    atomic_write_bytes(out / "summary.md", md.encode())
    body = "".join(f"<pre>{html.escape(md)}</pre>")
    body += "".join(f'<figure><img src="{img.relative_to(out)}" width="640"><figcaption>'
                    f"{html.escape(str(img.relative_to(out)))}</figcaption></figure>" for img in images)
    atomic_write_bytes(out / "summary.html",
                       f"<!doctype html><html><head><meta charset='utf-8'><title>{out.name}</title>"
                       f"</head><body>{body}</body></html>".encode())
    return out / "summary.md"


def _plot_curve(s: dict, path: Path) -> Path | None:
    ret = s.get("episode/return_mean")
    if not ret:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([i for i, _ in ret], [v for _, v in ret])
    ax.set_xlabel("iteration")
    ax.set_ylabel("mean episode return")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
