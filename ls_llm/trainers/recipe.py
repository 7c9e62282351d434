"""Flat YAML recipes -> typed dataclasses (trl's TrlParser convention), shared by the `ls-llm` commands and
the sweep (a library function that raises `RecipeError`; the CLI turns it into exit 2).

    ls-llm CMD RECIPE.yaml [--key value ...]

A recipe is a flat mapping of field names of the command's dataclasses. Two additions to TrlParser:
`include: other.yaml` (path relative to the including file; its keys are the defaults the including file
overrides, so siblings state only the knob they change) and a check that names every unknown key, in the
file or on the command line. Command-line flags override YAML keys (`--key value` or `--key=value`). `env:`
sets environment variables (a caller that runs several recipes in one process restores them: see
`isolated_environ`). A YAML syntax error, a key given twice, bytes that are not UTF-8, a recipe whose aliases
expand past a page of settings and a value of the wrong type for its field (`recipe_types`, before
parsing) are refused with the file, line or field named, never an argparse usage dump or a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from pathlib import Path

import yaml

from ls_llm.trainers.recipe_types import RecipeError, check_value_types
from ls_llm.utf8 import not_utf8_message

# Heavy imports stay inside functions (trl): `ls-llm` imports this module before it knows a command needs
# them.

# A recipe is a page of settings; YAML aliases can expand a few lines into gigabytes (an "alias bomb"), which
# would only fail when a field is turned into a string. Bound the expanded size once, here, for every field.
MAX_EXPANDED_NODES = 100_000
MAX_EXPANDED_CHARS = 10_000_000


def load_recipe(path: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> dict:
    """The recipe's mapping with `include:` chains resolved (the including file wins)."""
    path = Path(path)
    if not path.is_file():
        by = f" (included by {str(_seen[-1])!r})" if _seen else ""
        raise RecipeError(f"recipe {str(path)!r} does not exist{by}")
    if path.resolve() in _seen:
        raise RecipeError(f"recipe {str(path)!r} includes itself (via {[str(p) for p in _seen]})")
    data = _read_yaml(path)
    _check_expanded_size(path, data)
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {str(path)!r} must be a YAML mapping, got {type(data).__name__}")
    _check_env(path, data.get("env"))
    include = data.pop("include", None)
    if include is None:
        return data
    if not isinstance(include, str) or not include:
        raise RecipeError(f"recipe {str(path)!r}: include must be one file name (a string), got {include!r}")
    base = load_recipe(path.parent / include, (*_seen, path.resolve()))
    env = {**(base.get("env") or {}), **(data.get("env") or {})}
    merged = {**base, **data}
    if env:
        merged["env"] = env
    return merged


def _read_yaml(path: Path):
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecipeError(not_utf8_message(f"recipe {str(path)!r}", raw, err)) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {str(path)!r} is not valid YAML: {_one_line(err)}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise RecipeError(
            f"recipe {str(path)!r} nests lists or mappings too deep: a recipe is a page of settings") from None


def _check_env(path: Path, env) -> None:
    if env is not None and not isinstance(env, dict):
        raise RecipeError(f"recipe {str(path)!r}: env must be a mapping of variable: value, got {env!r}")
    for key, value in (env or {}).items():
        if isinstance(value, list | dict):
            raise RecipeError(f"recipe {str(path)!r}: env.{key} must be a single value, got {value!r}")


def _check_expanded_size(path: Path, data) -> None:
    """RecipeError when `data`, with every alias expanded, has more than MAX_EXPANDED_NODES values or
    MAX_EXPANDED_CHARS characters of strings. Stops counting as soon as a bound is passed (a bomb is cheap)."""
    nodes = chars = 0
    stack = [data]
    while stack:
        item = stack.pop()
        nodes += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, str | bytes):
            chars += len(item)
        if nodes > MAX_EXPANDED_NODES or chars > MAX_EXPANDED_CHARS:
            raise RecipeError(
                f"recipe {str(path)!r} expands to more than {MAX_EXPANDED_NODES} values or {MAX_EXPANDED_CHARS} "
                "characters (YAML aliases nested too deep?): a recipe is a page of settings")


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, but a key given twice in one mapping is an error (YAML's default is: the last one wins)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a name, got {type(key).__name__}", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _one_line(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(err, "problem", None) or str(err)
    return where + " ".join(str(problem).split())


@contextlib.contextmanager
def isolated_environ():
    """Restore os.environ on exit: a recipe's `env:` (or anything a run sets) does not reach the next run."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def parse_recipe(argv: list[str], types: tuple[type, ...]) -> tuple:
    """Parse `RECIPE.yaml [--key value ...]` into one instance of each dataclass in `types`."""
    from trl import TrlParser

    if not argv or argv[0].startswith("-"):
        raise RecipeError("usage: RECIPE.yaml [--key value ...] (the recipe path comes first)")
    recipe_path, overrides = argv[0], list(argv[1:])
    config = load_recipe(recipe_path)
    known = {f.name for t in types for f in dataclasses.fields(t)}
    unknown = sorted(k for k in config if k != "env" and k not in known)
    if unknown:
        raise RecipeError(f"recipe {recipe_path!r}: unknown key {unknown[0]!r}" + _others(unknown))
    check_value_types(f"recipe {recipe_path!r}", config, types)
    for key, value in (config.pop("env", None) or {}).items():
        os.environ[str(key)] = str(value)
    parser = TrlParser(types)
    parser.error = functools.partial(_raise_recipe_error, recipe_path)  # one line, not a 160-line usage dump
    parser.set_defaults_with_config(**config)
    *parsed, rest = parser.parse_args_into_dataclasses(args=overrides, return_remaining_strings=True)
    if rest:
        flags = [r for r in rest if r.startswith("-")] or rest
        raise RecipeError(f"unknown command-line option {flags[0]!r}" + _others(flags))
    return tuple(parsed)


def _raise_recipe_error(recipe_path: str, message: str):
    raise RecipeError(f"recipe {recipe_path!r} or its command line: {message}")


def _others(names: list[str]) -> str:
    return f" (also: {', '.join(map(repr, names[1:]))})" if len(names) > 1 else ""
