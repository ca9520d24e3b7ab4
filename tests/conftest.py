"""Fixtures shared across the test packages."""

import pytest
import torch


@pytest.fixture(scope="session")
def small_actuator_net(tmp_path_factory):
    """``make(joint_types, tau_max, num_lags) -> (path of actuator.pt, trained model)``: a
    small actuator network trained in about a second on synthetic pendulum logs ("shared":
    one type, drives any joints; "a,b,a": typed), trained once per session.  With the
    default 8 N m torque limit the pendulums' actuator saturates most of the time and the
    network has no linear term (actuator_net.train.passive_law); with 40 N m it has one.
    ``num_lags`` history steps at 0.01 s (3, the paper's, unless given); ``error_reference``
    as ``actuator_net.config.ModelConfig``'s ("lag": the layout of older checkpoints)."""
    from actuator_net.artifacts import checkpoint
    from actuator_net.config import ActuatorNetConfig, ModelConfig, TrainConfig
    from actuator_net.importers import from_robot_log
    from actuator_net.synthetic import pendulum_log
    from actuator_net.train import train

    made = {}

    def make(joint_types: str = "shared", tau_max: float = 8.0, num_lags: int = 3,
             error_reference: str = "now"):
        key = (joint_types, tau_max, num_lags, error_reference)
        if key not in made:
            series = [from_robot_log(pendulum_log(seconds=6.0, num_joints=3, seed=7,
                                                  tau_max=tau_max))]
            cfg = ActuatorNetConfig(model=ModelConfig(history_spacing=0.01, num_lags=num_lags,
                                                      error_reference=error_reference),
                                    train=TrainConfig(max_steps=30, progress=False),
                                    joint_types=joint_types)
            result = train(series, cfg)
            path = tmp_path_factory.mktemp("actuator") / "actuator.pt"
            torch.save(checkpoint(result), path)
            made[key] = (path, result.model)
        return made[key]

    return make
