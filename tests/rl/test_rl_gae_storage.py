"""GAE on a hand-worked example with a truncation and a termination; storage; normalizer."""

import numpy as np
import pytest
import torch

from robot_rl.rl import EmpiricalNormalization, RolloutStorage, compute_gae

# Hand-worked example, gamma = 0.9, lam = 0.5, one env, four steps:
#   step 0: ordinary                 next value V(s1) = 1.0
#   step 1: truncated (time limit)   bootstrap V(final_obs) = 10.0
#   step 2: terminated               next value counts as 0
#   step 3: ordinary, last step      bootstrap V(last obs) = 3.0
# deltas: d0 = 1 + 0.9*1.0  - 0.5 = 1.4
#         d1 = 2 + 0.9*10.0 - 1.0 = 10.0
#         d2 = 3 + 0        - 1.5 = 1.5
#         d3 = 4 + 0.9*3.0  - 2.0 = 4.7
# advantages (recursion cut at episode ends, steps 1 and 2):
#         A3 = 4.7;  A2 = 1.5;  A1 = 10.0;  A0 = 1.4 + 0.9*0.5*10.0 = 5.9
# returns = A + V = [6.4, 11.0, 3.0, 6.7]
GAMMA, LAM = 0.9, 0.5
REWARDS = [1.0, 2.0, 3.0, 4.0]
VALUES = [0.5, 1.0, 1.5, 2.0]
TERMINATED = [False, False, True, False]
TRUNCATED = [False, True, False, False]
EXPECTED_ADV = [5.9, 10.0, 1.5, 4.7]
EXPECTED_RET = [6.4, 11.0, 3.0, 6.7]


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


def test_gae_hand_worked_example():
    next_values = t([1.0, 10.0, 123.0, 3.0])  # 123: value after a termination is ignored
    term, trunc = t(TERMINATED, torch.bool), t(TRUNCATED, torch.bool)
    adv, ret = compute_gae(t(REWARDS), t(VALUES), next_values, term, term | trunc, GAMMA, LAM)
    torch.testing.assert_close(adv, t(EXPECTED_ADV))
    torch.testing.assert_close(ret, t(EXPECTED_RET))


def test_gae_without_episode_ends_is_discounted_td_sum():
    # lam = 1: A_t = sum_k gamma^k r_{t+k} + gamma^{T-t} V_T - V_t
    r, v = t([1.0, 1.0, 1.0]), t([0.0, 0.0, 0.0])
    nv = t([0.0, 0.0, 2.0])
    f = torch.zeros(3, dtype=torch.bool)
    adv, _ = compute_gae(r, v, nv, f, f, 0.5, 1.0)
    torch.testing.assert_close(
        adv, t([1 + 0.5 + 0.25 + 0.125 * 2, 1 + 0.5 + 0.25 * 2, 1 + 0.5 * 2])
    )


def fill_storage(num_envs=1):
    """The hand-worked rollout, through RolloutStorage (env 1, if any, is env 0 doubled)."""
    st = RolloutStorage(num_envs, 4, obs_dim=2, action_dim=1)
    scale = torch.arange(1, num_envs + 1, dtype=torch.float32)
    for k in range(4):
        final = torch.full((num_envs,), 10.0 if TRUNCATED[k] else 99.0) * scale
        st.add(
            obs=torch.zeros(num_envs, 2),
            actions=torch.zeros(num_envs, 1),
            log_probs=torch.zeros(num_envs),
            values=VALUES[k] * scale,
            action_mean=torch.zeros(num_envs, 1),
            action_std=torch.ones(num_envs, 1),
            rewards=REWARDS[k] * scale,
            terminated=torch.full((num_envs,), TERMINATED[k]),
            truncated=torch.full((num_envs,), TRUNCATED[k]),
            final_values=final,
        )
    st.compute_returns(torch.full((num_envs,), 3.0) * scale, GAMMA, LAM)
    return st


@pytest.mark.parametrize("num_envs", [1, 2])
def test_storage_bootstraps_truncation_from_final_value_buffer(num_envs):
    st = fill_storage(num_envs)
    for i in range(num_envs):
        torch.testing.assert_close(st.advantages[:, i], (i + 1) * t(EXPECTED_ADV, torch.float32))
        torch.testing.assert_close(st.returns[:, i], (i + 1) * t(EXPECTED_RET, torch.float32))
    b = st.batch()
    assert b.obs.shape == (4 * num_envs, 2) and b.advantages.shape == (4 * num_envs,)
    assert len(b[torch.tensor([0, 1])]) == 2


def test_terminated_and_truncated_together_counts_as_terminated():
    st = RolloutStorage(1, 1, 1, 1)
    z = torch.zeros(1)
    st.add(
        torch.zeros(1, 1),
        torch.zeros(1, 1),
        z,
        t([0.5], torch.float32),
        torch.zeros(1, 1),
        torch.ones(1, 1),
        t([1.0], torch.float32),
        t([True], torch.bool),
        t([True], torch.bool),
        t([10.0], torch.float32),
    )
    st.compute_returns(t([7.0], torch.float32), 0.9, 0.95)
    torch.testing.assert_close(st.advantages, t([[0.5]], torch.float32))


def test_storage_refuses_overflow_and_incomplete_rollouts():
    st = RolloutStorage(1, 2, 1, 1)
    with pytest.raises(RuntimeError, match="incomplete"):
        st.compute_returns(torch.zeros(1), 0.9, 0.9)
    args = [
        torch.zeros(1, 1),
        torch.zeros(1, 1),
        *[torch.zeros(1)] * 2,
        torch.zeros(1, 1),
        torch.ones(1, 1),
        torch.zeros(1),
        torch.zeros(1, dtype=torch.bool),
        torch.zeros(1, dtype=torch.bool),
        torch.zeros(1),
    ]
    st.add(*args)
    st.add(*args)
    with pytest.raises(RuntimeError, match="full"):
        st.add(*args)


def test_empirical_normalization_matches_batch_statistics():
    rng = np.random.default_rng(0)
    data = rng.normal([1.0, -3.0, 100.0], [0.5, 2.0, 30.0], size=(500, 3)).astype(np.float32)
    norm = EmpiricalNormalization(3, clip=None)
    for chunk in np.array_split(data, 7):
        norm.update(torch.from_numpy(chunk))
    torch.testing.assert_close(norm.mean, torch.from_numpy(data.mean(0)), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(norm.var, torch.from_numpy(data.var(0)), rtol=1e-4, atol=1e-4)
    assert int(norm.count) == 500
    y = norm(torch.from_numpy(data))
    torch.testing.assert_close(y.mean(0), torch.zeros(3), rtol=0, atol=1e-4)
    # the statistics are buffers: they travel with state_dict
    assert {"mean", "var", "count"} <= set(norm.state_dict())


def test_empirical_normalization_clips():
    norm = EmpiricalNormalization(1, clip=2.0)
    assert float(norm(torch.tensor([[100.0]]))) == 2.0


def test_empirical_normalization_resumes_from_state_dict():
    g = torch.Generator().manual_seed(0)
    a, b = EmpiricalNormalization(4), EmpiricalNormalization(4)
    a.update(torch.randn(50, 4, generator=g) * 3 + 1)
    b.load_state_dict(a.state_dict())
    more = torch.randn(20, 4, generator=g)
    a.update(more)
    b.update(more)
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v)
    assert float(a.count) == 70
