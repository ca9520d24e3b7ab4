"""The observation and action state machine, by hand: reset fill, push order, clip, clock."""

import numpy as np
import pytest

from robot_rl.obs_spec import ObservationSpec, action_to_target, advance_phase
from robot_rl.obs_state import ACTION_CLIP, ObsActionState

SPEC = ObservationSpec(num_joints=3, history=2, base_linvel=False, gait_frequency=1.0,
                       gait_amplitude=0.2)
NOMINAL = np.array([0.0, 0.5, -1.0])
LO, HI = np.array([-1.0, -1.0, -2.5]), np.array([1.0, 2.0, 0.0])
DT = 0.25


def _state(n=2):
    return ObsActionState(SPEC, n, NOMINAL, LO, HI, DT)


def _observe(s, q, qd, ids=None):
    n = len(q)
    return s.observe(q=q, qd=qd, base_quat=np.tile([1.0, 0, 0, 0], (n, 1)),
                     base_angvel_b=np.zeros((n, 3)), command=np.zeros((n, 3)), ids=ids)


def _blocks(obs):
    sl, a = {}, 0
    for name, size in SPEC.blocks():
        sl[name], a = obs[:, a:a + size], a + size
    return sl


def test_reset_fills_history_then_each_action_pushes_newest_first():
    s = _state()
    q0, qd0 = np.array([[0.1, 0.4, -0.9], [0.0, 0.5, -1.0]]), np.full((2, 3), 0.5)
    s.reset(np.arange(2), q0, qd0, phase=np.array([0.0, np.pi / 2]))
    b = _blocks(_observe(s, q0, qd0))
    np.testing.assert_allclose(b["joint_err_hist"], np.float32(np.tile(NOMINAL - q0, 2)))
    np.testing.assert_allclose(b["joint_vel_hist"], np.float32(0.05 * 0.5))
    np.testing.assert_array_equal(b["prev_action"], 0.0)
    np.testing.assert_allclose(b["gait_phase"], [[0, 1], [1, 0]], atol=1e-7)
    b = _blocks(_observe(s, q0, qd0))  # observing twice pushes nothing
    np.testing.assert_allclose(b["joint_err_hist"], np.float32(np.tile(NOMINAL - q0, 2)))
    a = np.array([[0.4, -0.4, 0.0], [20.0, -30.0, 1.0]])
    target = s.act(a, np.zeros((2, 3)))
    np.testing.assert_array_equal(s.action, np.clip(a, -ACTION_CLIP, ACTION_CLIP))
    want = np.clip(action_to_target(SPEC, s.action, NOMINAL, np.array([0.0, np.pi / 2])), LO, HI)
    np.testing.assert_array_equal(target, want)
    np.testing.assert_array_equal(s.phase, advance_phase(SPEC, np.array([0.0, np.pi / 2]), DT))
    q1, qd1 = q0 + 0.01, np.full((2, 3), -1.0)
    b = _blocks(_observe(s, q1, qd1))
    np.testing.assert_array_equal(b["prev_action"], np.float32(s.action))
    np.testing.assert_array_equal(b["joint_err_hist"],
                                  np.float32(np.concatenate([target - q1, NOMINAL - q0], 1)))
    np.testing.assert_array_equal(b["joint_vel_hist"][:, :3], np.float32(0.05 * qd1))


def test_rows_reset_alone_observe_alone_and_delayed_actions():
    s = _state(3)
    q, qd = np.zeros((3, 3)), np.zeros((3, 3))
    s.reset(np.arange(3), q, qd)
    s.act(np.ones((3, 3)), np.zeros((3, 3)), applied=np.full((3, 3), 12.0))
    np.testing.assert_array_equal(s.action, 1.0)  # observed: the action taken
    np.testing.assert_array_equal(  # applied: the delayed one, clipped
        s.target, np.clip(action_to_target(SPEC, np.full((3, 3), ACTION_CLIP), NOMINAL,
                                           np.zeros(3)), LO, HI))
    ids = np.array([1])
    s.reset(ids, q[ids] + 0.1, qd[ids], target=np.array([[0.2, 0.2, 0.2]]), phase=1.0)
    b = _blocks(_observe(s, q[ids] + 0.1, qd[ids], ids=ids))  # the fresh row: no push
    np.testing.assert_allclose(b["joint_err_hist"], np.float32(0.1))
    np.testing.assert_array_equal(b["prev_action"], 0.0)
    full = _observe(s, q, qd)  # the other rows acted: they push, row 1 does not
    err = _blocks(full)["joint_err_hist"]
    np.testing.assert_array_equal(err[[0, 2], :3], np.float32(s.target[[0, 2]] - q[[0, 2]]))
    np.testing.assert_allclose(err[1], np.float32(0.1))


def test_action_clip_must_be_positive():
    with pytest.raises(ValueError, match="action_clip"):
        ObsActionState(SPEC, 1, NOMINAL, LO, HI, DT, action_clip=0.0)
