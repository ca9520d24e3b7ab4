"""robot_rl/pd.py: the ideal PD law, and the models that apply it through that one definition."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import torch

from robot_rl.pd import pd_torque

ROOT = Path(__file__).resolve().parents[1]


def test_hand_worked_values():
    kp, kd = np.array([20.0, 40.0]), np.array([0.5, 1.0])
    # 20 * 0.1 - 0.5 * 2 = 1;  40 * (-0.5) - 1 * (-3) = -17
    tau = pd_torque(kp, kd, np.array([0.1, -0.5]), np.array([2.0, -3.0]))
    np.testing.assert_allclose(tau, [1.0, -17.0])
    np.testing.assert_allclose(
        pd_torque(kp, kd, np.array([0.1, -0.5]), np.array([2.0, -3.0]), np.array([0.5, 10.0])),
        [0.5, -10.0])  # clipped per joint, both signs


def test_broadcasts_over_envs_and_per_env_gains():
    e, qd = np.ones((3, 2)), np.zeros((3, 2))
    scale = np.array([[1.0], [2.0], [3.0]])  # per-env gain and strength scales
    tau = pd_torque(scale * np.array([1.0, 10.0]), 0.0, e, qd, scale * 5.0)
    np.testing.assert_allclose(tau, [[1.0, 5.0], [2.0, 10.0], [3.0, 15.0]])


def test_torch_tensors_without_a_limit():
    kp, kd = torch.tensor([20.0]), torch.tensor([0.5])
    tau = pd_torque(kp, kd, torch.tensor([[0.1]]), torch.tensor([[2.0]]))
    assert isinstance(tau, torch.Tensor) and tau.dtype == torch.float32 and tau.shape == (1, 1)
    assert abs(tau.item() - 1.0) < 1e-6  # 20 * 0.1 - 0.5 * 2


def test_models_apply_the_law():
    """IdealPD, RandomizedPD at unit scales and no delay, the torch actuation's PD path,
    stage 2's ideal-PD baseline and the stand-in driver give the law's torque."""
    from actuator_net.baselines import ideal_pd
    from policies.actuation import IdealPD, RandomizedPD, TorchActuation
    from policies.config import MotorRandomization
    from robot_rl.robot import load_robot

    robot = load_robot("a1")
    kp, kd, tmax = robot.array("kp"), robot.array("kd"), robot.array("tau_max")
    rng = np.random.default_rng(0)
    qt, q, qd = (rng.normal(size=(4, robot.num_joints)) * s for s in (1.0, 1.0, 20.0))
    want = np.clip(kp * (qt - q) - kd * qd, -tmax, tmax)
    assert np.any(np.abs(want) == tmax) and np.any(np.abs(want) < tmax)  # both regimes
    np.testing.assert_array_equal(IdealPD(robot)(qt, q, qd), want)
    one = MotorRandomization(kp_scale=(1.0, 1.0), kd_scale=(1.0, 1.0),
                             strength_scale=(1.0, 1.0), latency=(0.0, 0.0))
    rand = RandomizedPD(robot, num_envs=4, physics_dt=0.005, ranges=one)
    rand.reset(np.arange(4), q, qd)
    np.testing.assert_array_equal(rand(qt, q, qd), want)
    net = TorchActuation("pd", robot, num_envs=4, physics_dt=0.005)
    got = net(*(torch.from_numpy(a).float() for a in (qt, q, qd))).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(ideal_pd(qt - q, qd, kp, kd), kp * (qt - q) - kd * qd)


def test_the_law_is_written_once():
    """No module outside robot_rl/pd.py writes ``kp * e - kd * qd`` itself."""
    def gain(node, name):
        return any((isinstance(n, ast.Name) and name in n.id.lower())
                   or (isinstance(n, ast.Attribute) and name in n.attr.lower())
                   for n in ast.walk(node))

    found = []
    for package in ("robot_rl", "sysid", "actuator_net", "policies", "deploy"):
        for p in sorted((ROOT / package).rglob("*.py")):
            for n in ast.walk(ast.parse(p.read_text())):
                if (isinstance(n, ast.BinOp) and isinstance(n.op, ast.Sub)
                        and isinstance(n.left, ast.BinOp) and isinstance(n.left.op, ast.Mult)
                        and isinstance(n.right, ast.BinOp) and isinstance(n.right.op, ast.Mult)
                        and gain(n.left, "kp") and gain(n.right, "kd")):
                    found.append(f"{p.relative_to(ROOT)}:{n.lineno}")
    assert [f for f in found if not f.startswith("robot_rl/pd.py:")] == []
    assert found  # the scan sees the definition itself
