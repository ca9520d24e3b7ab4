"""Every algorithm learns a task where an untrained policy scores far below a trained one;
TRPO learns Pendulum-v1 on a CPU budget (fixed seeds).

Steering task (``PointEnv(start=2, gain=0.5, pos_coef=1)``, 10-step episodes): the
untrained policy (mean ~0, std 1) random-walks and earns about -13 per episode; the
deterministic controller that steers x to 0 earns about +9 (computed in the test).  Each
algorithm must close 80 % of that gap in 15 iterations (about 1-2.5 s each on one core);
a policy update that does nothing stays near -13.

Pendulum:
8 envs x 200 steps per iteration (one full episode per env and iteration, each ended by
the time limit, so every update exercises truncation bootstrapping), 35 iterations =
56k env steps, about 10 s on one free CPU core.  A random policy scores about -1200;
the assertion asks for the last two iterations' mean episode return to be above -600.
"""

import numpy as np
import pytest

from robot_rl.config import from_dict
from robot_rl.rl import OnPolicyRunner, TrainConfig, make_gym_vec_env

REACH = {"horizon": 10, "start": 2.0, "gain": 0.5, "pos_coef": 1.0}


@pytest.mark.parametrize("name", ["trpo", "npg", "ppo_clip", "ppo_kl"])
def test_learner_closes_the_gap_to_the_steering_controller(name, point_env):
    cfg = from_dict(TrainConfig, {
        "algo": {"name": name, "max_kl": 0.02, "gamma": 0.95, "ppo_lr": 1e-3},
        "policy": {"actor_hidden": [16], "critic_hidden": [16]},
        "runner": {"num_steps_per_env": 20, "iterations": 15, "device": "cpu",
                   "progress": False, "seed": 0, "episode_window": 32}})
    returns = []
    runner = OnPolicyRunner.from_config(
        point_env(num_envs=16, **REACH), cfg,
        callback=lambda it, log: returns.append(log["episode/return_mean"]))
    runner.learn()
    # iteration 0's episodes are the untrained policy's (its rollout precedes the update)
    untrained, trained = returns[0], returns[-1]
    target = point_env(num_envs=16, **REACH).steering_return(seed=0, episodes=64)
    assert target - untrained > 15, (target, untrained)  # the task separates the two
    assert trained - untrained >= 0.8 * (target - untrained), returns


def test_trpo_learns_pendulum():
    cfg = from_dict(
        TrainConfig,
        {
            "algo": {
                "name": "trpo",
                "gamma": 0.95,
                "max_kl": 0.02,
                "value_epochs": 10,
                "value_minibatches": 8,
            },
            "runner": {
                "num_steps_per_env": 200,
                "iterations": 35,
                "seed": 0,
                "device": "cpu",
                "normalize_rewards": True,
                "episode_window": 16,
                "progress": False,
            },
        },
    )
    env = make_gym_vec_env("Pendulum-v1", num_envs=8)
    returns = []
    runner = OnPolicyRunner.from_config(
        env, cfg, callback=lambda it, log: returns.append(log["episode/return_mean"])
    )
    runner.learn()
    env.close()
    first, last = returns[0], returns[-1]
    assert first < -900, returns
    assert last > -600, returns
    assert np.isfinite(returns).all()
    assert last - first > 400
