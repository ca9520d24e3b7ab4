"""TRPO learns Pendulum-v1 on a CPU budget (fixed seed).

8 envs x 200 steps per iteration (one full episode per env and iteration, each ended by
the time limit, so every update exercises truncation bootstrapping), 35 iterations =
56k env steps, about 10 s on one free CPU core.  A random policy scores about -1200;
the assertion asks for the last two iterations' mean episode return to be above -600.
"""

import numpy as np

from robot_rl.config import from_dict
from robot_rl.rl import OnPolicyRunner, TrainConfig, make_gym_vec_env


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
