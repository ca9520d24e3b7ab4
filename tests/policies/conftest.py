"""Fixtures shared by the env tests."""

import pytest


@pytest.fixture(scope="session")
def actuator_dir(small_actuator_net):
    """A folder holding a small single-type actuator network (drives any joints)."""
    return small_actuator_net("shared")[0].parent
