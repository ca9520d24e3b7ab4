"""robot_rl/rl/process.py: the RNG state a checkpoint carries, and the git state of a run."""

from __future__ import annotations

import random

import numpy as np
import torch

from robot_rl.rl.process import git_state, rng_state, seed_everything, set_rng_state


def _draws():
    return random.random(), float(np.random.random()), float(torch.rand(()))


def test_rng_state_round_trip_replays_every_generator():
    seed_everything(3)
    _draws()
    saved = rng_state()
    assert all(isinstance(v, torch.Tensor) for v in (saved["torch"], saved["numpy"][1]))
    first = _draws()
    assert _draws() != first
    set_rng_state(saved)
    assert _draws() == first


def test_seed_everything_is_the_one_seeding_block():
    seed_everything(7)
    a = _draws()
    seed_everything(7)
    assert _draws() == a
    seed_everything(8)
    assert _draws() != a


def test_git_state_inside_and_outside_a_git_tree(tmp_path, monkeypatch):
    state = git_state()  # the tests run in the repository
    assert state is not None and len(state["commit"]) == 40 and isinstance(state["status"], list)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_state() is None
