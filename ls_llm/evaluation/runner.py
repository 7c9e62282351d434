"""Run lm-eval on a checkpoint folder: check everything, load the tasks, then the model, then write.

The order matters: a missing checkpoint, an unknown task, a missing backend package or a data file
with a missing field all fail before any weights load. Generation goes through
:class:`~ls_llm.evaluation.resume.JournaledLM`, so re-running the same command into the same
output folder resumes instead of starting over.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from pathlib import Path

from ls_llm.data.folder_lock import folder_lock
from ls_llm.evaluation import report
from ls_llm.evaluation.backends import build_lm, check_backend, get_backend, resolve_backend
from ls_llm.evaluation.checkpoint import check_checkpoint
from ls_llm.evaluation.config import DEFAULT_TASKS_DIR, EvalConfig
from ls_llm.evaluation.fingerprint import run_fingerprint
from ls_llm.evaluation.resume import JournaledLM
from ls_llm.evaluation.scoring import VERIFY_WORKERS_ENV, rule_shares
from ls_llm.files import write_atomic

# Heavy imports stay inside functions (lm_eval, numpy): `ls-llm` imports this module before it knows a command
# needs them.

logger = logging.getLogger(__name__)
JOURNAL_FILE = "generations.journal.jsonl"


def task_manager(cfg: EvalConfig):
    """lm-eval TaskManager over eval/tasks plus any extra folders; lm-eval's own tasks are left out
    so that our task names (aime24, math500, ...) never collide with its built-in ones."""
    from lm_eval.tasks import TaskManager

    paths = [str(DEFAULT_TASKS_DIR), *cfg.include_path]
    if not DEFAULT_TASKS_DIR.is_dir():
        raise FileNotFoundError(f"task folder {DEFAULT_TASKS_DIR} not found: run from a checkout or set "
                                "LS_LLM_EVAL_TASKS to a copy of the repository's eval/tasks")
    for path in cfg.include_path:
        if not Path(path).is_dir():
            raise FileNotFoundError(f"include_path {path!r} is not a folder")
    metadata = {"data_dir": str(Path(cfg.data_dir).resolve())} if cfg.data_dir else {}
    return TaskManager(include_path=paths, include_defaults=False, metadata=metadata)


def resolve_tasks(cfg: EvalConfig, manager) -> list[str]:
    names = cfg.task_names()
    unknown = [name for name in names if name not in manager.all_tasks]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown} in suite={cfg.suite!r}; known: {manager.all_tasks}")
    return names


def apply_overrides(cfg: EvalConfig, tasks: dict) -> None:
    """Command-line settings over the task YAML defaults (k, sampling, generation length)."""
    gen = {"max_gen_toks": cfg.max_gen_toks}
    if cfg.temperature is not None:
        gen["temperature"] = cfg.temperature
        gen["do_sample"] = cfg.temperature > 0
    if cfg.top_p is not None:
        gen["top_p"] = cfg.top_p
    # Greedy decoding gives k identical samples: unless k is asked for, generate one.
    repeats = cfg.num_samples if cfg.num_samples is not None else (1 if cfg.temperature == 0 else None)
    for task in tasks.values():
        task.set_config(key="generation_kwargs", value=gen, update=True)
        if repeats is not None:
            task.set_config(key="repeats", value=repeats)
        if task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=cfg.seed)


def _seed_everything(seed: int) -> None:
    import numpy as np
    from lm_eval.utils import set_torch_seed

    random.seed(seed)
    np.random.seed(seed)
    set_torch_seed(seed)


def evaluate(model: str | None = None, *, config: EvalConfig | None = None, **fields) -> dict:
    """Evaluate a checkpoint and write the run folder; returns lm-eval's results dict.

    Either pass a ready ``config`` or the :class:`EvalConfig` fields as keywords, e.g.
    ``evaluate("ckpt/", suite="arith", backend="hf", include_path=["my_tasks/"], limit=50)``.
    """
    if config is None and not model:
        raise ValueError(f"model must name a checkpoint folder, got {model!r}")
    cfg = config if config is not None else EvalConfig(model=model, **fields)
    checkpoint = check_checkpoint(cfg.model, need_tokenizer="tokenizer" not in cfg.extra_model_args)
    if not any(checkpoint.glob("*.safetensors")):  # pickled weights: named now, not a traceback from the loader
        from ls_llm.torch_files import unsafe_reason

        if unsafe := unsafe_reason(checkpoint):
            raise ValueError(f"model={cfg.model!r}: {unsafe}")
    resolve_backend(cfg)
    check_backend(cfg)  # missing packages, a model or setting the backend refuses: before tasks or weights load
    manager = task_manager(cfg)
    loaded = manager.load(resolve_tasks(cfg, manager))  # reads (and validates) the data
    apply_overrides(cfg, loaded["tasks"])
    _seed_everything(cfg.seed)
    os.environ[VERIFY_WORKERS_ENV] = str(cfg.verify_workers)
    start, fingerprint = time.time(), run_fingerprint(checkpoint, cfg)
    with folder_lock(cfg.output_dir):  # one writer per run folder: a second eval into it is refused, naming the first
        return _evaluate_into(cfg, loaded, checkpoint=checkpoint, fingerprint=fingerprint, start=start)


def _evaluate_into(cfg: EvalConfig, loaded, *, checkpoint, fingerprint: str, start: float) -> dict:
    from lm_eval.evaluator import evaluate as lm_eval_evaluate

    inner = build_lm(cfg)  # an engine that does not start leaves no run folder behind
    out = cfg.output_dir
    out.mkdir(parents=True, exist_ok=True)
    lm = JournaledLM(inner, out / JOURNAL_FILE, fingerprint=fingerprint, chunk_size=cfg.chunk_size)
    try:
        results = lm_eval_evaluate(lm=lm, task_dict=loaded, limit=cfg.limit, log_samples=True,
                                   apply_chat_template=True, fewshot_as_multiturn=False, bootstrap_iters=1000)
    finally:
        get_backend(cfg).close(inner)
    if results is None:  # a non-zero rank of a distributed run: rank 0 writes
        return {}
    results["config"] = {"model": str(checkpoint), "backend": cfg.backend, "suite": cfg.suite,
                         "model_args": get_backend(cfg).model_args(cfg), "limit": cfg.limit,
                         "num_samples": cfg.num_samples, "seed": cfg.seed, "data_dir": cfg.data_dir,
                         "samples_replayed": lm.replayed, "samples_generated": lm.generated,
                         "wall_seconds": round(time.time() - start, 2)}
    write_run(results, out)
    return results


def write_run(results: dict, out: Path) -> None:
    """results.json (lm-eval's dict without samples), samples_<task>.jsonl, results.md, results.png."""
    from lm_eval.utils import handle_non_serializable

    samples = results.pop("samples", None) or {}
    # Which rule read the answers (boxed, stated, ...), per task: a score resting on a loose rule shows here.
    results["answer_rules"] = {task: rule_shares(rows) for task, rows in samples.items()}
    for task, rows in samples.items():
        lines = "".join(json.dumps(row, default=handle_non_serializable, ensure_ascii=False) + "\n" for row in rows)
        write_atomic(out / f"samples_{task}.jsonl", lines)
    # A run folder holds one run's files: samples of tasks this run did not evaluate are another run's.
    for stale in sorted(set(out.glob("samples_*.jsonl")) - {out / f"samples_{task}.jsonl" for task in samples}):
        stale.unlink()
        logger.warning("removed %s: written by an earlier run into this folder, not by this one", stale)
    text = json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False)
    write_atomic(out / report.RESULTS_FILE, text)
    rows = report.rows_from_results(json.loads(text))
    write_atomic(out / "results.md", f"# {results['config']['model']}\n\n" + report.markdown_table(rows))
    report.bar_chart({Path(results["config"]["model"]).name: rows}, out / "results.png", title=out.name)
    results["samples"] = samples
