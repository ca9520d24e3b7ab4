"""The benchmarks' bookkeeping: bench_rsl_rl's --merge refuses runs of other settings or a
seed twice; bench_seeds refuses a run made on another reality or with its seed missing;
bench_command_sweep scores each command kind on its own axis and reads transfer-suite results."""

import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_command_sweep  # noqa: E402
import bench_rsl_rl  # noqa: E402
import bench_seeds  # noqa: E402
import bench_terrain_curve  # noqa: E402
import diag_floor  # noqa: E402
import stats  # noqa: E402


def _args(**changes):
    base = dict(seeds=[3, 4], algos=["trpo", "rsl_ppo"], iterations=600, num_envs=128,
                eval_every=50, eval_seconds=20.0, grade_all=False, env_threads=0,
                torch_threads=0, hidden=[128, 128], device="cpu", merge=[])
    return argparse.Namespace(**{**base, **changes})


def _results_file(path: Path, seeds, **arg_changes) -> Path:
    args = {k: v for k, v in vars(_args(**arg_changes)).items() if k != "merge"}
    runs = [{"algo": al, "seed": s} for s in seeds for al in ("trpo", "rsl_ppo")]
    path.write_text(json.dumps({"args": args, "results": runs}))
    return path


def test_merge_joins_runs_of_the_same_settings(tmp_path):
    f = _results_file(tmp_path / "a.json", [0, 1, 2])
    runs = bench_rsl_rl.merged_runs(_args(merge=[str(f)]))
    assert sorted((r["algo"], r["seed"]) for r in runs) == sorted(
        (al, s) for s in (0, 1, 2) for al in ("trpo", "rsl_ppo"))


def test_merge_refuses_other_settings_and_a_seed_twice(tmp_path):
    other = _results_file(tmp_path / "b.json", [0], num_envs=64)
    with pytest.raises(ValueError, match="args.num_envs"):
        bench_rsl_rl.merged_runs(_args(merge=[str(other)]))
    again = _results_file(tmp_path / "c.json", [4])
    with pytest.raises(ValueError, match="seed 4 is already"):
        bench_rsl_rl.merged_runs(_args(merge=[str(again)]))
    (tmp_path / "d.json").write_text("{}")
    with pytest.raises(ValueError, match="d.json: fields 'args' and 'results'"):
        bench_rsl_rl.merged_runs(_args(merge=[str(tmp_path / "d.json")]))


def test_seeds_bench_reads_the_seed_and_refuses_another_reality(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "pipeline.json").write_text(json.dumps({"robot": "a1", "seed": 3, "standin_config": None}))
    assert bench_seeds.run_seed(run, "default") == 3
    with pytest.raises(ValueError, match="'standin_config' is 'default', expected 'driver_mismatch'"):
        bench_seeds.run_seed(run, "driver_mismatch")
    with pytest.raises(ValueError, match="fields 'seed' and 'standin_config'"):
        bench_seeds.run_seed(tmp_path, "default")


def test_seeds_table_pairs_the_deployed_policy_with_its_own_seeds_baselines(tmp_path):
    """Per seed the deployed policy is compared with the baselines of the same run."""
    runs = [tmp_path / f"s{i}" for i in range(3)]
    results = {}
    for i, run in enumerate(runs):
        success = {"a": 0.4, "b": 0.6 + 0.1 * i, "i": 0.9, "e": 0.9}
        md5 = {"a": f"a{i}", "b": f"b{i}", "i": f"i{i}", "e": f"i{i}"}
        for k in bench_seeds.POLICIES:
            results[f"{run}/{k}"] = {"seed": i, "md5": md5[k], "summary": {
                "success_rate": success[k], "falls": 0, "vx_abs_err": 0.1}}
    md = bench_seeds.table(results, runs, "default", (0, 1, 2), 8.0)
    # (e) - (b) per seed: 0.3, 0.2, 0.1 -> IQM over 3 seeds is their mean, 0.2
    assert "| (e) - (b), paired | 0.20 [" in md and "| (e) - (a), paired | 0.50 [0.50, 0.50] |" in md
    assert md.count("| (i) |") == 3  # the deployed file is the identified candidate each time


def test_command_sweep_scores_each_command_on_its_own_axis():
    def ep(vx, vy, yaw, **m):
        return {"command": {"vx": vx, "vy": vy, "yaw_rate": yaw}, "fell": False, "fault": None, **m}

    report = {"metrics": {"falls": 1}, "episodes": [
        ep(0.0, 0.25, 0.0, vy_abs_err=0.15, vy_mean=0.10, vx_abs_err=9, yaw_abs_err=9),
        ep(0.0, -0.5, 0.0, vy_abs_err=0.05, vy_mean=-0.45, vx_abs_err=9, yaw_abs_err=9),
        ep(0.6, 0.0, 0.0, vx_abs_err=0.1, vy_abs_err=9, yaw_abs_err=9, vy_mean=0),
        ep(0.0, 0.0, 0.5, yaw_abs_err=0.2, vx_abs_err=9, vy_abs_err=9, vy_mean=0),
        ep(0.4, -0.15, -0.3, yaw_abs_err=0.4, vx_abs_err=9, vy_abs_err=9, vy_mean=0)]}
    s = bench_command_sweep.score(report)
    assert s["lateral_err"] == pytest.approx(0.10) and s["forward_err"] == pytest.approx(0.1)
    assert s["lateral_reached"] == pytest.approx((0.4 + 0.9) / 2)
    assert s["yaw_err"] == pytest.approx(0.3) and s["falls"] == 1
    assert s["success"] == 0.0  # every episode misses a bar on some axis (9 m/s)
    assert stats.difference_ci([0.2] * 5, [0.1] * 5) == pytest.approx((-0.1, -0.1, -0.1))


def test_command_sweep_reads_suite_results_and_counts_their_falls(tmp_path, capsys):
    def ep(vx, vy, yaw, fell, err):
        return {"command": {"vx": vx, "vy": vy, "yaw_rate": yaw}, "fell": fell, "fault": None,
                "vx_abs_err": err, "vy_abs_err": err, "yaw_abs_err": err, "vy_mean": vy / 2}

    def suite(path, err, falls):
        eps = [ep(0.7, 0.0, 0.0, i < falls, err) for i in range(3)] + [ep(0.0, 0.25, 0.0, False, err)]
        other = [ep(0.7, 0.0, 0.0, False, 0.1)]  # a second reality, always successful
        path.write_text(json.dumps({"realities": {"default": {"episodes": eps},
                                                  "ice": {"episodes": other}}}))
        return str(path)

    a = [suite(tmp_path / f"a{i}.json", 0.1, 0) for i in range(2)]
    b = [suite(tmp_path / f"b{i}.json", 0.3, 2) for i in range(2)]
    out = tmp_path / "cmp.json"
    assert bench_command_sweep.main(["--side", "a=" + ",".join(a), "--side", "b=" + ",".join(b),
                                     "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["source"] == "suite" and res["reality"] == "default"
    assert [r["falls"] for r in res["policies"]["b"]] == [2.0, 2.0]
    assert res["difference"]["b"]["forward_err"][0] == pytest.approx(0.2)
    assert res["summary"]["a"]["lateral_reached"][0] == pytest.approx(0.5)
    # success: no fall and every axis within the suite's bars (0.3 m/s misses them)
    assert [r["success"] for r in res["policies"]["a"]] == [1.0, 1.0]
    assert res["summary"]["b"]["success"][0] == pytest.approx(0.0)
    # realities pooled: b's 4 failed episodes and ice's 1 successful one
    assert bench_command_sweep.main(["--side", "b=" + ",".join(b), "--reality", "all",
                                     "--out", str(out)]) == 0
    assert json.loads(out.read_text())["policies"]["b"][0]["success"] == pytest.approx(0.2)
    # another reality, or suite and policy files mixed: one line, exit 2
    assert bench_command_sweep.main(["--side", "a=" + a[0], "--reality", "default,mud"]) == 2
    assert "has no 'mud'" in capsys.readouterr().err
    (tmp_path / "p.onnx").write_bytes(b"")
    assert bench_command_sweep.main(["--side", f"a={a[0]},{tmp_path / 'p.onnx'}"]) == 2
    assert "all policy .onnx or all suite .json" in capsys.readouterr().err


def test_floor_diagnosis_parses_contacts_and_refuses_bad_ones(tmp_path, capsys):
    """``--sim-contacts``: default, a time constant, or impedance:stiffness:damping; anything
    else, or a run without the judge's record, is one line and exit 2."""
    assert diag_floor.contact("default") == ()
    assert diag_floor.contact("0.06") == (0.06,)
    assert diag_floor.contact("0.5:430:46") == (0.5, 430.0, 46.0)
    for bad in ("0", "0.5:430", "a", "0.5:-1:2"):
        with pytest.raises(ValueError, match="--sim-contacts"):
            diag_floor.contact(bad)
    (tmp_path / "select").mkdir()
    (tmp_path / "select" / "select.json").write_text("{}")
    assert diag_floor.main(["--run", str(tmp_path), "--sim-contacts", "0.5:430"]) == 2
    assert "--sim-contacts" in capsys.readouterr().err
    assert diag_floor.main(["--run", str(tmp_path / "nothing")]) == 2
    assert "select.json: missing" in capsys.readouterr().err
    assert diag_floor.main(["--run", str(tmp_path), "--floor", "5000:-1"]) == 2
    assert "--floor" in capsys.readouterr().err
    assert diag_floor.main(["--run", str(tmp_path)]) == 2  # "{}" is no judge's record
    assert "not a robot judge's record" in capsys.readouterr().err


def test_terrain_curve_wall_clock_closes_restarts_up():
    """A restart (a jump back in time or a long pause between event files) counts as one
    typical iteration, not as its gap; the first iteration counts one interval."""
    steps = [10, 11, 12, 13, 14, 15]
    times = [100.0, 102.0, 104.0, 5000.0, 5002.0, 5004.0]  # paused 4996 s after 12
    m = bench_terrain_curve.closed_up_minutes(steps, times)
    assert m == pytest.approx({10: 2 / 60, 11: 4 / 60, 12: 6 / 60, 13: 8 / 60, 14: 10 / 60,
                               15: 12 / 60})
    # unsorted; the clock went back at a restart (another machine's event file)
    back = bench_terrain_curve.closed_up_minutes([3, 1, 5, 2, 4], [16.0, 10.0, 2.0, 13.0, 19.0])
    assert back == pytest.approx({1: 3 / 60, 2: 6 / 60, 3: 9 / 60, 4: 12 / 60, 5: 15 / 60})
    with pytest.raises(ValueError, match="fewer than two"):
        bench_terrain_curve.closed_up_minutes([1], [0.0])


def test_terrain_curve_time_to_goal_and_checkpoints(tmp_path, capsys):
    def row(it, rough, stairs):
        return {"iteration": it, "minutes": it / 10, "terrains": {
            "rough 3 cm": {"success": rough, "goal": 0.95},
            "stairs up 8 cm": {"success": stairs, "goal": 0.8}}}

    rows = [row(100, 0.5, 0.0), row(200, 1.0, 0.0), row(300, 0.9, 0.5), row(400, 1.0, 0.0)]
    hit = bench_terrain_curve.time_to_goal(rows, ["rough 3 cm", "stairs up 8 cm"])
    assert hit["rough 3 cm"]["iteration"] == 200 and hit["stairs up 8 cm"] is None
    rows[1]["minutes"] = None  # no logged time: not a time to report
    assert bench_terrain_curve.time_to_goal(rows, ["rough 3 cm"])["rough 3 cm"]["iteration"] == 400
    for it in (1250, 1260, 1280, 1500, 1760, 1780, 2040, 2100):
        (tmp_path / f"model_{it}.pt").write_bytes(b"")
    (tmp_path / "model_best.pt").write_bytes(b"")  # not a checkpoint of an iteration
    picked = [p.name for p in bench_terrain_curve.checkpoints(tmp_path, 250)]
    # the first at or after 1250, 1500, 1750, 2000; and the last
    assert picked == ["model_1250.pt", "model_1500.pt", "model_1760.pt", "model_2040.pt",
                      "model_2100.pt"]
    assert bench_terrain_curve.main(["--run", str(tmp_path), "--terrains", "rough,ice"]) == 2
    assert "--terrains: unknown ['ice']" in capsys.readouterr().err
    assert bench_terrain_curve.main(["--run", str(tmp_path)]) == 2
    assert "no policy.pt" in capsys.readouterr().err
