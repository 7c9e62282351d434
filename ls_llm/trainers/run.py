"""A training run from a recipe, as a library: `prepare_run(kind, argv)` parses, loads and validates everything
and builds the trainer; `run_recipe(kind, argv)` also trains and saves. Both raise (ValueError / OSError with
the field, file or value named); `ls-llm train|distill` turn that into exit 2, the sweep into a failed cell.

Before any model is loaded: the output folder is checked (a folder holding a trained model or checkpoints is
refused unless `overwrite_output_dir` or `resume_from_checkpoint` is set) and `resume_from_checkpoint: true`
is resolved to the newest *complete* checkpoint (`checkpoints.resolve_resume`). A run that fails, before or
during training, removes the output folder it created unless that folder holds a complete checkpoint to
resume from.

While it runs, `run_recipe` holds the output folder's lock (`ls_llm.data.folder_lock`: a second writer is refused,
naming the first one's pid) and the trainer carries `ls_llm.trainers.guard`: a non-finite loss or gradient stops
or skips the step (`nan_policy`), and SIGTERM / SIGUSR1 / SIGINT end training with a complete checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from ls_llm.data.args import LsDataArguments
from ls_llm.data.folder_lock import folder_lock
from ls_llm.data.loading import load_traces
from ls_llm.trainers.checkpoints import (
    ResumePoint,
    check_output_dir,
    checkpoints,
    resolve_resume,
    resumable_checkpoint,
)
from ls_llm.trainers.loading import (
    ModelLoadArguments,
    check_chat_template,
    check_teacher_tokenizer,
    load_model,
    load_teacher,
    load_tokenizer,
)
from ls_llm.trainers.recipe import load_recipe, parse_recipe

# Heavy imports stay inside functions (torch, trl): `ls-llm` imports this module before it knows a command
# needs them.


@dataclass
class TrainRun:
    trainer: object
    output_dir: str
    resume: ResumePoint
    guard: object = None  # trainers.guard.RunGuard: nan_policy and the stop signals


def sft_arg_types():
    from trl import ModelConfig

    from ls_llm.trainers.config import LsSFTConfig

    return ModelLoadArguments, LsDataArguments, LsSFTConfig, ModelConfig


def distill_arg_types():
    from trl import ModelConfig

    from ls_llm.trainers.distill_config import LsDistillConfig

    return ModelLoadArguments, LsDataArguments, LsDistillConfig, ModelConfig


def load_inputs(argv: list[str], types: tuple, *, training: bool = True):
    """Parse the recipe, check the output folder and the resume point (when `training`), load the tokenizer and
    the data: ((load args, data args, training args, model args), tokenizer, data, ResumePoint)."""
    load_args, data_args, args, model_args = parse_recipe(argv, types)
    resume = ResumePoint(None)
    if training:
        resume = resolve_resume(args.output_dir, args.resume_from_checkpoint)
        check_output_dir(args.output_dir, resuming=resume.checkpoint is not None, overwrite=args.overwrite_output_dir)
    tokenizer = load_tokenizer(model_args, load_args, trust_remote_code=args.trust_remote_code)
    column = getattr(args, "trace_objective_column", None)  # routed by: carried whatever its name
    data = load_traces(data_args, tokenizer=tokenizer, weights=args.trace_weights(), carry=(column,) if column else ())
    check_chat_template(tokenizer, data["train"], args, load_args.tokenizer_name_or_path or model_args.model_name_or_path)
    return (load_args, data_args, args, model_args), tokenizer, data, resume


def _eval_split(data, args):
    return data["validation"] if "validation" in data and args.eval_strategy != "no" else None


def prepare_sft(argv: list[str]) -> TrainRun:
    from trl import get_peft_config

    from ls_llm.trainers.sft import LsSFTTrainer

    (load_args, _, args, model_args), tokenizer, data, resume = load_inputs(argv, sft_arg_types())
    model = load_model(model_args, load_args, args, tokenizer)
    trainer = LsSFTTrainer(model=model, args=args, train_dataset=data["train"], eval_dataset=_eval_split(data, args),
                           processing_class=tokenizer, peft_config=get_peft_config(model_args))
    return TrainRun(trainer=trainer, output_dir=args.output_dir, resume=resume)


def prepare_distill(argv: list[str]) -> TrainRun:
    from trl import get_peft_config

    from ls_llm.trainers.distill import LsDistillTrainer

    (load_args, _, args, model_args), tokenizer, data, resume = load_inputs(argv, distill_arg_types())
    teacher = None if args.cached else load_teacher(args, model_args, tokenizer)
    model = load_model(model_args, load_args, args, tokenizer)
    trainer = LsDistillTrainer(model=model, args=args, train_dataset=data["train"],
                               eval_dataset=_eval_split(data, args), processing_class=tokenizer,
                               peft_config=get_peft_config(model_args), teacher_model=teacher)
    return TrainRun(trainer=trainer, output_dir=args.output_dir, resume=resume)


RUNS: dict[str, Callable[[list[str]], TrainRun]] = {"train": prepare_sft, "distill": prepare_distill}


def prepare_run(kind: str, argv: list[str]) -> TrainRun:
    """Parse `RECIPE.yaml [--key value | --key=value ...]` and build the trainer of `kind` (train | distill)."""
    from ls_llm.trainers.guard import install_guard

    if kind not in RUNS:
        raise ValueError(f"run kind must be one of {sorted(RUNS)}, got {kind!r}")
    run = RUNS[kind](list(argv))
    run.guard = install_guard(run.trainer)
    return run


def run_recipe(kind: str, argv: list[str], *, log: Callable[[str], None] = print, callbacks=()) -> TrainRun:
    """Prepare, train (resuming where asked) and save the final model; raises on any failure, after removing
    an output folder this call created unless it holds a complete checkpoint. `callbacks`: extra
    `transformers.TrainerCallback`s added to the trainer (the sweep's tracking)."""
    output_dir = peek_output_dir(argv)
    with folder_lock(output_dir) if output_dir is not None else contextlib.nullcontext():
        return _run_locked(kind, argv, output_dir, log=log, callbacks=callbacks)


def _run_locked(kind: str, argv: list[str], output_dir: str | None, *, log, callbacks) -> TrainRun:
    from ls_llm.trainers.guard import NonFiniteTraining, Preempted, SignalStop, preempted, weights_finite

    existed = output_dir is not None and os.path.exists(output_dir)
    started = False
    stop = SignalStop()
    try:
        with stop.installed():
            run = prepare_run(kind, argv)
            trainer, run.guard.stop = run.trainer, stop
            for callback in callbacks:
                trainer.add_callback(callback)
            if trainer.is_world_process_zero() and run.resume.message():
                log(run.resume.message())
            if trainer.is_world_process_zero() and getattr(trainer, "length_report", None):
                log(trainer.length_report)  # rows max_length dropped or cut, said before training
            started = True
            trainer.train(resume_from_checkpoint=run.resume.checkpoint)
            stop.phase = "saving"
            if run.guard.stopped_by:
                raise preempted(trainer, run.guard, run.output_dir)
            if not weights_finite(trainer):
                raise NonFiniteTraining(f"the weights are not finite after step {trainer.state.global_step}: the "
                                        "final model is not saved. Lower learning_rate")
            trainer.save_model(run.output_dir)
            trainer.accelerator.wait_for_everyone()  # no rank exits while another is still in a collective
    except Preempted:
        if output_dir is not None and not existed and not resumable(output_dir):
            shutil.rmtree(output_dir, ignore_errors=True)
        raise
    except BaseException:
        if output_dir is not None and started and resumable(output_dir):
            log(f"kept {output_dir}: it holds a complete checkpoint; continue with --resume_from_checkpoint true")
        elif output_dir is not None and not existed and not resumable(output_dir):
            shutil.rmtree(output_dir, ignore_errors=True)
        raise
    return run


def resumable(output_dir: str) -> bool:
    """A failed run's folder is kept (not removed) when a complete checkpoint in it can be resumed from."""
    return any(resumable_checkpoint(p) for p in checkpoints(output_dir))


def peek_output_dir(argv: list[str]) -> str | None:
    """output_dir as the command line (`--output_dir X` or `--output_dir=X`, the last one wins) or the recipe
    sets it, known before parsing can fail."""
    found = None
    for i, arg in enumerate(argv):
        if arg == "--output_dir" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--output_dir="):
            found = arg.split("=", 1)[1]
    if found is not None or not argv:
        return found
    try:
        return load_recipe(argv[0]).get("output_dir")
    except (ValueError, OSError):
        return None


# --- from a recipe: what `ls-llm distill-cache` (and the sweep) run ---------------------------------------------

def _hf(args, model_args, tokenizer, train_dataset) -> int:
    from ls_llm.trainers.distill_cache import build_teacher_cache

    teacher = load_teacher(args, model_args, tokenizer).to(args.device)
    return build_teacher_cache(args, teacher, tokenizer, train_dataset)


def _vllm(args, model_args, tokenizer, train_dataset) -> int:
    from ls_llm.trainers.distill_cache_vllm import build_teacher_cache_vllm

    check_teacher_tokenizer(args, model_args, tokenizer)  # vLLM loads the weights itself
    return build_teacher_cache_vllm(args, tokenizer, train_dataset)


BUILDERS = {"hf": _hf, "vllm": _vllm}  # by teacher_cache_backend (LsDistillConfig.TEACHER_CACHE_BACKENDS)


def build_cache_from_recipe(argv: list[str]) -> str:
    """`ls-llm distill-cache RECIPE [--key value ...]` as a library call: write the cache the recipe names. A
    cache folder this call created is removed if it fails before a shard."""
    (_, _, args, model_args), tokenizer, data, _ = load_inputs(argv, distill_arg_types(), training=False)
    if args.teacher_cache_dir is None:
        raise ValueError("teacher_cache_dir is required: it is where the cache is written")
    with folder_lock(args.teacher_cache_dir):  # a second writer of this cache is refused, naming the first
        existed = os.path.exists(args.teacher_cache_dir)
        output_existed = os.path.exists(args.output_dir)  # trl's Trainer creates it while preparing the rows
        try:
            written = BUILDERS[args.teacher_cache_backend](args, model_args, tokenizer, data["train"])
        except BaseException:
            if not existed and not _has_shard(args.teacher_cache_dir):
                shutil.rmtree(args.teacher_cache_dir, ignore_errors=True)
            raise
        finally:
            if not output_existed and os.path.isdir(args.output_dir) and not os.listdir(args.output_dir):
                os.rmdir(args.output_dir)
    return f"teacher cache complete in {args.teacher_cache_dir} ({written} shard(s) written by this run)"


def _has_shard(path: str) -> bool:
    return os.path.isdir(path) and any(n.startswith("shard-") and not n.endswith(".tmp") for n in os.listdir(path))
