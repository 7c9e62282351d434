"""The recipe loader lives below the CLI, in `ls_llm.trainers.recipe` (the sweep calls it too); kept here as
the import path older scripts use."""

from ls_llm.trainers.recipe import RecipeError, isolated_environ, load_recipe, parse_recipe

__all__ = ["RecipeError", "isolated_environ", "load_recipe", "parse_recipe"]
