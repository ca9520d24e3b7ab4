"""Which falls of a pipeline run's robot judge come from the floor: its episodes again, on
the robot (stand-in configs) and in the identified simulator (MuJoCo contact settings).

The diagnosis of bench/RESULTS.md ("The floor: why the robot fell where the identified
simulator did not")::

    # the judge's 24 episodes of each candidate on `combined` and on a copy of
    # robot_rl/standin/combined.json without floor_stiffness and floor_damping
    python bench/diag_floor.py --run runs/fc/s4 --robot-configs combined,runs/fl/combined_rigid.json
    # the identified candidate in the identified simulator: default contact, solref time
    # constant 0.06 s, and solimp d 0.5 with direct solref (-430, -46)
    python bench/diag_floor.py --run runs/fc/s4 --candidates identified --sim-contacts default,0.06,0.5:430:46

Episodes are those of ``<run>/select/select.json`` (its commands, kicks of 0.4 m/s every
3 s from its seed, its episode length, the judge's hidden stand-in seed and its simulator's
parameter draws), so the
first config given as ``--robot-configs`` reproduces the judge's falls.  Prints, per
candidate and setting, the episodes that fell and the mean judge score.

The identified simulator stands on the floor stage 1 measured (``ground.floor`` of the run's
params.json: where compliant, a sprung pad under each foot, ``robot_rl.sim_mujoco.FloorPad``).
``--floor rigid`` or ``--floor K:B`` (N/m, N s/m) replaces it, for the simulator settings and
for ``--stand``, whose depth is then the rigid foot's (the pad's attachment point); the
prototype's ``--pad K:B:A`` of earlier RESULTS entries is this option now (the armature
follows from K, B and the step, ``FloorPad.pad_mass``)::

    python bench/diag_floor.py --run runs/fc/s4 --floor rigid --sim-contacts default

``--stand``: instead, the run's identified A1 (fitted parameters, actuator network) holding
its nominal pose for 2 s in MuJoCo with each ``--sim-contacts`` setting: the feet's depth
below the floor (mean of the last 0.5 s) and with 49 N more pushing the trunk down, i.e. the
floor stiffness per foot the simulator has.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np


def contact(text: str) -> tuple[float, ...]:
    """``default`` -> (), ``T`` -> (time constant,), ``D:K:B`` -> (impedance, direct stiffness,
    direct damping)."""
    if text == "default":
        return ()
    try:
        vals = tuple(float(x) for x in text.split(":"))
    except ValueError:
        vals = ()
    if len(vals) not in (1, 3) or any(not 0 < v < np.inf for v in vals) \
            or (len(vals) == 3 and not vals[0] < 1):
        raise ValueError(f"--sim-contacts: {text!r} is not 'default', a time constant T > 0 "
                         "or D:K:B (impedance 0 < D < 1, direct stiffness and damping > 0)")
    return vals


def label(vals: tuple[float, ...]) -> str:
    """A contact setting as ``--sim-contacts`` writes it."""
    return "default" if not vals else ":".join(f"{v:g}" for v in vals)


def set_contact(model, vals: tuple[float, ...]) -> None:
    """Every geom's contact settings (MuJoCo mixes a pair's alike values to the same)."""
    if len(vals) == 1:
        model.geom_solref[:] = [vals[0], 1.0]
    elif len(vals) == 3:
        model.geom_solimp[:] = [vals[0], vals[0], 0.001, 0.5, 2.0]
        model.geom_solref[:] = [-vals[1], -vals[2]]


def use_floor(floor) -> None:
    """Every identified simulator built from here on in this process stands on ``floor``
    (a ``FloorPad``, or None: MuJoCo's rigid contact) instead of stage 1's (``--floor``)."""
    import deploy.fidelity as fidelity

    fidelity._floor = lambda robot, sysid: None if sysid is None else floor


def foot_depth(sim, robot, radius) -> float:
    """Mean depth (m) of the rigid feet below z = 0: the foot site, or with pads the point of
    the leg they hang from."""
    m, d = sim.model, sim.data
    z = []
    for i, foot in enumerate(robot.foot_links):
        try:
            body = m.body(foot).id  # a body of its own only with pads (else fused in the leg)
        except KeyError:
            z.append(d.site_xpos[sim.idx.foot_site[i]][2] - radius[i])
            continue
        parent = m.body_parentid[body]
        z.append((d.xpos[parent] + d.xmat[parent].reshape(3, 3) @ m.body_pos[body])[2] - radius[i])
    return -float(np.mean(z))


def stand(run: Path, contacts: list[tuple[float, ...]]) -> int:
    """Standing depth of the feet and the stiffness per foot, per contact setting."""
    from deploy.fidelity import SimRobot, Variant
    from deploy.select import _robot_of
    from robot_rl.robot import load_robot
    from robot_rl.sim_mujoco import build_model
    from sysid.model import foot_radius

    robot = load_robot(_robot_of(run))
    radius = foot_radius(build_model(robot), robot)
    extra = 49.05  # N, a 5 kg weight on the trunk

    def depth(vals, push: float) -> float:
        sim = SimRobot.of_run(robot, run, Variant(True, "net"))
        set_contact(sim.model, vals)
        sim.reset()
        trunk = sim.model.body(robot.base_link).id
        out = []
        for k in range(int(round(2.0 / sim.control_dt))):
            sim.data.xfrc_applied[trunk, 2] = -push
            sim.send_targets(robot.array("nominal_pose"))
            sim.step()
            if k * sim.control_dt >= 1.5:
                out.append(foot_depth(sim, robot, radius))
        return float(np.mean(out))

    feet = len(robot.foot_links)
    for vals in contacts:
        d0, d1 = depth(vals, 0.0), depth(vals, extra)
        k = f"{extra / feet / (d1 - d0):.0f} N/m per foot" if d1 > d0 else "n/a (no deeper)"
        print(f"contact {label(vals):<16} feet {1e3 * d0:.2f} mm deep, {1e3 * d1:.2f} mm with {extra:g} N "
              f"more: {k}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="pipeline run folder (select/select.json, sysid/, actuator/)")
    p.add_argument("--candidates", default="", help="comma-separated candidate names [all]")
    p.add_argument("--robot-configs", default="", help="stand-in configs (names or JSON files)")
    p.add_argument("--sim-contacts", default="",
                   help="identified-simulator contact settings: default, T (solref time "
                        "constant, s) or D:K:B (solimp impedance, direct solref stiffness, damping)")
    p.add_argument("--floor", default="",
                   help="the identified simulator's floor: 'rigid' or K:B (N/m, N s/m) "
                        "[stage 1's, from the run's params.json]")
    p.add_argument("--stand", action="store_true",
                   help="measure the standing depth and stiffness per --sim-contacts setting")
    a = p.parse_args(argv)
    run = Path(a.run)
    path = run / "select" / "select.json"
    if not a.stand and not path.exists():
        print(f"diag_floor: error: {path}: missing (run the pipeline's select stage first)", file=sys.stderr)
        return 2
    try:
        contacts = [contact(c) for c in a.sim_contacts.split(",") if c]
    except ValueError as e:
        print(f"diag_floor: error: {e}", file=sys.stderr)
        return 2
    if a.floor:
        from robot_rl.sim_mujoco import FloorPad

        try:
            use_floor(None if a.floor == "rigid" else FloorPad(*(float(x) for x in a.floor.split(":"))))
        except (TypeError, ValueError):
            print(f"diag_floor: error: --floor: {a.floor!r} is not 'rigid' or K:B (stiffness "
                  "> 0 N/m, damping >= 0 N s/m)", file=sys.stderr)
            return 2
    from deploy.evaluate import EvalConfig, evaluate
    from deploy.fidelity import SimRobot, Variant
    from deploy.select import _robot_of, _score
    from robot_rl.robot import load_robot

    if a.stand:
        return stand(run, contacts or [()])
    try:
        s = json.loads(path.read_text())
        seed, seconds, candidates = int(s["seed"]), float(s["seconds"]), dict(s["candidates"])
        commands = tuple(tuple(float(x) for x in c) for c in s["commands"])  # the judge's own
    except (ValueError, KeyError, TypeError) as e:
        print(f"diag_floor: error: {path}: not a robot judge's record ({e!r}: needs seed, "
              "seconds, candidates, commands)", file=sys.stderr)
        return 2
    names = [c for c in a.candidates.split(",") if c] or list(candidates)
    unknown = sorted(set(names) - set(candidates))
    if unknown:
        print(f"diag_floor: error: --candidates: {unknown} not in {path} (has "
              f"{sorted(candidates)})", file=sys.stderr)
        return 2
    draws = s.get("parameters") == "drawn"  # the judge's simulator drew from stage 1's ranges
    robot = load_robot(_robot_of(run))
    cfg = EvalConfig(sim="mujoco", robot=robot.name, seconds=seconds, commands=commands,
                     push_interval_s=3.0, push_speed=0.4, push_seed=seed, video=False)

    def report(where: str, name: str, episodes) -> None:
        eps = _score(episodes, commands)
        print(f"{name:>12} {where:<48} falls {[i for i, e in enumerate(eps) if e['fell']]} "
              f"score {np.mean([e['score'] for e in eps]):.3f}", flush=True)

    for name in names:
        policy = candidates[name]
        for config in (c for c in a.robot_configs.split(",") if c):
            rcfg = replace(cfg, sim="pybullet", standin_config=config)
            report(f"robot {config}", name, evaluate(policy, None, rcfg, progress=False))
        for vals in contacts:
            sim = SimRobot.of_run(robot, run, Variant(True, "net"),
                                  draws=np.random.default_rng(seed) if draws else None)
            set_contact(sim.model, vals)
            report(f"identified simulator, contact {label(vals)}", name,
                   evaluate(policy, None, cfg, interface=sim, progress=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
