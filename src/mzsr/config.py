"""Plain dataclass configs: loaded from a JSON file, then overridden field by field from the command line."""
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
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
    return cls(**values)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
