"""`ls-llm distill RECIPE.yaml [--key value ...]`: distill a (smoothed) teacher into a student.

The recipe is a train recipe (fields of `ModelLoadArguments`, `LsDataArguments`, trl's `ModelConfig`) whose
training fields are `ls_llm.trainers.distill_config.LsDistillConfig`'s: the student is `model_name_or_path`,
the teacher `teacher_model_name_or_path` (online) or the cache in `teacher_cache_dir` (written first by
`ls-llm distill-cache` from the same recipe). A teacher whose tokenizer differs from the student's, a cache
built with other settings, or any bad field stops the command before a model is trained, with a message
naming the field, a non-zero exit and no output directory left behind.

Multi-GPU: accelerate launch --config_file accelerate_configs/zero3.yaml -m ls_llm.cli distill RECIPE.yaml
"""

from __future__ import annotations

import dataclasses
import sys

from ls_llm.cli.train import TrainRun, run_command

USAGE = "usage: ls-llm distill RECIPE.yaml [--key value ...]   (keys: any recipe field)"


def _arg_types():
    from trl import ModelConfig

    from ls_llm.data.args import LsDataArguments
    from ls_llm.trainers.distill_config import LsDistillConfig
    from ls_llm.trainers.loading import ModelLoadArguments

    return ModelLoadArguments, LsDataArguments, LsDistillConfig, ModelConfig


def check_teacher_tokenizer(args, model_args, student_tokenizer):
    """Load the teacher's tokenizer (no weights) and check it is the student's.

    Returns (teacher model args, teacher load args, teacher tokenizer) for loading the weights afterwards.
    """
    from ls_llm.trainers.distill import check_same_tokenizer
    from ls_llm.trainers.loading import ModelLoadArguments, load_tokenizer

    teacher_model_args = dataclasses.replace(model_args, model_name_or_path=args.teacher_model_name_or_path,
                                             model_revision="main", dtype=args.teacher_dtype)
    teacher_load = ModelLoadArguments(tokenizer_name_or_path=args.teacher_tokenizer_name_or_path)
    try:
        teacher_tokenizer = load_tokenizer(teacher_model_args, teacher_load)
    except ValueError as err:
        raise ValueError(str(err).replace("model_name_or_path", "teacher_model_name_or_path", 1)) from err
    check_same_tokenizer(student_tokenizer, teacher_tokenizer, teacher_name=args.teacher_model_name_or_path)
    return teacher_model_args, teacher_load, teacher_tokenizer


def load_teacher(args, model_args, load_args, student_tokenizer):
    """The teacher model, after checking (before loading any weights) that its tokenizer is the student's."""
    from ls_llm.trainers.loading import load_model

    teacher_model_args, teacher_load, teacher_tokenizer = check_teacher_tokenizer(args, model_args, student_tokenizer)
    try:
        return load_model(teacher_model_args, teacher_load, args, teacher_tokenizer)
    except ValueError as err:
        raise ValueError(str(err).replace("model_name_or_path", "teacher_model_name_or_path", 1)) from err


def load_inputs(argv: list[str]):
    """Parse the recipe and load the student tokenizer and the training data: (args tuple, tokenizer, data)."""
    from ls_llm.cli.recipe import parse_recipe
    from ls_llm.data.loading import load_traces
    from ls_llm.trainers.loading import check_chat_template, load_tokenizer

    load_args, data_args, args, model_args = parse_recipe(argv, _arg_types())
    tokenizer = load_tokenizer(model_args, load_args)
    data = load_traces(data_args, tokenizer=tokenizer)
    check_chat_template(tokenizer, data["train"], args, load_args.tokenizer_name_or_path or model_args.model_name_or_path)
    return (load_args, data_args, args, model_args), tokenizer, data


def prepare(argv: list[str]) -> TrainRun:
    """Parse, load and validate everything; build the trainer. Raises ValueError/OSError on bad input."""
    from trl import get_peft_config

    from ls_llm.trainers.distill import LsDistillTrainer
    from ls_llm.trainers.loading import load_model

    (load_args, _, args, model_args), tokenizer, data = load_inputs(argv)
    teacher = None if args.cached else load_teacher(args, model_args, load_args, tokenizer)
    model = load_model(model_args, load_args, args, tokenizer)
    eval_dataset = data["validation"] if "validation" in data and args.eval_strategy != "no" else None
    trainer = LsDistillTrainer(model=model, args=args, train_dataset=data["train"], eval_dataset=eval_dataset,
                               processing_class=tokenizer, peft_config=get_peft_config(model_args),
                               teacher_model=teacher)
    return TrainRun(trainer=trainer, output_dir=args.output_dir)


def main(argv: list[str] | None = None) -> int:
    return run_command(argv, command="distill", usage=USAGE, prepare_fn=prepare)


if __name__ == "__main__":
    sys.exit(main())
