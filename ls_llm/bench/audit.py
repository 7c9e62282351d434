"""Audit throughput on MATH-style answers: ``python -m ls_llm.bench.audit [--data FILE] [--rows N] [--workers 1 2]``.

Audits the traces of ``--data`` (any file the data loader reads, e.g. MATH train: ``make bench-audit`` passes
../shared/data/train/math/train.jsonl when it exists), else generated MATH-like answers.

- ``reference``: injects 20% answer noise so both verdicts occur, then times :func:`ls_llm.data.audit.audit_rows`
  (final-answer extraction + math-verify in worker processes). Target: >= 200 traces/s on 2 cores.
- ``consensus``: k = 4 traces per problem (``--consensus-traces`` in all): the reference's answer as written, an
  equivalent spelling of it (``\\dfrac``, spaces, ``x.0``), another problem's answer or no answer, then times
  :func:`ls_llm.data.audit_traces.audit_traces` (reference check + consensus). Target: >= 200 traces/s on 2 cores.
- ``score``: model-loss scoring against the engine's no-grad forward on the same tokens
  (ls_llm.bench.trace_scores). Target: within 1.2x.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from ls_llm.bench import trace_scores
from ls_llm.bench.consensus import bench_consensus
from ls_llm.bench.math_rows import math_rows
from ls_llm.bench.objectives import _cpu_seconds
from ls_llm.data.audit import audit_rows
from ls_llm.data.noise import inject_noise


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
