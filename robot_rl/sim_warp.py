"""MuJoCo Warp backend: N robots as the N worlds of one batched ``mujoco_warp`` model.

MuJoCo Warp (``pip install 'robot-rl[warp]'``, Python >= 3.11) runs MuJoCo's pipeline as
Warp kernels over all worlds at once, on a GPU; it also runs on the CPU, slowly, which is
what the tests use.  Its physics is float32.

:class:`WarpWorlds` keeps the model and the data on the device and shows the arrays an
env needs (``qpos``, ``qvel``, ``ctrl``, ``sensordata``) as zero-copy torch tensors, so
that an actuation written in torch (ideal PD, the actuator network's torch evaluator)
runs beside the physics at every physics step without leaving the device.  On a GPU,
torch and Warp share one stream (no synchronization between them) and a physics step is
one captured CUDA graph.

Per-env physics (domain randomization): the model fields that differ between the envs'
host models (masses, inertias, frictions, joint armature, damping and friction, and the
constants ``mj_setConst`` derives from them: :func:`varying_fields`) get one row per
world, and :meth:`WarpWorlds.set_models` copies an env's host model into its world's
rows.  The host model stays the one definition of an env's parameters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import re

import mujoco
import numpy as np
import torch


class WarpUnavailable(RuntimeError):
    """MuJoCo Warp is not installed or cannot run here; the message says why."""


class WarpOverflowError(RuntimeError):
    """A world ran out of its preallocated contacts or constraint rows: its physics from then
    on would be wrong.  The message names the worlds, the overflows and the setting to raise."""


def load_warp():
    """The ``warp`` and ``mujoco_warp`` modules, or :class:`WarpUnavailable`."""
    try:
        import mujoco_warp
        import warp
    except ImportError as e:
        raise WarpUnavailable(f"MuJoCo Warp is not installed ({e}): pip install "
                              "'robot-rl[warp]' (Python >= 3.11)") from e
    warp.config.quiet = True
    return warp, mujoco_warp


def resolve_device(device: str = "auto") -> str:
    """``"auto"``: the first CUDA device if Warp sees one, else ``"cpu"``."""
    wp, _ = load_warp()
    if device == "auto":
        return "cuda:0" if wp.get_cuda_device_count() > 0 else "cpu"
    if device == "cpu":
        return device
    if not re.fullmatch(r"cuda(:\d+)?", device):
        raise ValueError(f"physics device {device!r}: expected auto, cpu, cuda or cuda:N")
    ordinal = int(device.partition(":")[2] or 0)
    if ordinal >= wp.get_cuda_device_count():
        raise WarpUnavailable(f"physics device {device!r}: Warp sees "
                              f"{wp.get_cuda_device_count() or 'no'} CUDA device(s) here")
    return f"cuda:{ordinal}"


def varying_fields(base: mujoco.MjModel, models: list[mujoco.MjModel]) -> list[str]:
    """Names of the ``mujoco_warp`` model fields that may hold one row per world and whose
    values differ between ``base`` and any of ``models``."""
    _, mjw = load_warp()
    out = []
    for f in dataclasses.fields(mjw.Model):  # array fields carry their shape spec, "*" = world
        if getattr(f.type, "shape", ())[:1] != ("*",) or not hasattr(base, f.name):
            continue
        ref = np.asarray(getattr(base, f.name))
        if any(not np.array_equal(ref, np.asarray(getattr(m, f.name))) for m in models):
            out.append(f.name)
    return out


class WarpWorlds:
    """``nworld`` copies of ``model`` stepped together by MuJoCo Warp on ``device``.

    ``per_world``: model fields with one row per world (see :func:`varying_fields`), set
    by :meth:`set_models`.  ``nconmax`` / ``njmax``: contacts and constraint rows allocated
    per world (MuJoCo Warp's defaults when None).  ``data``: the state every world starts
    in (default: ``qpos0``, forward dynamics run).
    """

    def __init__(self, model: mujoco.MjModel, nworld: int, device: str = "auto",
                 per_world: tuple[str, ...] | list[str] = (), nconmax: int | None = None,
                 njmax: int | None = None, graph: bool = True, data: mujoco.MjData | None = None):
        wp, mjw = load_warp()
        self._wp, self._mjw = wp, mjw
        self.device = wp.get_device(resolve_device(device))
        self.nworld, self.per_world = int(nworld), list(per_world)
        self.torch_device = torch.device("cuda", self.device.ordinal) if self.device.is_cuda \
            else torch.device("cpu")
        # on a GPU, torch's kernels (the actuation) and Warp's run on Warp's stream, in order
        self.torch_stream = wp.stream_to_torch(self.device.stream) if self.device.is_cuda else None
        if data is None:
            data = mujoco.MjData(model)
            mujoco.mj_forward(model, data)
        with wp.ScopedDevice(self.device):
            self.model = mjw.put_model(model, batch_sizes={f: self.nworld for f in self.per_world})
            self.data = mjw.put_data(model, data, nworld=self.nworld, nconmax=nconmax, njmax=njmax)
        # overflows are read back per control step (:meth:`overflows`), not printed by kernels
        self.model.opt.warn_overflow = 0
        self._rows = {f: getattr(self.model, f).numpy() for f in self.per_world}  # host copies
        self._row_views = {f: wp.to_torch(getattr(self.model, f)) for f in self.per_world}
        d = self.data
        self.qpos, self.qvel = wp.to_torch(d.qpos), wp.to_torch(d.qvel)
        self.ctrl, self.sensordata = wp.to_torch(d.ctrl), wp.to_torch(d.sensordata)
        self.time = wp.to_torch(d.time)
        self.overflow = wp.to_torch(d.overflow)  # per world, bits of mjw.OverflowType, sticky
        self.nconmax, self.njmax = d.naconmax // self.nworld, d.njmax
        self._graph = None
        # a captured step needs the device's memory pool, and CUDA 12.4's conditional graph
        # nodes (MuJoCo Warp loops its solver inside the graph)
        if (graph and self.device.is_cuda and wp.is_mempool_enabled(self.device)
                and wp.get_cuda_driver_version() >= 12040):
            with self.scope():
                mjw.step(self.model, self.data)  # compiles the kernels outside the capture
                gc_was_on = gc.isenabled()
                gc.disable()  # a collected Warp object inside a capture would corrupt it
                try:
                    with wp.ScopedCapture() as capture:
                        mjw.step(self.model, self.data)
                finally:
                    if gc_was_on:
                        gc.enable()
            self._graph = capture.graph

    @contextlib.contextmanager
    def scope(self):
        """Run Warp on this device and, on a GPU, torch on the same stream."""
        with self._wp.ScopedDevice(self.device):
            if self.torch_stream is None:
                yield
            else:
                with torch.cuda.stream(self.torch_stream):
                    yield

    def set_models(self, worlds, models: list[mujoco.MjModel]) -> None:
        """Give each world of ``worlds`` the per-world fields of its host model."""
        worlds = np.asarray(worlds).reshape(-1)
        if not self.per_world or len(worlds) == 0:
            return
        for w, m in zip(worlds, models):
            for f, rows in self._rows.items():
                rows[w] = np.asarray(getattr(m, f)).reshape(rows[w].shape)
        ids = torch.as_tensor(worlds, device=self.torch_device)
        with self.scope():  # only the changed rows cross to the device
            for f, rows in self._rows.items():
                self._row_views[f][ids] = torch.from_numpy(rows[worlds]).to(self.torch_device)

    def set_state(self, time: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Set every world's time, qpos and qvel from host arrays (N,), (N, nq), (N, nv)."""
        self.time.copy_(torch.from_numpy(np.ascontiguousarray(time)))
        self.qpos.copy_(torch.from_numpy(np.ascontiguousarray(qpos)))
        self.qvel.copy_(torch.from_numpy(np.ascontiguousarray(qvel)))

    def overflows(self) -> dict[int, list[str]]:
        """Worlds whose buffers overflowed since the last :meth:`clear_overflows`, with the
        names of the overflows (solver iteration limits are not overflows: MuJoCo's C
        library also stops there and goes on)."""
        ok = int(self._mjw.OverflowType.ITERATIONS | self._mjw.OverflowType.LS_ITERATIONS)
        flags = self.overflow.cpu().numpy() & ~ok
        return {int(w): [t.name for t in self._mjw.OverflowType
                         if t.value and t.value & flags[w] and bin(t.value).count("1") == 1]
                for w in np.flatnonzero(flags)}

    def clear_overflows(self) -> None:
        self.overflow.zero_()

    def step(self) -> None:
        """One physics step of every world (call inside :meth:`scope`)."""
        if self._graph is not None:
            self._wp.capture_launch(self._graph)
        else:
            self._mjw.step(self.model, self.data)
