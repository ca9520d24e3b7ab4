"""Reward terms by hand: the tracking kernels, their widths, scales, dt and the curriculum."""

import dataclasses
import math

import numpy as np

from policies.config import RewardConfig
from policies.rewards import StepState, compute, logistic_kernel


def _state(vx: float, yaw: float, command=(0.5, 0.0, 0.3)) -> StepState:
    n, j, f = 1, 12, 4
    return StepState(
        command=np.array([command]), base_linvel_b=np.array([[vx, 0.0, 0.0]]),
        base_angvel_b=np.array([[0.0, 0.0, yaw]]), gravity_b=np.array([[0.0, 0.0, -1.0]]),
        tau=np.full((n, j), 2.0), qd=np.zeros((n, j)), action=np.zeros((n, j)),
        prev_action=np.zeros((n, j)), foot_height=np.zeros((n, f)),
        foot_vel=np.zeros((n, f, 3)), foot_contact=np.ones((n, f), bool),
        foot_air_time=np.zeros((n, f)))


def test_logistic_kernel_is_one_at_zero_and_falls_with_the_error_over_the_width():
    assert logistic_kernel(np.array([0.0]), 0.15)[0] == 1.0
    w = 0.15
    np.testing.assert_allclose(logistic_kernel(np.array([w, -w]), w),
                               4 / (math.e + 2 + 1 / math.e), rtol=1e-12)
    np.testing.assert_allclose(logistic_kernel(np.array([0.1]), 0.15), 0.897, atol=1e-3)
    assert logistic_kernel(np.array([1e3]), 0.15)[0] < 1e-12  # clipped, no overflow


def test_terms_are_scaled_by_dt_costs_by_the_curriculum_and_zero_scales_skipped():
    cfg = RewardConfig()
    s = _state(vx=0.4, yaw=0.2)  # 0.1 m/s and 0.1 rad/s short of the command
    out = compute(s, cfg, dt=0.02, curriculum=0.5)
    np.testing.assert_allclose(out["lin_vel_fine"], 1.0 * 0.02 * logistic_kernel(np.array([0.1]), 0.05))
    off = compute(s, dataclasses.replace(cfg, lin_vel_fine=0.0, ang_vel_fine=0.0), 0.02, 0.5)
    assert "lin_vel_fine" not in off and "ang_vel_fine" not in off  # a zero scale skips it
    np.testing.assert_allclose(out["lin_vel"], 2.0 * 0.02 * logistic_kernel(np.array([0.1]), 0.15))
    np.testing.assert_allclose(out["torque"], 0.5 * -0.22 * 0.02 * 12 * 4.0)  # tau 2 N m, unit 1


def test_fine_tracking_terms_pay_for_the_last_tenth_of_a_command():
    cfg = dataclasses.replace(RewardConfig(), lin_vel_fine=1.0, ang_vel_fine=0.5,
                              fine_kernel_width=0.05)
    dt = 0.02
    near, far = (compute(_state(vx=v, yaw=0.3 - (0.5 - v)), cfg, dt, 1.0) for v in (0.45, 0.4))
    np.testing.assert_allclose(near["lin_vel_fine"], dt * logistic_kernel(np.array([0.05]), 0.05))
    np.testing.assert_allclose(far["ang_vel_fine"], 0.5 * dt * logistic_kernel(np.array([0.1]), 0.05))
    # closing 0.1 -> 0.05 m/s earns the narrow kernel several times what it earns the wide one
    fine = near["lin_vel_fine"] - far["lin_vel_fine"]
    wide = (near["lin_vel"] - far["lin_vel"]) / cfg.lin_vel
    assert fine > 3 * wide
