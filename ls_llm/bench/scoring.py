"""Scoring throughput: MATH-500 gold solutions through the evaluation's scoring path.

Each gold solution is fed as a model output and goes through exactly what the math tasks' filter
runs (:func:`ls_llm.evaluation.scoring.score_math`: strip thinking, last ``\\boxed{}``, math-verify
in worker processes). Every verdict must be "correct"; the table reports samples per second.

    python -m ls_llm.bench.scoring --data ../shared/data/eval/math500/test.jsonl --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

from ls_llm.evaluation.schema import normalize_rows, read_jsonl
from ls_llm.evaluation.scoring import score_math

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "eval" / "math500" / "test.jsonl"


def measure(docs: list[dict], *, workers: int, repeat: int, shift: int = 0) -> tuple[float, Counter]:
    """Samples/s and verdicts; ``shift`` > 0 feeds each problem another problem's solution."""
    outputs = [[docs[(i + shift) % len(docs)]["solution"]] for i in range(len(docs))] * repeat
    golds = [doc["answer"] for doc in docs] * repeat
    start = time.perf_counter()
    records = score_math(outputs, golds, workers=workers)
    elapsed = time.perf_counter() - start
    return len(outputs) / elapsed, Counter(rec[0]["verdict"] for rec in records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MATH-500 test.jsonl")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="math-verify worker processes")
    parser.add_argument("--repeat", type=int, default=2, help="passes over the 500 solutions per measurement")
    parser.add_argument("--min-rate", type=float, default=200.0, help="fail (exit 1) below this many samples/s")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {args.repeat}")
    docs = normalize_rows(read_jsonl(args.data, "math500"), task="math500", fmt="math")
    measure(docs[:8], workers=1, repeat=1)  # import math-verify / sympy once, outside the timing
    print(f"MATH-500 gold solutions ({len(docs)} x {args.repeat}), {os.cpu_count()} CPU cores visible\n")
    print("| outputs | workers | samples/s | correct | other verdicts |\n|---|---:|---:|---:|---|")
    ok = True
    for workers in args.workers:
        rate, verdicts = measure(docs, workers=workers, repeat=args.repeat)
        correct = verdicts.pop("correct", 0)
        print(f"| gold solution | {workers} | {rate:.0f} | {correct}/{len(docs) * args.repeat} | {dict(verdicts) or '-'} |")
        ok = ok and rate >= args.min_rate and not verdicts
    # math-verify caches recent LaTeX parses, so a gold-identical answer parses for free; another
    # problem's solution costs both parses, as a wrong model answer does.
    for workers in args.workers:
        rate, verdicts = measure(docs, workers=workers, repeat=args.repeat, shift=1)
        print(f"| another problem's solution | {workers} | {rate:.0f} | {verdicts.get('correct', 0)} | "
              f"{ {k: v for k, v in verdicts.items() if k != 'correct'} } |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
