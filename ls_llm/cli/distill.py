"""`ls-llm distill RECIPE.yaml [--key value ...]`: distill a (smoothed) teacher into a student.

The recipe is a train recipe (fields of `ModelLoadArguments`, `LsDataArguments`, trl's `ModelConfig`) whose
training fields are `ls_llm.trainers.distill_config.LsDistillConfig`'s: the student is `model_name_or_path`,
the teacher `teacher_model_name_or_path` (online) or the cache in `teacher_cache_dir` (written first by
`ls-llm distill-cache` from the same recipe). A teacher whose tokenizer differs from the student's, a cache
built by another teacher, tokenizer or data, a corrupt cache shard, or any bad field stops the command before
a model is trained, with a message naming the field or file, exit 2 and no output directory left behind.
The run is `ls_llm.trainers.run.run_recipe("distill", argv)`.

Multi-GPU: accelerate launch --config_file accelerate_configs/zero3.yaml -m ls_llm.cli distill RECIPE.yaml
"""

from __future__ import annotations

import sys

from ls_llm.cli.train import recipe_main

USAGE = "usage: ls-llm distill RECIPE.yaml [--key value ...]   (keys: any recipe field)"


def main(argv: list[str] | None = None) -> int:
    return recipe_main(argv, command="distill", usage=USAGE)


if __name__ == "__main__":
    sys.exit(main())
