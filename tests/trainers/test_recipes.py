"""Every shipped recipe (recipes/**/*.yaml) is read as its command reads it, from the checkout's root, without
training: `ls-llm train` / `distill` / `distill-cache` parse it with the run's own argument types
(`ls_llm.trainers.run.RUNS`' kinds) and, where its inputs are in the checkout, load its tokenizer and data through
`load_inputs` (the step before the model loads); `ls-llm generate --config` through `config_from_args`.

Checked beyond "it parses": every key the YAML sets (includes resolved) arrives in the parsed arguments with that
value; the objective (and every route) builds; each path the recipe names exists in the checkout, is made by
another shipped recipe or sweep (under outputs/), or is a hub id; the data loads with its format's fields.

The command is told by the path: "distill" in a folder or file name -> `ls-llm distill` (and `distill-cache` when
`teacher_cache_dir` is set), "generate" -> `ls-llm generate --config`, else `ls-llm train`."""

import re
from pathlib import Path

import pytest
import yaml

from ls_llm.objectives import build_objective
from ls_llm.trainers.recipe import load_recipe, parse_recipe
from ls_llm.trainers.run import distill_arg_types, load_inputs, sft_arg_types

ROOT = Path(__file__).resolve().parents[2]
ALL_RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if "data" not in p.parts)
GENERATE = [p for p in ALL_RECIPES if any("generate" in part for part in p.relative_to(ROOT / "recipes").parts)]
RECIPES = [p for p in ALL_RECIPES if p not in GENERATE]
# bf16 recipes are for GPUs: TrainingArguments refuses bf16 on a CPU-only machine, so they are read with bf16 off
# (every other key is still checked).
CPU = ["--bf16", "false", "--use_cpu", "true"]
PATH_FIELDS = ("model_name_or_path", "tokenizer_name_or_path", "teacher_model_name_or_path",
               "teacher_tokenizer_name_or_path", "chat_template_path")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT / "recipes"))


def _kind(path: Path) -> str:
    return "distill" if any("distill" in part for part in path.relative_to(ROOT / "recipes").parts) else "train"


def _produced() -> set[str]:
    """Folders a shipped recipe or sweep writes (its output_dir, a generate `out`, a teacher cache) or a command
    in a recipe's comments or the Makefile writes (`--out DIR`): the inputs a later step of a pipeline may name."""
    made = set()
    for path in ALL_RECIPES:
        config = load_recipe(path)
        made.update(str(config[k]) for k in ("output_dir", "out", "teacher_cache_dir") if config.get(k))
        made.update(re.findall(r"--out[= ](outputs/\S+)", path.read_text()))
    made.update(re.findall(r"--out[= ](outputs/\S+)", (ROOT / "Makefile").read_text()))
    for path in SWEEPS:
        made.add(yaml.safe_load(path.read_text())["output_dir"])
    return made


SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))
# Recipes a sweep builds its cells on: the sweep gives their data (dataset_name, noise) per cell, so they name
# none themselves; tests/sweep/test_config_report.py reads them with the keys each cell adds.
SWEEP_BASES = {(path.parent / recipe).resolve() for path in SWEEPS
               for recipe in (yaml.safe_load(path.read_text())["recipe"],
                              (yaml.safe_load(path.read_text()).get("distill") or {}).get("recipe")) if recipe}
PRODUCED = _produced()


def _path_problem(field: str, value: str) -> str | None:
    """None when `value` is a path of the checkout, under a folder a shipped recipe writes, or a hub id."""
    if (ROOT / value).exists():
        return None
    if value.startswith("outputs/"):
        made = any(value == p or value.startswith(p.rstrip("/") + "/") for p in PRODUCED)
        return None if made else f"{field}={value!r} is under outputs/ but no shipped recipe or sweep writes it"
    hub_id = value.count("/") == 1 and not value.startswith((".", "/", "~")) and not value.endswith((".json",
                                                                                                     ".jsonl", ".yaml"))
    return None if hub_id else f"{field}={value!r} does not exist (relative to the checkout's root)"


# Values transformers stores in another form than the recipe gives them.
STORED_AS = {("report_to", "none"): []}


def _same(parsed, given) -> bool:
    if isinstance(given, float) or isinstance(parsed, float):
        return parsed == pytest.approx(given)
    return parsed == given or str(getattr(parsed, "value", parsed)) == str(given)


def _parsed_values_match(config: dict, parsed: tuple) -> list[str]:
    """The YAML keys whose value did not arrive in the parsed arguments (a key taken by the wrong field, an
    include resolved wrongly, a value a __post_init__ rewrote)."""
    wrong = []
    for key, given in config.items():
        if key in ("env", "bf16", "use_cpu"):
            continue
        holders = [p for p in parsed if hasattr(p, key)]
        given = STORED_AS.get((key, given), given) if isinstance(given, str) else given
        if not holders or not any(_same(getattr(p, key), given) for p in holders):
            wrong.append(f"{key}: recipe {given!r}, parsed {[getattr(p, key, None) for p in holders]!r}")
    return wrong


def _local_inputs(config: dict, data_sources: list[str]) -> bool:
    values = [config[k] for k in PATH_FIELDS if config.get(k)] + data_sources
    return all((ROOT / v).exists() for v in values)


def test_recipes_found():
    assert any("demo" in p.parts for p in RECIPES) and any("qwen2.5-math-1.5b" in p.parts for p in RECIPES)
    assert any(_kind(p) == "distill" and "teacher_cache_dir" in load_recipe(p) for p in RECIPES)
    assert any(_kind(p) == "distill" and "-to-" in p.parent.parent.name for p in RECIPES)


@pytest.mark.parametrize("path", RECIPES, ids=_rel)
def test_recipe_reads_as_its_command_reads_it(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the commands run from the checkout: recipe paths are relative to it
    kind = _kind(path)
    types = distill_arg_types() if kind == "distill" else sft_arg_types()
    config = load_recipe(path)
    argv = [str(path.relative_to(ROOT)), *CPU]
    load_args, data_args, args, model_args = parsed = parse_recipe(argv, types)

    assert not _parsed_values_match(config, parsed), _parsed_values_match(config, parsed)
    assert args.output_dir.startswith("outputs/"), args.output_dir
    build_objective(args.objective, **args.objective_kwargs())
    plan = args.routing_plan()
    assert (plan is not None) == bool(config.get("segment_objectives") or config.get("trace_objectives")
                                      or config.get("smoothing_prior") == "answer")
    for spec in plan.specs if plan is not None else ():
        build_objective(spec.objective, **spec.params)
    if kind == "distill":
        assert args.teacher_model_name_or_path or args.cached
        assert args.cached == ("teacher_cache_dir" in config)  # the recipes `ls-llm distill-cache` writes a cache for

    sources = [] if path.resolve() in SWEEP_BASES else [entry.source for entry in data_args.entries()]
    problems = [_path_problem(k, str(config[k])) for k in PATH_FIELDS if config.get(k)]
    problems += [_path_problem("dataset_name", s) for s in sources]
    assert not any(problems), [p for p in problems if p]

    if sources and _local_inputs(config, sources):  # the CLI's own loading, up to (not including) the model
        (*_, args_loaded, _), tokenizer, data, _ = load_inputs(argv, types, training=False)
        assert len(data["train"]) > 0 and tokenizer.chat_template is not None
        assert args_loaded.objective == args.objective


@pytest.mark.parametrize("path", GENERATE, ids=_rel)
def test_generate_config_parses(path):
    from ls_llm.cli.generate import config_from_args, read_config

    config = read_config(str(path))
    cfg = config_from_args(["--config", str(path)])
    assert cfg.num_samples == config["num_samples"] >= 1 and cfg.backend == config["backend"]
    assert str(cfg.out) == config["out"] and str(cfg.model) == config["model"]
