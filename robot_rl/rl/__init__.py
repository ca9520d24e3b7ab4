"""On-policy RL algorithms (TRPO, NPG, PPO) over one rollout storage and one runner."""
