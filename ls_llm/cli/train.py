"""`ls-llm train RECIPE.yaml [--key value ...]`: fine-tune a causal LM with LsSFTTrainer from a flat recipe.

The recipe's keys are the fields of `ModelLoadArguments`, `ls_llm.data.LsDataArguments`,
`ls_llm.trainers.LsSFTConfig` and trl's `ModelConfig`. The run itself is `ls_llm.trainers.run.run_recipe`:
everything that can be wrong with a recipe (unknown key, bad value, missing data fields, missing chat template,
missing model, a finished run in output_dir) is found before training; any failure, before or during training,
exits 2 with one line naming the problem and leaves no output directory behind (unless it holds a complete
checkpoint: `--resume_from_checkpoint true` continues from the newest complete one).

Signals: SIGTERM, SIGUSR1 and SIGINT finish the current optimizer step, write a complete checkpoint, print where
and how to resume, and exit 128 + the signal number; a second signal stops at once (`ls_llm/trainers/guard.py`).
A non-finite loss or gradient stops training naming the step (`nan_policy: stop`, exit 2) or skips the step
(`nan_policy: skip_step`). A second run writing the same output_dir is refused, naming the first one's pid.

Multi-GPU: accelerate launch --config_file accelerate_configs/ddp.yaml -m ls_llm.cli train RECIPE.yaml
Multi-node on SLURM: slurm/train.slurm (docs/reliability.md).
"""

from __future__ import annotations

import os
import sys

from ls_llm.cli.errors import guarded

# Heavy imports stay inside functions (torch): `ls-llm` imports this module before it knows a command needs
# them.

USAGE = "usage: ls-llm train RECIPE.yaml [--key value ...]   (keys: any recipe field)"


def recipe_main(argv: list[str] | None, *, command: str, usage: str) -> int:
    """The shared body of `ls-llm train` and `ls-llm distill`: run the recipe, print the summary."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2

    def body():
        from ls_llm.trainers.guard import Preempted
        from ls_llm.trainers.run import run_recipe

        try:
            run = run_recipe(command, argv)
        except Preempted as stopped:  # a stop signal, after its checkpoint: say where, and end every rank alike
            if str(stopped):
                print(f"ls-llm {command}: {stopped}", file=sys.stderr)
            end_process_group(stopped.exit_status)
            return stopped.exit_status
        if run.trainer.is_world_process_zero():
            print(_summary(run, command))
        end_process_group()

    return guarded(command, body)


def main(argv: list[str] | None = None) -> int:
    return recipe_main(argv, command="train", usage=USAGE)


def end_process_group(status: int = 0) -> None:
    """Under `accelerate launch` (gloo, DeepSpeed), tear the process group down before the interpreter does: left
    to interpreter shutdown, its threads can abort the process ("terminate called without an active exception",
    exit -6) after a run that finished and saved."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        # Even after the teardown, a rank could still abort in interpreter shutdown (seen in CI on a ZeRO-3 run that
        # had finished and saved): everything is written, so this rank ends here, skipping that shutdown.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _summary(run, command: str) -> str:
    from ls_llm.trainers.checkpoints import checkpoints
    from ls_llm.trainers.describe import objective_label, route_lines
    from ls_llm.trainers.metrics import loss_curve

    trainer, output_dir = run.trainer, run.output_dir
    args = trainer.args
    found = checkpoints(output_dir)
    lines = [
        "",
        f"== ls-llm {command}: objective={objective_label(args)} steps={trainer.state.global_step} ==",
        *(f"  {line}" for line in route_lines(args)),
        loss_curve(trainer.state.log_history),
        f"model saved to: {os.path.abspath(output_dir)}",
    ]
    if found:
        lines.append(f"last checkpoint: {found[-1].resolve()}")
    skipped = getattr(run.guard, "skipped", [])
    if skipped:
        lines.append(f"skipped {len(skipped)} optimizer step(s) with a non-finite gradient (nan_policy: skip_step): "
                     f"steps {', '.join(map(str, skipped[:10]))}{' ...' if len(skipped) > 10 else ''}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
