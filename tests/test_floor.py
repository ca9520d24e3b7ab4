"""A compliant floor in the identified simulator: stage 1's measured floor (``params.json``
``ground.floor``) becomes a sprung pad under each foot (robot_rl.sim_mujoco.FloorPad) in the
training env, the evaluation's MuJoCo robot and the fidelity replay (tested in
tests/deploy/test_fidelity.py)."""

import dataclasses
import json

import mujoco
import numpy as np
import pytest

from robot_rl.config import ConfigError
from robot_rl.robot import load_robot
from robot_rl.sim_mujoco import (
    FloorPad,
    MujocoModelConfig,
    build_model,
    has_pads,
    index,
    pad_joint,
    set_nominal,
)

A1 = load_robot("a1")


def standing(floor: FloorPad | None, seconds: float = 3.0):
    """The A1 holding its nominal pose with ideal PD for ``seconds``: (model, data)."""
    m = build_model(A1, MujocoModelConfig(timestep=0.005, pd_actuators=True, floor=floor))
    d = mujoco.MjData(m)
    set_nominal(m, d, A1)
    d.ctrl[index(m, A1).actuator] = A1.array("nominal_pose")
    for _ in range(int(seconds / 0.005)):
        mujoco.mj_step(m, d)
    return m, d


def foot_loads(m, d) -> np.ndarray:
    """Normal force (N) on each foot's body from the floor."""
    idx, out = index(m, A1), np.zeros(len(A1.foot_links))
    bodies = [m.site_bodyid[s] for s in idx.foot_site]
    f6 = np.zeros(6)
    for c in range(d.ncon):
        con = d.contact[c]
        for i, b in enumerate(bodies):
            if b in (m.geom_bodyid[con.geom1], m.geom_bodyid[con.geom2]):
                mujoco.mj_contactForce(m, d, c, f6)
                out[i] += f6[0]
    return out


@pytest.mark.parametrize("stiffness,damping", [(3000.0, 200.0), (5000.0, 266.0), (20000.0, 300.0)])
def test_a_standing_robot_sinks_into_the_pads_by_its_load_over_the_stiffness(stiffness, damping):
    """Each foot's pad is pressed by its load / K (a spring, in equilibrium) and the foot's
    own contact with MuJoCo's floor stays as stiff as on the rigid floor (< 1 mm): the
    stand-in's soft floors sink the A1's feet by 7-12 mm, MuJoCo's contact by < 1 mm."""
    m0, d0 = standing(None)
    m, d = standing(FloorPad(stiffness, damping))
    assert m.nq == m0.nq + 3 * len(A1.foot_links) and has_pads(m, A1) and not has_pads(m0, A1)
    assert np.isfinite(d.qpos).all() and np.abs(d.qvel).max() < 0.05  # at rest, stable
    load = foot_loads(m, d)
    assert load.min() > 10.0  # every foot carries weight
    pressed = []
    for foot in A1.foot_links:
        b = m.body(foot).id
        local = np.array([d.qpos[m.jnt_qposadr[m.joint(pad_joint(foot, i)).id]] for i in range(3)])
        pressed.append((d.xmat[b].reshape(3, 3) @ local)[2])
    np.testing.assert_allclose(pressed, load / stiffness, rtol=0.1, atol=2e-4)
    # in series with the pad, MuJoCo's contact on the foot: under 1 mm, as on the rigid floor
    radius = [m.geom_size[g][0] for g in range(m.ngeom) if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_SPHERE
              and m.body(m.geom_bodyid[g]).name in A1.foot_links]
    contact = np.array(radius) - d.site_xpos[index(m, A1).foot_site][:, 2]
    assert contact.max() < 1e-3


def test_the_pad_keeps_the_robots_mass_and_the_identified_masses():
    """The feet become bodies of their own with their URDF mass: the robot weighs the same,
    and stage 1's leg mass scales give the same total mass on either model."""
    pad = build_model(A1, MujocoModelConfig(floor=FloorPad(5000.0, 266.0)))
    rigid = build_model(A1)
    assert sum(pad.body_mass) == pytest.approx(sum(rigid.body_mass), rel=1e-9)
    from sysid.apply import apply_params

    scales = {f"leg_mass_scale/{f}": 1.3 for f in A1.foot_links} | {"trunk_mass": 14.0}
    for m in (pad, rigid):
        apply_params(m, scales, A1)
    assert sum(pad.body_mass) == pytest.approx(sum(rigid.body_mass), rel=1e-9)
    trunk = rigid.body(A1.base_link).id
    assert pad.body_subtreemass[trunk] == pytest.approx(rigid.body_subtreemass[trunk], rel=1e-9)


def test_floor_pad_rejects_non_physical_values():
    with pytest.raises(ValueError, match="stiffness"):
        FloorPad(0.0, 100.0)
    with pytest.raises(ValueError, match="damping"):
        FloorPad(5000.0, -1.0)
    assert FloorPad(5000.0, 266.0).pad_mass(0.005) == pytest.approx(0.5)  # K (2 dt)^2


def params_with_floor(tmp_path, floor: dict | None):
    from sysid.params import hand_set_table

    data = {"robot": "a1", "parameters": hand_set_table(A1)}
    if floor is not None:
        data["ground"] = {"floor": floor}
    (tmp_path / "params.json").write_text(json.dumps(data))
    return tmp_path / "params.json"


COMPLIANT = {"identifiable": True, "rigid": False, "stiffness_N_per_m": 5020.0,
             "damping_N_s_per_m": 266.0}


def test_params_json_gives_the_floor_only_where_stage_1_found_it_compliant(tmp_path):
    from sysid.artifact import read_params

    assert read_params(params_with_floor(tmp_path, COMPLIANT)).floor == FloorPad(5020.0, 266.0)
    for floor in (None, {"identifiable": True, "rigid": True, "sink_mm": 0.03},
                  {"identifiable": False, "reason": "too few samples"}):
        assert read_params(params_with_floor(tmp_path, floor)).floor is None
    bad = {**COMPLIANT, "stiffness_N_per_m": -5.0}
    with pytest.raises(ConfigError, match=r"params.json: field 'ground.floor'"):
        read_params(params_with_floor(tmp_path, bad))


def test_the_training_env_stands_on_the_identified_floor(tmp_path):
    """Phase 3's env builds the pads from params.json; ``env.sysid_floor=false`` or a rigid
    floor leaves MuJoCo's contact; standing, the compliant world sits lower."""
    from policies.config import EnvConfig
    from policies.env import LeggedEnv
    from sysid.artifact import read_params

    soft = read_params(params_with_floor(tmp_path, COMPLIANT))
    rigid = read_params(params_with_floor(tmp_path, None))
    cfg = EnvConfig(num_envs=4, randomize=False, push_interval=0.0, obs_noise=0.0,
                    gait_frequency=0.0)
    heights = {}
    for name, sysid, c in (("soft", soft, cfg), ("rigid", rigid, cfg),
                           ("off", soft, dataclasses.replace(cfg, sysid_floor=False))):
        env = LeggedEnv(c, sysid=sysid, seed=0)
        env.reset(seed=0)
        for _ in range(50):
            env.step(np.zeros((4, A1.num_joints), np.float32))
        heights[name] = float(env.qpos[:, 2].mean())
        assert has_pads(env.base_model, A1) == (name == "soft")
    assert heights["off"] == pytest.approx(heights["rigid"], abs=1e-9)
    # ~30 N per foot on 5020 N/m presses the pads ~6 mm; the base sinks less, as the kneeling
    # A1's rear thighs touch the floor (3 mm measured)
    assert heights["rigid"] - heights["soft"] > 1.5e-3



def test_settle_pads_starts_a_logged_pose_with_the_feet_on_the_floor():
    """A pose logged on a soft floor has the rigid feet below the surface; the replay's start
    presses the pads by that depth, so the feet sit on MuJoCo's floor instead of in it."""
    from robot_rl.sim_mujoco import settle_pads
    from sysid.model import nominal

    m, d = standing(FloorPad(5000.0, 266.0))
    idx, radius = index(m, A1), nominal(A1).foot_radius
    pads = [m.jnt_qposadr[m.joint(pad_joint(f, i)).id] for f in A1.foot_links for i in range(3)]
    pressed = d.qpos[pads].copy()
    d.qpos[pads] = 0.0  # the logged state knows no pads: the feet where the leg puts them
    mujoco.mj_forward(m, d)
    assert (radius - d.site_xpos[idx.foot_site][:, 2]).min() > 3e-3  # in the floor
    settle_pads(m, d, A1, radius)
    gap = radius - d.site_xpos[idx.foot_site][:, 2]
    np.testing.assert_allclose(gap, 0.0, atol=1e-6)  # on it
    assert np.linalg.norm(d.qpos[pads]) > 0.5 * np.linalg.norm(pressed)


@pytest.mark.parametrize("name", ["laikago", "mini_cheetah"])
def test_the_whole_standing_load_goes_through_the_pads(name):
    """laikago's and the Mini Cheetah's shank meshes reach the ground beside the toe: they
    move onto the pad with it, so no load bypasses the floor's spring (before: about half of
    the Mini Cheetah's weight stood on the rigid shanks)."""
    robot = load_robot(name)
    m = build_model(robot, MujocoModelConfig(pd_actuators=True, floor=FloorPad(5000.0, 266.0)))
    assert sum(m.body_mass) == pytest.approx(sum(build_model(robot).body_mass), rel=1e-9)
    d = mujoco.MjData(m)
    set_nominal(m, d, robot)
    d.ctrl[index(m, robot).actuator] = robot.array("nominal_pose")
    for _ in range(600):
        mujoco.mj_step(m, d)
    pads = {m.body(f).id for f in robot.foot_links}
    through, total, f6 = 0.0, 0.0, np.zeros(6)
    for c in range(d.ncon):
        con = d.contact[c]
        mujoco.mj_contactForce(m, d, c, f6)
        total += f6[0]
        if {m.geom_bodyid[con.geom1], m.geom_bodyid[con.geom2]} & pads:
            through += f6[0]
    assert total > 0.9 * sum(m.body_mass) * 9.81
    assert through > 0.99 * total


def test_the_floor_is_described_in_one_line_for_the_cli_and_the_summary():
    from sysid.artifact import describe_floor

    line = describe_floor({**COMPLIANT, "stiffness_std": 168.0, "depth_mm": 8.1})
    assert line.startswith("compliant, 5020 +- 168 N/m and 266 N s/m") and "pad" in line
    assert describe_floor({"identifiable": True, "rigid": True, "sink_mm": 0.03,
                           "stiffness_above_N_per_m": 273000.0}).startswith("rigid")
    assert describe_floor({}) == ""
