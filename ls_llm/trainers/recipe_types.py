"""A recipe value's type against its dataclass field, checked before parsing (a list for a string field would
otherwise be trained on as the text "['hello', 'world']"), and the error every recipe problem raises."""

from __future__ import annotations

import dataclasses
import enum
import typing
from types import UnionType


class RecipeError(ValueError):
    """A recipe that cannot be parsed; the message names the file and key."""


_SCALARS = (str, int, float, bool)


def _wanted(hint) -> tuple[type, ...] | None:
    """The plain types (str, int, float, bool, list, dict) a field's annotation admits; None: not checked."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, UnionType):
        parts = [_wanted(arg) for arg in typing.get_args(hint) if arg is not type(None)]
        return None if any(p is None for p in parts) else tuple(t for p in parts for t in p)
    if origin is typing.Literal:
        return tuple({type(arg) for arg in typing.get_args(hint)})
    plain = origin or hint
    if isinstance(plain, type) and issubclass(plain, enum.Enum):
        return (str,)
    return (plain,) if plain in (*_SCALARS, list, dict) else None


def _accepts(wanted: tuple[type, ...], value) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):  # bool is an int in Python, not in a recipe
        return bool in wanted or str in wanted
    if isinstance(value, int):
        return any(w in wanted for w in (int, float, str))
    if isinstance(value, float):  # 2.5 steps is not 2 steps
        return float in wanted or str in wanted
    if isinstance(value, str):
        return True  # converted (and refused with its field named) by the parser: `1e-4` is a float
    if isinstance(value, list):
        return list in wanted
    if isinstance(value, dict):
        return dict in wanted
    return False


def check_value_types(where: str, config: dict, arg_types: tuple[type, ...]) -> None:
    """RecipeError naming the key, the value and the type wanted for a value its field cannot hold (a list
    for a string field would otherwise be trained on as the text "['hello', 'world']"). A dataclass's
    `YAML_TYPES` widens what YAML may give one of its fields (a mapping or list that is JSON text on the command
    line)."""
    for arg_type in arg_types:
        hints = typing.get_type_hints(arg_type)
        extra = getattr(arg_type, "YAML_TYPES", {})
        for f in dataclasses.fields(arg_type):
            if f.name not in config or f.name not in hints:
                continue
            wanted = _wanted(hints[f.name])
            if wanted is None:
                continue
            wanted = (*wanted, *extra.get(f.name, ()))
            value = config[f.name]
            if not _accepts(wanted, value) or (isinstance(value, list) and not _elements_scalar(value)):
                names = " or ".join(dict.fromkeys(w.__name__ for w in wanted))
                raise RecipeError(f"{where}: {f.name} must be {names}, got {_short(value)} "
                                  f"({type(value).__name__})")


def _elements_scalar(value: list) -> bool:
    return all(item is None or isinstance(item, (*_SCALARS, dict)) for item in value)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
