"""The actuator network as a MuJoCo plugin: the numpy evaluator's torques inside mj_step."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from actuator_net import mujoco_plugin
from actuator_net.runtime import ActuatorNetEvaluator, NumpyActuatorNet

pytestmark = pytest.mark.skipif(not mujoco_plugin.available(),
                                reason="no C compiler for the MuJoCo plugin")

TAU_MAX = 3.0


@pytest.fixture(scope="module")
def shared(small_actuator_net):
    return small_actuator_net("shared")[0]


@pytest.fixture(scope="module")
def typed(small_actuator_net):
    return small_actuator_net("a,b,a")[0]


@pytest.fixture(scope="module")
def linear(small_actuator_net):
    """A network with a linear term (actuator_net.model), typed."""
    path, model = small_actuator_net("a,b,a", tau_max=40.0)
    assert model.lin_w.abs().sum() > 0
    return (path, model)[0]


@pytest.fixture(scope="module")
def lags5(small_actuator_net):
    """A network with 5 history steps (as the logs of a slow actuator choose) and a linear
    term, typed: the plugin takes the number of lags from its layer widths."""
    path, model = small_actuator_net("a,b,a", tau_max=40.0, num_lags=5)
    assert model.num_inputs == 10
    return path


@pytest.fixture(scope="module")
def lagged(small_actuator_net):
    """A network of the former input layout (each lag's own position error), as every
    checkpoint written before 2026-12-03: it still runs as it was trained."""
    path, model = small_actuator_net("a,b,a", tau_max=40.0, error_reference="lag")
    return path


def _pendulums(joints: int, dt: float) -> mujoco.MjSpec:
    """``joints`` independent pendulums, each driven by a torque motor named after its joint."""
    spec = mujoco.MjSpec()
    spec.option.timestep = dt
    for j in range(joints):
        body = spec.worldbody.add_body(name=f"link{j}", pos=[j, 0, 1])
        body.add_joint(name=f"pendulum_{j}", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 1, 0])
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_CAPSULE, fromto=[0, 0, 0, 0, 0, -0.3],
                      size=[0.03, 0, 0], mass=0.5)
        spec.add_actuator(name=f"pendulum_{j}", target=f"pendulum_{j}",
                          trntype=mujoco.mjtTrn.mjTRN_JOINT, ctrlrange=[-TAU_MAX, TAU_MAX],
                          ctrllimited=mujoco.mjtLimited.mjLIMITED_TRUE)
    return spec


@pytest.mark.parametrize("physics_dt", [0.005, 0.004])  # integer and interpolated lags
@pytest.mark.parametrize("which", ["shared", "typed", "linear", "lags5", "lagged"])
def test_plugin_applies_the_numpy_evaluators_torque(physics_dt, which, request):
    path = request.getfixturevalue(which)
    names = [f"pendulum_{j}" for j in range(3)]
    ev = ActuatorNetEvaluator(path, num_envs=1, physics_dt=physics_dt, joint_names=names)
    spec = _pendulums(3, physics_dt)
    mujoco_plugin.attach(spec, ev, names)
    m = spec.compile()
    d = mujoco.MjData(m)
    ref = NumpyActuatorNet.from_evaluator(ev, 1)
    rng = np.random.default_rng(0)
    full = mujoco.mjtState.mjSTATE_FULLPHYSICS
    saved = np.zeros(mujoco.mj_stateSize(m, full))
    worst = 0.0
    for k in range(120):
        if k == 60:  # a new episode: the history refills from the first sample, like reset()
            mujoco.mj_resetData(m, d)
            ref.reset()
        d.ctrl[:] = rng.normal(0, 0.5, 3)
        want = np.clip(ref(d.ctrl[None].copy(), d.qpos[None].copy(), d.qvel[None].copy())[0],
                       -TAU_MAX, TAU_MAX)
        if k == 90:
            mujoco.mj_getState(m, d, saved, full)
        mujoco.mj_step(m, d)
        got = d.actuator_force.copy()
        # the plugin's C loops against numpy's BLAS, both float32: the same products summed
        # in another order, a few ulps of the torque (measured 4.8e-7 N m)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(d.sensordata, got)  # the torque sensors added by attach
        worst = max(worst, float(np.abs(want).max()))
    assert worst > 0.1  # real torques, not zeros
    # the history lives in the MuJoCo state: restoring a saved state repeats the torques
    after = d.actuator_force.copy()
    d2 = mujoco.MjData(m)
    mujoco.mj_setState(m, d2, saved, full)
    rng = np.random.default_rng(0)
    ctrls = rng.normal(0, 0.5, (120, 3))
    for k in range(90, 120):
        d2.ctrl[:] = ctrls[k]
        mujoco.mj_step(m, d2)
    np.testing.assert_array_equal(d2.actuator_force, after)


def test_attach_names_the_missing_actuator(shared):
    ev = ActuatorNetEvaluator(shared, num_envs=1, physics_dt=0.005,
                              joint_names=["pendulum_0", "knee"])
    with pytest.raises(ValueError, match="no actuator 'knee'"):
        mujoco_plugin.attach(_pendulums(1, 0.005), ev, ["pendulum_0", "knee"])


def test_build_errors_are_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBOT_RL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", "no-such-compiler")
    with pytest.raises(mujoco_plugin.PluginBuildError, match="no C compiler"):
        mujoco_plugin.library_path()
    monkeypatch.delenv("CC")
    broken = tmp_path / "broken.c"
    broken.write_text("this is not C\n")
    monkeypatch.setattr(mujoco_plugin, "SOURCE", broken)
    with pytest.raises(mujoco_plugin.PluginBuildError, match="compiling broken.c failed"):
        mujoco_plugin.library_path()
    assert not list((tmp_path / "cache").glob("*"))  # no half-written library left behind
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("ROBOT_RL_CACHE", str(tmp_path / "file" / "cache"))  # not a folder
    with pytest.raises(mujoco_plugin.PluginBuildError, match="ROBOT_RL_CACHE"):
        mujoco_plugin.library_path()
