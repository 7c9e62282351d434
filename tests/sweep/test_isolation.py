"""The sweep trains through the library run (no `main(argv)`): a failing cell raises with its cause, a
recipe's `env:` does not outlive its cell, and `--output_dir=X` (the form the sweep passes) is honoured by the
clean-up of a failed run."""

import os

import pytest

from ls_llm.sweep.runner import train_cell
from ls_llm.trainers.recipe import isolated_environ, parse_recipe
from ls_llm.trainers.recipe_types import RecipeError
from ls_llm.trainers.run import peek_output_dir, sft_arg_types


def test_failed_cell_raises_its_message(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: [1\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        train_cell("train", [str(recipe), f"--output_dir={tmp_path / 'model'}"])
    with pytest.raises(ValueError, match="training run"):
        train_cell("eval", [str(recipe)])
    assert not (tmp_path / "model").exists()


def test_recipe_env_does_not_leak(tmp_path, monkeypatch):
    monkeypatch.delenv("LS_LLM_TEST_LEAK", raising=False)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"output_dir: {tmp_path / 'out'}\nenv:\n  LS_LLM_TEST_LEAK: '1'\n")
    with isolated_environ():
        parse_recipe([str(recipe), "--use_cpu", "true", "--bf16", "false"], sft_arg_types())
        assert os.environ["LS_LLM_TEST_LEAK"] == "1"
        os.environ["LS_LLM_VERIFY_WORKERS"] = "7"  # as an evaluation inside the cell sets it
    assert "LS_LLM_TEST_LEAK" not in os.environ and os.environ.get("LS_LLM_VERIFY_WORKERS") != "7"


def test_output_dir_in_both_flag_forms(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("output_dir: from-recipe\n")
    assert peek_output_dir([str(recipe)]) == "from-recipe"
    assert peek_output_dir([str(recipe), "--output_dir", "a"]) == "a"
    assert peek_output_dir([str(recipe), "--output_dir=b", "--seed=1"]) == "b"
