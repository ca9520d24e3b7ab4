"""Runner: env contract, truncation bootstrapping, logging, NaN checks, checkpoints, determinism."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl.config import from_dict
from robot_rl.rl import (
    EnvContractError,
    NonFiniteError,
    OnPolicyRunner,
    TrainConfig,
    make_algorithm,
)
from robot_rl.rl.config import RunnerConfig
from robot_rl.rl.rollout import Trajectory
from robot_rl.rl.storage import STEP_FIELDS


def make_cfg(log_dir="", iterations=2, algo="trpo", normalize_obs=True, **runner):
    return from_dict(
        TrainConfig,
        {
            "algo": {"name": algo, "value_epochs": 2, "value_minibatches": 2},
            "policy": {"actor_hidden": [8], "critic_hidden": [8], "normalize_obs": normalize_obs},
            "runner": {
                "num_steps_per_env": 6,
                "iterations": iterations,
                "log_dir": str(log_dir),
                "device": "cpu",
                "progress": False,
                "seed": 7,
                **runner,
            },
        },
    )


def test_refuses_next_step_autoreset():
    env = gym.vector.SyncVectorEnv([lambda: gym.make("Pendulum-v1")])  # NEXT_STEP default
    with pytest.raises(EnvContractError, match="SAME_STEP"):
        OnPolicyRunner.from_config(env, make_cfg())


@pytest.mark.parametrize("dense_final", [False, True])
def test_truncation_bootstraps_from_value_of_final_obs(point_env, dense_final):
    env = point_env(num_envs=3, horizon=4, dense_final=dense_final)
    runner = OnPolicyRunner.from_config(env, make_cfg(normalize_obs=False))
    runner.collect()
    st = runner.algo.storage
    assert st.truncated.sum() == 3 and not st.terminated.any()  # step 3 of each env
    for step, i, _, _, final in env.finished:
        assert st.truncated[step, i]
        with torch.no_grad():
            v = runner.policy.value(torch.as_tensor(final)[None])[0]
        torch.testing.assert_close(st.final_values[step, i], v)
    # the recorded final obs is the last one of the episode (t / horizon == 1), not a reset obs
    assert all(final[1] == 1.0 for *_, final in env.finished)
    # GAE bootstraps there: A_t = r_t + gamma V(final) - V(s_t) at truncated steps (no carry)
    g = runner.algo.cfg.gamma
    mask = st.truncated
    expected = st.rewards[mask] + g * st.final_values[mask] - st.values[mask]
    torch.testing.assert_close(st.advantages[mask], expected)


def test_terminated_envs_do_not_bootstrap(point_env):
    env = point_env(num_envs=2, horizon=1000, x_max=0.0)  # every step terminates
    runner = OnPolicyRunner.from_config(env, make_cfg())
    runner.collect()
    st = runner.algo.storage
    assert st.terminated.all()
    torch.testing.assert_close(st.advantages, st.rewards - st.values)


def test_logs_episodes_and_reward_terms(point_env, tmp_path):
    env = point_env(num_envs=3, horizon=4)
    logs = []
    runner = OnPolicyRunner.from_config(
        env, make_cfg(tmp_path, iterations=2), callback=lambda it, log: logs.append((it, log))
    )
    runner.learn()
    assert [it for it, _ in logs] == [1, 2]
    log = logs[-1][1]
    assert log["reward/const"] == pytest.approx(1.0)
    assert log["reward/pos"] < 0
    returns = [r for *_, r, _, _ in env.finished]
    assert log["episode/return_mean"] == pytest.approx(np.mean(returns), rel=1e-5)
    assert log["episode/length_mean"] == 4.0
    for key in (
        "train/kl",
        "train/step_size",
        "train/accepted",
        "train/backtracks",
        "train/explained_variance",
        "train/value_loss",
        "train/entropy",
        "train/surrogate_improvement",
        "train/skip_reason",
        "perf/fps",
    ):
        assert key in log, key
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model_2.pt"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    runner.close()


def test_non_finite_observation_fails_loudly(point_env):
    runner = OnPolicyRunner.from_config(point_env(num_envs=2, nan_at=3), make_cfg())
    with pytest.raises(NonFiniteError, match=r"obs at iteration 0, step 3, env indices \[0\]"):
        runner.collect()


def test_same_seed_same_result_different_seed_different(point_env):
    def run(seed):
        r = OnPolicyRunner.from_config(point_env(num_envs=2), make_cfg(iterations=2, seed=seed))
        r.learn()
        return r.policy.state_dict()

    a, b, c = run(1), run(1), run(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("algo", ["trpo", "ppo_kl"])
def test_checkpoint_round_trip_and_resume(point_env, tmp_path, algo):
    cfg = make_cfg(tmp_path, iterations=3, algo=algo, normalize_rewards=True)
    r1 = OnPolicyRunner.from_config(point_env(num_envs=2), cfg)
    r1.learn(2)
    path = tmp_path / "ckpt.pt"
    r1.save(path)
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temporary file
    rng_after_save = torch.get_rng_state()

    cfg2 = make_cfg(tmp_path / "resumed", iterations=3, algo=algo, normalize_rewards=True)
    r2 = OnPolicyRunner.from_config(point_env(num_envs=2), cfg2)
    r2.load(path)
    assert r2.iteration == 2 and r2.env_steps == r1.env_steps
    s1, s2 = r1.algo.state_dict(), r2.algo.state_dict()
    p1, p2 = s1["policy"], s2["policy"]
    assert set(p1) == set(p2) and all(torch.equal(p1[k], p2[k]) for k in p1)
    assert "obs_normalizer.mean" in p2 and float(p2["obs_normalizer.count"]) > 0
    o1, o2 = s1["value_optimizer"], s2["value_optimizer"]
    assert o1["step"] == o2["step"] > 0
    assert torch.equal(o1["m"], o2["m"]) and torch.equal(o1["v"], o2["v"])
    if algo == "ppo_kl":
        assert r2.algo.beta == r1.algo.beta
    assert torch.equal(torch.get_rng_state(), rng_after_save)
    assert r2.reward_scaler.var == r1.reward_scaler.var > 0
    assert list(r2.episode_returns) == list(r1.episode_returns)

    r2.learn()  # resumes: runs the one remaining iteration
    assert r2.iteration == 3
    assert (tmp_path / "resumed" / "model_3.pt").exists()


def test_reward_scaler_matches_running_std_of_discounted_returns():
    from robot_rl.rl.reward_scaling import RewardScaler

    rng = np.random.default_rng(0)
    gamma, n_envs = 0.9, 3
    scaler = RewardScaler(n_envs, gamma, clip=1e9)
    batched = RewardScaler(n_envs, gamma, clip=1e9)
    ret, history, rs, ds, expected = np.zeros(n_envs), [], [], [], []
    for _ in range(50):
        r = rng.normal(2.0, 1.0, n_envs)
        done = rng.random(n_envs) < 0.1
        ret = gamma * ret + r
        history.append(ret.copy())
        out = scaler(r, done)  # one step at a time
        expected.append(r / np.sqrt(np.var(np.concatenate(history)) + 1e-8))
        np.testing.assert_allclose(out, expected[-1], rtol=1e-4)
        ret[done] = 0.0
        rs.append(r)
        ds.append(done)
    # a whole rollout at once (30 steps, then 20) gives the same as step by step
    out = np.concatenate([batched.scale(np.array(rs[:30]), np.array(ds[:30])),
                          batched.scale(np.array(rs[30:]), np.array(ds[30:]))])
    np.testing.assert_allclose(out, np.array(expected), rtol=1e-4)
    assert batched.var == pytest.approx(scaler.var)


def test_limit_threads_sets_torch_and_numpys_blas():
    # idle BLAS workers spin and take the cores the physics threads need: the runner sets
    # numpy's BLAS threads (blas_threads, 1 by default) apart from torch's (torch_threads)
    from threadpoolctl import threadpool_info, threadpool_limits

    from robot_rl.rl.process import limit_threads

    assert RunnerConfig().blas_threads == 1
    with threadpool_limits(limits=2, user_api="blas"):  # restores the limits afterwards
        before = torch.get_num_threads()
        try:
            limit_threads(1, 1)
            assert torch.get_num_threads() == 1
            blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
            assert blas and all(i["num_threads"] == 1 for i in blas)
            limit_threads(0, 0)  # 0: left as they are
            assert torch.get_num_threads() == 1
            assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
        finally:
            torch.set_num_threads(before)


def test_per_step_api_stores_what_the_runner_stores(point_env):
    """The algorithm's per-step API (``act`` / ``process_env_step``, rsl_rl's seam for a
    caller that steps its own env) and the runner's batched path (``store_trajectory``:
    one forward pass and one ``storage.fill``) store the same rollout, truncation
    bootstrap and terminal states included, and give the same GAE returns."""
    cfg = make_cfg(normalize_obs=False, normalize_rewards=False)
    runner = OnPolicyRunner.from_config(point_env(num_envs=3, horizon=4), cfg)
    algo = make_algorithm(cfg.algo, runner.policy)
    T, N, D = cfg.runner.num_steps_per_env, 3, 2
    algo.init_storage(N, T, D, 1)
    env = point_env(num_envs=N, horizon=4, x_max=0.45, dense_final=True)
    obs, _ = env.reset(seed=1)
    rec = {k: [] for k in ("obs", "actions", "rewards", "terminated", "truncated", "final_obs")}
    for _ in range(T):
        actions = algo.act(torch.from_numpy(obs))
        nxt, rew, term, trunc, info = env.step(np.clip(actions.numpy(), -1.0, 1.0))
        final = info.get("final_obs", np.zeros_like(nxt))
        algo.process_env_step(
            torch.from_numpy(rew), torch.from_numpy(term), torch.from_numpy(trunc),
            torch.from_numpy(final),
        )
        for k, v in zip(rec, (obs, actions.numpy(), rew, term, trunc, final)):
            rec[k].append(v)
        obs = nxt
    algo.compute_returns(torch.from_numpy(obs))
    traj = Trajectory(obs_raw=np.stack(rec["obs"]), last_obs=obs,
                      **{k: np.stack(v) for k, v in rec.items()})
    assert traj.truncated.any() and traj.terminated.any(), "the test needs both episode ends"
    runner.store_trajectory(traj, obs)
    for name in (*STEP_FIELDS, "advantages", "returns"):
        torch.testing.assert_close(getattr(algo.storage, name), getattr(runner.algo.storage, name),
                                   msg=name)
