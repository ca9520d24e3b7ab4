"""The batched physics under the env: a step is MuJoCo's steps with the actuation applied at
each; sensors are found by name; a reset writes the state and clears the actuation."""

import mujoco
import numpy as np
import pytest

from policies.actuation import IdealPD
from policies.physics_cpu import CpuPhysics
from robot_rl.robot import load_robot
from robot_rl.sim_mujoco import MujocoModelConfig, add_base_contact_sensor, build_spec

A1 = load_robot("a1")


class PythonPD(IdealPD):
    """Ideal PD evaluated in numpy at every physics step; records its resets."""

    in_model = False

    def __init__(self, robot):
        super().__init__(robot)
        self.resets = []

    def reset(self, env_ids, q, qd):
        self.resets.append((np.asarray(env_ids).copy(), q.copy(), qd.copy()))


def _model(pd_in_model: bool) -> mujoco.MjModel:
    spec = build_spec(A1, MujocoModelConfig(pd_actuators=pd_in_model))
    add_base_contact_sensor(spec, A1)
    return spec.compile()


def _start(physics: CpuPhysics) -> np.ndarray:
    """Distinct states per env: the nominal pose, joints moved, some envs' base low."""
    rng = np.random.default_rng(0)
    physics.qpos[:, physics.idx.qpos] += rng.normal(0, 0.2, (physics.num_envs, 12))
    physics.qpos[1::2, 2] = 0.03  # base on the ground: its contact sensor fires
    return rng.normal(0, 0.3, (physics.num_envs, 12)) + A1.array("nominal_pose")


def _reference(model, state, q_target, nstep, torque_in_model):
    """``nstep`` mj_step calls per env from ``state`` with the PD law applied at each:
    the final state, sensors, mean torque, and whether the base contact sensor fired.
    Each rollout call starts from a fresh MjData (no solver warm start): once for all steps
    with the actuation in the model, at every step with the actuation in Python."""
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    pd = IdealPD(A1)
    jid = [model.joint(j).id for j in A1.joint_names]
    qa, va = model.jnt_qposadr[jid], model.jnt_dofadr[jid]
    act = [model.actuator(j).id for j in A1.joint_names]
    contact = model.sensor_adr[model.sensor("base_contact").id]
    out = []
    for x, target in zip(state, q_target):
        x, tau_sum, touched = x.copy(), np.zeros(12), False
        for k in range(nstep):
            if k == 0 or not torque_in_model:
                d = mujoco.MjData(model)
                mujoco.mj_setState(model, d, x, spec)
            if torque_in_model:
                d.ctrl[act] = target
            else:
                tau = pd(target, d.qpos[qa], d.qvel[va])
                d.ctrl[act] = tau
            mujoco.mj_step(model, d)
            mujoco.mj_getState(model, d, x, spec)
            tau_sum += d.actuator_force[act] if torque_in_model else tau
            touched |= bool(d.sensordata[contact] > 0)
        out.append((x, d.sensordata.copy(), tau_sum / nstep, touched))
    return [np.array(v) for v in zip(*out)]


@pytest.mark.parametrize("in_model,threads", [(True, 2), (False, 1), (False, 2)])
def test_cpu_step_is_mujoco_steps_with_the_actuation(in_model, threads):
    # in the model (one rollout call), or in Python at every physics step (one thread, or
    # groups in two threads): the same arithmetic as mj_step by hand; compared within float
    # error (1e-9 after 4 steps), as threads and batch splits may round apart on another CPU
    model = _model(in_model)
    act = IdealPD(A1) if in_model else PythonPD(A1)
    physics = CpuPhysics(model, A1, act, 4, threads, any_step=("base_contact",), pin=False)
    try:
        q_target = _start(physics)
        start = physics.state.copy()
        out = physics.step(q_target, 4)
        end, sens, tau, touched = _reference(model, start, q_target, 4, in_model)
        np.testing.assert_allclose(physics.state, end, rtol=0, atol=1e-9)
        np.testing.assert_allclose(physics.sensordata, sens, rtol=0, atol=1e-9)
        np.testing.assert_allclose(out.tau, tau, rtol=0, atol=1e-12)  # the mean, summed alike
        np.testing.assert_array_equal(out.any_step["base_contact"], touched)
        assert touched[1::2].all() and not touched[0::2].any()
    finally:
        physics.close()


def test_sensors_are_found_by_name():
    model = _model(True)
    physics = CpuPhysics(model, A1, IdealPD(A1), 2, 1, pin=False)
    try:
        for i in range(model.nsensor):
            s = model.sensor(i)
            assert physics.columns(s.name) == slice(s.adr[0], s.adr[0] + s.dim[0])
        feet = tuple(f"foot_pos_{f}" for f in A1.foot_links)
        assert physics.sensor(feet).shape == (2, 3 * len(feet))
        physics.sensordata[:] = np.arange(model.nsensordata)
        quat = model.sensor("base_quat")
        np.testing.assert_array_equal(physics.sensor("base_quat")[0],
                                      np.arange(quat.adr[0], quat.adr[0] + 4))
        with pytest.raises(KeyError, match="no sensor 'imu'"):
            physics.columns("imu")
        with pytest.raises(ValueError, match="not adjacent"):
            physics.columns(("base_quat", "base_acc"))
    finally:
        physics.close()


def test_reset_writes_the_state_and_clears_the_actuation():
    model = _model(False)
    act = PythonPD(A1)
    physics = CpuPhysics(model, A1, act, 3, 1, pin=False)
    try:
        physics.step(np.tile(A1.array("nominal_pose"), (3, 1)), 3)
        moved = physics.state.copy()
        qpos = np.tile(physics.init_qpos, (1, 1))
        qpos[0, 2] += 0.1
        physics.reset(np.array([1]), qpos, sensors={"base_quat": qpos[:, 3:7], "base_gyro": 0.0})
        want = physics.init_state.copy()
        want[1:1 + model.nq] = qpos[0]
        np.testing.assert_array_equal(physics.state[1], want)
        np.testing.assert_array_equal(physics.state[[0, 2]], moved[[0, 2]])
        np.testing.assert_array_equal(physics.sensor("base_quat")[1], qpos[0, 3:7])
        np.testing.assert_array_equal(physics.sensor("base_gyro")[1], 0.0)
        ids, q, qd = act.resets[-1]
        assert ids.tolist() == [1]
        np.testing.assert_array_equal(q, physics.joint_q()[[1]])
        np.testing.assert_array_equal(qd, 0.0)
        # an env's own model: a copy made on first use, the base model untouched
        own = physics.env_model(2)
        assert own is not model and physics.models[2] is own and physics.env_model(2) is own
        assert physics.models[0] is model
    finally:
        physics.close()
