"""Our TRPO (robot_rl.rl) against sb3-contrib's TRPO, side by side on one machine.

For every task and seed, both are trained back to back for the same number of env steps
with the same hyperparameters (rl-baselines3-zoo's tuned TRPO settings for MuJoCo, see
``HYPERPARAMS``), then their deterministic policies are evaluated on the same 5 episode
seeds.  Printed per seed: final mean evaluation return of each, training wall-clock of
each (env construction included on both sides), and the ratios ours/sb3.  Then, per task
over the seeds (default 5, seeds 0-4): the interquartile mean (IQM, mean of the middle
half; ``bench/stats.py``) of each side's return and wall-clock with a percentile-bootstrap
95 % interval (10 000 resamples of the seeds, fixed RNG), and the ratios ours/sb3 of the
IQMs with a bootstrap 95 % interval (the two sides resampled independently).  Results
go to ``bench/results/trpo_<steps>_<tasks>_seeds<...>.json`` unless ``--json`` says
otherwise.

    python bench/bench_trpo.py --steps 50000 --tasks Hopper-v5       # 5 seeds, CPU-cheap
    python bench/bench_trpo.py --steps 1000000 --num-seeds 10        # sb3's documented budget
    python bench/bench_trpo.py --gpu-update                          # one update, CPU vs CUDA

Hyperparameters (both sides; rl-zoo ``hyperparams/trpo.yml``, ``*mujoco-defaults``):
2 envs, 1024 steps per env per update (2048 samples), gamma 0.99, GAE lambda 0.95,
target_kl 0.01 (HalfCheetah: 0.04, as the zoo tunes it), 25 CG iterations, CG damping 0.1,
Fisher on the whole batch (sub_sampling_factor 1), 10 line-search trials shrinking by 0.8,
value net fitted by Adam (lr 1e-3) for 20 epochs of minibatches of 128 (16 per epoch),
normalized advantages, observation and reward normalization (VecNormalize on sb3's side,
EmpiricalNormalization + RewardScaler on ours; clip 10), sb3's default MlpPolicy: separate
64-64 tanh actor and critic, orthogonal init, log std initialised to 0.

KL convention: sb3-contrib averages the diagonal-Gaussian KL over action dimensions (its
``kl_divergence`` returns per-dimension terms, then ``.mean()``), so its ``target_kl``
bounds KL / action_dim and its Fisher-vector products are of F / action_dim (+ damping).
Ours bounds the summed KL per state (the TRPO paper's).  By default our ``max_kl`` and
``cg_damping`` are therefore sb3's values times action_dim (Hopper 3, HalfCheetah 6),
which makes the two natural-gradient steps identical; ``--literal-kl`` uses sb3's numbers
unchanged (our trust region is then action_dim times smaller).

Evaluation: ``gymnasium.make(task)``, episodes seeded 10_000 + 100 * seed + k (k < 5),
deterministic (mean) actions clipped to the action bounds, raw (unnormalized) reward sum.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from robot_rl.config import from_dict
from robot_rl.rl import OnPolicyRunner, TrainConfig, make_gym_vec_env

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_checks import gpu_update  # noqa: E402
from provenance import commit, machine  # noqa: E402
from stats import N_RESAMPLES, bootstrap_ci, fmt_ci, ratio_ci  # noqa: E402

N_ENVS = 2
N_STEPS = 1024
BATCH = 128
HYPERPARAMS = {
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "cg_max_steps": 25,
    "cg_damping": 0.1,
    "n_critic_updates": 20,
    "learning_rate": 1e-3,
    "line_search_max_iter": 10,
    "line_search_shrinking_factor": 0.8,
    "sub_sampling_factor": 1,
}
TARGET_KL = {"HalfCheetah-v5": 0.04}  # zoo tuned value; every other task 0.01
SB3_DOC = {"Hopper-v5": 3372, "HalfCheetah-v5": 1803}  # sb3-contrib docs, v3 tasks, 1M steps


def target_kl(task: str) -> float:
    return TARGET_KL.get(task, 0.01)


def evaluate(act, task: str, seed: int, episodes: int) -> float:
    """Mean raw return of ``act(obs) -> action`` over ``episodes`` seeded episodes."""
    env = gym.make(task)
    low, high = env.action_space.low, env.action_space.high
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=10_000 + 100 * seed + k)
        done, ret = False, 0.0
        while not done:
            obs, r, term, trunc, _ = env.step(np.clip(act(obs), low, high))
            ret += float(r)
            done = term or trunc
        returns.append(ret)
    env.close()
    return float(np.mean(returns))


def run_ours(task: str, steps: int, seed: int, episodes: int, match_kl: bool = True) -> dict:
    iterations = math.ceil(steps / (N_ENVS * N_STEPS))
    t0 = time.perf_counter()  # env construction timed on both sides
    env = make_gym_vec_env(task, N_ENVS)
    # sb3-contrib's TRPO averages the Gaussian KL over action dimensions (its kl_divergence
    # returns per-dimension terms and .mean() runs over batch and dimensions), so its
    # target_kl bounds KL / action_dim and its Fisher is F / action_dim + damping.  Ours
    # bounds the summed KL, as in the TRPO paper.  match_kl scales max_kl and damping by
    # action_dim so that both take the same natural-gradient step.
    scale = int(env.single_action_space.shape[0]) if match_kl else 1
    cfg = from_dict(
        TrainConfig,
        {
            "algo": {
                "name": "trpo",
                "gamma": HYPERPARAMS["gamma"],
                "lam": HYPERPARAMS["gae_lambda"],
                "max_kl": target_kl(task) * scale,
                "cg_iters": HYPERPARAMS["cg_max_steps"],
                "cg_damping": HYPERPARAMS["cg_damping"] * scale,
                "fvp_subsample": 1.0 / HYPERPARAMS["sub_sampling_factor"],
                "line_search_steps": HYPERPARAMS["line_search_max_iter"],
                "backtrack": HYPERPARAMS["line_search_shrinking_factor"],
                "value_lr": HYPERPARAMS["learning_rate"],
                "value_epochs": HYPERPARAMS["n_critic_updates"],
                "value_minibatches": N_ENVS * N_STEPS // BATCH,
            },
            "policy": {
                "actor_hidden": [64, 64],
                "critic_hidden": [64, 64],
                "activation": "tanh",
                "init_log_std": 0.0,
                "normalize_obs": True,
                "obs_clip": 10.0,
            },
            "runner": {
                "num_steps_per_env": N_STEPS,
                "iterations": iterations,
                "seed": seed,
                "device": "cpu",
                "normalize_rewards": True,
                "reward_clip": 10.0,
                "progress": False,
            },
        },
    )
    runner = OnPolicyRunner.from_config(env, cfg)
    runner.learn()
    wall = time.perf_counter() - t0
    env.close()
    policy = runner.policy.eval()

    @torch.no_grad()
    def act(obs):
        return policy.act_deterministic(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()

    return {
        "wall_s": wall,
        "env_steps": runner.env_steps,
        "eval_return": evaluate(act, task, seed, episodes),
        "train_return_last100": float(np.mean(runner.episode_returns))
        if runner.episode_returns
        else float("nan"),
        "line_search_accepted_last": runner.last_log.get("train/accepted"),
        "final_action_std": float(policy.action_std().detach().mean()),
        "max_kl": cfg.algo.max_kl,
        "cg_damping": cfg.algo.cg_damping,
    }


def run_sb3(task: str, steps: int, seed: int, episodes: int) -> dict:
    from sb3_contrib import TRPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    t0 = time.perf_counter()
    venv = VecNormalize(
        make_vec_env(task, n_envs=N_ENVS, seed=seed),
        gamma=HYPERPARAMS["gamma"],
        clip_obs=10.0,
        clip_reward=10.0,
    )
    model = TRPO(
        "MlpPolicy",
        venv,
        n_steps=N_STEPS,
        batch_size=BATCH,
        target_kl=target_kl(task),
        seed=seed,
        device="cpu",
        verbose=0,
        **HYPERPARAMS,
    )
    model.learn(total_timesteps=steps)
    wall = time.perf_counter() - t0
    venv.training = False
    venv.norm_reward = False

    def act(obs):
        action, _ = model.predict(venv.normalize_obs(obs[None]), deterministic=True)
        return action[0]

    train_ret = [ep["r"] for ep in model.ep_info_buffer]
    out = {
        "wall_s": wall,
        "env_steps": int(model.num_timesteps),
        "eval_return": evaluate(act, task, seed, episodes),
        "train_return_last100": float(np.mean(train_ret)) if train_ret else float("nan"),
        "final_action_std": float(torch.exp(model.policy.log_std.detach()).mean()),
    }
    venv.close()
    return out


def warm_up(tasks: list[str]) -> None:
    """Pay the one-off import costs before timing either side (whichever runs first would
    otherwise carry them): gymnasium's MuJoCo envs, and ``torch._dynamo``, which
    ``torch.optim`` imports when the first optimizer is built (about 1.3 s here)."""
    for task in tasks:
        gym.make(task).close()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def _fmt(d: dict | None, key: str) -> str:
    return f"{d[key]:.1f}" if d else "-"


def _ratio(o: dict | None, s: dict | None, key: str) -> str:
    return f"{o[key] / s[key]:.2f}" if o and s and s[key] else "-"


def summarize(results: list[dict], task: str) -> dict:
    """IQM of each side's return and wall-clock over the seeds of ``task``, with
    percentile-bootstrap 95 % intervals, and the ratios ours/sb3 of the IQMs."""
    rows = [r for r in results if r["task"] == task and "ours" in r and "sb3" in r]
    out: dict = {"task": task, "seeds": [r["seed"] for r in rows]}
    for key in ("eval_return", "wall_s"):
        ours = [r["ours"][key] for r in rows]
        sb3 = [r["sb3"][key] for r in rows]
        out[key] = {
            "ours_iqm_ci95": bootstrap_ci(ours),
            "sb3_iqm_ci95": bootstrap_ci(sb3),
            "ratio_iqm_ci95": ratio_ci(ours, sb3),
            "ours_mean": float(np.mean(ours)),
            "sb3_mean": float(np.mean(sb3)),
        }
    return out


def default_json(tasks: list[str], steps: int, seeds: list[int]) -> Path:
    short = "_".join(t.split("-")[0].lower() for t in tasks)
    steps_s = f"{steps // 1000}k" if steps % 1000 == 0 else str(steps)
    seeds_s = (
        f"{min(seeds)}-{max(seeds)}"
        if seeds == list(range(min(seeds), max(seeds) + 1))
        else "_".join(map(str, seeds))
    )
    return (
        Path(__file__).resolve().parent / "results" / f"trpo_{steps_s}_{short}_seeds{seeds_s}.json"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["Hopper-v5", "HalfCheetah-v5"])
    ap.add_argument("--steps", type=int, default=1_000_000, help="env steps per run (both sides)")
    ap.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="explicit seeds (default: 0 .. --num-seeds - 1)",
    )
    ap.add_argument(
        "--num-seeds", type=int, default=5, help="seeds 0 .. N-1 when --seeds is not given"
    )
    ap.add_argument("--eval-episodes", type=int, default=5)
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads, both sides (default: 1 for training, "
        "torch's default for --gpu-update)",
    )
    ap.add_argument("--only", choices=["both", "ours", "sb3"], default="both")
    ap.add_argument(
        "--json",
        default="",
        help="write the results to this file (default: "
        "bench/results/trpo_<steps>_<tasks>_seeds<...>.json; '-' for none)",
    )
    ap.add_argument(
        "--literal-kl",
        action="store_true",
        help="use sb3's target_kl and damping values as our max_kl and damping "
        "unchanged (a trust region action_dim times smaller than sb3's)",
    )
    ap.add_argument(
        "--gpu-update",
        action="store_true",
        help="time one TRPO update on CPU vs CUDA instead of training",
    )
    args = ap.parse_args()
    if args.gpu_update:
        if args.threads:
            torch.set_num_threads(args.threads)
        gpu_update()
        return
    torch.set_num_threads(args.threads or 1)
    seeds = args.seeds if args.seeds is not None else list(range(args.num_seeds))
    command = "python bench/bench_trpo.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    cpu = machine()

    print(
        f"machine: {cpu}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s), steps={args.steps}, seeds={seeds}"
    )
    if args.only == "both" and len(seeds) < 5:
        print(f"note: {len(seeds)} seed(s); the IQM intervals below need at least 5 to mean much")
    warm_up(args.tasks)
    results = []
    for task in args.tasks:
        for seed in seeds:
            row = {"task": task, "seed": seed, "steps": args.steps}
            if args.only in ("both", "ours"):
                row["ours"] = run_ours(
                    task, args.steps, seed, args.eval_episodes, match_kl=not args.literal_kl
                )
                print(f"{task} seed {seed} ours: {json.dumps(row['ours'])}", flush=True)
            if args.only in ("both", "sb3"):
                row["sb3"] = run_sb3(task, args.steps, seed, args.eval_episodes)
                print(f"{task} seed {seed} sb3:  {json.dumps(row['sb3'])}", flush=True)
            results.append(row)

    print()
    print(
        "| task | seed | steps | ours return | sb3 return | return ratio ours/sb3 "
        "| ours wall s | sb3 wall s | wall ratio ours/sb3 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        o, s = r.get("ours"), r.get("sb3")
        print(
            f"| {r['task']} | {r['seed']} | {r['steps']} | {_fmt(o, 'eval_return')} | "
            f"{_fmt(s, 'eval_return')} | {_ratio(o, s, 'eval_return')} | {_fmt(o, 'wall_s')} | "
            f"{_fmt(s, 'wall_s')} | {_ratio(o, s, 'wall_s')} |"
        )

    summary = []
    if args.only == "both":
        summary = [summarize(results, task) for task in args.tasks]
        print()
        print(
            f"IQM over seeds {seeds} with percentile-bootstrap 95 % intervals "
            f"({N_RESAMPLES} resamples of the seeds, fixed RNG; ratios resample both sides "
            "independently):"
        )
        print()
        print(
            "| task | steps | seeds | ours return IQM | sb3 return IQM | return ratio ours/sb3 "
            "| ours wall s IQM | sb3 wall s IQM | wall ratio ours/sb3 |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for sm in summary:
            ret, wall = sm["eval_return"], sm["wall_s"]
            print(
                f"| {sm['task']} | {args.steps} | {len(sm['seeds'])} | "
                f"{fmt_ci(ret['ours_iqm_ci95'], 0)} | {fmt_ci(ret['sb3_iqm_ci95'], 0)} | "
                f"**{fmt_ci(ret['ratio_iqm_ci95'], 2)}** | {fmt_ci(wall['ours_iqm_ci95'], 1)} | "
                f"{fmt_ci(wall['sb3_iqm_ci95'], 1)} | **{fmt_ci(wall['ratio_iqm_ci95'], 2)}** |"
            )
    print(f"(sb3-contrib documented TRPO returns at 1M steps on v3 tasks: {SB3_DOC})")
    if args.json != "-":
        path = Path(args.json) if args.json else default_json(args.tasks, args.steps, seeds)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "command": command,
            "cpu": cpu,
            "commit": commit(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "steps": args.steps,
            "seeds": seeds,
            "literal_kl": args.literal_kl,
            "statistic": "IQM (n // 4 cut from each end), percentile bootstrap 95 %, "
            f"{N_RESAMPLES} resamples of the seeds, numpy default_rng(0); "
            "ratio: both sides resampled independently",
            "summary": summary,
            "runs": results,
        }
        with open(path, "w") as f:
            json.dump(payload, f, indent=2)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
