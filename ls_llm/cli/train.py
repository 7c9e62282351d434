"""`ls-llm train RECIPE.yaml [--key value ...]`: fine-tune a causal LM with LsSFTTrainer from a flat recipe.

The recipe's keys are the fields of `ModelLoadArguments`, `ls_llm.data.LsDataArguments`,
`ls_llm.trainers.LsSFTConfig` and trl's `ModelConfig`. Everything that can be wrong with a recipe (unknown
key, bad value, missing data fields, missing chat template, missing model) is found before training,
reported with a non-zero exit, and leaves no output directory behind.

Multi-GPU: accelerate launch --config_file accelerate_configs/ddp.yaml -m ls_llm.cli train RECIPE.yaml
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass

USAGE = "usage: ls-llm train RECIPE.yaml [--key value ...]   (keys: any recipe field)"


@dataclass
class TrainRun:
    trainer: object
    output_dir: str


def _arg_types():
    from trl import ModelConfig

    from ls_llm.data.args import LsDataArguments
    from ls_llm.trainers.config import LsSFTConfig
    from ls_llm.trainers.loading import ModelLoadArguments

    return ModelLoadArguments, LsDataArguments, LsSFTConfig, ModelConfig


def prepare(argv: list[str]) -> TrainRun:
    """Parse, load and validate everything; build the trainer. Raises ValueError/OSError on bad input."""
    from trl import get_peft_config

    from ls_llm.cli.recipe import parse_recipe
    from ls_llm.data.loading import load_traces
    from ls_llm.trainers.loading import check_chat_template, load_model, load_tokenizer
    from ls_llm.trainers.sft import LsSFTTrainer

    load_args, data_args, sft_args, model_args = parse_recipe(argv, _arg_types())
    tokenizer = load_tokenizer(model_args, load_args)
    data = load_traces(data_args, tokenizer=tokenizer)
    tokenizer_name = load_args.tokenizer_name_or_path or model_args.model_name_or_path
    check_chat_template(tokenizer, data["train"], sft_args, tokenizer_name)
    model = load_model(model_args, load_args, sft_args, tokenizer)
    eval_dataset = data["validation"] if "validation" in data and sft_args.eval_strategy != "no" else None
    trainer = LsSFTTrainer(
        model=model,
        args=sft_args,
        train_dataset=data["train"],
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    return TrainRun(trainer=trainer, output_dir=sft_args.output_dir)


def _resume_arg(value: str | None):
    # `--resume_from_checkpoint true` means the last checkpoint in output_dir.
    if value is None or value.lower() in ("false", "none", ""):
        return None
    return True if value.lower() in ("true", "last") else value


def run_command(argv: list[str] | None, *, command: str, usage: str, prepare_fn) -> int:
    """The shared body of `ls-llm train` and `ls-llm distill`: prepare (all validation), train, save, summarize.

    A recipe that fails in ``prepare_fn`` exits 2 with the message, and an output directory that did not exist
    before is removed: nothing is left half-written by a run that never started.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    output_dir = _peek_output_dir(argv)
    existed = output_dir is not None and os.path.exists(output_dir)
    try:
        run = prepare_fn(argv)
    except (ValueError, OSError) as err:
        if output_dir is not None and not existed and os.path.isdir(output_dir):
            shutil.rmtree(output_dir, ignore_errors=True)
        print(f"ls-llm {command}: error: {err}", file=sys.stderr)
        return 2
    trainer = run.trainer
    trainer.train(resume_from_checkpoint=_resume_arg(trainer.args.resume_from_checkpoint))
    trainer.save_model(run.output_dir)
    if trainer.is_world_process_zero():
        print(_summary(trainer, run.output_dir).replace("ls-llm train:", f"ls-llm {command}:", 1))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(argv, command="train", usage=USAGE, prepare_fn=prepare)


def _peek_output_dir(argv: list[str]) -> str | None:
    """output_dir as the recipe / flags set it, known before parsing can fail."""
    from ls_llm.cli.recipe import load_recipe

    for i, arg in enumerate(argv[:-1]):
        if arg == "--output_dir":
            return argv[i + 1]
    try:
        return load_recipe(argv[0]).get("output_dir")
    except ValueError:
        return None


def _summary(trainer, output_dir: str) -> str:
    from ls_llm.trainers.metrics import loss_curve

    args = trainer.args
    checkpoints = sorted((p for p in os.listdir(output_dir) if p.startswith("checkpoint-")), key=lambda p: int(p.split("-")[-1]))
    lines = [
        "",
        f"== ls-llm train: objective={args.objective} steps={trainer.state.global_step} ==",
        loss_curve(trainer.state.log_history),
        f"model saved to: {os.path.abspath(output_dir)}",
    ]
    if checkpoints:
        lines.append(f"last checkpoint: {os.path.join(os.path.abspath(output_dir), checkpoints[-1])}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
