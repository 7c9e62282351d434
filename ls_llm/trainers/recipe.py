"""Flat YAML recipes -> typed dataclasses (trl's TrlParser convention), shared by the `ls-llm` commands and
the sweep (a library function that raises `RecipeError`; the CLI turns it into exit 2).

    ls-llm CMD RECIPE.yaml [--key value ...]

A recipe is a flat mapping of field names of the command's dataclasses. Two additions to TrlParser:
`include: other.yaml` (path relative to the including file; its keys are the defaults the including file
overrides, so siblings state only the knob they change) and a check that names every unknown key, in the
file or on the command line. Command-line flags override YAML keys (`--key value` or `--key=value`). `env:`
sets environment variables (a caller that runs several recipes in one process restores them: see
`isolated_environ`). A YAML syntax error, a key given twice and a value of the wrong type are refused with the
file, line or field named, never an argparse usage dump.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from pathlib import Path

import yaml


class RecipeError(ValueError):
    """A recipe that cannot be parsed; the message names the file and key."""


def load_recipe(path: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> dict:
    """The recipe's mapping with `include:` chains resolved (the including file wins)."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {str(path)!r} does not exist")
    if path.resolve() in _seen:
        raise RecipeError(f"recipe {str(path)!r} includes itself (via {[str(p) for p in _seen]})")
    with open(path) as f:
        try:
            data = yaml.load(f, Loader=_UniqueKeyLoader) or {}
        except yaml.YAMLError as err:
            raise RecipeError(f"recipe {str(path)!r} is not valid YAML: {_one_line(err)}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {str(path)!r} must be a YAML mapping, got {type(data).__name__}")
    include = data.pop("include", None)
    if include is None:
        return data
    base = load_recipe(path.parent / include, (*_seen, path.resolve()))
    env = {**base.get("env", {}), **data.get("env", {})}
    merged = {**base, **data}
    if env:
        merged["env"] = env
    return merged


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, but a key given twice in one mapping is an error (YAML's default is: the last one wins)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
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


def _field_names(types) -> set[str]:
    return {f.name for t in types for f in dataclasses.fields(t)}


def parse_recipe(argv: list[str], types: tuple[type, ...]) -> tuple:
    """Parse `RECIPE.yaml [--key value ...]` into one instance of each dataclass in `types`."""
    from trl import TrlParser

    if not argv or argv[0].startswith("-"):
        raise RecipeError("usage: RECIPE.yaml [--key value ...] (the recipe path comes first)")
    recipe_path, overrides = argv[0], list(argv[1:])
    config = load_recipe(recipe_path)
    known = _field_names(types)
    unknown = sorted(k for k in config if k != "env" and k not in known)
    if unknown:
        raise RecipeError(f"recipe {recipe_path!r}: unknown key {unknown[0]!r}" + _others(unknown))
    env = config.pop("env", {}) or {}
    if not isinstance(env, dict):
        raise RecipeError(f"recipe {recipe_path!r}: env must be a mapping, got {env!r}")
    for key, value in env.items():
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
