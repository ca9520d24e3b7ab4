"""One TRPO policy step equals sb3-contrib's on the same data and weights.

sb3-contrib is in the ``dev`` extra, so this runs in the test install
(``scripts/test.sh``; under a second on one core); it is skipped only where sb3-contrib
is missing.

sb3-contrib averages the diagonal-Gaussian KL over action dimensions (its
``kl_divergence`` returns per-dimension terms, then ``.mean()``); ours sums over
dimensions as in the TRPO paper.  With our ``max_kl`` and ``cg_damping`` scaled by the
action dimension the two natural-gradient steps are the same step, which this test
checks to float32 precision on a rollout sb3 collected itself.
"""

import pytest
import torch

sb3_contrib = pytest.importorskip("sb3_contrib")
pytest.importorskip("mujoco")

from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

from robot_rl.rl import ActorCritic, AlgoConfig, PolicyConfig, make_algorithm  # noqa: E402
from robot_rl.rl.base import _normalized  # noqa: E402
from robot_rl.rl.numerics import flat_params  # noqa: E402
from robot_rl.rl.storage import Batch  # noqa: E402


class _NoCallback(BaseCallback):
    def _on_step(self) -> bool:
        return True


def test_trpo_step_matches_sb3_contrib():
    target_kl, damping, n_steps = 0.02, 0.1, 64
    venv = make_vec_env("Hopper-v5", n_envs=2, seed=0)
    model = sb3_contrib.TRPO(
        "MlpPolicy",
        venv,
        n_steps=n_steps,
        batch_size=64,
        cg_max_steps=15,
        cg_damping=damping,
        target_kl=target_kl,
        seed=0,
        device="cpu",
        n_critic_updates=1,
    )
    model._setup_learn(10 * n_steps, None)
    callback = _NoCallback()
    callback.init_callback(model)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_steps)

    sp = model.policy
    obs_dim, act_dim = venv.observation_space.shape[0], venv.action_space.shape[0]
    ours = ActorCritic(
        obs_dim, act_dim, PolicyConfig(actor_hidden=(64, 64), critic_hidden=(64, 64))
    )
    pn, vn = sp.mlp_extractor.policy_net, sp.mlp_extractor.value_net
    with torch.no_grad():
        pairs = [
            (ours.actor.layers[0], pn[0]),
            (ours.actor.layers[1], pn[2]),
            (ours.actor.layers[2], sp.action_net),
            (ours.critic.layers[0], vn[0]),
            (ours.critic.layers[1], vn[2]),
            (ours.critic.layers[2], sp.value_net),
        ]
        for dst, src in pairs:
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
        ours.log_std.copy_(sp.log_std)
    cfg = AlgoConfig(
        name="trpo",
        max_kl=target_kl * act_dim,
        cg_damping=damping * act_dim,
        cg_iters=15,
        line_search_steps=10,
        backtrack=0.8,
    )
    algo = make_algorithm(cfg, ours)

    rb = model.rollout_buffer

    def t(x, *shape):
        return torch.as_tensor(x.reshape(-1, *shape), dtype=torch.float32)

    obs, actions = t(rb.observations, obs_dim), t(rb.actions, act_dim)
    with torch.no_grad():
        mean = ours.actor(obs)
    adv = t(rb.advantages)
    batch = Batch(
        obs=obs,
        actions=actions,
        log_probs=t(rb.log_probs),
        values=t(rb.values),
        action_mean=mean,
        action_std=ours.action_std().detach().expand_as(mean),
        advantages=adv,
        returns=torch.as_tensor(rb.returns.reshape(-1)),
    )
    stats = algo.update_policy(batch, _normalized(adv))
    model.train()

    theirs = torch.cat(
        [
            p.detach().reshape(-1)
            for p in (
                pn[0].weight,
                pn[0].bias,
                pn[2].weight,
                pn[2].bias,
                sp.action_net.weight,
                sp.action_net.bias,
                sp.log_std,
            )
        ]
    )
    assert (
        stats["accepted"] == 1.0
        and model.logger.name_to_value["train/is_line_search_success"] == 1.0
    )
    torch.testing.assert_close(flat_params(ours.actor_parameters()), theirs, rtol=1e-4, atol=1e-5)
    venv.close()
