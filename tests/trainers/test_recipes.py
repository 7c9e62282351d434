"""Every recipe under recipes/ parses into the train command's dataclasses (unknown keys would fail)."""

from pathlib import Path

import pytest

from ls_llm.cli.recipe import parse_recipe
from ls_llm.cli.train import _arg_types

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if "data" not in p.parts)


def test_recipes_found():
    assert any("demo" in p.parts for p in RECIPES) and any("qwen2.5-math-1.5b" in p.parts for p in RECIPES)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_recipe_parses(path):
    # bf16 recipes are for GPUs; TrainingArguments refuses bf16 on a CPU-only machine, so parse them with
    # bf16 off: every other key is still checked.
    load, data, sft, model = parse_recipe([str(path), "--bf16", "false", "--use_cpu", "true"], _arg_types())
    assert sft.output_dir and model.model_name_or_path
    assert data.dataset_name or data.dataset_mixture
