"""Both simulators see the same robot, for every registered robot.

Tolerances: masses 1e-6 kg, centres of mass 1e-6 m, inertia tensors 1e-6 relative to
the body's largest entry, joint axes 1e-6 (unit vectors, world frame), joint limits
1e-9 rad, foot positions 1e-5 m, all at the nominal pose with the base upright.
"""

import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import pybullet as pb
import pytest

from robot_rl.config import ConfigError
from robot_rl.consistency import mujoco_view, pybullet_view
from robot_rl.robot import ROBOTS, RobotDescription, load_robot
from robot_rl.sim_mujoco import MujocoModelConfig, build_model, index, set_nominal
from robot_rl.sim_pybullet import load_pybullet_robot, new_world


def urdf_mass(robot: RobotDescription) -> float:
    """The total mass the URDF declares: the sum of its links' inertial masses (kg)."""
    root = ET.parse(robot.urdf_path).getroot()
    return sum(float(m.get("value")) for m in root.iterfind("link/inertial/mass"))


@pytest.fixture(scope="module", params=sorted(ROBOTS))
def views(request):
    robot = load_robot(request.param)
    return robot, mujoco_view(robot), pybullet_view(robot)


def test_total_mass_matches_urdf(views):
    robot, mj, bt = views
    assert mj.total_mass == pytest.approx(urdf_mass(robot), abs=1e-6)
    assert bt.total_mass == pytest.approx(urdf_mass(robot), abs=1e-6)


def test_per_body_mass_com_inertia(views):
    _, mj, bt = views
    assert sorted(mj.body_mass) == sorted(bt.body_mass)
    for name in mj.body_mass:
        assert mj.body_mass[name] == pytest.approx(bt.body_mass[name], abs=1e-6), name
        np.testing.assert_allclose(mj.body_com[name], bt.body_com[name], atol=1e-6, err_msg=name)
        scale = np.abs(bt.body_inertia[name]).max()
        np.testing.assert_allclose(mj.body_inertia[name], bt.body_inertia[name],
                                   atol=1e-6 * scale, err_msg=name)


def test_joint_order_axes_limits(views):
    robot, mj, bt = views
    assert mj.joint_names == list(robot.joint_names) == bt.joint_names
    np.testing.assert_allclose(mj.joint_axis, bt.joint_axis, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(mj.joint_axis, axis=1), 1.0, atol=1e-9)
    expected = np.stack([robot.q_min, robot.q_max], axis=1)
    np.testing.assert_allclose(mj.joint_range, expected, atol=1e-9)
    np.testing.assert_allclose(bt.joint_range, expected, atol=1e-9)


def test_foot_positions(views):
    _, mj, bt = views
    np.testing.assert_allclose(mj.foot_pos, bt.foot_pos, atol=1e-5)
    # feet below the base, left/right mirrored
    assert np.all(mj.foot_pos[:, 2] < 1.0 - 0.15)


def test_naive_mujoco_load_loses_trunk_mass():
    """The pitfall our builder avoids: without a free joint first, fusion eats the trunk."""
    robot = load_robot("a1")
    naive = mujoco.MjModel.from_xml_string(
        robot.urdf_path.read_text().replace("<robot name=\"a1_description\">",
                                            "<robot name=\"a1_description\"><mujoco><compiler "
                                            "discardvisual=\"true\"/></mujoco>"))
    assert naive.body_mass[1:].sum() < 8.0
    assert build_model(robot).body_mass.sum() == pytest.approx(urdf_mass(robot), abs=1e-6)


@pytest.mark.parametrize("name", sorted(ROBOTS))
def test_limits_enforced_in_both_simulators(name):
    """Push every joint with 30 % of its torque limit into the upper bound: both stop near it
    (both enforce limits as soft constraints, PyBullet softer: 0.5 rad of give;
    an unlimited joint under constant torque would turn many radians)."""
    robot = load_robot(name)
    client = new_world()
    try:
        r = load_pybullet_robot(client, robot, fixed_base=True, base_height=1.0)
        for _ in range(400):
            r.apply_torques(0.3 * robot.array("tau_max"))
            pb.stepSimulation(physicsClientId=client)
        q_bt, _ = r.joint_state()
    finally:
        pb.disconnect(client)
    from robot_rl.sim_mujoco import MujocoModelConfig

    model = build_model(robot, MujocoModelConfig(fixed_base=True, fixed_base_height=1.0))
    data = mujoco.MjData(model)
    set_nominal(model, data, robot)
    idx = index(model, robot)
    for _ in range(400):
        data.ctrl[idx.actuator] = 0.3 * robot.array("tau_max")
        mujoco.mj_step(model, data)
    q_mj = data.qpos[idx.qpos]
    hi = robot.array("q_max")
    assert np.all(q_bt < hi + 0.5), q_bt - hi
    assert np.all(q_mj < hi + 0.5), q_mj - hi


@pytest.mark.parametrize("name", sorted(ROBOTS))
def test_pd_standing_in_both_simulators(name):
    """Dropped at the nominal pose under PD control, both simulators settle standing."""
    robot = load_robot(name)
    q0, kp, kd = (robot.array(f) for f in ("nominal_pose", "kp", "kd"))
    kp, kd = kp * 2, kd * 2
    model = build_model(robot)
    data = mujoco.MjData(model)
    set_nominal(model, data, robot)
    idx = index(model, robot)
    for _ in range(400):
        tau = kp * (q0 - data.qpos[idx.qpos]) - kd * data.qvel[idx.qvel]
        data.ctrl[idx.actuator] = tau
        mujoco.mj_step(model, data)
    z_mj = data.qpos[2]
    client = new_world()
    try:
        r = load_pybullet_robot(client, robot)
        for _ in range(400):
            q, qd = r.joint_state()
            r.apply_torques(np.clip(kp * (q0 - q) - kd * qd, -robot.array("tau_max"),
                                    robot.array("tau_max")))
            pb.stepSimulation(physicsClientId=client)
        z_bt = pb.getBasePositionAndOrientation(r.body, physicsClientId=client)[0][2]
    finally:
        pb.disconnect(client)
    assert z_mj > 0.6 * robot.nominal_base_height
    assert z_bt > 0.6 * robot.nominal_base_height
    assert abs(z_mj - z_bt) < 0.05


def test_description_validation():
    robot = load_robot("a1")
    from dataclasses import asdict

    data = asdict(robot)
    data["kp"] = data["kp"][:11]
    with pytest.raises(ConfigError, match="kp"):
        RobotDescription(**data)
    with pytest.raises(ConfigError, match="unknown robot"):
        load_robot("spot")


@pytest.mark.parametrize("name", sorted(ROBOTS))
def test_pd_actuators_apply_the_clipped_pd_law(name):
    """With pd_actuators the controls are joint targets and each actuator (and its torque
    sensor) gives clip(kp (target - q) - kd qd, +-tau_max)."""
    robot = load_robot(name)
    model = build_model(robot, MujocoModelConfig(pd_actuators=True))
    data = mujoco.MjData(model)
    set_nominal(model, data, robot)
    idx = index(model, robot)
    rng = np.random.default_rng(0)
    target = robot.array("nominal_pose") + rng.normal(0, 0.2, robot.num_joints)
    target[0] += 10.0  # far off: this joint's torque clips
    data.qvel[idx.qvel] = rng.normal(0, 3.0, robot.num_joints)
    data.ctrl[idx.actuator] = target
    mujoco.mj_forward(model, data)
    kp, kd, tau_max = (robot.array(f) for f in ("kp", "kd", "tau_max"))
    want = np.clip(kp * (target - data.qpos[idx.qpos]) - kd * data.qvel[idx.qvel], -tau_max, tau_max)
    np.testing.assert_allclose(data.actuator_force[idx.actuator], want, rtol=1e-12, atol=1e-12)
    torque = data.sensordata[-robot.num_joints:]
    np.testing.assert_allclose(torque, want, rtol=1e-12, atol=1e-12)
    assert want[0] == tau_max[0]


def test_laikago_stands_level_on_its_own_gains_and_its_old_stance_did_not():
    """stance_tilt measures the marginal stand that tipped laikago over (thighs at 0.14
    rad: 12 deg pitch, 6 deg roll on its rear legs on the stand-in; 10 deg in MuJoCo with
    soft friction, 5 deg since the toes' twisting friction and the harder friction that
    comes with it); the shipped stance stands level."""
    import dataclasses

    from robot_rl.mujoco_robot import stance_tilt

    robot = load_robot("laikago")
    assert stance_tilt(robot)["tilt_deg"] < 2.5
    old = dataclasses.replace(robot, nominal_pose=(0.0, 0.14, -0.98) * 4)
    st = stance_tilt(old)
    assert st["tilt_deg"] > 4.0 and st["max_sag_rad"] > 0.2, st


@pytest.mark.parametrize("name", ["aliengo", "laikago"])
def test_the_larger_robots_stand_level_at_their_nominal_height_on_their_own_gains(name):
    """A nominal pose is a stance: held by the robot's own PD gains on flat ground, the
    base stays within 2.5 deg of level and within 15 % of ``nominal_base_height``
    (laikago's first pose, thighs 0.14 rad, settled at 12 deg pitch, 6 deg roll).  Not the
    A1: its pose (every thigh 0.9, knee -1.8 rad) kneels at 9.6 deg pitch and 0.20 m for a
    nominal 0.27, and is kept: with legged_gym's level stance its policies fell under the
    suite's kicks (bench/RESULTS.md, "The A1's stance")."""
    from robot_rl.mujoco_robot import stance_tilt

    robot = load_robot(name)
    stand = stance_tilt(robot)
    assert stand["tilt_deg"] < 2.5
    height = stand["base_height_m"]
    assert abs(height - robot.nominal_base_height) < 0.15 * robot.nominal_base_height, height


def _yaw_under_torque(robot, torque: float, *, twisting: bool | None = None) -> tuple[float, float]:
    """Yaw (rad) of ``robot`` standing under its PD, 1 s after a yaw torque (N m) on the
    trunk starts, in MuJoCo (``twisting=False``: the converted model with the URDF's
    twisting friction stripped) and in PyBullet, which reads the URDF's contact extension."""
    q0, kp, kd, tmax = (robot.array(f) for f in ("nominal_pose", "kp", "kd", "tau_max"))
    model = build_model(robot)
    if twisting is False:
        model.geom_condim[:] = 3
        model.opt.cone, model.opt.impratio = mujoco.mjtCone.mjCONE_PYRAMIDAL, 1.0
    data = mujoco.MjData(model)
    set_nominal(model, data, robot)
    idx, base = index(model, robot), model.body(robot.base_link).id
    for k in range(int(1.5 / model.opt.timestep)):
        data.ctrl[idx.actuator] = kp * (q0 - data.qpos[idx.qpos]) - kd * data.qvel[idx.qvel]
        data.xfrc_applied[base, 5] = torque if k * model.opt.timestep >= 0.5 else 0.0
        mujoco.mj_step(model, data)
    yaw_mj = 2 * np.arctan2(data.qpos[6], data.qpos[3])
    client = new_world()
    try:
        r = load_pybullet_robot(client, robot)
        dt = pb.getPhysicsEngineParameters(physicsClientId=client)["fixedTimeStep"]
        for k in range(int(1.5 / dt)):
            q, qd = r.joint_state()
            r.apply_torques(np.clip(kp * (q0 - q) - kd * qd, -tmax, tmax))
            if k * dt >= 0.5:
                pb.applyExternalTorque(r.body, -1, [0, 0, torque], pb.WORLD_FRAME,
                                       physicsClientId=client)
            pb.stepSimulation(physicsClientId=client)
        quat = pb.getBasePositionAndOrientation(r.body, physicsClientId=client)[1]
    finally:
        pb.disconnect(client)
    return float(yaw_mj), float(2 * np.arctan2(quat[2], quat[3]))


def test_laikago_toes_resist_twisting_in_both_simulators_as_its_urdf_says():
    """laikago's URDF gives its toes 0.1 m of spinning friction in PyBullet's contact
    extension; the MuJoCo conversion carries it over, so a 20 N m yaw torque on the trunk
    leaves the standing robot where it stands in both simulators (without the carry-over,
    MuJoCo turned it half a radian; its policy turned on the spot in MuJoCo and not on
    the stand-in).  The A1's URDF has no such extension and its model is unchanged."""
    from robot_rl.sim_mujoco import urdf_contact_friction

    laikago = load_robot("laikago")
    assert urdf_contact_friction(laikago) == {f: (0.1, 0.0) for f in laikago.foot_links}
    yaw_mj, yaw_bt = _yaw_under_torque(laikago, 20.0)
    assert abs(yaw_bt) < 0.05 and abs(yaw_mj) < 0.1, (yaw_mj, yaw_bt)
    stripped, _ = _yaw_under_torque(laikago, 20.0, twisting=False)
    assert abs(stripped) > 0.3, stripped
    a1 = build_model(load_robot("a1"))
    assert urdf_contact_friction(load_robot("a1")) == {}
    assert set(a1.geom_condim.tolist()) == {3} and a1.opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL


def test_a_link_whose_inertia_is_not_a_rigid_bodys_is_loaded_alike_by_both(tmp_path, monkeypatch,
                                                                           capsys):
    """pybullet_data's Mini Cheetah thighs have principal moments 0.41, 1.79 and 2.30 g m^2
    (0.41 + 1.79 < 2.30: no rigid body has them). MuJoCo would average them and PyBullet set
    them to zero; the description hands both the nearest physical tensor instead. Here one
    A1 calf gets that tensor."""
    import json

    from robot_rl.robot import ROBOT_DIR, nearest_physical_inertia, urdf_inertia

    monkeypatch.setenv("ROBOT_RL_CACHE", str(tmp_path / "cache"))
    a1 = load_robot("a1")
    bad = ('ixx="0.001983" ixy="0.000245" ixz="0.000013" iyy="0.002103" iyz="0.0000015" '
           'izz="0.000408"')
    root = ET.parse(a1.urdf_path).getroot()
    for link in root.iter("link"):
        if link.get("name") == "FR_lower":
            link.find("inertial/inertia").attrib.clear()
            link.find("inertial/inertia").attrib.update(
                dict(kv.replace('"', "").split("=") for kv in bad.split()))
    for mesh in root.iter("mesh"):
        mesh.set("filename", str((a1.urdf_path.parent / mesh.get("filename")).resolve()))
    urdf = tmp_path / "a1_bad_calf.urdf"
    ET.ElementTree(root).write(urdf)
    desc = json.loads((ROBOT_DIR / "a1.json").read_text())
    (tmp_path / "a1_bad.json").write_text(json.dumps({**desc, "urdf": str(urdf)}))
    robot = load_robot(str(tmp_path / "a1_bad.json"))

    mj, bt = mujoco_view(robot), pybullet_view(robot)
    # the two simulators agree on the body (the calf fused with its toe), not zero
    got = bt.body_inertia["FR_lower"]
    np.testing.assert_allclose(mj.body_inertia["FR_lower"], got, atol=1e-6 * np.abs(got).max())
    assert np.linalg.eigvalsh(got)[0] > 1e-5
    # the copy's calf: a rigid body's, the least change (largest moment kept, the two smaller
    # raised by ~0.05 g m^2 each)
    ine = next(ln for ln in ET.parse(robot.urdf_path).getroot().iter("link")
               if ln.get("name") == "FR_lower").find("inertial/inertia")
    moments = np.linalg.eigvalsh(urdf_inertia(ine))
    assert moments[0] + moments[1] > moments[2]
    before = np.linalg.eigvalsh(np.array([[1983, 245, 13], [245, 2103, 1.5], [13, 1.5, 408]]) * 1e-6)
    np.testing.assert_allclose(moments[2], before[2], rtol=1e-9)
    assert np.all(moments[:2] - before[:2] < 0.06e-3) and np.all(moments[:2] > before[:2])
    assert robot.urdf_path.parent == tmp_path / "cache" / "urdf"  # the original is not touched
    assert "FR_lower" in capsys.readouterr().err  # and the user is told
    # a physical tensor is left as it is, and so is a URDF of physical links
    ok = np.diag([1.0, 2.0, 2.5])
    assert nearest_physical_inertia(ok) is ok
    assert a1.urdf_path.name == "a1.urdf"
