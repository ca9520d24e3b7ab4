"""Build a MuJoCo model of a robot from its description, through ``mujoco.MjSpec``.

The URDF is the one PyBullet loads.  Steps, and why:

1. visual elements are stripped (they reference meshes only renderers need);
2. the URDF is parsed into an ``MjSpec``; MuJoCo fuses fixed-joint links (imu, shoulder
   covers, toes) into their parents at compile time, keeping their mass and inertia;
3. the base body gets a free joint *before* compiling, so fusion cannot merge the trunk
   into the world body (a naive load of a1.urdf weighs 7.7 kg instead of 12.5 kg);
4. floor, actuators (one per joint, clamped at the torque limit: torque ``motor`` by
   default, or the robot's ideal PD law, see :class:`MujocoModelConfig`), foot
   sites, and sensors (base orientation, gyro, local linear velocity, accelerometer,
   foot positions and velocities; with PD actuators also their torques) are added
   programmatically; joint limits come from the description.

All contacts are robot-against-floor only (no self-collision), as in PyBullet's default.
A link's PyBullet contact extension in the URDF (``<contact>``: ``spinning_friction``,
``rolling_friction``), which MuJoCo's URDF parser ignores, is carried over
(:func:`urdf_contact_friction`): laikago's toes resist twisting with 0.1 m of spinning
friction, and a simulator without it turns the robot on the spot where PyBullet does not.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

import mujoco
import numpy as np
from mujoco import rollout

from robot_rl.robot import RobotDescription
from robot_rl.terrain import Terrain


@dataclass(frozen=True)
class FloorPad:
    """A compliant floor (a gym mat, turf, soft soil) as stage 1 measures it
    (``sysid.ground.fit_floor``): stiffness (N/m) and damping (N s/m) under each foot.

    MuJoCo's soft contact gives no floor that is this compliant both standing and under a
    landing's impact at a 5 ms step, and softening it softens friction too (the feet splay;
    bench/RESULTS.md, "The floor").  So the contact stays MuJoCo's stiff one and the
    compliance sits between each leg and its foot: the foot's body gets three slide joints
    (an isotropic spring-damper pad: the floor's give under the foot, normal and in shear)
    that keep the foot's URDF mass; the pad's joints carry armature up to
    :meth:`pad_mass`, so that MuJoCo's contact on the foot stays stiff next to the pad."""

    stiffness: float
    damping: float

    def __post_init__(self):
        if not (np.isfinite(self.stiffness) and self.stiffness > 0):
            raise ValueError(f"FloorPad: stiffness must be > 0 N/m, got {self.stiffness}")
        if not (np.isfinite(self.damping) and self.damping >= 0):
            raise ValueError(f"FloorPad: damping must be >= 0 N s/m, got {self.damping}")

    def pad_mass(self, timestep: float) -> float:
        """The mass (kg) the pad's joints move at ``timestep``: K tau^2 with tau = 2 dt,
        the time constant of the foot's contact (:func:`add_floor_pads`).

        MuJoCo's contact is a mass-normalized spring: its stiffness in N/m is the inertia
        it pushes times about 1 / tau^2.  On the foot alone (0.06 kg on the A1) it is
        softer than the floor and a landing sinks the foot into it (the stand-in truth on
        a 5000 N/m floor in MuJoCo reached 14 mm lower than the stand-in in the drop at
        the start; 2 mm standing); with K tau^2 (0.5 kg at 5000 N/m and 5 ms) the contact
        is many times stiffer than the pad, the same drop ends within 2 mm of the
        stand-in's.  The part above the foot's own mass is armature of the pad's joints: it
        adds no weight and does not couple to the leg's motion, only to the pad's own.
        It also keeps the spring resolved by the step (stable while K dt^2 < 4 m + 2 B dt:
        m = K (2 dt)^2 satisfies it for any damping)."""
        return self.stiffness * (2.0 * timestep) ** 2


#: name of a foot's pad joint along axis ``i`` (0, 1, 2: x, y, z of the foot's frame)
def pad_joint(foot: str, i: int) -> str:
    return f"{foot}_pad_{'xyz'[i]}"


@dataclass(frozen=True)
class MujocoModelConfig:
    """Simulation settings of the MuJoCo model."""

    # physics time step (s)
    timestep: float = 0.005
    # per-joint rotor inertia added to the joint's diagonal (kg m^2)
    armature: float = 0.0
    # per-joint viscous damping (N m s / rad)
    damping: float = 0.0
    # per-joint Coulomb friction (N m)
    frictionloss: float = 0.0
    # base fixed in the air (suspended test rig) instead of a free floating base
    fixed_base: bool = False
    # height of the fixed base above the floor (m), used when fixed_base
    fixed_base_height: float = 0.6
    # joint actuators: False = torque motors (ctrl in N m); True = the robot's ideal PD law
    # tau = clip(kp (ctrl - q) - kd qd, +-tau_max) with joint targets (rad) as ctrl, applied
    # explicitly like a PD computed outside MuJoCo (``mujoco.pid`` plugin: its damping term
    # stays out of the implicit integrators' derivatives, unlike a ``position`` or ``pid``
    # actuator's; tests/policies/test_env.py checks the two agree)
    pd_actuators: bool = False
    # a compliant floor (None: MuJoCo's contact, nearly rigid): a sprung pad under each
    # foot, see :class:`FloorPad`
    floor: FloorPad | None = None


@functools.lru_cache(maxsize=16)
def _urdf_contacts(path: str) -> dict[str, tuple[float, float]]:
    import xml.etree.ElementTree as ET

    out = {}
    for link in ET.parse(path).getroot().iter("link"):
        contact = link.find("contact")
        if contact is None:
            continue
        values = []
        for tag in ("spinning_friction", "rolling_friction"):
            node = contact.find(tag)
            try:
                values.append(0.0 if node is None else float(node.get("value")))
            except (TypeError, ValueError):
                raise ValueError(f"{path}: link {link.get('name')!r}: <contact><{tag} value=...> "
                                 f"must be a number, got {node.get('value')!r}") from None
        if any(values):
            out[link.get("name")] = (values[0], values[1])
    return out


def urdf_contact_friction(robot: RobotDescription) -> dict[str, tuple[float, float]]:
    """Per link, the (spinning, rolling) friction (m) of the URDF's PyBullet contact
    extension where either is non-zero.  PyBullet limits a contact's twisting torque to
    spinning x normal force and its rolling torque to rolling x normal force; MuJoCo's
    torsional and rolling friction coefficients (``condim`` 4 and 6) have the same meaning."""
    return _urdf_contacts(str(robot.urdf_path))


#: impratio of models with twisting friction (see :func:`build_spec`): chosen on laikago's
#: held-out walking logs among pyramidal/elliptic cones, impratio 1-100 and noslip (elliptic,
#: 10: joint RMSE 0.62x -> 0.39x nominal); Menagerie's 100 turns laikago alike at twice the
#: solver time (bench/RESULTS.md, "laikago's engine floor")
TWIST_IMPRATIO = 10.0


def _urdf_for_mujoco(robot: RobotDescription) -> str:
    text = robot.urdf_path.read_text()
    text = re.sub(r"<visual\b.*?</visual>", "", text, flags=re.S)
    meshdir = str(robot.urdf_path.parent)
    tag = (
        f'<mujoco><compiler meshdir="{meshdir}" discardvisual="true" '
        'balanceinertia="true" strippath="false"/></mujoco>'
    )
    return re.sub(r"(<robot\b[^>]*>)", r"\1" + tag, text, count=1)


def build_spec(robot: RobotDescription, cfg: MujocoModelConfig | None = None,
               terrain: Terrain | None = None) -> mujoco.MjSpec:
    """An editable ``MjSpec`` of ``robot`` (callers may change it before ``compile()``),
    on ``terrain``'s height field (:func:`add_terrain`) when it has relief."""
    cfg = cfg or MujocoModelConfig()
    spec = mujoco.MjSpec.from_string(_urdf_for_mujoco(robot))
    spec.option.timestep = cfg.timestep
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.compiler.autolimits = True

    base = spec.body(robot.base_link)
    if base is None:
        raise ValueError(f"{robot.urdf}: base link {robot.base_link!r} not found")
    if cfg.fixed_base:
        base.pos = [0.0, 0.0, cfg.fixed_base_height]
        base.mocap = True  # held in place, and not fused into the world body
    else:
        base.pos = [0.0, 0.0, robot.base_init_height]
        base.add_freejoint(name="root")
    base.add_site(name="imu", pos=[0, 0, 0])

    for name, lo, hi in zip(robot.joint_names, robot.q_min, robot.q_max):
        joint = spec.joint(name)
        if joint is None:
            raise ValueError(f"{robot.urdf}: joint {name!r} of robot {robot.name!r} not found")
        joint.range = [lo, hi]
        joint.limited = mujoco.mjtLimited.mjLIMITED_TRUE
        joint.armature = cfg.armature
        joint.damping = [cfg.damping, 0.0, 0.0]
        joint.frictionloss = cfg.frictionloss

    # contacts: robot geoms collide with the floor only
    for geom in spec.geoms:
        geom.contype = 1
        geom.conaffinity = 0
        geom.condim = 3
        geom.friction = [robot.foot_friction, 0.005, 0.0001]
    twisting = urdf_contact_friction(robot)
    for link, (spinning, rolling) in twisting.items():
        body = spec.body(link)
        if body is None:
            continue
        for geom in body.geoms:
            geom.condim = 6 if rolling > 0 else 4
            geom.friction = [robot.foot_friction, spinning, rolling]
    if twisting:
        # MuJoCo's default friction (pyramidal cone, impratio 1) is soft: a foot creeps under
        # a twisting load that Bullet's hard friction holds, and laikago's policy turned
        # 0.57 rad/s in MuJoCo where PyBullet gave 0.03.  Elliptic cones with a higher
        # impratio make friction hold (MuJoCo Menagerie's Unitree models use them).
        spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
        spec.option.impratio = TWIST_IMPRATIO
    spec.worldbody.add_geom(
        name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.05],
        contype=0, conaffinity=1, condim=3, friction=[robot.foot_friction, 0.005, 0.0001],
    )
    spec.worldbody.add_light(pos=[0, 0, 3], dir=[0, 0, -1])
    if terrain is not None and not terrain.is_flat:
        add_terrain(spec, terrain, friction=robot.foot_friction)

    for foot in robot.foot_links:
        body = spec.body(foot)
        if body is None:
            raise ValueError(f"{robot.urdf}: foot link {foot!r} not found")
        body.add_site(name=f"foot_{foot}", pos=[0, 0, 0])
    if cfg.floor is not None:
        if cfg.fixed_base:
            raise ValueError("MujocoModelConfig: a floor pad needs a floating base, not fixed_base")
        add_floor_pads(spec, robot, cfg.floor, cfg.timestep)

    if cfg.pd_actuators:
        spec.activate_plugin("mujoco.pid")
    for name, tmax, kp, kd in zip(robot.joint_names, robot.tau_max, robot.kp, robot.kd):
        if cfg.pd_actuators:  # stateless (no integral, no slew limit): one instance per joint
            pd = spec.add_plugin(name=f"pd_{name}", plugin_name="mujoco.pid", active=True)
            pd.config = {"kp": repr(float(kp)), "kd": repr(float(kd))}  # repr: exact round trip
            actuator = spec.add_actuator(
                name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT,
                forcerange=[-tmax, tmax], forcelimited=mujoco.mjtLimited.mjLIMITED_TRUE,
            )
            actuator.plugin = pd
        else:
            spec.add_actuator(
                name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT,
                ctrlrange=[-tmax, tmax], ctrllimited=mujoco.mjtLimited.mjLIMITED_TRUE,
            )

    def sensor(name, stype, objtype, objname):
        spec.add_sensor(name=name, type=stype, objtype=objtype, objname=objname)

    site = mujoco.mjtObj.mjOBJ_SITE
    sensor("base_quat", mujoco.mjtSensor.mjSENS_FRAMEQUAT, site, "imu")
    sensor("base_gyro", mujoco.mjtSensor.mjSENS_GYRO, site, "imu")
    sensor("base_linvel_local", mujoco.mjtSensor.mjSENS_VELOCIMETER, site, "imu")
    sensor("base_acc", mujoco.mjtSensor.mjSENS_ACCELEROMETER, site, "imu")
    for foot in robot.foot_links:
        sensor(f"foot_pos_{foot}", mujoco.mjtSensor.mjSENS_FRAMEPOS, site, f"foot_{foot}")
    for foot in robot.foot_links:
        sensor(f"foot_vel_{foot}", mujoco.mjtSensor.mjSENS_FRAMELINVEL, site, f"foot_{foot}")
    if cfg.pd_actuators:  # the torque each PD actuator applies (there is no ctrl to read it from)
        for name in robot.joint_names:
            sensor(f"torque_{name}", mujoco.mjtSensor.mjSENS_ACTUATORFRC,
                   mujoco.mjtObj.mjOBJ_ACTUATOR, name)
    return spec


def add_floor_pads(spec: mujoco.MjSpec, robot: RobotDescription, floor: FloorPad,
                   timestep: float) -> None:
    """Give each foot's body the three slide joints of :class:`FloorPad` (names
    :func:`pad_joint`).  The foot keeps its URDF mass; the joints' armature makes up the
    difference to :meth:`FloorPad.pad_mass` where the foot is lighter.

    The lower leg's collision shapes move onto the pad too (their mass stays with the leg):
    on laikago and the Mini Cheetah the shank's mesh reaches the ground beside the toe's
    sphere, and left on the rigid leg it carried half the standing load past the pad."""
    for foot in robot.foot_links:
        body = spec.body(foot)
        body.explicitinertial = True  # the moved shapes add no mass
        mass = float(body.mass)
        if mass < 1e-6:  # a massless foot link: MuJoCo needs a moving body to have mass
            body.mass, body.fullinertia = 1e-6, [1e-10, 1e-10, 1e-10, 0.0, 0.0, 0.0]
            mass = 1e-6
        _move_collision_shapes(body.parent, body)
        armature = max(floor.pad_mass(timestep) - mass, 0.0)
        for geom in body.geoms:
            # the stiffest contact MuJoCo advises (time constant 2 dt, impedance 0.99): in
            # series with the pad, it should give little (see FloorPad.pad_mass)
            geom.solref = [2.0 * timestep, 1.0]
            geom.solimp = [0.99, 0.99, 0.001, 0.5, 2.0]
        for i, axis in enumerate(np.eye(3)):
            j = body.add_joint(name=pad_joint(foot, i), axis=axis, type=mujoco.mjtJoint.mjJNT_SLIDE)
            j.stiffness = [floor.stiffness, 0.0, 0.0]
            j.damping = [floor.damping, 0.0, 0.0]
            j.armature = armature


def _move_collision_shapes(src, dst) -> None:
    """Re-create ``src``'s colliding geoms on its child body ``dst`` at the same place (in
    ``dst``'s frame) and stop the originals from colliding."""
    inv = np.zeros(4)
    mujoco.mju_negQuat(inv, np.asarray(dst.quat, dtype=np.float64))
    for g in list(src.geoms):
        if not (g.contype or g.conaffinity):
            continue
        pos, quat = np.zeros(3), np.zeros(4)
        mujoco.mju_rotVecQuat(pos, np.asarray(g.pos, dtype=np.float64) - dst.pos, inv)
        mujoco.mju_mulQuat(quat, inv, np.asarray(g.quat, dtype=np.float64))
        dst.add_geom(type=g.type, size=g.size, pos=pos, quat=quat, meshname=g.meshname,
                     contype=g.contype, conaffinity=g.conaffinity, condim=g.condim,
                     friction=g.friction, group=g.group)
        g.contype, g.conaffinity = 0, 0


def has_pads(model: mujoco.MjModel, robot: RobotDescription) -> bool:
    """Whether ``model`` was built with a :class:`FloorPad`."""
    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, pad_joint(robot.foot_links[0], 0)) >= 0


def settle_pads(model: mujoco.MjModel, data: mujoco.MjData, robot: RobotDescription,
                radius: np.ndarray) -> None:
    """Set each foot's pad (a model with :class:`FloorPad`) so that a foot whose rigid
    position lies below the floor (z = 0) sits on it, the pad pressed by the depth: the
    state a logged pose on a compliant floor starts from.  ``radius``: each foot's sphere
    radius (m).  Runs forward kinematics; a model without pads is left as it is."""
    if not has_pads(model, robot):
        return
    adr = [[int(model.jnt_qposadr[model.joint(pad_joint(foot, i)).id]) for i in range(3)]
           for foot in robot.foot_links]
    for a in adr:
        data.qpos[a] = 0.0
    mujoco.mj_kinematics(model, data)
    for f, foot in enumerate(robot.foot_links):
        b = model.body(foot).id
        depth = radius[f] - float(data.xpos[b][2])  # the sphere's bottom below z = 0
        if depth > 0:  # up by the depth, in the foot's frame (the pad's axes)
            data.qpos[adr[f]] = data.xmat[b].reshape(3, 3).T @ np.array([0.0, 0.0, depth])
    mujoco.mj_forward(model, data)


def add_terrain(spec: mujoco.MjSpec, terrain: Terrain, friction: float = 1.0) -> None:
    """Add ``terrain``'s height field (hfield asset ``terrain``, geom ``terrain``; the
    layout comes from :meth:`Terrain.mujoco_hfield`), colliding like the floor plane,
    which stays around it at z = 0 (the field's lowest point)."""
    f = terrain.mujoco_hfield()
    spec.add_hfield(name="terrain", nrow=f["nrow"], ncol=f["ncol"], size=f["size"],
                    userdata=f["userdata"])
    spec.worldbody.add_geom(
        name="terrain", type=mujoco.mjtGeom.mjGEOM_HFIELD, hfieldname="terrain", pos=f["pos"],
        contype=0, conaffinity=1, condim=3, friction=[friction, 0.005, 0.0001])


def add_base_contact_sensor(spec: mujoco.MjSpec, robot: RobotDescription,
                            name: str = "base_contact") -> None:
    """Append a sensor counting the contacts between the base body's own geoms and the
    ground (``mjSENS_CONTACT``, data "found": one value, > 0 while the base touches the
    ground): the floor plane, or with a terrain any geom of the world body (plane and
    height field).  It reads the contact list after collision detection: no force
    computation."""
    on_terrain = any(g.name == "terrain" for g in spec.geoms)
    ref = (dict(reftype=mujoco.mjtObj.mjOBJ_BODY, refname="world") if on_terrain
           else dict(reftype=mujoco.mjtObj.mjOBJ_GEOM, refname="floor"))
    spec.add_sensor(name=name, type=mujoco.mjtSensor.mjSENS_CONTACT,
                    objtype=mujoco.mjtObj.mjOBJ_BODY, objname=robot.base_link, **ref,
                    intprm=[1 << int(mujoco.mjtConDataField.mjCONDATA_FOUND), 0, 1])


def rollout_pool(nthread: int, pin: bool = True) -> rollout.Rollout:
    """A ``mujoco.rollout`` thread pool of ``nthread`` workers.  With ``pin`` (Linux, at
    most one worker per CPU of this process) each worker stays on its own CPU.

    Unpinned, the scheduler wakes the workers next to the thread that ran the Python
    between two rollout calls, and one of them waits to be moved to the idle CPU: pinned,
    the training env steps 1.06-1.12x faster at 128 envs on 2 cores."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else []
    if not pin or nthread < 2 or nthread > len(cpus) or not os.path.isdir("/proc/self/task"):
        return rollout.Rollout(nthread=nthread)
    before = _thread_ids()
    pool = rollout.Rollout(nthread=nthread)  # starts its worker threads
    workers = sorted(_thread_ids() - before)
    if len(workers) == nthread:  # else another thread started meanwhile: leave them be
        for cpu, tid in zip(cpus, workers):
            os.sched_setaffinity(tid, {cpu})
    return pool


def _thread_ids() -> set[int]:
    return {int(t) for t in os.listdir("/proc/self/task")}


def build_model(robot: RobotDescription, cfg: MujocoModelConfig | None = None,
                terrain: Terrain | None = None) -> mujoco.MjModel:
    """Compile the MuJoCo model of ``robot`` (on ``terrain``)."""
    return build_spec(robot, cfg, terrain).compile()


@dataclass(frozen=True)
class MujocoIndex:
    """Addresses of the robot's joints, bodies and sites in a compiled model."""

    qpos: np.ndarray  # qpos address of each actuated joint, canonical order
    qvel: np.ndarray  # qvel address of each actuated joint
    actuator: np.ndarray  # actuator id of each joint
    foot_site: np.ndarray  # site id of each foot
    base_body: int  # body id of the base
    floating: bool  # whether the model has a free base joint


def index(model: mujoco.MjModel, robot: RobotDescription) -> MujocoIndex:
    """Look up addresses of ``robot``'s joints in ``model`` (canonical joint order)."""
    jid = [model.joint(n).id for n in robot.joint_names]
    return MujocoIndex(
        qpos=np.array([model.jnt_qposadr[j] for j in jid]),
        qvel=np.array([model.jnt_dofadr[j] for j in jid]),
        actuator=np.array([model.actuator(n).id for n in robot.joint_names]),
        foot_site=np.array([model.site(f"foot_{f}").id for f in robot.foot_links]),
        base_body=model.body(robot.base_link).id,
        floating=model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE,
    )


def set_nominal(model: mujoco.MjModel, data: mujoco.MjData, robot: RobotDescription,
                height: float | None = None) -> None:
    """Put the robot at its nominal pose (base upright at ``height``) and run forward kinematics."""
    idx = index(model, robot)
    mujoco.mj_resetData(model, data)
    if idx.floating:
        data.qpos[0:3] = [0.0, 0.0, robot.base_init_height if height is None else height]
        data.qpos[3:7] = [1.0, 0.0, 0.0, 0.0]
    data.qpos[idx.qpos] = robot.nominal_pose
    mujoco.mj_forward(model, data)


@functools.lru_cache(maxsize=16)
def stride_feet(robot: RobotDescription, eps: float = 1e-6) -> tuple[tuple[float, float, float], ...]:
    """Each leg's foot at the nominal pose, ``(x, y, hip_gain)``: its position in the base
    frame (m) and how far it moves sideways per radian of the leg's hip joint (m/rad, signed
    as the URDF's hip axis makes it): :attr:`robot_rl.obs_spec.ObservationSpec.gait_feet`,
    for a trotting reference that steps sideways and turns.  Legs in ``foot_links`` order,
    each leg's hip the first of its three joints."""
    model = build_model(robot)
    data = mujoco.MjData(model)
    set_nominal(model, data, robot)
    idx = index(model, robot)
    base = data.qpos[0:3].copy()
    feet = data.site_xpos[idx.foot_site] - base
    out = []
    for leg, site in enumerate(idx.foot_site):
        data.qpos[idx.qpos[3 * leg]] += eps
        mujoco.mj_kinematics(model, data)
        gain = (data.site_xpos[site, 1] - base[1] - feet[leg, 1]) / eps
        data.qpos[idx.qpos[3 * leg]] -= eps
        out.append((round(float(feet[leg, 0]), 6), round(float(feet[leg, 1]), 6),
                    round(float(gain), 6)))
    return tuple(out)


@functools.lru_cache(maxsize=16)
def footprint(robot: RobotDescription, margin: float = 0.1) -> float:
    """Side (m) of the square, centred under the base, that holds the feet at the nominal
    pose with ``margin`` around them: the spawn area a terrain must leave flat."""
    model = build_model(robot)
    data = mujoco.MjData(model)
    set_nominal(model, data, robot)
    feet = data.site_xpos[index(model, robot).foot_site, :2] - data.qpos[0:2]
    return float(2 * (np.abs(feet).max() + margin))
