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
    cfg = config_from_args(Outer(), a, flags={"name": "flag", "inner.rate": None},
                           presets={"inner.rate": 2.0, "inner.count": 5})
    assert cfg == Outer(name="set", inner=Inner(rate=3.0, count=7))
    # several assignments after one --set, as sysid and actuator always accepted
    assert config_from_args(Outer(), _args(["--set", "name=a", "inner.count=4"])) == \
        Outer(name="a", inner=Inner(count=4))


@pytest.mark.parametrize("argv,content,needle", [
    (["--set", "inner.bogus=1"], None, "inner.bogus: unknown config key 'bogus'"),
    (["--set", "nosuch.rate=1"], None, "unknown config section 'nosuch'"),
    (["--set", "inner.count=abc"], None, "inner.count"),
    (["--set", "inner.rate=-1"], None, "--set inner.rate: Outer.inner: rate must be > 0"),
    (["--set", "novalue"], None, "expected KEY=VALUE"),
    (["--config", "{f}"], "{not json", "{f}: not valid JSON"),
    (["--config", "{f}"], '{"inner": {"rat": 1}}', "{f}.inner: unknown key 'rat'"),
    (["--config", "{f}"], '{"inner": {"rate": "fast"}}', "inner.rate"),
    (["--config", "{f}.missing"], None, "{f}.missing: cannot read config file"),
])
def test_user_errors_name_file_or_field(tmp_path, argv, content, needle):
    f = tmp_path / "c.json"
    if content is not None:
        f.write_text(content)
    argv = [x.replace("{f}", str(f)) for x in argv]
    with pytest.raises(ConfigError) as e:
        config_from_args(Outer(), _args(argv))
    assert needle.replace("{f}", str(f)) in str(e.value), str(e.value)


def test_merge_file_and_write_config_round_trip(tmp_path):
    cfg = Outer(name="y", inner=Inner(rate=0.5))
    path = write_config(tmp_path / "run", cfg)
    assert path.name == "config.json" and merge_file(Outer(), path) == cfg
    with pytest.raises(ConfigError, match="cannot read"):
        merge_file(Outer(), tmp_path / "nothing.json")


# -- every stage CLI: a bad key or file is one line, exit 2, before any work -------------
STAGES = {
    "train": ["train", "--out", "{t}/p"],
    "sysid": ["sysid", "--logs", "{t}/none.npz", "--out", "{t}/s"],
    "actuator train": ["actuator", "train", "--logs", "{t}/none.npz", "--out", "{t}/a"],
    "eval": ["eval", "--policy", "{t}/none.onnx", "--out", "{t}/e"],
}


def _run(tmp_path, capsys, argv):
    from robot_rl.app.cli import main

    rc = main([x.replace("{t}", str(tmp_path)) for x in argv])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_cli_rejects_unknown_key_in_one_line(tmp_path, capsys, stage):
    err = _run(tmp_path, capsys, [*STAGES[stage], "--set", "no_such_key=1"])
    assert err.startswith(f"robot-rl {stage.split()[0]}")
    assert "--set no_such_key: unknown config key 'no_such_key'" in err, err
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_cli_config_file_errors_name_the_file(tmp_path, capsys, stage):
    bad = tmp_path / "cfg.json"
    bad.write_text('{"no_such_section": {}}')
    err = _run(tmp_path, capsys, [*STAGES[stage], "--config", str(bad)])
    assert f"{bad}: unknown key 'no_such_section'" in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["cfg.json"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_cli_set_reaches_a_nested_field(tmp_path, capsys, stage):
    # a value the stage's config rejects names the field (so --set reached that config)
    field_ = {"train": "env.num_envs", "sysid": "bootstrap", "actuator train": "train.lr",
              "eval": "safety.ramp_s"}[stage]
    err = _run(tmp_path, capsys, [*STAGES[stage], "--set", f"{field_}=-1"])
    assert f"--set {field_}:" in err, err
