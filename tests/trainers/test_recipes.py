"""Every recipe under recipes/ parses into its command's dataclasses (unknown keys would fail).

The command is told by the path: recipes with "distill" in a folder or file name belong to `ls-llm distill`
(or `distill-cache`), those with "generate" to `ls-llm generate --config`, the others to `ls-llm train`."""

from pathlib import Path

import pytest

from ls_llm.trainers.recipe import parse_recipe
from ls_llm.trainers.run import distill_arg_types, sft_arg_types

ROOT = Path(__file__).resolve().parents[2]
ALL_RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if "data" not in p.parts)
GENERATE = [p for p in ALL_RECIPES if any("generate" in part for part in p.relative_to(ROOT / "recipes").parts)]
RECIPES = [p for p in ALL_RECIPES if p not in GENERATE]


def _arg_types(path: Path):
    """The dataclasses `ls-llm train` or `ls-llm distill` / `distill-cache` parse the recipe into."""
    rel = path.relative_to(ROOT / "recipes")
    return distill_arg_types() if any("distill" in part for part in rel.parts) else sft_arg_types()


def test_recipes_found():
    assert any("demo" in p.parts for p in RECIPES) and any("qwen2.5-math-1.5b" in p.parts for p in RECIPES)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_recipe_parses(path):
    # bf16 recipes are for GPUs; TrainingArguments refuses bf16 on a CPU-only machine, so parse them with
    # bf16 off: every other key is still checked.
    parsed = parse_recipe([str(path), "--bf16", "false", "--use_cpu", "true"], _arg_types(path))
    assert any(getattr(p, "output_dir", None) for p in parsed)


@pytest.mark.parametrize("path", GENERATE, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_generate_config_parses(path):
    from ls_llm.cli.generate import config_from_args

    assert config_from_args(["--config", str(path)]).num_samples >= 1
