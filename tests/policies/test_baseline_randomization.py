"""Baseline (b)'s ingredients: the per-env randomized PD and the hand-set parameter ranges."""

import numpy as np
import pytest

from policies.actuation import RandomizedPD
from policies.config import EnvConfig, MotorRandomization
from policies.randomization import load_sysid
from robot_rl.config import ConfigError
from robot_rl.robot import load_robot
from sysid.cli import main as sysid_main
from sysid.params import nominal_values

A1 = load_robot("a1")


def test_randomized_pd_scales_gains_strength_and_delays_targets():
    dt = 0.005
    ranges = MotorRandomization(kp_scale=(2.0, 2.0), kd_scale=(0.5, 0.5),
                                strength_scale=(0.1, 0.1), latency=(0.01, 0.01))
    pd = RandomizedPD(A1, 3, dt, ranges, seed=0)
    q = np.tile(A1.array("nominal_pose"), (3, 1))
    qd = np.full((3, 12), 0.1)
    pd.reset(np.arange(3), q, qd)
    kp, kd, tmax = A1.array("kp"), A1.array("kd"), A1.array("tau_max")
    targets = [q + 0.001 * (k + 1) for k in range(5)]
    out = [pd(t, q, qd) for t in targets]
    # two physics steps of delay (0.01 s / 0.005 s); the first call fills the history
    for k, tau in enumerate(out):
        want = 2.0 * kp * (targets[max(k - 2, 0)] - q) - 0.5 * kd * qd
        np.testing.assert_allclose(tau, np.clip(want, -0.1 * tmax, 0.1 * tmax), rtol=1e-12)
    # a large error saturates at the scaled strength, once it has come through the delay
    for _ in range(3):
        tau = pd(q + 5.0, q, qd * 0)
    np.testing.assert_allclose(np.abs(tau), np.tile(0.1 * tmax, (3, 1)))


def test_randomized_pd_draws_per_env_and_redraws_at_reset():
    pd = RandomizedPD(A1, 64, 0.005, MotorRandomization(), seed=1)
    q = np.zeros((64, 12))
    pd.reset(np.arange(64), q, q)
    first = pd.scale.copy()
    lo = np.array([r[0] for r in (MotorRandomization().kp_scale, MotorRandomization().kd_scale,
                                  MotorRandomization().strength_scale)])
    assert np.all(first >= lo) and first.std(axis=0).min() > 0.05
    assert len(set(pd.delay.tolist())) > 1 and pd.delay.max() <= 4
    pd.reset(np.array([3]), q[:1], q[:1])
    assert not np.allclose(pd.scale[3], first[3]) and np.allclose(pd.scale[4], first[4])


def test_motor_randomization_rejects_bad_ranges():
    with pytest.raises(ConfigError, match="kp_scale"):
        MotorRandomization(kp_scale=(1.2, 0.8))
    with pytest.raises(ConfigError, match="pd_random"):
        EnvConfig(actuation="pd_random", physics="warp")


def test_hand_set_params_are_broad_and_centred_on_the_urdf(tmp_path):
    assert sysid_main(["--hand-set", "--robot", "a1", "--out", str(tmp_path)]) == 0
    p = load_sysid(tmp_path)
    nom = nominal_values(A1)
    assert set(p.ranges) == set(nom)
    for k, (lo, hi) in p.ranges.items():
        # the encoders as calibrated, as the stacks without identification take them
        assert lo <= nom[k] <= hi and (hi > lo or k.startswith("encoder_offset/")), k
        assert p.values[k] == nom[k]
    assert p.ranges["encoder_offset/FR_hip_joint"] == (0.0, 0.0)
    assert p.ranges["foot_friction"][0] <= 0.3 and p.ranges["trunk_mass"][1] >= 1.5 * nom["trunk_mass"]


def test_hand_set_ranges_scale_with_the_robot():
    """Joint friction, damping and armature ranges in units of the robot's size: a larger,
    heavier robot gets proportionally larger ones (m g h; m h^2), not the A1's N m."""
    from robot_rl.robot import load_robot
    from sysid.model import nominal
    from sysid.params import hand_set_table

    def size(robot):
        m, h = sum(nominal(robot).body_mass.values()), robot.nominal_base_height
        return m * 9.81 * h, m * h * h, h

    big = load_robot("aliengo")
    small_t, big_t = hand_set_table(A1), hand_set_table(big)
    (mgh_s, mhh_s, h_s), (mgh_b, mhh_b, h_b) = size(A1), size(big)
    j_s, j_b = A1.joint_names[1], big.joint_names[1]
    for kind, ratio in (("coulomb", mgh_b / mgh_s), ("damping", mgh_b / mgh_s),
                        ("armature", mhh_b / mhh_s)):
        hi_s, hi_b = small_t[f"{kind}/{j_s}"]["range"][1], big_t[f"{kind}/{j_b}"]["range"][1]
        assert hi_b / hi_s == pytest.approx(ratio, rel=1e-9), kind
    width = lambda t: t["trunk_com/z"]["range"][1] - t["trunk_com/z"]["range"][0]  # noqa: E731
    assert width(big_t) / width(small_t) == pytest.approx(h_b / h_s, rel=1e-9)
    assert mgh_b / mgh_s > 2  # the two robots differ enough for the test to mean something


def test_randomized_network_scales_clips_and_delays_the_network(actuator_dir):
    """net_random = the network on targets delayed d physics steps, its torque times s_t,
    clipped at s_f tau_max; a network fed the delayed targets by hand is the reference."""
    from policies.actuation import NetworkActuation, RandomizedNetwork
    from policies.config import NetworkRandomization

    dt, n = 0.005, 3
    ranges = NetworkRandomization(torque_scale=(0.5, 0.5), strength_scale=(0.2, 0.2),
                                  latency=(0.01, 0.01))
    rn = RandomizedNetwork(A1, actuator_dir, n, dt, ranges, seed=0)
    ref = NetworkActuation(A1, actuator_dir, n, dt, backend="numpy")
    q = np.tile(A1.array("nominal_pose"), (n, 1))
    qd = np.full((n, 12), 0.1)
    rn.reset(np.arange(n), q, qd)
    ref.reset(np.arange(n), q, qd)
    targets = [q + 0.02 * np.sin(k + np.arange(12)) for k in range(6)]
    lim = 0.2 * A1.array("tau_max")
    seen = []
    for k, t in enumerate(targets):
        want = np.clip(0.5 * ref(targets[max(k - 2, 0)], q, qd), -lim, lim)
        got = rn(t, q, qd)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        seen.append(got)
    assert np.ptp(np.stack(seen), axis=0).max() > 1e-3  # the targets reached the torque
    # per env draws, redrawn at reset of that env only
    wide = RandomizedNetwork(A1, actuator_dir, 64, dt, NetworkRandomization(), seed=1)
    wide.reset(np.arange(64), np.zeros((64, 12)), np.zeros((64, 12)))
    first = wide.scale.copy()
    assert first.std(axis=0).min() > 0.03 and len(set(wide.delay.tolist())) > 1
    wide.reset(np.array([5]), np.zeros((1, 12)), np.zeros((1, 12)))
    assert not np.allclose(wide.scale[5], first[5]) and np.allclose(wide.scale[6], first[6])


def test_network_randomization_rejects_bad_ranges():
    from policies.config import NetworkRandomization

    with pytest.raises(ConfigError, match="net_randomization.torque_scale"):
        NetworkRandomization(torque_scale=(1.2, 0.8))
    with pytest.raises(ConfigError, match="net_random"):
        EnvConfig(actuation="net_random", physics="warp")
    with pytest.raises(ConfigError, match="env.actuation must be one of"):
        EnvConfig(actuation="netrandom")
