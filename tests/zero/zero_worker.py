"""One `ls-llm train` / `ls-llm distill` run under `accelerate launch` (DeepSpeed), recording on every rank how
much of each lm_head weight that rank holds, so a test cannot pass on a silently replicated model.

    accelerate launch --config_file accelerate_configs/cpu_zero3_2proc.yaml tests/zero/zero_worker.py \
        {train|distill} RECIPE.yaml [--key value ...]
"""

import json
import os
import sys

from transformers import TrainerCallback


def _numels(module) -> dict:
    from ls_llm.trainers.head import head_weight

    weight, _ = head_weight(module.get_output_embeddings())
    shard = getattr(weight, "ds_tensor", None)
    return {"full": int(weight.ds_numel) if hasattr(weight, "ds_numel") else weight.numel(),
            "local": int(shard.numel()) if shard is not None else weight.numel()}


class PartitionProbe(TrainerCallback):
    """Per rank, at every step end: {"student": {full, local}, "teacher": {...}} into partition-rank{r}.json."""

    def __init__(self, trainer) -> None:
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        t = self.trainer
        base = t.accelerator.unwrap_model(t.model)
        base = base.get_base_model() if hasattr(base, "get_base_model") else base
        record = {"student": _numels(base)}
        if getattr(t, "teacher", None) is not None:
            record["teacher"] = _numels(t.accelerator.unwrap_model(t.teacher))
        rank = t.accelerator.process_index
        with open(os.path.join(args.output_dir, f"partition-rank{rank}.json"), "w") as f:
            json.dump(record, f)


def main(command: str, argv: list[str]) -> None:
    from ls_llm.cli.train import end_process_group
    from ls_llm.trainers.run import prepare_run

    run = prepare_run(command, argv)
    run.trainer.add_callback(PartitionProbe(run.trainer))
    run.trainer.train()
    run.trainer.save_model(run.output_dir)
    end_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
