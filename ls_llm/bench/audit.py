"""Audit throughput on MATH-style answers: ``python -m ls_llm.bench.audit [--rows N] [--workers 1 2]``.

Reads /work/shared/data/train/math/train.jsonl when present (else generates MATH-like answers),
injects 20% answer noise so both verdicts occur, then times :func:`ls_llm.data.audit.audit_rows`
(final-answer extraction + math-verify in worker processes). Target: >= 200 traces/s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

MATH_TRAIN = "/work/shared/data/train/math/train.jsonl"
_ANSWER_SHAPES = (
    lambda r: str(r.randint(0, 999)),
    lambda r: f"\\frac{{{r.randint(1, 50)}}}{{{r.randint(2, 60)}}}",
    lambda r: f"{r.randint(1, 9)}\\sqrt{{{r.randint(2, 30)}}}",
    lambda r: f"({r.randint(-9, 0)}, {r.randint(1, 9)}]",
    lambda r: f"{r.randint(1, 9)}x^2 + {r.randint(1, 9)}x",
    lambda r: f"{r.randint(10, 170)}^\\circ",
)


def _generated_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        answer = rng.choice(_ANSWER_SHAPES)(rng)
        completion = f"We simplify step by step.\nHence the result is $\\boxed{{{answer}}}$."
        rows.append(
            {"id": f"gen-{i}", "messages": [{"role": "assistant", "content": completion}], "answer": answer}
        )
    return rows


def _rows(n: int, seed: int) -> tuple[list[dict], str]:
    if os.path.exists(MATH_TRAIN):
        from ls_llm.data.args import LsDataArguments
        from ls_llm.data.loading import load_rows

        rows = load_rows(LsDataArguments(dataset_name=MATH_TRAIN, dataset_answer_instruction=""))
        random.Random(seed).shuffle(rows)
        return rows[:n], MATH_TRAIN
    return _generated_rows(n, seed), "generated MATH-like answers"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ls_llm.bench.audit", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000, help="traces to audit per run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--noise", type=float, default=0.2, help="answer-noise rate so wrong answers occur")
    parser.add_argument("--seed", type=int, default=0)
    ns = parser.parse_args(argv)

    from ls_llm.data.audit import audit_rows
    from ls_llm.data.noise import inject_noise

    rows, origin = _rows(ns.rows, ns.seed)
    rows, _, _ = inject_noise(rows, noise_type="answer", rate=ns.noise, seed=ns.seed)
    print(f"data: {origin} ({len(rows)} traces, answer noise {ns.noise}); cpu count {os.cpu_count()}")
    print("| workers | traces | seconds | traces/s | frac wrong |")
    print("|---:|---:|---:|---:|---:|")
    for workers in ns.workers:
        start = time.perf_counter()
        result = audit_rows(rows, workers=workers, progress=False)
        seconds = time.perf_counter() - start
        wrong = result.report["overall"]["frac_wrong"]
        print(f"| {workers} | {len(rows)} | {seconds:.2f} | {len(rows) / seconds:.0f} | {wrong:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
