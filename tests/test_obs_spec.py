"""The observation spec: one definition of layout, rotation and the gait reference."""

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from robot_rl.obs_spec import (
    JointHistory,
    ObservationSpec,
    action_to_target,
    advance_phase,
    build_observation,
    gait_reference,
    quat_rotate_inverse,
)


def test_quat_rotate_inverse_matches_scipy():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(20, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    v = rng.normal(size=(20, 3))
    ref = Rotation.from_quat(q[:, [1, 2, 3, 0]]).inv().apply(v)
    np.testing.assert_allclose(quat_rotate_inverse(q, v), ref, atol=1e-12)


def test_layout_round_trip_and_size():
    spec = ObservationSpec(gait_frequency=2.0, gait_amplitude=0.25)
    assert ObservationSpec.from_layout(spec.layout()) == spec
    assert spec.size == sum(n for _, n in spec.blocks()) == 98
    assert ObservationSpec().size == 96


def test_build_observation_blocks():
    spec = ObservationSpec(gait_frequency=2.0, gait_amplitude=0.25)
    n = 2
    hist = JointHistory(n, spec)
    upright = np.tile([1.0, 0, 0, 0], (n, 1))
    obs = build_observation(spec, base_quat=upright, base_linvel_b=np.ones((n, 3)),
                            base_angvel_b=np.zeros((n, 3)), command=np.zeros((n, 3)),
                            q=np.zeros((n, 12)), qd=np.zeros((n, 12)), nominal=np.zeros(12),
                            prev_action=np.zeros((n, 12)), history=hist, phase=np.array([0.0, np.pi / 2]))
    np.testing.assert_allclose(obs[:, :3], [[0, 0, -1]] * n)
    np.testing.assert_allclose(obs[:, 3:6], 2.0)  # base_linvel scale
    np.testing.assert_allclose(obs[:, 12:14], [[0, 1], [1, 0]], atol=1e-7)
    with pytest.raises(ValueError, match="phase"):
        build_observation(spec, base_quat=upright, base_linvel_b=np.ones((n, 3)),
                          base_angvel_b=np.zeros((n, 3)), command=np.zeros((n, 3)),
                          q=np.zeros((n, 12)), qd=np.zeros((n, 12)), nominal=np.zeros(12),
                          prev_action=np.zeros((n, 12)), history=hist)


def test_gait_reference_trots_diagonal_pairs():
    spec = ObservationSpec(gait_frequency=2.0, gait_amplitude=0.3)
    ref = gait_reference(spec, np.array([np.pi / 2]), 12)[0]
    # FR and RL lift (thigh +0.3, knee -0.6), FL and RR stand
    np.testing.assert_allclose(ref, [0, .3, -.6, 0, 0, 0, 0, 0, 0, 0, .3, -.6])
    tgt = action_to_target(spec, np.ones((1, 12)), np.zeros(12), np.array([np.pi / 2]))
    np.testing.assert_allclose(tgt[0], ref + spec.action_scale)
    assert advance_phase(spec, np.array([0.0]), 0.25)[0] == pytest.approx(np.pi)


def test_gait_reference_stride_follows_the_forward_command():
    # at phase 0 no leg lifts; each thigh sits at -A cos(leg phase), A = v / (4 f L)
    spec = ObservationSpec(gait_frequency=2.0, gait_amplitude=0.3, gait_leg_length=0.25)
    cmd = np.array([[0.5, 0.0, 0.0], [0.0, 0.0, 0.0]])
    ref = gait_reference(spec, np.zeros(2), 12, cmd)
    a = 0.5 / (4 * 2.0 * 0.25)
    np.testing.assert_allclose(ref[0], [0, a, 0, 0, -a, 0, 0, -a, 0, 0, a, 0], atol=1e-12)
    np.testing.assert_allclose(ref[1], np.zeros(12), atol=1e-12)  # no command: no stride


FEET = ((0.18, -0.13, 0.25), (0.18, 0.13, 0.25), (-0.18, -0.13, 0.25), (-0.18, 0.13, -0.25))


def test_layout_round_trip_with_feet_and_old_layouts_step_forward_only():
    spec = ObservationSpec(gait_frequency=2.0, gait_amplitude=0.3, gait_leg_length=0.25,
                           gait_feet=FEET)
    assert ObservationSpec.from_layout(json.loads(json.dumps(spec.layout()))) == spec
    old = spec.layout()
    del old["gait_feet"]  # a layout written before the key existed
    assert ObservationSpec.from_layout(old).gait_feet == ()
    phase = np.array([0.3, 2.0, 4.0])
    ref = gait_reference(ObservationSpec.from_layout(old), phase, 12, np.array([[0.0, 0.3, 0.5]] * 3))
    still = gait_reference(ObservationSpec.from_layout(old), phase, 12, np.zeros((3, 3)))
    np.testing.assert_array_equal(ref, still)  # lateral and yaw commands: no stride
    assert not np.array_equal(gait_reference(spec, phase, 12, np.array([[0.0, 0.3, 0.5]] * 3)),
                              still)
    with pytest.raises(ValueError, match="gait_feet"):
        ObservationSpec(gait_frequency=2.0, gait_amplitude=0.3, gait_leg_length=0.25,
                        gait_feet=FEET[:3])
    with pytest.raises(ValueError, match="hip_gain"):
        ObservationSpec(gait_frequency=2.0, gait_amplitude=0.3, gait_leg_length=0.25,
                        gait_feet=FEET[:3] + ((0.1, 0.1, 0.0),))


@pytest.mark.parametrize("robot_name", ["a1", "laikago"])
@pytest.mark.parametrize("command", [(0.0, 0.3, 0.0), (0.0, 0.0, 0.6), (0.4, -0.2, -0.5)])
def test_stance_feet_sweep_back_at_each_legs_own_velocity(robot_name, command):
    """Over a stance (leg phase pi to 2 pi, both ends on the ground), the reference moves
    each foot, by the robot's own kinematics, by -(v + w x r) / (2 f) in the base frame:
    the body moves at the commanded velocity over feet that stay put.  laikago's right
    hips turn the other way round (negative gain): a sign error would send its feet the
    wrong way."""
    import mujoco

    from policies.config import EnvConfig
    from policies.env import observation_spec
    from robot_rl.robot import load_robot
    from robot_rl.sim_mujoco import build_model, index, set_nominal

    robot = load_robot(robot_name)
    spec = observation_spec(EnvConfig(robot=robot_name, gait_stride_turn=True), robot)
    assert spec.gait_feet and not observation_spec(EnvConfig(robot=robot_name), robot).gait_feet
    model = build_model(robot)
    data = mujoco.MjData(model)
    set_nominal(model, data, robot)
    idx = index(model, robot)
    vx, vy, w = command
    f = spec.gait_frequency

    def feet_at(leg_phase_of_leg0: float) -> np.ndarray:
        ref = gait_reference(spec, np.array([leg_phase_of_leg0]), robot.num_joints,
                             np.array([command]))
        data.qpos[idx.qpos] = robot.nominal_pose + ref[0]
        mujoco.mj_kinematics(model, data)
        return data.site_xpos[idx.foot_site, :2] - data.qpos[0:2]

    for stance_start, legs in ((np.pi, (0, 3)), (0.0, (1, 2))):  # FR+RL, then FL+RR
        start, end = feet_at(stance_start), feet_at(stance_start + np.pi)
        for leg in legs:
            x, y = start[leg]
            expect = -np.array([vx - w * y, vy + w * x]) / (2 * f)
            np.testing.assert_allclose(end[leg] - start[leg], expect, atol=0.012 * max(
                1.0, np.abs(expect).max() / 0.05))


def test_one_row_targets_and_clock_match_the_batch():
    """The robot's one row takes Python-float paths (gait reference, clock); they are the
    batch's expressions in the same IEEE doubles: equal to the batch's rows (to the bit
    where numpy's sin/cos are the C library's, as here; a few ulps where SIMD kernels
    round apart)."""
    for spec in (ObservationSpec(gait_frequency=2.0, gait_amplitude=0.3, gait_leg_length=0.25),
                 ObservationSpec(gait_frequency=2.0, gait_amplitude=0.3, gait_leg_length=0.25,
                                 gait_feet=FEET),
                 ObservationSpec(gait_frequency=2.0, gait_amplitude=0.3, gait_leg_length=0.25,
                                 gait_lift_plateau=1.5)):
        _one_row_matches_the_batch(spec)


def test_lift_plateau_holds_the_foot_up_while_it_strides_forward():
    """With a plateau k the lift is amplitude min(1, k sin): full height from sin = 1/k to
    the same point on the way down, zero at lift-off and touchdown; k = 1 is the sine, and
    a layout without the key (every policy before it) reads as k = 1."""
    sine = ObservationSpec(gait_frequency=2.0, gait_amplitude=0.3, gait_leg_length=0.25)
    held = ObservationSpec(gait_frequency=2.0, gait_amplitude=0.3, gait_leg_length=0.25,
                           gait_lift_plateau=1.5)
    phase = np.array([0.0, np.arcsin(1 / 1.5), np.pi / 2, 3 * np.pi / 4, np.pi - 0.2, np.pi])
    cmd = np.tile([[0.5, 0.0, 0.0]], (len(phase), 1))
    knee_s = gait_reference(sine, phase, 12, cmd)[:, 2]  # leg FR: knee = -2 lift
    knee_h = gait_reference(held, phase, 12, cmd)[:, 2]
    np.testing.assert_allclose(knee_s, -0.6 * np.maximum(np.sin(phase), 0.0), atol=1e-12)
    np.testing.assert_allclose(knee_h, -0.6 * np.minimum(1.5 * np.maximum(np.sin(phase), 0.0), 1.0),
                               atol=1e-12)
    assert knee_h[3] == pytest.approx(-0.6) and knee_s[3] == pytest.approx(-0.6 * np.sqrt(0.5))
    assert knee_h[0] == pytest.approx(0.0, abs=1e-12) and knee_h[-1] == pytest.approx(0.0, abs=1e-12)
    # the stride (thigh minus lift) is the sine reference's
    np.testing.assert_allclose(gait_reference(held, phase, 12, cmd)[:, 1] + knee_h / 2,
                               gait_reference(sine, phase, 12, cmd)[:, 1] + knee_s / 2, atol=1e-12)
    assert "gait_lift_plateau" not in sine.layout()
    assert ObservationSpec.from_layout(json.loads(json.dumps(held.layout()))) == held
    with pytest.raises(ValueError, match="gait_lift_plateau"):
        ObservationSpec(gait_frequency=2.0, gait_amplitude=0.3, gait_lift_plateau=0.5)


def _one_row_matches_the_batch(spec: ObservationSpec) -> None:
    rng = np.random.default_rng(0)
    n = 64
    phase = np.concatenate([rng.uniform(0, 2 * np.pi, n - 3), [0.0, np.pi, -0.5]])
    action = rng.normal(0, 3, (n, 12))
    command = rng.normal(0, 1, (n, 3))
    nominal = rng.normal(0, 1, 12)
    batch = action_to_target(spec, action, nominal, phase, command)
    clock = advance_phase(spec, phase, 0.02)
    for i in range(n):
        one = action_to_target(spec, action[i:i + 1], nominal[None], phase[i:i + 1],
                               command[i:i + 1])
        np.testing.assert_allclose(one[0], batch[i], rtol=0, atol=1e-15)
        np.testing.assert_allclose(advance_phase(spec, phase[i:i + 1], 0.02), clock[i:i + 1],
                                   rtol=0, atol=1e-15)
    assert 0 <= advance_phase(spec, np.array([-0.5]), 0.02)[0] < 2 * np.pi  # floored, as np.mod
