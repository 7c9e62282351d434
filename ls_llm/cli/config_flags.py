"""Command-line flags generated from a typed config dataclass (each field documented once, in its help)."""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import MISSING, fields

__all__ = ["dataclass_parser", "parse_bool"]


def _flag_type(annotation) -> tuple[type, bool]:
    """(scalar type, is_list) of a field annotation such as ``int | None`` or ``list[str]``."""
    if typing.get_origin(annotation) is list:
        return typing.get_args(annotation)[0], True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return inner[0], False
    return annotation, False


def parse_bool(text: str) -> bool:
    values = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if text.lower() not in values:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return values[text.lower()]


def dataclass_parser(config_cls, *, prog: str, description: str) -> argparse.ArgumentParser:
    """One flag per field of the typed config ``config_cls`` (``--max-gen-toks`` for ``max_gen_toks``), its help
    the field's; a field without a default is a required flag. `ls-llm eval` and `ls-llm generate` use it."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    hints = typing.get_type_hints(config_cls)
    for spec in fields(config_cls):
        scalar, is_list = _flag_type(hints[spec.name])
        flag = "--" + spec.name.replace("_", "-")
        kwargs = {"dest": spec.name, "help": spec.metadata.get("help", ""), "type": parse_bool if scalar is bool else scalar}
        if is_list:
            kwargs.update(action="append", default=[])
        elif spec.default is MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = spec.default
        parser.add_argument(flag, **kwargs)
    return parser
