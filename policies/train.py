"""Train the locomotion policy: TRPO (default) or PPO over the MuJoCo env.

The run folder (``--out``) holds ``config.json`` (the resolved env + training config, read
back by :func:`read_run_config`), ``git.json``,
TensorBoard events, checkpoints ``model_<iteration>.pt`` (atomic; resumable) and
``policy.pt`` (the deployable policy with its metadata, read by ``robot-rl export``).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from policies.artifact import PolicyMeta, write_policy
from policies.config import EnvConfig
from policies.env import LeggedEnv
from policies.randomization import SysidParams
from robot_rl.config import apply_overrides, merge_file, write_config
from robot_rl.obs_spec import command_ranges
from robot_rl.rl.config import AlgoConfig, PolicyConfig, RunnerConfig, TrainConfig
from robot_rl.rl.runner import OnPolicyRunner
from robot_rl.robot import RobotDescription
from sysid.model import weight_moment


@dataclass(frozen=True)
class LocomotionConfig:
    """A whole training run: the environment and the learner."""

    env: EnvConfig = field(default_factory=EnvConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        algo=AlgoConfig(name="trpo", gamma=0.99, lam=0.95, max_kl=0.01, cg_iters=10,
                        cg_damping=0.1, fvp_subsample=0.25, value_epochs=5,
                        value_minibatches=4),
        policy=PolicyConfig(actor_hidden=(128, 128), critic_hidden=(128, 128),
                            activation="elu", init_log_std=-0.5),
        runner=RunnerConfig(num_steps_per_env=48, iterations=800, save_interval=20, seed=0),
    ))


BUDGETS = {
    # a few iterations: proves the machinery (tests, pipeline smoke)
    "smoke": {"env.num_envs": 8, "train.runner.num_steps_per_env": 16,
              "train.runner.iterations": 2, "train.runner.save_interval": 1},
    "default": {},
}


#: fields added with one default and later given another: a resolved config written before
#: the field existed (the key absent) was trained with the value it had then
FORMER_DEFAULTS = {"env.rewards.lin_vel_fine": 0.0, "env.rewards.ang_vel_fine": 0.0}


def read_run_config(out: str | Path) -> LocomotionConfig:
    """The resolved config of a training run folder: ``config.json`` (env + training); a run
    written before it held both reads ``locomotion_config.json``.  Fields the file predates
    read as they were then (:data:`FORMER_DEFAULTS`), not as today's defaults."""
    out = Path(out)
    path = out / "config.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    if "env" not in data and (out / "locomotion_config.json").exists():
        path = out / "locomotion_config.json"
        data = json.loads(path.read_text())
    def given(key: str) -> bool:
        node = data
        for k in key.split("."):
            if not isinstance(node, dict) or k not in node:
                return False
            node = node[k]
        return True

    former = {k: v for k, v in FORMER_DEFAULTS.items() if not given(k)}
    return merge_file(apply_overrides(LocomotionConfig(), former, str(path)), path)


def policy_meta(env: LeggedEnv, iteration: int) -> PolicyMeta:
    """The metadata ``policy.pt`` carries for a policy trained on ``env``."""
    r, c = env.robot, env.cfg.commands
    return PolicyMeta(robot=r.name, joint_names=tuple(r.joint_names),
                      observation=env.spec.layout(), obs_dim=env.spec.size,
                      action_dim=r.num_joints, control_dt=env.cfg.control_dt,
                      nominal_pose=tuple(r.nominal_pose), action_scale=env.spec.action_scale,
                      q_min=tuple(r.q_min), q_max=tuple(r.q_max), iteration=iteration,
                      commands=command_ranges((c.vx, c.vy, c.yaw)))


def save_policy(path: Path, runner: OnPolicyRunner, env: LeggedEnv) -> None:
    """Write ``policy.pt`` (deployable policy + metadata), atomically."""
    write_policy(path, runner.policy, policy_meta(env, runner.iteration))


def checkpoint_iteration(path: Path | str | None) -> int | None:
    """The iteration of a checkpoint file ``model_<N>.pt`` (None: not one, or no path)."""
    m = re.fullmatch(r"model_(\d+)\.pt", Path(path).name) if path is not None else None
    return int(m.group(1)) if m else None


def latest_checkpoint(out: Path) -> Path | None:
    """The checkpoint with the highest iteration in ``out``, if any."""
    found = [(it, p) for p in out.glob("model_*.pt") if (it := checkpoint_iteration(p)) is not None]
    return max(found)[1] if found else None


def make_env(env_cfg: EnvConfig, sysid: SysidParams | None, actuator_dir: str | None,
             num_envs: int, seed: int) -> LeggedEnv:
    """``LeggedEnv`` with ``num_envs`` envs: the picklable factory of the Ray rollout workers."""
    return LeggedEnv(replace(env_cfg, num_envs=num_envs), sysid=sysid, actuator_dir=actuator_dir,
                     seed=seed)


#: joint stiffness below which a robot's PD gains are soft for its weight (kp in units of its
#: weight moment m g h per rad): at 0.38 (laikago, kp 40) and at 0.52 with every thigh at
#: one angle (aliengo, kp 40) the policy learned to sit on its rear legs and did not walk
#: forward; the A1 (0.61), aliengo at 0.78 and laikago at 0.76 walk (bench/RESULTS.md)
SOFT_GAINS = 0.5


def soft_gains_warning(robot: RobotDescription) -> str | None:
    """A warning when ``robot``'s softest PD gain is below :data:`SOFT_GAINS` m g h per
    rad, else None."""
    unit = weight_moment(robot)
    kp = robot.array("kp")
    i = int(np.argmin(kp))
    if kp[i] >= SOFT_GAINS * unit:
        return None
    return (f"robot {robot.name!r}: joint {robot.joint_names[i]} has kp {kp[i]:g} N m/rad, "
            f"{kp[i] / unit:.2f} of the robot's weight moment m g h = {unit:.1f} N m per rad "
            f"(below {SOFT_GAINS}): legs this soft for their load let policies learn to sit on "
            f"the rear legs instead of trotting forward; raise kp toward ~0.75 m g h per rad "
            f"or stand the rear feet behind the hips (bench/RESULTS.md, 'aliengo')")


def train(cfg: LocomotionConfig, out: str | Path, sysid: SysidParams | None = None,
          actuator_dir: str | None = None, resume: bool = False, workers: int = 0,
          ray_address: str | None = None) -> dict[str, Any]:
    """Train; return the last iteration's log.  ``resume`` continues from the latest checkpoint.

    ``workers > 0`` collects rollouts on that many Ray workers (``robot_rl.rl.distributed``;
    ``ray_address``: ``"auto"``, ``host:port`` or None for a local cluster); ``cfg.env.num_envs``
    is split among them.  Without it Ray is not imported.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if sysid is not None and sysid.robot and sysid.robot != cfg.env.robot:
        raise ValueError(f"sysid parameters are for robot {sysid.robot!r}, training robot is "
                         f"{cfg.env.robot!r}")
    env = LeggedEnv(cfg.env, sysid=sysid, actuator_dir=actuator_dir, seed=cfg.train.runner.seed)
    warning = soft_gains_warning(env.robot)
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    tcfg = replace(cfg.train, runner=replace(cfg.train.runner, log_dir=str(out)))
    rate = cfg.env.rewards.curriculum_rate

    def callback(iteration: int, log: dict[str, Any]) -> None:
        # curriculum: k_c <- k_c ** rate per iteration
        env.set_curriculum(cfg.env.rewards.curriculum_start ** (rate ** iteration))
        if workers:
            runner.env.call("set_curriculum", env.curriculum)
        log["train/curriculum"] = env.curriculum
        extra: dict[str, float] = {}
        if cfg.env.terrain_curriculum.enabled and not workers:
            extra["terrain/mean_level"] = env.ground.mean_level
            extra.update({f"terrain/level/{k}": v for k, v in env.ground.level_by_kind.items()})
        if cfg.env.commands.adaptive > 0 and not workers:
            extra.update(env.commands.summary())
        log.update(extra)
        if getattr(runner, "writer", None) is not None:  # it wrote its scalars already
            for name, value in extra.items():
                runner.writer.add_scalar(name, value, iteration)
        if tcfg.runner.save_interval and iteration % tcfg.runner.save_interval == 0:
            save_policy(out / "policy.pt", runner, env)

    if workers:
        from functools import partial

        from robot_rl.rl.distributed import DistributedRunner

        runner = DistributedRunner.from_factory(
            partial(make_env, cfg.env, sysid, actuator_dir), cfg.env.num_envs, workers, tcfg,
            callback=callback, address=ray_address)
    else:
        runner = OnPolicyRunner.from_config(env, tcfg, callback=callback)
    # the runner wrote its own part (algo, policy, runner) as config.json: the run's whole
    # config (env + training) replaces it, one file
    write_config(out, replace(cfg, train=tcfg))
    if resume:
        ckpt = latest_checkpoint(out)
        if ckpt is not None:
            runner.load(ckpt)
            env.set_curriculum(cfg.env.rewards.curriculum_start ** (rate ** runner.iteration))
            if workers:
                runner.env.call("set_curriculum", env.curriculum)
            print(f"resumed from {ckpt} (iteration {runner.iteration})")
    try:
        log = runner.learn()
        save_policy(out / "policy.pt", runner, env)
    finally:
        runner.close()
        env.close()
    return log
