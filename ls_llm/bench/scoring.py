"""Scoring throughput per math task: right, model-style and wrong outputs through the tasks' scoring path.

Each output goes through exactly what the math tasks' filter runs (:func:`ls_llm.evaluation.scoring.score_math`:
strip thinking, last ``\\boxed{}``, plain-number fast path, math-verify in worker processes). Three kinds
of output per problem:

* gold solution: the dataset's worked solution when it boxes its answer, else the boxed gold;
* model-style: the gold as a model writes it, in the oracle's forms in turn (boxed, stated, per part, ...),
  after a ``<think>`` that states a wrong answer;
* wrong: other problems' answers (each pass pairs every problem with a different other problem), the
  slow case for math-verify before the fast paths.

    python -m ls_llm.bench.scoring --data-dir ../shared/data/eval --workers 1 2

Prints samples per wall second and per CPU second (this process and its workers) with verdict counts
per task, kind and worker count. On a shared machine the wall rate depends on the load; the CPU rate
does not, and ``workers`` x the CPU rate is what that many idle cores reach (chunks are independent).
Exit status 1 when a right answer is not scored correct, or when the largest worker count's rate
(wall, or CPU rate x workers with ``--cpu-rate``) is under ``--min-rate``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

from ls_llm.answers import last_boxed
from ls_llm.bench.eval_oracle import math_outputs
from ls_llm.bench.objectives import _cpu_seconds
from ls_llm.evaluation.config import DEFAULT_TASKS_DIR
from ls_llm.evaluation.schema import normalize_rows, read_task_rows
from ls_llm.evaluation.scoring import score_math

# Heavy imports stay inside functions (math_verify): a benchmark loads only what the case it runs needs.


def math_tasks(tasks_dir: Path = DEFAULT_TASKS_DIR) -> list[str]:
    """The tasks of the math suite, as its group file lists them (eval/tasks/ls_math.yaml is their one home)."""
    return list(yaml.safe_load((tasks_dir / "ls_math.yaml").read_text(encoding="utf-8"))["task"])


def outputs_by_kind(docs: list[dict], passes: int) -> dict[str, tuple[list[str], list[int]]]:
    """``kind -> (outputs, doc index of each output)`` with ``passes`` outputs per problem."""
    oracle = math_outputs(docs)
    n = len(docs)
    gold = [doc["solution"] if last_boxed(doc["solution"]) else oracle["gold"][i][0] for i, doc in enumerate(docs)]
    kinds = {"gold solution": [], "model-style": [], "wrong (other problems' answers)": []}
    for p in range(passes):
        for i in range(n):
            kinds["gold solution"].append((gold[i], i))
            forms = oracle["model"][i]
            kinds["model-style"].append((forms[(p + i) % len(forms)], i))  # every form of the oracle in turn
            other = docs[(i + 1 + p) % n]["answer"] if n > 1 else "-98765.4321"
            kinds["wrong (other problems' answers)"].append((f"So the answer is $\\boxed{{{other}}}$.", i))
    return {kind: ([o for o, _ in pairs], [i for _, i in pairs]) for kind, pairs in kinds.items()}


def measure(docs: list[dict], outputs: list[str], index: list[int], *, workers: int) -> tuple[float, float, Counter]:
    """Samples per wall second, samples per CPU second (all processes), verdict counts."""
    from math_verify.parser import parse_expr_cached, parse_latex_cached

    # Forked workers inherit the parent's parse caches: start every measurement cold, as a real run does.
    parse_latex_cached.cache_clear()
    parse_expr_cached.cache_clear()
    golds = [docs[i]["answer"] for i in index]
    tolerances = [docs[i].get("tolerance") for i in index]
    start, cpu = time.perf_counter(), _cpu_seconds()
    records = score_math([[text] for text in outputs], golds, tolerances=tolerances, workers=workers)
    elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    return len(outputs) / elapsed, len(outputs) / max(cpu, 1e-9), Counter(rec[0]["verdict"] for rec in records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="DIR/<task>/test.jsonl")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="math-verify worker processes")
    parser.add_argument("--min-samples", type=int, default=500, help="outputs per measurement (passes over small sets)")
    parser.add_argument("--min-rate", type=float, default=100.0, help="fail (exit 1) below this many samples/s")
    parser.add_argument("--cpu-rate", action="store_true", help="judge --min-rate on CPU rate x workers (busy machines)")
    args = parser.parse_args(argv)
    if args.min_samples < 1 or min(args.workers) < 1:
        raise ValueError(f"min-samples and workers must be >= 1, got {args.min_samples}, {args.workers}")
    tasks = [t for t in math_tasks() if (args.data_dir / t / "test.jsonl").is_file()]
    if not tasks:
        raise FileNotFoundError(f"no math task data under {args.data_dir} (expected DIR/<task>/test.jsonl)")
    print(f"{os.cpu_count()} CPU cores visible, load average {os.getloadavg()[0]:.1f}; data {args.data_dir}\n")
    print("| task | outputs | n | workers | samples/s (wall) | samples per CPU-s | correct | other verdicts |\n"
          "|---|---|---:|---:|---:|---:|---:|---|")
    ok = True
    for task in tasks:
        docs = normalize_rows(read_task_rows(args.data_dir / task / "test.jsonl", task), task=task, fmt="math")
        passes = math.ceil(args.min_samples / len(docs))
        for kind, (outputs, index) in outputs_by_kind(docs, passes).items():
            for workers in args.workers:
                rate, cpu_rate, verdicts = measure(docs, outputs, index, workers=workers)
                correct = verdicts.pop("correct", 0)
                print(f"| {task} | {kind} | {len(outputs)} | {workers} | {rate:.0f} | {cpu_rate:.0f} | {correct} | "
                      f"{dict(verdicts) or '-'} |", flush=True)
                if workers == max(args.workers):
                    ok = ok and (cpu_rate * workers if args.cpu_rate else rate) >= args.min_rate
                if not kind.startswith("wrong"):
                    ok = ok and correct == len(outputs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
