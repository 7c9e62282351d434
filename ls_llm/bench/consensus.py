"""The audit's consensus benchmark (``python -m ls_llm.bench.audit --only consensus``): k traces per problem,
timed through :func:`ls_llm.data.audit_traces.audit_traces` (reference check + consensus)."""

from __future__ import annotations

import random
import re
import time

from ls_llm.bench.objectives import _cpu_seconds
from ls_llm.data.audit_traces import audit_traces
from ls_llm.data.detectors import DetectorOptions


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
