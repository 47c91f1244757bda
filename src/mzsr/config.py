"""Plain dataclass configs: loaded from a JSON file, then overridden field by field from the command line.

Each field is declared with ``option(default, help, ...)``: its one line of ``--help`` and, for numbers, the
range its value must lie in. A field typed ``Literal[...]`` is a choice. A config built any way (the command
line, a file, a resumed run's saved config, Python) is checked on construction (``@config``): types, choices,
ranges, one ``ValueError`` naming the field. A class's ``RETIRED`` names options it no longer has: an old file or
run record that sets them loads with a warning."""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import typing
import warnings
from pathlib import Path


class ConfigError(ValueError):
    """A config value outside its type, choices or range; ``field`` names it."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field} {problem}")
        self.field, self.problem = field, problem


def option(default, help: str, *, at_least: float | None = None, above: float | None = None,
           at_most: float | None = None, parse=None):
    """A config field: ``default`` (a list is copied per instance), one line of help, its range, and ``parse``, a
    reader that raises ``ValueError`` on a value it cannot read (e.g. a duration)."""
    meta = {"help": help, "at_least": at_least, "above": above, "at_most": at_most, "parse": parse}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _parse_bool(v: str) -> bool:
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {v}")


def _choices(hint) -> tuple | None:
    return typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None


def _fits(value, hint) -> bool:
    """Whether ``value`` has the type a field's hint names (an int is a float; a bool is no number)."""
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        (inner,) = set(typing.get_args(hint)) - {Ellipsis}
        return isinstance(value, (list, tuple)) and all(_fits(v, inner) for v in value)
    if origin is typing.Literal:
        return True  # the choices decide
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _range_problem(value, meta) -> str | None:
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if math.isnan(v) and any(meta.get(k) is not None for k in ("at_least", "above", "at_most")):
            return "must be a number, got nan"
        if meta.get("at_least") is not None and v < meta["at_least"]:
            return f"must be ≥ {meta['at_least']:g}, got {v:g}"
        if meta.get("above") is not None and v <= meta["above"]:
            return f"must be > {meta['above']:g}, got {v:g}"
        if meta.get("at_most") is not None and v > meta["at_most"]:
            return f"must be ≤ {meta['at_most']:g}, got {v:g}"
    return None


def check_fields(cfg) -> None:
    """Raise ``ConfigError`` naming the first field whose value has the wrong type, is outside its choices or
    outside its range; then the class's own ``check()`` of combinations, if it has one."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value, hint = getattr(cfg, f.name), hints[f.name]
        if not _fits(value, hint):
            raise ConfigError(f.name, f"must be {_type_name(hint)}, not {value!r}")
        allowed = _choices(hint)
        if allowed is not None and value not in allowed:
            raise ConfigError(f.name, f"must be one of {', '.join(map(str, allowed))}, not {value!r}")
        problem = _range_problem(value, f.metadata)
        if problem:
            raise ConfigError(f.name, problem)
        if f.metadata.get("parse"):
            try:
                f.metadata["parse"](value)
            except ValueError as e:
                raise ConfigError(f.name, str(e)) from None
    if hasattr(cfg, "check"):
        cfg.check()


def _type_name(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        (inner,) = set(typing.get_args(hint)) - {Ellipsis}
        return f"a list of {_type_name(inner)}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


def config(cls):
    """``@dataclass`` whose instances check their fields (``check_fields``) when built."""
    cls.__post_init__ = check_fields
    return dataclasses.dataclass(cls)


def _default(f: dataclasses.Field):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def add_config_args(parser: argparse.ArgumentParser, cls) -> None:
    """One ``--field-name`` option per dataclass field (lists take several values), plus ``--config FILE``."""
    parser.add_argument("--config", type=Path, help="JSON file of config values (options below override it)")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        origin = typing.get_origin(hint)
        default = _default(f)
        shown = " ".join(map(str, default)) if isinstance(default, list) else default
        text = f.metadata.get("help", "")
        kwargs = {"default": None, "dest": f"cfg_{f.name}", "metavar": f.name.upper(),
                  "help": f"{text} (default: {shown})" if shown != "" else text}  # an empty default's help says what it means
        if origin in (list, tuple):
            (inner,) = set(typing.get_args(hint)) - {Ellipsis}
            kwargs.update(nargs="+", type=inner)
        elif hint is bool:
            kwargs.update(type=_parse_bool)
        elif choices := _choices(hint):
            del kwargs["metavar"]  # argparse then shows the choices
            kwargs.update(choices=choices, type=type(choices[0]))
        else:
            kwargs.update(type=hint)
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def read_config_file(path: Path) -> dict:
    """A ``--config`` file's values; ``ValueError`` naming the file when it cannot be read or is not a JSON
    object."""
    try:
        values = json.loads(Path(path).read_text())
    except OSError as e:
        raise ValueError(f"{path}: cannot read config file ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a config file holds one JSON object of option values")
    return values


def drop_retired(cls, values: dict, source: str) -> dict:
    """``values`` without the options ``cls`` has retired, each one dropped with a warning naming ``source``."""
    retired = sorted(set(values) & set(getattr(cls, "RETIRED", ())))
    if retired:
        warnings.warn(f"{source}: ignoring retired option{'s' * (len(retired) > 1)} {', '.join(retired)}",
                      stacklevel=2)
    return {k: v for k, v in values.items() if k not in retired}


def build_config(cls, args: argparse.Namespace, base: dict | None = None, base_source: str = "saved config"):
    """``cls`` from ``base`` (e.g. a resumed run's saved config, named ``base_source`` in messages), then
    ``--config FILE``, then the options given. A bad value is reported against where it came from."""
    config_file = getattr(args, "config", None)
    layers = [(base_source, drop_retired(cls, dict(base or {}), base_source))]
    if config_file:
        layers.append((str(config_file), drop_retired(cls, read_config_file(config_file), str(config_file))))
    given = {f.name: getattr(args, f"cfg_{f.name}") for f in dataclasses.fields(cls)
             if getattr(args, f"cfg_{f.name}", None) is not None}
    values = {k: v for _, layer in layers for k, v in layer.items()} | given
    known = {f.name for f in dataclasses.fields(cls)}
    for source, layer in layers:
        unknown = set(layer) - known
        if unknown:
            raise ValueError(f"{source}: unknown config keys: {', '.join(sorted(unknown))}")
    try:
        return cls(**values)
    except ConfigError as e:
        if e.field in given:
            raise ValueError(f"--{e.field.replace('_', '-')} {e.problem}") from None
        source = next((s for s, layer in reversed(layers) if e.field in layer), None)
        raise ValueError(f"{source}: {e}" if source else str(e)) from None
