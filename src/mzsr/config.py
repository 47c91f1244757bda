"""Plain dataclass configs: loaded from a JSON file, then overridden field by field from the command line.

A field typed ``Literal[...]`` is a choice: the command line lists and enforces its values, and a config built
any other way (a file, a resumed run's saved config, Python) is checked on construction (``@config``)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from pathlib import Path


def _parse_bool(v: str) -> bool:
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {v}")


def _choices(hint) -> tuple | None:
    return typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None


def check_choices(cfg) -> None:
    """Raise ``ValueError`` naming the field when a ``Literal``-typed field holds a value outside its choices."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        allowed = _choices(hints[f.name])
        value = getattr(cfg, f.name)
        if allowed is not None and value not in allowed:
            raise ValueError(f"{f.name} must be one of {', '.join(map(str, allowed))}, not {value!r}")


def config(cls):
    """``@dataclass`` whose instances check their choice fields (``check_choices``) when built."""
    cls.__post_init__ = check_choices
    return dataclasses.dataclass(cls)


def add_config_args(parser: argparse.ArgumentParser, cls) -> None:
    """One ``--field-name`` option per dataclass field (lists take several values), plus ``--config FILE``."""
    parser.add_argument("--config", type=Path, help="JSON file of config values (options below override it)")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        origin = typing.get_origin(hint)
        kwargs = {"default": None, "dest": f"cfg_{f.name}", "metavar": f.name.upper(), "help": f"(default: {f.default if f.default is not dataclasses.MISSING else f.default_factory()})"}
        if origin in (list, tuple):
            (inner,) = set(typing.get_args(hint)) - {Ellipsis}
            kwargs.update(nargs="+", type=inner)
        elif hint is bool:
            kwargs.update(type=_parse_bool)
        elif choices := _choices(hint):
            del kwargs["metavar"]  # argparse then shows the choices
            kwargs.update(choices=choices, type=type(choices[0]))
        else:
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            kwargs.update(type=args[0] if args else hint)
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def build_config(cls, args: argparse.Namespace, base: dict | None = None):
    """``cls`` from ``base`` (e.g. a resumed run's saved config), then ``--config FILE``, then the options given."""
    values = dict(base or {})
    if getattr(args, "config", None):
        values.update(json.loads(Path(args.config).read_text()))
    for f in dataclasses.fields(cls):
        v = getattr(args, f"cfg_{f.name}", None)
        if v is not None:
            values[f.name] = v
    try:
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**values)
    except ValueError as e:  # the command line's own values were checked by the parser: name the file
        raise ValueError(f"{args.config}: {e}") if getattr(args, "config", None) else e


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
