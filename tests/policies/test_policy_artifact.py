"""policy.pt has one owner (policies/artifact.py): schema, atomic writer, validating reader."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from deploy.testing import random_policy_state, write_random_policy
from policies.artifact import (
    POLICY_FILE,
    PolicyFileError,
    policy_path,
    read_policy,
    write_policy,
    write_state,
)

REPO = Path(__file__).resolve().parents[2]
META_KEYS = ("robot", "joint_names", "observation", "control_dt", "nominal_pose",
             "action_scale", "q_min", "q_max")


def test_committed_policy_reads():
    # the checkpoint committed with the repository stays readable
    p = read_policy(REPO / "policies" / "trained" / "a1")
    assert p.path.name == POLICY_FILE and p.meta.robot == "a1"
    assert p.meta.obs_dim == p.model.obs_dim and p.meta.action_dim == len(p.meta.joint_names)
    assert p.meta.iteration > 0 and len(p.sha256) == 64


def test_write_then_read_round_trip(tmp_path):
    src = read_policy(write_random_policy(tmp_path / "a", seed=4))
    meta = replace(src.meta, iteration=7)
    path = write_policy(tmp_path / "b", src.model, meta)  # a folder: <folder>/policy.pt
    assert path == tmp_path / "b" / POLICY_FILE == policy_path(tmp_path / "b")
    back = read_policy(path)
    assert back.meta == meta and back.policy_config == src.policy_config
    for k, v in src.model.state_dict().items():
        torch.testing.assert_close(back.model.state_dict()[k], v, rtol=0, atol=0)
    assert [p.name for p in (tmp_path / "b").iterdir()] == [POLICY_FILE]  # no temporary left


def test_writer_refuses_inconsistent_metadata(tmp_path):
    src = read_policy(write_random_policy(tmp_path / "a"))
    with pytest.raises(PolicyFileError, match="'meta.nominal_pose'"):
        write_policy(tmp_path / "b", src.model, replace(src.meta, nominal_pose=(0.0,) * 3))
    assert not (tmp_path / "b" / POLICY_FILE).exists()


@pytest.mark.parametrize("key", META_KEYS)
def test_missing_meta_field_names_file_and_field(tmp_path, key):
    state = random_policy_state()
    del state["meta"][key]
    path = write_state(tmp_path / POLICY_FILE, state)
    with pytest.raises(PolicyFileError) as e:
        read_policy(tmp_path)
    assert str(path) in str(e.value) and f"'meta.{key}'" in str(e.value), str(e.value)


@pytest.mark.parametrize("key", ("model_state", "policy_config", "obs_dim", "action_dim", "meta"))
def test_missing_top_level_field_names_file_and_field(tmp_path, key):
    state = random_policy_state()
    del state[key]
    path = write_state(tmp_path / POLICY_FILE, state)
    with pytest.raises(PolicyFileError, match=f"{path}: field '{key}': is missing"):
        read_policy(path)


def test_malformed_meta_field_names_it(tmp_path):
    state = random_policy_state()
    state["meta"]["control_dt"] = "fast"
    write_state(tmp_path / POLICY_FILE, state)
    with pytest.raises(PolicyFileError, match="'meta.control_dt'"):
        read_policy(tmp_path)


def test_readers_do_not_import_training_code():
    code = ("import sys, policies.artifact, actuator_net.artifacts\n"
            "bad = [m for m in ('policies.train', 'policies.env', 'actuator_net.train') "
            "if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_training_records_its_command_ranges(tmp_path):
    """policy.pt carries the command ranges of the env it was trained in (what the onboard
    runtime keeps commands inside); a file written before them reads as None."""
    from policies.config import CommandConfig, EnvConfig
    from policies.env import LeggedEnv
    from policies.train import policy_meta

    cmds = CommandConfig(vx=(-0.5, 1.2), vy=(-0.2, 0.1), yaw=(-1.0, 0.7))
    env = LeggedEnv(replace(EnvConfig(), num_envs=1, commands=cmds))
    try:
        meta = policy_meta(env, 5)
    finally:
        env.close()
    assert meta.commands == ((-0.5, 1.2), (-0.2, 0.1), (-1.0, 0.7))
    src = read_policy(write_random_policy(tmp_path / "a"))
    assert src.meta.commands is None
    back = read_policy(write_policy(tmp_path / "b", src.model, replace(src.meta, commands=meta.commands)))
    assert back.meta.commands == meta.commands
