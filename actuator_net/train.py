"""Training: time split, scaling, Adam on minibatches, early stopping, validation metrics.

:func:`train` takes imported series and a config and returns a :class:`TrainResult`
(model, metrics, validation predictions); it writes nothing.  Deterministic on CPU for a
given seed (torch's deterministic algorithms, a seeded generator for the minibatch order).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from actuator_net.baselines import apply_pd, fit_pd, ideal_pd, rmse
from actuator_net.config import ActuatorNetConfig
from actuator_net.data import (
    LAYOUTS,
    ActuatorDataError,
    ActuatorSeries,
    Samples,
    build_samples,
    lag_plan,
    split_rows,
    validation_start,
)
from actuator_net.model import ActuatorMLP
from actuator_net.response import choose_num_lags
from robot_rl.config import ConfigError, to_dict


class TrainingError(RuntimeError):
    """Training produced no usable model (e.g. a non-finite loss)."""


def resolve_joint_types(spec: str, series: list[ActuatorSeries]) -> tuple[list[int], list[str]]:
    """Type index per joint and type names, from ``joint_types`` (see ActuatorNetConfig)."""
    names = series[0].joint_names
    nj = len(names)
    if spec == "shared":
        return [0] * nj, ["shared"]
    if spec == "per_joint":
        return list(range(nj)), list(names)
    if spec == "auto":
        keys = series[0].actuator_keys
        if keys is None or any(s.actuator_keys != keys for s in series[1:]):
            return list(range(nj)), list(names)
        labels = keys
    else:
        labels = [x.strip() for x in spec.split(",")]
        if len(labels) != nj or not all(labels):
            raise ConfigError(f"joint_types {spec!r}: expected 'auto', 'shared', 'per_joint' or "
                              f"{nj} comma-separated labels (joints {names})")
    order: list[str] = []
    for lab in labels:
        if lab not in order:
            order.append(lab)
    return [order.index(lab) for lab in labels], order


@dataclass
class TrainResult:
    """A trained network and everything measured about it."""

    model: ActuatorMLP
    config: ActuatorNetConfig
    joint_names: list[str]
    type_names: list[str]
    metrics: dict
    # validation samples and predictions (N, J), for plots
    val: Samples
    pred_net: np.ndarray
    pred_ideal: np.ndarray | None
    pred_fit: np.ndarray
    sources: list[str] = field(default_factory=list)


def fit_linear(x: np.ndarray, y: np.ndarray, jt: np.ndarray, ntypes: int,
               iterations: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Linear term per type: weights (T, 2L) on the raw inputs x (N, J, 2L) and offsets
    (T,), N m, fitted to the torques y (N, J) of that type's joints.

    Robust (Huber) least squares, by iteratively reweighted least squares: the samples
    where the actuator saturates (torque-speed line, current limit) deviate from its linear
    law on one side only and would pull an ordinary fit's stiffness down (on A1 rig logs
    17.9 N m/rad for a 20 N m/rad driver; Huber: 20.0); the MLP learns those deviations.
    """
    w, b = np.zeros((ntypes, x.shape[-1])), np.zeros(ntypes)
    for g in range(ntypes):
        xs = x[:, jt == g].reshape(-1, x.shape[-1])
        ys = y[:, jt == g].reshape(-1)
        scale = np.maximum(xs.std(0), 1e-9)  # conditioning: inputs in rad and rad/s
        a = np.c_[xs / scale, np.ones(len(xs))]
        weight = np.ones(len(ys))
        floor = 1e-6 * max(float(ys.std()), 1e-9)
        for _ in range(iterations):
            sw = np.sqrt(weight)
            sol = np.linalg.lstsq(a * sw[:, None], ys * sw, rcond=None)[0]
            r = np.abs(ys - a @ sol)
            k = 1.345 * max(1.4826 * float(np.median(r)), floor)  # Huber's 95 % efficiency
            new = np.where(r <= k, 1.0, k / np.maximum(r, k))
            if np.allclose(new, weight, atol=1e-4):
                break
            weight = new
        w[g], b[g] = sol[:-1] / scale, sol[-1]
    return w, b


def passive_law(weight: np.ndarray, num_lags: int) -> str:
    """Why a linear term (2L weights: position errors, then velocities) is no driver law,
    or "" if it is one: held at rest it must push towards the target (static stiffness
    > 0) and moving it must not add energy (sum of the velocity weights <= 0).  A fit to
    logs of an actuator saturated most of the time (bang-bang) comes out otherwise, and
    would drive a simulated joint unstable outside the logs."""
    stiffness, damping = float(weight[:num_lags].sum()), -float(weight[num_lags:].sum())
    if stiffness <= 0:
        return f"static stiffness {stiffness:.3g} N m/rad is not positive"
    if damping < 0:
        return f"velocity weights sum to {-damping:.3g} N m s/rad > 0 (negative damping)"
    return ""


def rest_samples(x: np.ndarray, res: np.ndarray, num_lags: int, count: int, at_rest: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` training samples (inputs (count, J, 2L), MLP targets (count, J)) of the
    actuator at rest, for the joints ``at_rest`` (J,) bool: a position error drawn
    uniformly between the 1st and 99th percentile of the logged ones and held over the
    whole history, zero velocity, and as target a zero residual (the torque is the linear
    term: at rest a driver's torque is its static law, which the linear term identified).
    A rig's logs hold hardly any such samples (a leg on the rig is light), so without them
    the MLP carries the torque-speed losses of fast motion into standing.  The other joints
    get logged samples (inputs and residuals of random rows of ``x``, ``res``)."""
    lo, hi = np.percentile(x[:, :, 0], [1, 99], axis=0)
    e = rng.uniform(lo, hi, (count, x.shape[1]))
    rows = rng.integers(0, len(x), count)
    xr, rr = x[rows].copy(), res[rows].copy()
    xr[:, at_rest] = 0.0
    xr[:, at_rest, :num_lags] = e[:, at_rest, None]
    rr[:, at_rest] = 0.0
    return xr, rr


def _type_stats(x: np.ndarray, y: np.ndarray, jt: np.ndarray, ntypes: int):
    in_mean = np.zeros((ntypes, x.shape[-1]))
    in_std = np.ones((ntypes, x.shape[-1]))
    out_mean, out_std = np.zeros(ntypes), np.ones(ntypes)
    for g in range(ntypes):
        xs = x[:, jt == g].reshape(-1, x.shape[-1])
        ys = y[:, jt == g].reshape(-1)
        in_mean[g], in_std[g] = xs.mean(0), np.maximum(xs.std(0), 1e-9)
        out_mean[g], out_std[g] = ys.mean(), max(ys.std(), 1e-9)
    f = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return f(in_mean), f(in_std), f(out_mean), f(out_std)


def resolve_num_lags(series: list[ActuatorSeries],
                     cfg: ActuatorNetConfig) -> tuple[ActuatorNetConfig, dict]:
    """``cfg`` with ``model.num_lags`` set (chosen from the logs where it is None, see
    :mod:`actuator_net.response`; the rows used lie before each log's validation part), and
    the record of the choice, with the estimated lag, for ``metrics.json``."""
    m = cfg.model
    rows = [np.arange(s.first_label, validation_start(s, cfg.split.val_fraction)) for s in series]
    suggested, record = choose_num_lags(series, rows, m.history_spacing, m.max_history_span,
                                        m.max_num_lags)
    if m.num_lags is None:
        how, nl = "chosen from the logs", suggested
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(m, num_lags=nl))
    else:
        how, nl = "given", m.num_lags
    record = {"how": how, "num_lags": nl, "span_s": (nl - 1) * m.history_spacing, **record}
    return cfg, record


def train(series: list[ActuatorSeries], cfg: ActuatorNetConfig | None = None) -> TrainResult:
    """Fit the actuator network to ``series`` (split by time) and measure it on validation."""
    cfg = cfg or ActuatorNetConfig()
    if not series:
        raise ActuatorDataError("no logs given")
    h = cfg.model.history_spacing
    plans = [lag_plan(s, h) for s in series]  # rejects logs too slow for h, naming the file
    cfg, history_choice = resolve_num_lags(series, cfg)
    nl = cfg.model.num_lags
    parts = [split_rows(s, h, nl, cfg.split.val_fraction, cfg.split.early_stop_fraction)
             for s in series]
    layout = LAYOUTS[cfg.model.error_reference]
    tr, es, va = (build_samples(series, [getattr(p, k) for p in parts], h, nl, layout)
                  for k in ("train", "early_stop", "val"))
    joint_type, type_names = resolve_joint_types(cfg.joint_types, series)
    jt = np.array(joint_type)
    names = list(series[0].joint_names)

    tc = cfg.train
    prev_threads, prev_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(tc.num_threads)
    torch.use_deterministic_algorithms(True)
    t0 = time.perf_counter()
    try:
        torch.manual_seed(tc.seed)
        gen = torch.Generator().manual_seed(tc.seed)
        model = ActuatorMLP(joint_type, 2 * nl, cfg.model.hidden)
        f32 = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
        ntypes = len(type_names)
        lin_w, lin_b = np.zeros((ntypes, 2 * nl)), np.zeros(ntypes)
        lin_why = ["model.linear is off"] * ntypes
        if cfg.model.linear:
            fit_w, fit_b = fit_linear(tr.x, tr.y, jt, ntypes)
            lin_why = [passive_law(fit_w[g], nl) for g in range(ntypes)]
            for g in range(ntypes):
                if not lin_why[g]:  # a driver law: kept; otherwise the MLP alone, as before
                    lin_w[g], lin_b[g] = fit_w[g], fit_b[g]
        lin_used = np.array([not r for r in lin_why])
        model.set_linear(f32(lin_w), f32(lin_b))
        lin = lambda s: np.einsum("njd,jd->nj", s.x, lin_w[jt]) + lin_b[jt]  # noqa: E731
        res_tr, res_es = tr.y - lin(tr), es.y - lin(es)  # what the MLP learns
        model.set_scaling(*_type_stats(tr.x, res_tr, jt, ntypes))
        x_train = tr.x
        if lin_used.any() and cfg.model.rest_fraction > 0:
            x_rest, res_rest = rest_samples(tr.x, res_tr, nl,
                                            int(round(cfg.model.rest_fraction * len(tr))),
                                            lin_used[jt], np.random.default_rng(tc.seed))
            x_train = np.concatenate([tr.x, x_rest])
            res_tr = np.concatenate([res_tr, res_rest])
        xtr, xes = f32(x_train), f32(es.x)
        out_mean, out_std = model.out_mean[model.joint_type], model.out_std[model.joint_type]
        ytr, yes = (f32(res_tr) - out_mean) / out_std, (f32(res_es) - out_mean) / out_std
        n = len(xtr)
        steps_per_epoch = math.ceil(n / tc.batch_size)
        epochs = max(1, min(tc.max_epochs, math.ceil(tc.max_steps / steps_per_epoch)))
        total = epochs * steps_per_epoch
        opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, total) / total)))
        best, best_epoch, best_state, waited, run = math.inf, -1, None, 0, 0
        bar = tqdm(range(epochs), desc="actuator net", unit="epoch", disable=not tc.progress,
                   leave=False)
        for epoch in bar:
            model.train()
            perm = torch.randperm(n, generator=gen)
            tot = 0.0
            for i in range(0, n, tc.batch_size):
                idx = perm[i:i + tc.batch_size]
                loss = ((model.forward_normalized(xtr[idx]) - ytr[idx]) ** 2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                tot += float(loss.detach()) * len(idx)
            run = epoch + 1
            model.eval()
            with torch.no_grad():
                es_loss = float(((model.forward_normalized(xes) - yes) ** 2).mean())
            if not (math.isfinite(es_loss) and math.isfinite(tot)):
                raise TrainingError(f"non-finite loss at epoch {epoch} (train {tot / n}, "
                                    f"early-stop {es_loss}); lower train.lr")
            if es_loss < best:
                best, best_epoch, waited = es_loss, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
            bar.set_postfix(train=f"{tot / n:.4f}", early_stop=f"{es_loss:.4f}", best=best_epoch)
            if waited >= tc.patience:
                break
        bar.close()
        model.load_state_dict(best_state)
        model.eval()
        with torch.no_grad():
            pred_net = model(f32(va.x)).double().numpy()
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)
    seconds = time.perf_counter() - t0

    # baselines on the same validation samples
    pd_fit_rows = build_samples(series, [np.concatenate([p.train, p.early_stop]) for p in parts],
                                h, nl)
    fitted = fit_pd(pd_fit_rows.pos_error, pd_fit_rows.vel, pd_fit_rows.y)
    pred_fit = apply_pd(fitted, va.pos_error, va.vel)
    gains_known = all(s.kp is not None and s.kd is not None for s in series)
    pred_ideal = None
    if gains_known:
        kp = np.stack([series[i].kp for i in va.series])
        kd = np.stack([series[i].kd for i in va.series])
        pred_ideal = ideal_pd(va.pos_error, va.vel, kp, kd)

    def block(pred):
        if pred is None:
            return None
        overall, per = rmse(pred, va.y)
        return {"overall": overall, "per_joint": dict(zip(names, per.tolist()))}

    metrics = {
        "rmse_nm": {"network": block(pred_net), "ideal_pd": block(pred_ideal),
                    "best_fit_pd": block(pred_fit)},
        "validation_torque_std_nm": dict(zip(names, va.y.std(axis=0).tolist())),
        "history_spacing_s": h,
        "num_lags": nl,
        # how num_lags came about, and how long the logged actuator takes to respond
        # (actuator_net.response)
        "history_choice": history_choice,
        "joint_names": names,
        "joint_types": {"spec": cfg.joint_types, "types": type_names,
                        "per_joint": dict(zip(names, [type_names[k] for k in joint_type]))},
        "split": {"method": "by time, per log: last val_fraction of labelled rows = validation; "
                            "last early_stop_fraction of the rest = early stopping",
                  "val_fraction": cfg.split.val_fraction,
                  "early_stop_fraction": cfg.split.early_stop_fraction},
        "samples": {"train": len(tr), "rest": len(x_train) - len(tr), "early_stop": len(es),
                    "validation": len(va), "joints": len(names)},
        "logs": [{"source": s.source, "rows": s.num_rows, "sample_period_s": pl.period,
                  "history": (f"index stride {pl.stride}" if pl.stride is not None
                              else "linear interpolation"),
                  "train": len(p.train), "early_stop": len(p.early_stop), "validation": len(p.val),
                  "validation_starts_at_s": float(s.time[p.val[0]]),
                  "ideal_pd_gains": (None if s.kp is None or s.kd is None else
                                     {"kp": s.kp.tolist(), "kd": s.kd.tolist()})}
                 for s, p, pl in zip(series, parts, plans)],
        "best_fit_pd": {nm: {"kp": float(a), "kd": float(b), "bias": float(c)}
                        for nm, (a, b, c) in zip(names, fitted)},
        # the model's linear term per type; static stiffness = the sum of its position-error
        # weights (N m/rad: torque per error held over the whole history at rest)
        # (used: false, with the reason, where the fit is no driver law: the MLP alone)
        "linear_term": {tn: {"used": bool(lin_used[g]), "reason": lin_why[g],
                             "weights": lin_w[g].tolist(), "bias": float(lin_b[g]),
                             "static_stiffness": float(lin_w[g, :nl].sum())}
                        for g, tn in enumerate(type_names)},
        "training": {"epochs_run": run, "epochs_planned": epochs, "best_epoch": best_epoch,
                     "steps_per_epoch": steps_per_epoch, "early_stop_mse_normalized": best,
                     "stopped_early": run < epochs, "seconds": seconds,
                     "threads": tc.num_threads, "seed": tc.seed},
        "config": to_dict(cfg),
    }
    return TrainResult(model=model, config=cfg, joint_names=names, type_names=type_names,
                       metrics=metrics, val=va, pred_net=pred_net, pred_ideal=pred_ideal,
                       pred_fit=pred_fit, sources=[s.source for s in series])
