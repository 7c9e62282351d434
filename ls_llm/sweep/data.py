"""The sweep's data: the synthetic task written once, and the lm-eval task folder that scores it.

Train rows are written in the `problem_solution` format (a `problem`, a worked `solution` ending in
`\\boxed{}`), which the data layer reads and the evaluation tasks read too, so the prompt the model is
trained on and the prompt it is evaluated on are the same text. The evaluation tasks include the
project's math template (eval/tasks/_math_template_yaml: math-verify scoring, avg@k) and only change the
prompt to the bare problem: the base recipe sets `dataset_answer_instruction: ""`, because the template's
instruction sentence would triple the length of every tiny-model example without teaching it anything.
"""

from __future__ import annotations

import json
from pathlib import Path

from ls_llm.data.synthetic import SyntheticConfig, generate_split
from ls_llm.files import read_jsonl, write_atomic, write_jsonl
from ls_llm.sweep.config import DataSpec

# Task names are prefixed so they cannot clash with eval/tasks (aime24, math500, ...).
TEST_TASK = "sweep_arith_test"
VALIDATION_TASK = "sweep_arith_validation"
_SPLIT_OF_TASK = {TEST_TASK: "test", VALIDATION_TASK: "validation"}


def _row(generated: dict) -> dict:
    return {"id": generated["id"], "problem": generated["messages"][0]["content"],
            "solution": generated["messages"][1]["content"], "answer": generated["answer"]}


def _task_yaml(task: str, template: Path) -> str:
    return (
        f"# Written by ls-llm sweep: the {_SPLIT_OF_TASK[task]} split of the sweep's synthetic task.\n"
        f"task: {task}\n"
        f"include: {template}\n"
        'doc_to_text: "{{problem}}"\n'
        "repeats: 1\n"
        f"dataset_kwargs: {{ls_task: {task}, ls_format: math, hub_path: none, hub_split: test}}\n"
    )


def data_paths(out_dir: Path) -> dict[str, Path]:
    """Where prepare_data puts each file (known without writing anything)."""
    return {**{split: out_dir / f"{split}.jsonl" for split in ("train", "validation", "test")},
            "eval_data": out_dir / "eval_data", "tasks": out_dir / "tasks"}


def prepare_data(spec: DataSpec, out_dir: Path, template: Path) -> dict[str, Path]:
    """Write train/validation/test jsonl, the eval data folder and the task folder (once; kept if the
    spec is unchanged, an error if it changed, so a resumed sweep never mixes two datasets)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = out_dir / "spec.json"
    wanted = json.dumps(spec.settings(), sort_keys=True)
    paths = data_paths(out_dir)
    if stamp.is_file():
        if stamp.read_text() != wanted:
            raise ValueError(f"data: {str(out_dir)!r} holds data made from another spec ({stamp.read_text()}); "
                             f"use a new output_dir or delete that folder")
        return paths
    cfg = SyntheticConfig(min_steps=spec.min_steps, max_steps=spec.max_steps, max_operand=spec.max_operand,
                          max_multiplier=spec.max_multiplier, ops=tuple(spec.ops), split_by=spec.split_by,
                          think=spec.think)
    for split, size in (("train", spec.train_size), ("validation", spec.validation_size), ("test", spec.test_size)):
        write_jsonl(paths[split], [_row(r) for r in generate_split(split, size, seed=spec.seed, cfg=cfg)])
    for task, split in _SPLIT_OF_TASK.items():
        (paths["eval_data"] / task).mkdir(parents=True, exist_ok=True)
        write_jsonl(paths["eval_data"] / task / "test.jsonl", read_jsonl(paths[split]))
        paths["tasks"].mkdir(parents=True, exist_ok=True)
        write_atomic(paths["tasks"] / f"{task}.yaml", _task_yaml(task, template.resolve()))
    write_atomic(stamp, wanted)  # last: its presence means everything above is complete
    return paths
