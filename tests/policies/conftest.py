"""Fixtures shared by the env tests."""

import pytest
import torch


@pytest.fixture(scope="session")
def actuator_dir(tmp_path_factory):
    """A small single-type actuator network (drives any joints), trained in about a second."""
    from actuator_net.artifacts import checkpoint
    from actuator_net.config import ActuatorNetConfig, ModelConfig
    from actuator_net.config import TrainConfig as NetTrainConfig
    from actuator_net.importers import from_robot_log
    from actuator_net.synthetic import pendulum_log
    from actuator_net.train import train as train_net

    series = [from_robot_log(pendulum_log(seconds=6.0, num_joints=3, seed=7))]
    cfg = ActuatorNetConfig(model=ModelConfig(history_spacing=0.01),
                            train=NetTrainConfig(max_steps=30, progress=False),
                            joint_types="shared")
    out = tmp_path_factory.mktemp("actuator")
    torch.save(checkpoint(train_net(series, cfg)), out / "actuator.pt")
    return out
