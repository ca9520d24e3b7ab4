"""The training env and the onboard controller run one observation and action state machine.

The env (3 envs, no noise, no randomization, no IMU bias, no pushes) and one
:class:`OnboardController` per env row go through the same trajectory: each period every
controller reads its row's measured state, its policy acts, and the env steps with those
raw actions.  Observations and joint targets must agree at every step within float error
(a few ulps; here they are equal to the bit, but a batch of 3 and a single row may round
apart on another CPU's vector kernels): both paths run
:class:`robot_rl.obs_state.ObsActionState` on the same float64 inputs, so a difference
beyond that is a divergence of the state machines (a clip of 9 instead of 10 or a handover
at another phase moves them by 0.1 or more).  The raw actions
are pushed beyond the +-10 clip at some steps, so both clips are exercised.
"""

from __future__ import annotations

import numpy as np
import pytest

from deploy.export import export_policy
from deploy.runtime import Mode, OnboardController
from deploy.safety import SafetyConfig
from deploy.testing import write_random_policy
from policies.config import EnvConfig
from policies.env import LeggedEnv
from robot_rl.interface import RobotState
from robot_rl.obs_state import ACTION_CLIP

STEPS = 30
# no noise; episodes that do not end (the random policy lets the robot sag)
QUIET = dict(num_envs=3, obs_noise=0.0, push_interval=0.0, randomize=False, imu_gyro_bias=0.0,
             imu_tilt_bias=0.0, action_latency=0, fall_height_fraction=0.1,
             terminate_on_base_contact=False)


def _state(env: LeggedEnv, i: int, stamp: float) -> RobotState:
    """What env row ``i``'s robot measures (the env's own sensors)."""
    sensor = env.physics.sensor  # the env's sensors, by name
    nj = env.robot.num_joints
    return RobotState(stamp=stamp, q=env.joint_q()[i].copy(), qd=env.joint_qd()[i].copy(),
                      tau=np.zeros(nj), base_quat=sensor("base_quat")[i].copy(),
                      base_angvel=sensor("base_gyro")[i].copy(), base_acc=np.array([0, 0, 9.81]))


@pytest.mark.parametrize("base_linvel", [False, True])
def test_env_and_onboard_controller_agree_step_by_step(tmp_path, base_linvel):
    env = LeggedEnv(EnvConfig(**QUIET, obs_base_linvel=base_linvel), seed=0)
    write_random_policy(tmp_path / "p", env.robot, spec=env.spec, seed=3,
                        control_dt=env.cfg.control_dt)
    onnx = export_policy(tmp_path / "p", tmp_path / "p.onnx").path
    env.reset(seed=0)
    n, dt = env.num_envs, env.cfg.control_dt
    # the env hands over as the controller does: history from the current state and the
    # nominal pose (the last target of the controller's ramp), gait clock at 0
    env.obs_state.reset(np.arange(n), env.joint_q(), env.joint_qd())
    obs = env._observe(noise=False)
    ctls, raw = [], [None] * n
    for i in range(n):
        ctl = OnboardController(onnx, env.robot, safety=SafetyConfig(hold_s=0.0, ramp_s=0.0),
                                command=tuple(env.command[i]))
        assert ctl.spec == env.spec and (ctl.estimator is not None) == base_linvel
        if base_linvel:  # the estimate is the env's perfect one (the sensor's velocity)
            ctl.estimator.update = lambda state: None
        policy = ctl._infer

        def infer(o, i=i, policy=policy):  # the raw action, recorded; a mild walk with,
            raw[i] = 0.1 * policy(o).astype(np.float64)  # now and then, a hip beyond the clip
            if k in (2, 14):
                raw[i][0, 3 * i] = (-1) ** k * 1.5 * ACTION_CLIP
            return raw[i]
        ctl._infer = infer
        standing = _state(env, i, 0.0)
        standing.q = env.q0.copy()  # started standing at the nominal pose: HOLD = RAMP end
        ctl.start(standing)
        ctls.append(ctl)
    clipped = 0
    for k in range(STEPS):
        targets = []
        for i, ctl in enumerate(ctls):
            if base_linvel:
                ctl.estimator.velocity = env.physics.sensor("base_linvel_local")[i].copy()
            step = ctl.compute(_state(env, i, k * dt))
            assert step.mode is Mode.POLICY, ctl.fault
            # one robot vs a batch of 3: float32 observations within a few ulps (CI may run
            # another CPU, whose vector kernels round a batch and a single row apart)
            np.testing.assert_allclose(step.obs[0], obs[i], rtol=4e-7, atol=1e-6,
                                       err_msg=f"obs, step {k} env {i}")
            targets.append(step.target)
        actions = np.concatenate(raw)
        clipped += int((np.abs(actions) > ACTION_CLIP).sum())
        obs, _, terminated, truncated, _ = env.step(actions)
        assert not (terminated | truncated).any()
        np.testing.assert_allclose(np.array(targets), env.obs_state.target, rtol=0, atol=1e-12,
                                   err_msg=f"joint targets, step {k}")
        np.testing.assert_allclose(np.array([c.phase for c in ctls]), env.obs_state.phase,
                                   rtol=0, atol=1e-12)
    assert clipped > 0  # the clip was exercised
    env.close()
