"""One config mechanism for every stage CLI: --config FILE, the stage's flags, --set KEY=VALUE
(robot_rl.config.config_from_args); user errors are one line naming file or field, exit 2."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field

import pytest

from robot_rl.config import (
    ConfigError,
    add_config_arguments,
    config_from_args,
    merge_file,
    write_config,
)


@dataclass(frozen=True)
class Inner:
    # a rate (1/s)
    rate: float = 1.0
    # a count (-)
    count: int = 2

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")


@dataclass(frozen=True)
class Outer:
    # a name
    name: str = "x"
    inner: Inner = field(default_factory=Inner)


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_config_arguments(p, "inner.rate=2")
    return p.parse_args(argv)


def test_order_default_preset_file_flags_set(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"inner": {"rate": 3.0}, "name": "file"}))  # a subset, nested
    a = _args(["--config", str(f), "--set", "inner.count=7", "--set", "name=set"])
    cfg = config_from_args(Outer(), a, "prog", flags={"name": "flag", "inner.rate": None},
                           presets={"inner.rate": 2.0, "inner.count": 5})
    assert cfg == Outer(name="set", inner=Inner(rate=3.0, count=7))
    # several assignments after one --set, as sysid and actuator always accepted
    assert config_from_args(Outer(), _args(["--set", "name=a", "inner.count=4"]), "p") == \
        Outer(name="a", inner=Inner(count=4))


@pytest.mark.parametrize("argv,content,needle", [
    (["--set", "inner.bogus=1"], None, "inner.bogus: unknown config key 'bogus'"),
    (["--set", "nosuch.rate=1"], None, "unknown config section 'nosuch'"),
    (["--set", "inner.count=abc"], None, "inner.count"),
    (["--set", "inner.rate=-1"], None, "rate must be > 0"),
    (["--set", "novalue"], None, "expected KEY=VALUE"),
    (["--config", "{f}"], "{not json", "{f}: not valid JSON"),
    (["--config", "{f}"], '{"inner": {"rat": 1}}', "{f}.inner: unknown key 'rat'"),
    (["--config", "{f}"], '{"inner": {"rate": "fast"}}', "inner.rate"),
    (["--config", "{f}.missing"], None, "{f}.missing: cannot read config file"),
])
def test_user_errors_are_one_line_exit_2(tmp_path, capsys, argv, content, needle):
    f = tmp_path / "c.json"
    if content is not None:
        f.write_text(content)
    argv = [x.replace("{f}", str(f)) for x in argv]
    with pytest.raises(SystemExit) as e:
        config_from_args(Outer(), _args(argv), "robot-rl x")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("robot-rl x: error: ") and err.count("\n") == 1, err
    assert needle.replace("{f}", str(f)) in err, err


def test_merge_file_and_write_config_round_trip(tmp_path):
    cfg = Outer(name="y", inner=Inner(rate=0.5))
    path = write_config(tmp_path / "run", cfg)
    assert path.name == "config.json" and merge_file(Outer(), path) == cfg
    with pytest.raises(ConfigError, match="cannot read"):
        merge_file(Outer(), tmp_path / "nothing.json")


# -- every stage CLI: --set reaches its config; a bad key exits 2 before any work ---------
def _stage_mains():
    from actuator_net.cli import main as actuator
    from deploy.eval_cli import main as evaluate
    from policies.cli import main as train
    from sysid.cli import main as sysid

    return {
        "train": (train, ["--out", "{t}/p"]),
        "sysid": (sysid, ["--logs", "{t}/none.npz", "--out", "{t}/s"]),
        "actuator train": (lambda argv: actuator(["train", *argv]),
                           ["--logs", "{t}/none.npz", "--out", "{t}/a"]),
        "eval": (evaluate, ["--policy", "{t}/none.onnx", "--out", "{t}/e"]),
    }


@pytest.mark.parametrize("stage", ["train", "sysid", "actuator train", "eval"])
def test_stage_cli_rejects_unknown_key_in_one_line(tmp_path, capsys, stage):
    main, argv = _stage_mains()[stage]
    argv = [x.replace("{t}", str(tmp_path)) for x in argv]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--set", "no_such_key=1"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err == f"robot-rl {stage}: error: --set no_such_key: unknown config key " \
                  f"'no_such_key'; " + err.split("; ", 1)[1] and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("stage", ["train", "sysid", "actuator train", "eval"])
def test_stage_cli_config_file_errors_name_the_file(tmp_path, capsys, stage):
    main, argv = _stage_mains()[stage]
    argv = [x.replace("{t}", str(tmp_path)) for x in argv]
    bad = tmp_path / "cfg.json"
    bad.write_text('{"no_such_section": {}}')
    with pytest.raises(SystemExit) as e:
        main([*argv, "--config", str(bad)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"{bad}: unknown key 'no_such_section'" in err and err.count("\n") == 1, err


def test_robot_rl_dispatch_exits_2_on_bad_set(capsys):
    from robot_rl.cli import main

    with pytest.raises(SystemExit) as e:
        main(["eval", "--policy", "x.onnx", "--set", "safety.ramp_s=-1"])
    assert e.value.code == 2
    assert "SafetyConfig.ramp_s must be >= 0" in capsys.readouterr().err
