"""Typed configuration: one frozen dataclass per layer, validated on construction.

Every config in the project is a ``@dataclass`` whose fields carry a one-line docstring
(in a ``# comment`` above the field, unit included).  :func:`from_dict` builds one from a
plain mapping and rejects unknown keys; :func:`to_dict` turns it back into JSON-ready data;
:func:`override` applies ``key.sub=value`` strings from the command line.  Every stage CLI
resolves its config with :func:`config_from_args` (``--config FILE``, its own flags,
``--set KEY=VALUE``, from :func:`add_config_arguments`) and writes the resolved config
next to its outputs with :func:`write_config`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import numbers
import os
import tempfile
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid."""


def _resolve_type(cls: type, name: str) -> Any:
    hints = typing.get_type_hints(cls)
    return hints[name]


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where=where)
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except (ConfigError, TypeError, ValueError):
                continue
        raise ConfigError(f"{where}: {value!r} does not match {tp}")
    if origin in (tuple,):
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (list,):
        (arg,) = typing.get_args(tp)
        return [_coerce(arg, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict,):
        return dict(value)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {typing.get_args(tp)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or (not isinstance(value, numbers.Integral) and not float(value).is_integer()):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{where}: expected a boolean, got {value!r}")
        return bool(value)
    if tp is str:
        return str(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str | None = None) -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys raise :class:`ConfigError`."""
    where = where or cls.__name__
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
    kwargs = {k: _coerce(_resolve_type(cls, k), v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ValueError as e:  # a check in __post_init__: say where the values came from
        if isinstance(e, ConfigError) and str(e).startswith(where):
            raise
        raise ConfigError(f"{where}: {e}") from e


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain JSON-ready dict of a (nested) config dataclass."""
    return dataclasses.asdict(cfg)


def parse_assignments(items: list[str], where: str = "--set") -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a.b": 1, "c": "x"}`` (a value that parses as JSON is JSON,
    anything else is a string)."""
    pairs: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{where} {item!r}: expected KEY=VALUE")
        try:
            pairs[key] = json.loads(raw)
        except json.JSONDecodeError:
            pairs[key] = raw
    return pairs


def apply_overrides(cfg: T, pairs: dict[str, Any], where: str = "override") -> T:
    """A copy of ``cfg`` with dotted ``section.key`` overrides applied and validated: an
    unknown section or key, or a value the config rejects, raises :class:`ConfigError`
    naming ``where`` and the key."""
    data = to_dict(cfg)
    for key, value in pairs.items():
        node, parts = data, key.split(".")
        for i, p in enumerate(parts[:-1]):
            if p not in node or not isinstance(node[p], dict):
                sub = ".".join(parts[:i]) or "the config"
                raise ConfigError(f"{where} {key}: unknown config section {p!r}; sections of "
                                  f"{sub}: {sorted(k for k, v in node.items() if isinstance(v, dict))}")
            node = node[p]
        if parts[-1] not in node:
            raise ConfigError(f"{where} {key}: unknown config key {parts[-1]!r}; valid keys of "
                              f"{'.'.join(parts[:-1]) or 'the config'}: {sorted(node)}")
        node[parts[-1]] = value
    try:
        return from_dict(type(cfg), data)
    except ConfigError as e:
        raise ConfigError(f"{where} {', '.join(pairs)}: {e}") from e


def override(cfg: T, assignments: list[str]) -> T:
    """A copy of ``cfg`` with ``a.b=value`` assignments applied (value parsed as JSON)."""
    return apply_overrides(cfg, parse_assignments(assignments), where="--set")


def _merge(cls: type, node: dict[str, Any], data: Any, where: str) -> None:
    """Merge a (partial, nested) mapping into ``node``, the dict of dataclass ``cls``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {data!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key {key!r}; valid keys: {sorted(names)}")
        tp = _resolve_type(cls, key)
        if dataclasses.is_dataclass(tp) and isinstance(value, dict) and isinstance(node[key], dict):
            _merge(tp, node[key], value, f"{where}.{key}")
        else:
            node[key] = value


def merge_file(cfg: T, path: str | os.PathLike) -> T:
    """``cfg`` with the fields given in the JSON file ``path`` (any subset, nested) replaced;
    an unreadable file, bad JSON, unknown key or bad value raises :class:`ConfigError`
    naming the file and the field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror or e})") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from e
    merged = to_dict(cfg)
    _merge(type(cfg), merged, data, str(path))
    return from_dict(type(cfg), merged, where=str(path))


def seed_argument(text: str) -> int:
    """argparse ``type`` of a seed: a non-negative integer (numpy's and torch's seeds), so a
    bad one is a usage error naming the flag, not a traceback from the generator."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def add_config_arguments(parser: argparse.ArgumentParser, example: str) -> None:
    """``--config FILE`` and ``--set KEY=VALUE`` (repeatable, several after one flag)."""
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="config JSON: any subset of the fields (a resolved config.json "
                             "works); flags and --set override it")
    parser.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help=f"override any config field, e.g. --set {example} (value parsed "
                             "as JSON); applied last")


def config_from_args(default: T, args: argparse.Namespace, flags: dict[str, Any] | None = None,
                     presets: dict[str, Any] | None = None) -> T:
    """Resolve a stage's config from its command line, in this order: ``default``, then
    ``presets`` (dotted pairs, e.g. a budget), ``--config FILE``, ``flags`` (dotted pairs
    from the stage's own options; None values skipped), ``--set``.  A user error raises
    :class:`ConfigError` naming the file or field, which ``robot-rl`` (and each stage's
    ``main``) reports as one line with exit status 2, before the stage reads anything."""
    cfg = apply_overrides(default, presets, where="preset") if presets else default
    if getattr(args, "config", None):
        cfg = merge_file(cfg, args.config)
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    if given:
        cfg = apply_overrides(cfg, given, where="option")
    return override(cfg, list(getattr(args, "set", None) or []))


def write_config(folder: str | os.PathLike, cfg: Any, name: str = "config.json") -> Path:
    """Write the resolved config next to a stage's outputs, atomically."""
    path = Path(folder) / name
    atomic_write_json(path, to_dict(cfg))
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder, then rename."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # name the file the user asked for, not the temporary one
        raise type(e)(e.errno, f"cannot write {path}: {e.strerror}") from None
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def artifact_file(path: str | os.PathLike, name: str) -> Path:
    """A stage's artifact ``name`` given its output folder or the file itself:
    ``<path>/<name>`` when ``path`` is a folder, else ``path``."""
    path = Path(path)
    return path / name if path.is_dir() else path
