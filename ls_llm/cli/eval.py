"""`ls-llm eval --model CKPT --suite ls_math|ls_ood|all|TASK[,TASK] ...` and `ls-llm eval compare RUN...`.

Flags are generated from :class:`ls_llm.evaluation.config.EvalConfig` (each documented once, there).
Exit status: 0 on success, 2 for bad input (the message names the field and the value).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from ls_llm.cli.config_flags import dataclass_parser
from ls_llm.cli.errors import USER_ERRORS, report

# Heavy imports stay inside functions (lm_eval): `ls-llm` imports this module before it knows a command needs
# them.


def build_parser() -> argparse.ArgumentParser:
    from ls_llm.evaluation.config import EvalConfig

    return dataclass_parser(EvalConfig, prog="ls-llm eval", description="Evaluate a checkpoint with lm-eval. "
                            "`ls-llm eval compare RUN_DIR...` compares runs.")


def _run(argv: list[str]) -> int:
    from ls_llm.evaluation.config import EvalConfig

    args = build_parser().parse_args(argv)
    try:
        cfg = EvalConfig(**vars(args))
        from ls_llm.evaluation.runner import evaluate

        evaluate(config=cfg)
    except USER_ERRORS as err:  # bad input, unreadable/unwritable file, full disk, missing package
        return report("eval", err)
    out = cfg.output_dir
    print((out / "results.md").read_text(encoding="utf-8"))
    print(f"run folder: {out}  (results.json, samples_<task>.jsonl, results.md, results.png)")
    return 0


def _compare(argv: list[str]) -> int:
    from ls_llm.evaluation import report as eval_report  # `report` is cli.errors': an error's one line

    parser = argparse.ArgumentParser(prog="ls-llm eval compare", description="Compare eval runs side by side.")
    parser.add_argument("runs", nargs="+", type=Path, help="run folders written by `ls-llm eval`")
    parser.add_argument("--output", type=Path, default=Path("compare.png"), help="bar chart to write (PNG)")
    args = parser.parse_args(argv)
    try:
        runs = {}
        for run in args.runs:
            label = str(run) if run.resolve().name in runs else run.resolve().name
            runs[label] = eval_report.rows_from_results(eval_report.load_run(run))
    except USER_ERRORS as err:
        return report("eval compare", err)
    print(eval_report.compare_table(runs))
    eval_report.bar_chart(runs, args.output, title="ls-llm eval compare")
    print(f"chart: {args.output}")
    return 0


def _tasks(argv: list[str]) -> int:
    """`ls-llm eval tasks`: the task folder this install reads, its suites and its tasks."""
    argparse.ArgumentParser(prog="ls-llm eval tasks", description="List the suites and tasks of this install.").parse_args(argv)
    from ls_llm.evaluation.config import DEFAULT_TASKS_DIR

    if not DEFAULT_TASKS_DIR.is_dir():
        print(f"ls-llm eval tasks: error: task folder {DEFAULT_TASKS_DIR} not found", file=sys.stderr)
        return 2
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(DEFAULT_TASKS_DIR), include_defaults=False)
    print(f"task folder: {DEFAULT_TASKS_DIR}")
    print("suites: " + ", ".join(sorted(manager.all_groups)))
    print("tasks: " + ", ".join(sorted(manager.all_subtasks)))
    print(f"lm-eval itself: {lm_eval_command(DEFAULT_TASKS_DIR)}")
    return 0


def lm_eval_command(tasks_dir: Path, task: str = "math500", model: str = "CKPT", data_dir: str = "DATA_DIR") -> str:
    """The `lm_eval` command line that runs a project task as `ls-llm eval` does (chat template, local data)."""
    return (f"lm_eval --model hf --model_args pretrained={model} --tasks {task} --include_path "
            f"{shlex.quote(str(tasks_dir))} --metadata {shlex.quote(json.dumps({'data_dir': data_dir}))} "
            "--apply_chat_template --log_samples --output_path eval_runs/lm_eval")


SUBCOMMANDS = {"compare": _compare, "tasks": _tasks}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    return _run(argv)


if __name__ == "__main__":
    sys.exit(main())
