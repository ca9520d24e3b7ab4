"""Training: time split, scaling, Adam on minibatches, early stopping, validation metrics.

:func:`train` takes imported series and a config and returns a :class:`TrainResult`
(model, metrics, validation predictions); it writes nothing.  Deterministic on CPU for a
given seed (torch's deterministic algorithms, a seeded generator for the minibatch order).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from actuator_net.baselines import apply_pd, fit_pd, ideal_pd, rmse
from actuator_net.config import ActuatorNetConfig
from actuator_net.data import (
    ActuatorDataError,
    ActuatorSeries,
    Samples,
    build_samples,
    lag_plan,
    split_rows,
)
from actuator_net.model import ActuatorMLP
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


def train(series: list[ActuatorSeries], cfg: ActuatorNetConfig | None = None) -> TrainResult:
    """Fit the actuator network to ``series`` (split by time) and measure it on validation."""
    cfg = cfg or ActuatorNetConfig()
    if not series:
        raise ActuatorDataError("no logs given")
    h, nl = cfg.model.history_spacing, cfg.model.num_lags
    plans = [lag_plan(s, h) for s in series]  # rejects logs too slow for h, naming the file
    parts = [split_rows(s, h, nl, cfg.split.val_fraction, cfg.split.early_stop_fraction)
             for s in series]
    tr = build_samples(series, [p.train for p in parts], h, nl)
    es = build_samples(series, [p.early_stop for p in parts], h, nl)
    va = build_samples(series, [p.val for p in parts], h, nl)
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
        model.set_scaling(*_type_stats(tr.x, tr.y, jt, len(type_names)))
        f32 = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
        xtr, xes = f32(tr.x), f32(es.x)
        out_mean, out_std = model.out_mean[model.joint_type], model.out_std[model.joint_type]
        ytr, yes = (f32(tr.y) - out_mean) / out_std, (f32(es.y) - out_mean) / out_std
        n = len(tr)
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
        "joint_names": names,
        "joint_types": {"spec": cfg.joint_types, "types": type_names,
                        "per_joint": dict(zip(names, [type_names[k] for k in joint_type]))},
        "split": {"method": "by time, per log: last val_fraction of labelled rows = validation; "
                            "last early_stop_fraction of the rest = early stopping",
                  "val_fraction": cfg.split.val_fraction,
                  "early_stop_fraction": cfg.split.early_stop_fraction},
        "samples": {"train": len(tr), "early_stop": len(es), "validation": len(va),
                    "joints": len(names)},
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
        "training": {"epochs_run": run, "epochs_planned": epochs, "best_epoch": best_epoch,
                     "steps_per_epoch": steps_per_epoch, "early_stop_mse_normalized": best,
                     "stopped_early": run < epochs, "seconds": seconds,
                     "threads": tc.num_threads, "seed": tc.seed},
        "config": to_dict(cfg),
    }
    return TrainResult(model=model, config=cfg, joint_names=names, type_names=type_names,
                       metrics=metrics, val=va, pred_net=pred_net, pred_ideal=pred_ideal,
                       pred_fit=pred_fit, sources=[s.source for s in series])
