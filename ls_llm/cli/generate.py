"""`ls-llm generate --model CKPT --data PROBLEMS --num-samples K --out DIR [--config GEN.yaml] ...`

A teacher samples K completions per problem through its chat template; DIR gets `traces.jsonl` (one row per
sample: prompt, completion, problem_id, sample_index, answer, predicted_answer), `manifest.json` (settings, model
fingerprint) and the resume journal. Interrupted? Run the same command again. Flags are generated from
:class:`ls_llm.evaluation.generate_config.GenerateConfig` (each documented once, there); `--config` reads the
same fields from a flat YAML file (flags given on the command line win). Exit 2 for bad input, with one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import yaml

from ls_llm.cli.config_flags import dataclass_parser, parse_bool
from ls_llm.cli.errors import guarded


def read_config(path: str) -> dict:
    from ls_llm.evaluation.generate_config import GenerateConfig

    text = Path(path).read_text(encoding="utf-8")
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"config {path!r} is not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(values, dict):
        raise ValueError(f"config {path!r} must be a mapping of generate fields, got {type(values).__name__}")
    known = {spec.name for spec in dataclasses.fields(GenerateConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"config {path!r}: unknown field(s) {unknown}; known: {sorted(known)}")
    return values


def build_parser(defaults: dict | None = None) -> argparse.ArgumentParser:
    """The flags, with the values of a `--config` file as defaults (a required flag it sets is no longer required)."""
    from ls_llm.evaluation.generate_config import GenerateConfig

    parser = dataclass_parser(GenerateConfig, prog="ls-llm generate",
                              description="Sample k completions per problem with a teacher into a trace dataset.")
    parser.add_argument("--config", help="flat YAML of the same fields (command-line flags win)")
    for action in parser._actions:
        if defaults and action.dest in defaults:
            action.required, action.default = False, _as_flag(action, defaults[action.dest])
    return parser


def _as_flag(action: argparse.Action, value):
    """A config value as its flag would give it: argparse converts (and checks) a string default with the flag's
    type, so `limit: [1]` or `temperature: high` is refused as on the command line, not let through."""
    if value is None or action.type is None:
        return value
    if isinstance(value, (list, dict)) and action.type is str:  # a JSON field (field_map, model_args) as YAML
        return json.dumps(value)
    if isinstance(value, (list, dict)):
        raise ValueError(f"config field {action.dest!r}: {value!r} is a {type(value).__name__}, not a single value")
    if isinstance(value, bool) and action.type is not _bool_type():
        raise ValueError(f"config field {action.dest!r}: {value!r} is a boolean, not a {action.type.__name__}")
    return str(value).lower() if isinstance(value, bool) else str(value)


def _bool_type():
    return parse_bool


def config_from_args(argv: list[str]):
    """The :class:`GenerateConfig` of a command line (its `--config` file's fields, then the flags)."""
    from ls_llm.evaluation.generate_config import GenerateConfig

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    config = pre.parse_known_args(argv)[0].config
    ns = build_parser(read_config(config) if config else None).parse_args(argv)
    values = {k: v for k, v in vars(ns).items() if k != "config"}
    for name in ("model_args", "field_map"):  # JSON text on the command line, a mapping in YAML
        if values.get(name) is not None and not isinstance(values[name], str):
            values[name] = json.dumps(values[name])
    return GenerateConfig(**values)


def _run(argv: list[str]) -> int:
    from ls_llm.evaluation.generate import MANIFEST_FILE, TRACES_FILE, generate_traces

    cfg = config_from_args(argv)
    manifest = generate_traces(cfg)
    print(f"{manifest['rows']} traces ({manifest['problems']} problems x {manifest['num_samples']}; "
          f"{manifest['samples_generated']} generated, {manifest['samples_replayed']} resumed) in "
          f"{cfg.out_dir / TRACES_FILE}; manifest: {cfg.out_dir / MANIFEST_FILE}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return guarded("generate", lambda: _run(argv))


if __name__ == "__main__":
    sys.exit(main())
