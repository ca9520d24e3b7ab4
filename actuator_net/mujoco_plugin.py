"""The actuator network as a MuJoCo actuator plugin: evaluated inside the physics step.

``mujoco_plugin.c`` (plugin ``robot_rl.actuator_net``) computes what
:class:`~actuator_net.runtime.NumpyActuatorNet` computes (same folded weights, same history
and lag interpolation, float32), per robot inside ``mj_step``.  A simulator with it steps
physics and network in one compiled loop (``mujoco.rollout`` threads) instead of returning
to Python at every physics step::

    ev = ActuatorNetEvaluator("runs/x/actuator/actuator.pt", num_envs=1, physics_dt=0.005,
                              joint_names=robot.joint_names)
    spec = build_spec(robot, MujocoModelConfig(timestep=0.005))   # torque motors
    attach(spec, ev, robot.joint_names)      # the motors now take joint targets (rad)
    model = spec.compile()

The C source is compiled on first use with the system C compiler (``$CC``, else ``cc``)
against the headers and library inside the installed ``mujoco`` wheel, and cached under
``$ROBOT_RL_CACHE`` (default ``~/.cache/robot_rl``) by a hash of source, MuJoCo version,
flags and CPU; later processes load the cached library.  :func:`available` says whether
that works here; :class:`PluginBuildError` says why not (no compiler, compile error).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import mujoco
import numpy as np

PLUGIN_NAME = "robot_rl.actuator_net"
SOURCE = Path(__file__).with_name("mujoco_plugin.c")
CFLAGS = ("-O3", "-march=native", "-ffp-contract=fast", "-fPIC", "-shared", "-std=gnu11", "-Wall")

_lock = threading.Lock()
_loaded: Path | None = None


class PluginBuildError(RuntimeError):
    """The plugin could not be compiled or loaded here; the message says why."""


def cache_dir() -> Path:
    return Path(os.environ.get("ROBOT_RL_CACHE") or Path.home() / ".cache" / "robot_rl")


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def _mujoco_lib() -> tuple[Path, Path]:
    root = Path(mujoco.__file__).parent
    include = root / "include"
    libs = sorted(root.glob("libmujoco.so*")) + sorted(root.glob("libmujoco*.dylib"))
    if not (include / "mujoco" / "mujoco.h").exists() or not libs:
        raise PluginBuildError(f"{root}: the mujoco package has no C headers or libmujoco "
                               "to build the actuator plugin against")
    return include, libs[0]


def library_path() -> Path:
    """Path of the compiled plugin library, compiling it first if it is not cached."""
    include, lib = _mujoco_lib()
    cc = os.environ.get("CC") or "cc"
    if shutil.which(cc) is None:
        raise PluginBuildError(f"no C compiler: {cc!r} is not on PATH (set $CC)")
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), mujoco.__version__.encode(), str(lib).encode(),
                 " ".join(CFLAGS).encode(), cc.encode(), _cpu_flags().encode()):
        key.update(part)
    out = cache_dir() / f"actuator_net_plugin-{key.hexdigest()[:16]}.so"
    if out.exists():
        return out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=out.stem, suffix=".so.tmp", dir=out.parent)
    except OSError as e:
        raise PluginBuildError(f"cannot write the plugin library under {out.parent} ({e}); "
                               "set $ROBOT_RL_CACHE to a writable folder") from e
    os.close(fd)
    cmd = [cc, *CFLAGS, f"-I{include}", str(SOURCE), "-o", tmp, str(lib),
           f"-Wl,-rpath,{lib.parent}", "-lm"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise PluginBuildError(f"compiling {SOURCE.name} failed ({' '.join(cmd)}):\n"
                                   f"{r.stderr.strip()}")
        os.replace(tmp, out)  # atomic: a concurrent build writes its own temporary file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def load() -> Path:
    """Compile (if needed) and register the plugin with MuJoCo, once per process."""
    global _loaded
    with _lock:
        if _loaded is None:
            path = library_path()
            mujoco.mj_loadPluginLibrary(str(path))
            _loaded = path
        return _loaded


def available() -> bool:
    """Whether the plugin can be compiled and loaded here."""
    try:
        load()
        return True
    except PluginBuildError:
        return False


def plugin_config(evaluator, num_actuators: int) -> dict[str, str]:
    """The plugin's configuration strings for an :class:`ActuatorNetEvaluator` (its folded
    float32 weights, history length and lags) driving ``num_actuators`` joints, in the
    evaluator's joint order."""
    ev = evaluator
    if num_actuators != ev.num_joints:
        raise ValueError(f"the evaluator drives {ev.num_joints} joints, not {num_actuators}")
    ws = [w.cpu().numpy() for w in ev._w]
    bs = [b.cpu().numpy() for b in ev._b]
    lw = ev._lw.cpu().numpy()
    if ev._shared:  # (a, b) and (b,): one weight set
        sets = [[(w, b) for w, b in zip(ws, bs)]]
        lins = [lw.ravel()]
        net_of = [0] * num_actuators
    else:  # (J, a, b) and (J, 1, b): one set per actuator type (joints of a type share it)
        sets, lins, net_of, seen = [], [], [], {}
        for j in range(num_actuators):
            layers = [(w[j], b[j, 0]) for w, b in zip(ws, bs)]
            key = b"".join(np.ascontiguousarray(a).tobytes() for pair in layers for a in pair)
            key += np.ascontiguousarray(lw[j]).tobytes()
            if key not in seen:
                seen[key] = len(sets)
                sets.append(layers)
                lins.append(lw[j].ravel())
            net_of.append(seen[key])
    flat = np.concatenate([np.concatenate([np.asarray(w, np.float32).ravel(),
                                           np.asarray(b, np.float32).ravel()])
                           for layers in sets for w, b in layers])
    linear = np.concatenate([np.asarray(v, np.float32) for v in lins])
    widths = [sets[0][0][0].shape[0]] + [w.shape[1] for w, _ in sets[0]]
    frac = np.zeros(ev.num_lags, np.float32) if ev._frac_t is None else ev._frac_t.cpu().numpy()

    def text(values) -> str:  # repr of each value: exact round trip through strtod
        return " ".join(repr(float(v)) for v in values)

    return {
        "actuators": str(num_actuators),
        "history": str(ev.buffer_len - 1),
        "lag_lo": " ".join(str(int(v)) for v in ev._lo),
        "lag_frac": text(frac),
        "layers": " ".join(str(int(v)) for v in widths),
        "nets": str(len(sets)),
        "net_of": " ".join(map(str, net_of)),
        "weights": text(flat),
        "linear": text(linear),
        "reference": "1" if ev.error_now else "0",
    }


def attach(spec: mujoco.MjSpec, evaluator, joint_names: list[str]) -> None:
    """Make the actuators named ``joint_names`` of ``spec`` (one per joint, as
    :func:`robot_rl.sim_mujoco.build_spec` adds them, torque limits in ``ctrlrange``) run
    the network: their controls become joint position targets (rad), their force is the
    network's torque clamped to the former torque limits, and a torque sensor
    ``torque_<joint>`` is added for each (appended after the existing sensors)."""
    load()
    spec.activate_plugin(PLUGIN_NAME)
    instance = spec.add_plugin(name="actuator_net", plugin_name=PLUGIN_NAME, active=True)
    instance.config = plugin_config(evaluator, len(joint_names))
    for name in joint_names:
        act = spec.actuator(name)
        if act is None:
            raise ValueError(f"the MuJoCo model has no actuator {name!r} to attach the network to")
        lo, hi = (float(v) for v in act.ctrlrange)
        act.forcerange = [lo, hi]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE
        act.plugin = instance
    for name in joint_names:
        spec.add_sensor(name=f"torque_{name}", type=mujoco.mjtSensor.mjSENS_ACTUATORFRC,
                        objtype=mujoco.mjtObj.mjOBJ_ACTUATOR, objname=name)
