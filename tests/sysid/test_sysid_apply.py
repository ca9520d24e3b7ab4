"""apply_params: which MuJoCo fields each parameter sets, from URDF values, idempotently."""

import copy

import mujoco
import numpy as np
import pytest

from robot_rl.robot import load_robot
from robot_rl.sim_mujoco import MujocoModelConfig, build_model
from sysid.apply import apply_params, encoder_offsets
from sysid.model import leg_bodies, parameter_names
from sysid.params import nominal_values

A1 = load_robot("a1")


def sample_values(robot):
    v = nominal_values(robot)
    for i, j in enumerate(robot.joint_names):
        v[f"armature/{j}"] = 0.001 + 1e-4 * i
        v[f"damping/{j}"] = 0.1 + 0.01 * i
        v[f"coulomb/{j}"] = 0.2 + 0.02 * i
    for i, f in enumerate(robot.foot_links):
        v[f"leg_mass_scale/{f}"] = 0.9 + 0.1 * i
    v["trunk_mass"] = v["trunk_mass"] * 1.2
    v["trunk_com/x"] += 0.01
    v["trunk_com/z"] -= 0.02
    v["foot_friction"] = 0.55
    return v


@pytest.mark.parametrize("fixed", [False, True])
def test_apply_sets_the_documented_fields(fixed):
    nom = build_model(A1, MujocoModelConfig(fixed_base=fixed))
    m = build_model(A1, MujocoModelConfig(fixed_base=fixed))
    v = sample_values(A1)
    assert apply_params(m, v, A1) is m
    for j in A1.joint_names:
        dof = m.jnt_dofadr[m.joint(j).id]
        assert m.dof_armature[dof] == v[f"armature/{j}"]
        assert m.dof_damping[dof] == v[f"damping/{j}"]
        assert m.dof_frictionloss[dof] == v[f"coulomb/{j}"]
    legs = leg_bodies(m, A1)
    in_leg = set()
    for f, bodies in zip(A1.foot_links, legs):
        s = v[f"leg_mass_scale/{f}"]
        assert len(bodies) >= 3
        for b in bodies:
            in_leg.add(b)
            assert m.body_mass[b] == pytest.approx(nom.body_mass[b] * s)
            np.testing.assert_allclose(m.body_inertia[b], nom.body_inertia[b] * s)
    trunk = m.body(A1.base_link).id
    assert m.body_mass[trunk] == pytest.approx(v["trunk_mass"])
    np.testing.assert_allclose(m.body_ipos[trunk], [v["trunk_com/x"], v["trunk_com/y"], v["trunk_com/z"]])
    np.testing.assert_allclose(m.body_inertia[trunk], nom.body_inertia[trunk] * 1.2)
    for b in set(range(1, m.nbody)) - in_leg - {trunk}:
        assert m.body_mass[b] == nom.body_mass[b]
    collide = (m.geom_contype != 0) | (m.geom_conaffinity != 0)
    assert np.all(m.geom_friction[collide, 0] == 0.55)
    assert m.geom_friction[m.geom("floor").id, 0] == 0.55
    # derived constants follow (mj_setConst): subtree mass of the world = total mass
    assert m.body_subtreemass[0] == pytest.approx(m.body_mass.sum())


def test_apply_is_absolute_and_idempotent():
    v = sample_values(A1)
    once = apply_params(build_model(A1), v, A1)
    twice = apply_params(apply_params(build_model(A1), v, A1), v, A1)
    other = dict(v, **{f"leg_mass_scale/{A1.foot_links[0]}": 1.4, "trunk_mass": 7.0})
    via_copy = apply_params(copy.copy(apply_params(build_model(A1), other, A1)), v, A1)
    # re-applied in place with a reused scratch MjData (as the env does at every episode)
    scratch_model = build_model(A1)
    scratch = mujoco.MjData(scratch_model)
    in_place = apply_params(apply_params(scratch_model, other, A1, scratch), v, A1, scratch)
    for m in (twice, via_copy, in_place):
        for f in ("body_mass", "body_inertia", "body_ipos", "dof_armature", "dof_damping",
                  "dof_frictionloss", "geom_friction",  # set, then derived by mj_setConst:
                  "body_subtreemass", "body_invweight0", "dof_invweight0"):
            np.testing.assert_allclose(getattr(m, f), getattr(once, f), rtol=1e-12, err_msg=f)


def test_apply_nominal_values_reproduce_the_urdf_model_and_partial_dicts():
    m, nom = build_model(A1), build_model(A1)
    apply_params(m, {k: x for k, x in nominal_values(A1).items() if k != "foot_friction"}, A1)
    for f in ("body_mass", "body_inertia", "body_ipos", "dof_armature", "dof_damping",
              "geom_friction"):
        np.testing.assert_allclose(getattr(m, f), getattr(nom, f), err_msg=f)
    apply_params(m, {"damping/FR_hip_joint": 0.3}, A1)  # others untouched
    assert m.dof_damping[m.jnt_dofadr[m.joint("FR_hip_joint").id]] == 0.3
    assert m.dof_damping.sum() == pytest.approx(0.3)


def test_apply_accepts_params_json_content_and_rejects_bad_values():
    v = sample_values(A1)
    content = {"robot": "a1", "parameters": {k: {"fitted": x, "range": [x, x]} for k, x in v.items()}}
    a = apply_params(build_model(A1), content, A1)
    b = apply_params(build_model(A1), v, A1)
    np.testing.assert_allclose(a.body_mass, b.body_mass)
    with pytest.raises(ValueError, match="unknown parameter"):
        apply_params(build_model(A1), {"damping/no_such_joint": 0.1}, A1)
    with pytest.raises(ValueError, match=">= 0"):
        apply_params(build_model(A1), {"coulomb/FR_hip_joint": -0.1}, A1)
    with pytest.raises(ValueError, match="not finite"):
        apply_params(build_model(A1), {"trunk_mass": float("nan")}, A1)


@pytest.mark.parametrize("name", ["a1", "aliengo"])
def test_parameter_names_cover_every_joint_leg_and_trunk(name):
    robot = load_robot(name)
    names = parameter_names(robot)
    assert len(names) == 4 * robot.num_joints + len(robot.foot_links) + 5
    m = build_model(robot)
    apply_params(m, sample_values(robot), robot)
    d = mujoco.MjData(m)
    mujoco.mj_step(m, d)
    assert np.all(np.isfinite(d.qpos))


def test_encoder_offsets_are_no_model_field_and_read_in_joint_order():
    """An encoder offset changes what the robot measures, not its physics: apply_params
    leaves the model as it is, encoder_offsets gives them in joint order (0 where absent,
    as in a params.json from before the kind existed)."""
    base = build_model(A1)
    model = apply_params(build_model(A1), {"encoder_offset/FL_upper_joint": -0.04}, A1)
    for f in ("qpos0", "dof_armature", "dof_damping", "body_mass", "body_ipos", "jnt_range"):
        np.testing.assert_array_equal(getattr(model, f), getattr(base, f), err_msg=f)
    o = encoder_offsets({"parameters": {"encoder_offset/FL_upper_joint": {"fitted": -0.04},
                                        "damping/FR_hip_joint": {"fitted": 0.1}}}, A1)
    want = np.zeros(A1.num_joints)
    want[list(A1.joint_names).index("FL_upper_joint")] = -0.04
    np.testing.assert_array_equal(o, want)
    with pytest.raises(ValueError, match="non-finite"):
        encoder_offsets({"encoder_offset/FR_hip_joint": float("nan")}, A1)
