"""Audit throughput on MATH-style answers: ``python -m ls_llm.bench.audit [--data FILE] [--rows N] [--workers 1 2]``.

Audits the traces of ``--data`` (any file the data loader reads, e.g. MATH train: ``make bench-audit`` passes
../shared/data/train/math/train.jsonl when it exists), else generated MATH-like answers.

- ``reference``: injects 20% answer noise so both verdicts occur, then times :func:`ls_llm.data.audit.audit_rows`
  (final-answer extraction + math-verify in worker processes). Target: >= 200 traces/s on 2 cores.
- ``consensus``: k = 4 traces per problem (``--consensus-traces`` in all): the reference's answer as written, an
  equivalent spelling of it (``\\dfrac``, spaces, ``x.0``), another problem's answer or no answer, then times
  :func:`ls_llm.data.audit.audit_traces` (reference check + consensus). Target: >= 200 traces/s on 2 cores.
- ``score``: model-loss scoring against the engine's no-grad forward on the same tokens
  (ls_llm.bench.trace_scores). Target: within 1.2x.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time

from ls_llm.bench import trace_scores
from ls_llm.bench.math_rows import math_rows
from ls_llm.bench.objectives import _cpu_seconds
from ls_llm.data.audit import audit_rows, audit_traces
from ls_llm.data.detectors import DetectorOptions
from ls_llm.data.noise import inject_noise


def _spelling(answer: str, rng: random.Random) -> str:
    """An equivalent way to write ``answer`` (what a sampled trace may box instead of the reference's form)."""
    if answer.strip().lstrip("-").isdigit():
        return answer.strip() + ".0"
    if "\\frac" in answer:
        return answer.replace("\\frac", "\\dfrac")
    return re.sub(r"([+\-=,()])", r" \1 ", answer) if rng.random() < 0.5 else f" {answer} "


def consensus_rows(rows: list[dict], k: int, n_traces: int, seed: int) -> list[dict]:
    """k traces per problem: 60% the reference as written, 15% an equivalent spelling, 20% another problem's
    answer, 5% no boxed answer."""
    rng = random.Random(seed)
    golds = [str(r["answer"]) for r in rows]
    out = []
    for p, row in enumerate(rows[: n_traces // k]):
        for s in range(k):
            draw, gold = rng.random(), golds[p]
            answer = gold if draw < 0.6 else _spelling(gold, rng) if draw < 0.75 else rng.choice(golds) \
                if draw < 0.95 else None
            text = "We work it out.\n" + (f"So the answer is $\\boxed{{{answer}}}$." if answer else "I give up.")
            out.append({"id": f"{row['id']}-{s}", "problem_id": str(row["id"]), "sample_index": s,
                        "messages": [*row["messages"][:-1], {"role": "assistant", "content": text}],
                        "answer": gold})
    return out


def bench_consensus(rows: list[dict], ns) -> None:
    traces = consensus_rows(rows, ns.k, ns.consensus_traces, ns.seed)
    print(f"\nconsensus: {len(traces)} traces, k={ns.k} per problem")
    print("| workers | traces | seconds | traces/s | CPU s | traces per CPU s | consensus pairs | disagrees | suspect "
          "references |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workers in ns.workers:
        start, cpu = time.perf_counter(), _cpu_seconds()
        result = audit_traces(traces, DetectorOptions(), source="bench", workers=workers, progress=False)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        c = result.report["detectors"]["consensus"]
        print(f"| {workers} | {len(traces)} | {seconds:.2f} | {len(traces) / seconds:.0f} | {cpu:.1f} | "
              f"{len(traces) / cpu:.0f} | {c['math_verify_pairs']} | {c['consensus_status']['disagrees']} | "
              f"{c['reference_status']['suspect']} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ls_llm.bench.audit", description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="traces to audit (default: generated MATH-like answers)")
    parser.add_argument("--tokenizer", help="for `score`: see python -m ls_llm.bench.trace_scores --help")
    parser.add_argument("--rows", type=int, default=3000, help="traces to audit per run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--noise", type=float, default=0.2, help="answer-noise rate so wrong answers occur")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=("reference", "consensus", "score"),
                        default=["reference", "consensus", "score"])
    parser.add_argument("--consensus-traces", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=4, help="traces per problem for the consensus run")
    ns = parser.parse_args(argv)

    if "reference" in ns.only:
        bench_reference(ns)
    if "consensus" in ns.only:
        rows, _ = math_rows(max(ns.consensus_traces // ns.k, 1), ns.seed + 1, ns.data)
        bench_consensus(rows, ns)
    if "score" in ns.only:
        trace_scores.main([f"--{key}={value}" for key, value in (("data", ns.data), ("tokenizer", ns.tokenizer)) if value])
    return 0


def bench_reference(ns) -> None:
    rows, origin = math_rows(ns.rows, ns.seed, ns.data)
    rows, _, _ = inject_noise(rows, noise_type="answer", rate=ns.noise, seed=ns.seed)
    print(f"data: {origin} ({len(rows)} traces, answer noise {ns.noise}); cpu count {os.cpu_count()}")
    print("| workers | traces | seconds | traces/s | CPU s | traces per CPU s | frac wrong |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for workers in ns.workers:
        start, cpu = time.perf_counter(), _cpu_seconds()
        result = audit_rows(rows, workers=workers, progress=False)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        wrong = result.report["overall"]["frac_wrong"]
        print(f"| {workers} | {len(rows)} | {seconds:.2f} | {len(rows) / seconds:.0f} | {cpu:.1f} | "
              f"{len(rows) / cpu:.0f} | {wrong:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
