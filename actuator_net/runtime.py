"""Batched actuator network for the simulator: N envs x J joints, at the physics rate.

Contract (the project's one actuation seam)::

    act = ActuatorNetEvaluator("runs/x/actuator/actuator.pt", num_envs=N, physics_dt=0.005)
    act.reset()                        # all envs: history filled from the next call's state
    tau = act(q_target, q, qd)         # every physics step; (N, J) each -> (N, J) N m
    act.reset(env_ids)                 # on episode reset of some envs

Inputs are numpy arrays (the result is numpy, in the dtype of ``q``) or torch tensors (the
result is a tensor on the evaluator's device).  Per env the evaluator keeps a ring buffer
of joint target and velocity at the physics rate, long enough for the network's history
(t, t - h, ..., t - (L - 1) h, any L); history steps that fall between physics steps are
interpolated linearly, and each past target is then taken against the joint's position
now (``actuator_net.data.INPUT_LAYOUT``; a checkpoint of the older layout keeps each
step's position error instead).  A reset env's history is filled with its current state
(given to ``reset``, or else the state of the next call), as a robot at rest would have
had.  Everything is batched torch (no Python loop over envs or joints) under
``torch.inference_mode``, with the input/output scaling folded into the first and last
layers (the linear term's offset into the last bias; its weights are one more product on
the inputs).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actuator_net.artifacts import load_checkpoint
from actuator_net.data import INPUT_LAYOUT


class ActuatorNetEvaluator:
    """Evaluate a trained ``actuator.pt`` for ``num_envs`` envs at physics period ``physics_dt``.

    ``joint_names`` (the simulator's joint order) defaults to the checkpoint's joints; a
    network with a single actuator type may also drive other joints (any names, any count).
    ``num_threads`` sets torch's intra-op threads (process-wide) when given.
    """

    def __init__(self, checkpoint: str | Path, num_envs: int, physics_dt: float,
                 joint_names: list[str] | None = None, device: str | torch.device = "cpu",
                 num_threads: int | None = None):
        model, ck = load_checkpoint(checkpoint)
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs, self.physics_dt = int(num_envs), float(physics_dt)
        self.history_spacing, self.num_lags = float(ck["history_spacing"]), int(ck["num_lags"])
        #: the position inputs are each lag's target against the position now
        #: (``actuator_net.data.INPUT_LAYOUT``); else each lag's own error (older checkpoints):
        #: the history then keeps targets, not errors
        self.error_now = ck["input_layout"] == INPUT_LAYOUT
        self.device = torch.device(device)
        trained = list(ck["joint_names"])
        self.joint_names = list(joint_names) if joint_names is not None else trained
        self.num_joints = len(self.joint_names)
        jt_trained = list(ck["joint_type"])
        if all(n in trained for n in self.joint_names):
            jt = [jt_trained[trained.index(n)] for n in self.joint_names]
        elif model.num_types == 1:
            jt = [0] * self.num_joints
        else:
            raise ValueError(f"{checkpoint}: joints {self.joint_names} are not all among the "
                             f"network's {trained} and it has {model.num_types} actuator types")

        ratio = self.history_spacing / self.physics_dt
        if ratio < 1 - 1e-6:
            raise ValueError(f"{checkpoint}: history spacing {self.history_spacing} s is shorter "
                             f"than the physics period {self.physics_dt} s")
        pos = np.arange(self.num_lags) * ratio  # lag m sits pos[m] physics steps back
        if np.allclose(pos, np.round(pos), atol=1e-6):
            self._lo, self._frac = np.round(pos).astype(int), None
        else:
            lo = np.floor(pos + 1e-9).astype(int)
            self._lo, self._frac = lo, pos - lo
        self.buffer_len = int(math.ceil(pos[-1] - 1e-9)) + 1 if self.num_lags > 1 else 1
        k = self.buffer_len
        idx = []
        for ptr in range(k):
            if self._frac is None:
                idx.append([(ptr - d) % k for d in self._lo])
            else:
                idx.append([(ptr - d) % k for d in self._lo] + [(ptr - d - 1) % k for d in self._lo])

        with torch.inference_mode():
            dev, f32 = self.device, torch.float32
            self._idx = [torch.tensor(i, dtype=torch.long, device=dev) for i in idx]
            self._frac_t = (None if self._frac is None
                            else torch.tensor(self._frac, dtype=f32, device=dev))
            self._fold(model, jt)
            n, nj, nl = self.num_envs, self.num_joints, self.num_lags
            # history ring, joint-major so that a gathered window is already (J, N, 2L)
            self._buf = torch.zeros(nj, n, 2, k, dtype=f32, device=dev)
            # preallocated work tensors: no allocation per step (large ones page-fault)
            self._g = (None if self._frac is None
                       else torch.empty(nj, n, 2, 2 * nl, dtype=f32, device=dev))
            self._x = torch.empty(nj, n, 2, nl, dtype=f32, device=dev)
            self._h = [torch.empty(nj * n if self._shared else nj, *(() if self._shared else (n,)),
                                   w.shape[-1], dtype=f32, device=dev) for w in self._w]
            widest = max(h.shape[-1] for h in self._h)
            self._tmp = torch.empty(*self._h[0].shape[:-1], widest, dtype=f32, device=dev)
            self._lin = torch.empty(nj, n, dtype=f32, device=dev)  # the linear term
        self._ptr = 0
        self._pending: torch.Tensor | None = None
        self.reset()

    # -- parameters with the scaling folded in ---------------------------------------------
    def _fold(self, model, jt: list[int]) -> None:
        t = torch.tensor(jt, dtype=torch.long)
        ws = [w.detach()[t].double() for w in model.weights]  # (J, a, b)
        bs = [b.detach()[t].double() for b in model.biases]  # (J, b)
        mu, sd = model.in_mean[t].double(), model.in_std[t].double()  # (J, d)
        om, osd = model.out_mean[t].double(), model.out_std[t].double()  # (J,)
        # first layer on raw inputs: ((x - mu) / sd) W + b = x (W / sd) + (b - (mu / sd) W)
        bs[0] = bs[0] - torch.einsum("jd,jdh->jh", mu / sd, ws[0])
        ws[0] = ws[0] / sd.unsqueeze(-1)
        # last layer in N m: y * osd + om, plus the linear term's offset
        lw, lb = model.lin_w[t].double(), model.lin_b[t].double()  # (J, d), (J,)
        ws[-1] = ws[-1] * osd.view(-1, 1, 1)
        bs[-1] = bs[-1] * osd.view(-1, 1) + (om + lb).view(-1, 1)
        shared = len(set(jt)) == 1
        self._shared = shared
        dev, f32 = self.device, torch.float32
        if shared:
            self._w = [w[0].to(dev, f32).contiguous() for w in ws]  # (a, b)
            self._b = [b[0].to(dev, f32).contiguous() for b in bs]  # (b,)
            self._lw = lw[0].to(dev, f32).contiguous()  # (d,)
        else:
            self._w = [w.to(dev, f32).contiguous() for w in ws]  # (J, a, b)
            self._b = [b.unsqueeze(1).to(dev, f32).contiguous() for b in bs]  # (J, 1, b)
            self._lw = lw.unsqueeze(-1).to(dev, f32).contiguous()  # (J, d, 1)

    # -- public API -------------------------------------------------------------------------
    def reset(self, env_ids: Any = None, q_target: Any = None, q: Any = None,
              qd: Any = None) -> None:
        """Clear the history of ``env_ids`` (indices or a boolean mask over envs; all if None).

        With ``q_target``, ``q``, ``qd`` (rows for those envs, (len(env_ids), J)) the history
        is filled with that state now; without, with the state of the next call.
        """
        with torch.inference_mode():
            if env_ids is None:
                ids = torch.arange(self.num_envs, device=self.device)
            else:
                ids = torch.as_tensor(env_ids if torch.is_tensor(env_ids) else np.asarray(env_ids),
                                      device=self.device).reshape(-1)
                ids = ids.nonzero().reshape(-1) if ids.dtype == torch.bool else ids.long()
            if q_target is not None:
                e = self._tensor(q_target) - (0.0 if self.error_now else self._tensor(q))
                v = self._tensor(qd)
                cur = torch.stack([e, v], dim=-1).reshape(len(ids), self.num_joints, 2, 1)
                self._buf[:, ids] = cur.transpose(0, 1).expand(-1, -1, -1, self.buffer_len)
                if self._pending is not None:  # filled now: not again by the next call
                    left = self._pending[~torch.isin(self._pending, ids)]
                    self._pending = left if len(left) else None
                return
            if self._pending is None:
                self._pending = ids.clone()
            else:
                self._pending = torch.unique(torch.cat([self._pending, ids]))

    def __call__(self, q_target: Any, q: Any, qd: Any) -> Any:
        """Torque (N m) for this physics step, (N, J); advances the history by one step."""
        as_numpy = isinstance(q, np.ndarray)
        out_dtype = q.dtype if as_numpy else None
        with torch.inference_mode():
            qt = self._tensor(q)
            e = self._tensor(q_target) if self.error_now else self._tensor(q_target) - qt
            v = self._tensor(qd)
            if e.shape != (self.num_envs, self.num_joints):
                raise ValueError(f"expected inputs of shape ({self.num_envs}, {self.num_joints})"
                                 f" (envs, joints), got {tuple(e.shape)}")
            k, ptr = self.buffer_len, self._ptr
            buf = self._buf
            buf[:, :, 0, ptr] = e.t()
            buf[:, :, 1, ptr] = v.t()
            if self._pending is not None:
                ids = self._pending
                buf[:, ids] = buf[:, ids, :, ptr:ptr + 1].expand(-1, -1, -1, k)
                self._pending = None
            if self._frac_t is None:
                torch.index_select(buf, 3, self._idx[ptr], out=self._x)  # (J, N, 2, L)
            else:
                g = torch.index_select(buf, 3, self._idx[ptr], out=self._g)  # (J, N, 2, 2L)
                torch.lerp(g[..., :self.num_lags], g[..., self.num_lags:], self._frac_t,
                           out=self._x)
            if self.error_now:  # past targets against the position now
                self._x[:, :, 0, :] -= qt.t().unsqueeze(-1)
            tau = self._forward(self._x)  # (J, N), fresh tensor
            self._ptr = (ptr + 1) % k
        if as_numpy:
            return tau.cpu().numpy().astype(out_dtype, copy=False)
        return tau

    # -- internals --------------------------------------------------------------------------
    def _tensor(self, a: Any) -> torch.Tensor:
        if torch.is_tensor(a):
            return a.to(self.device, torch.float32)
        return torch.as_tensor(np.asarray(a), device=self.device).to(torch.float32)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (J, N, 2, L) -> torque (N, J), through the preallocated layer outputs."""
        nj, n = self.num_joints, self.num_envs
        h = x.view(nj * n, -1) if self._shared else x.view(nj, n, -1)
        lin = self._lin  # the linear term (its offset is in the last bias)
        if self._shared:
            torch.mv(h, self._lw, out=lin.view(-1))
        else:
            torch.bmm(h, self._lw, out=lin.view(nj, n, 1))
        last = len(self._w) - 1
        for i, (w, b) in enumerate(zip(self._w, self._b)):
            out = self._h[i]
            if self._shared:
                torch.addmm(b, h, w, out=out)
            else:
                torch.baddbmm(b, h, w, out=out)
            if i < last:  # softsign in place: out / (1 + |out|)
                tmp = self._tmp[..., :out.shape[-1]]
                torch.abs(out, out=tmp).add_(1.0)
                out.div_(tmp)
            h = out
        return (h.view(nj, n) + lin).t().contiguous()


class NumpyActuatorNet:
    """The arithmetic of :class:`ActuatorNetEvaluator` in float32 numpy, for ``num_envs`` envs.

    Same weights (scaling folded in), same history ring and lag interpolation, same reset
    contract; numpy arrays in and out.  Made for the simulator's worker threads: numpy
    releases the GIL inside its array loops and uses no thread pool of its own, so one
    evaluator per thread runs in parallel, where torch evaluators in two threads ran 2x
    slower than one after the other.  Build it with :meth:`from_evaluator`.
    """

    def __init__(self, evaluator: ActuatorNetEvaluator, num_envs: int):
        ev = evaluator
        self.num_envs, self.num_joints = int(num_envs), ev.num_joints
        self.num_lags, self.buffer_len = ev.num_lags, ev.buffer_len
        self.error_now = ev.error_now
        self._shared = ev._shared
        self._w = [w.cpu().numpy() for w in ev._w]
        self._b = [b.cpu().numpy() for b in ev._b]
        self._lw = ev._lw.cpu().numpy()
        self._idx = [i.cpu().numpy() for i in ev._idx]
        self._frac = None if ev._frac_t is None else ev._frac_t.cpu().numpy()
        self._buf = np.zeros((self.num_joints, self.num_envs, 2, self.buffer_len), np.float32)
        self._ptr = 0
        self._pending: np.ndarray | None = None
        self.reset()

    @classmethod
    def from_evaluator(cls, evaluator: ActuatorNetEvaluator, num_envs: int) -> NumpyActuatorNet:
        """A numpy twin of ``evaluator`` for ``num_envs`` envs (fresh history)."""
        return cls(evaluator, num_envs)

    def reset(self, env_ids: Any = None, q_target: np.ndarray | None = None,
              q: np.ndarray | None = None, qd: np.ndarray | None = None) -> None:
        """As :meth:`ActuatorNetEvaluator.reset` (indices or a boolean mask; all if None)."""
        if env_ids is None:
            ids = np.arange(self.num_envs)
        else:
            ids = np.asarray(env_ids).reshape(-1)
            ids = np.flatnonzero(ids) if ids.dtype == bool else ids.astype(np.int64)
        if q_target is not None:
            ref = 0.0 if self.error_now else q
            cur = np.stack([np.asarray(q_target) - ref, np.asarray(qd)], -1)  # (n, J, 2)
            self._buf[:, ids] = cur.transpose(1, 0, 2)[..., None]
            if self._pending is not None:
                left = self._pending[~np.isin(self._pending, ids)]
                self._pending = left if len(left) else None
            return
        self._pending = ids.copy() if self._pending is None else np.union1d(self._pending, ids)

    def __call__(self, q_target: np.ndarray, q: np.ndarray, qd: np.ndarray) -> np.ndarray:
        """Torque (N m) for this physics step, float32 (N, J); advances the history."""
        if np.shape(q) != (self.num_envs, self.num_joints):
            raise ValueError(f"expected inputs of shape ({self.num_envs}, {self.num_joints}) "
                             f"(envs, joints), got {np.shape(q)}")
        k, ptr, buf = self.buffer_len, self._ptr, self._buf
        buf[:, :, 0, ptr] = (q_target if self.error_now else q_target - q).T
        buf[:, :, 1, ptr] = qd.T
        if self._pending is not None:
            ids = self._pending
            buf[:, ids] = buf[:, ids, :, ptr:ptr + 1]
            self._pending = None
        g = buf[..., self._idx[ptr]]  # (J, N, 2, L) or (J, N, 2, 2L)
        if self._frac is not None:
            lo, hi = g[..., :self.num_lags], g[..., self.num_lags:]
            g = lo + (hi - lo) * self._frac
        if self.error_now:  # past targets against the position now (g is a copy)
            g[:, :, 0, :] -= np.asarray(q, dtype=np.float32).T[..., None]
        self._ptr = (ptr + 1) % k
        nj, n = self.num_joints, self.num_envs
        h = g.reshape(nj * n, -1) if self._shared else g.reshape(nj, n, -1)
        lin = np.matmul(h, self._lw).reshape(nj, n)  # the linear term (offset: in the last bias)
        last = len(self._w) - 1
        for i, (w, b) in enumerate(zip(self._w, self._b)):
            h = np.matmul(h, w)
            h += b
            if i < last:  # softsign
                h /= 1.0 + np.abs(h)
        return (h.reshape(nj, n) + lin).T
