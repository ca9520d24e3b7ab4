"""bench/bench_time_to_walk.py's walking grade, used by bench_time_to_walk and bench_rsl_rl:
it builds the ONNX metadata from the training env's ``policy_meta`` and evaluates in MuJoCo."""

import sys
from dataclasses import replace
from pathlib import Path

from policies.config import EnvConfig
from policies.env import LeggedEnv
from robot_rl.rl.config import PolicyConfig
from robot_rl.rl.models import ActorCritic

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_time_to_walk  # noqa: E402


def test_grade_model_runs_a_training_env_policy_through_the_evaluation():
    env = LeggedEnv(replace(EnvConfig(), num_envs=2))
    try:
        model = ActorCritic(env.spec.size, env.robot.num_joints, PolicyConfig())
        g = bench_time_to_walk.grade_model(model, env, iteration=3, seconds=0.3)
    finally:
        env.close()
    assert set(g) == {"vx_err", "yaw_err", "falls", "pass"}
    # an untrained policy cannot track 0.8 m/s in 0.3 s: the criterion must say so
    assert g["vx_err"] > bench_time_to_walk.GOAL_VX and g["pass"] is False
