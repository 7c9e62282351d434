"""Build recipes/demo/data/arith_consensus.jsonl: k traces per synthetic problem with consensus columns.

A stand-in for `ls-llm generate` (k samples per problem) and the consensus detector of `ls-llm audit`, so the
weighted-student demo (recipes/demo/weighted_consensus.yaml) runs offline: each of the first --problems rows of
the demo's training traces is copied k times, each copy's final answer corrupted with probability --rho (the
project's answer-noise injector, one seed per sample), and every trace gets the contract's columns
(`problem_id`, `sample_index`, `consensus_status`, `consensus_share`) from the answers of its problem's traces
(exact string equality of the extracted integer answers, which is the equivalence on this integer task).

    python scripts/make_consensus_demo.py            # writes recipes/demo/data/arith_consensus.jsonl
"""

from __future__ import annotations

import argparse
from collections import Counter

from ls_llm.answers import extract_final_answer
from ls_llm.data.args import LsDataArguments
from ls_llm.data.io import write_jsonl
from ls_llm.data.loading import load_rows
from ls_llm.data.noise import inject_noise


def consensus(answers: list[str | None]) -> list[tuple[str, float]]:
    """(status, share) per trace: share = fraction of the problem's traces in its answer class; the majority is
    a class holding more than half of the traces (none: no_majority for every trace)."""
    counts = Counter(a for a in answers if a is not None)
    top = max(counts.values(), default=0)
    majority = next((a for a, n in counts.items() if n == top), None) if top * 2 > len(answers) else None
    out = []
    for a in answers:
        share = counts[a] / len(answers) if a is not None else 0.0
        status = "no_majority" if majority is None else ("agrees" if a == majority else "disagrees")
        out.append((status, share))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="recipes/demo/data/arith_train.jsonl")
    parser.add_argument("--out", default="recipes/demo/data/arith_consensus.jsonl")
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--rho", type=float, default=0.3)
    args = parser.parse_args()
    rows = load_rows(LsDataArguments(dataset_name=args.source, dataset_max_samples=args.problems))
    samples = [inject_noise(rows, noise_type="answer", rate=args.rho, seed=k)[0] for k in range(args.k)]
    out = []
    for i, row in enumerate(rows):
        traces = [s[i] for s in samples]
        answers = [extract_final_answer(t["messages"][-1]["content"]) for t in traces]
        for k, (trace, (status, share)) in enumerate(zip(traces, consensus(answers), strict=True)):
            out.append({"messages": trace["messages"], "answer": row["answer"], "problem_id": row["id"],
                        "sample_index": k, "corrupted": bool(trace.get("corrupted", False)),
                        "consensus_status": status, "consensus_share": share})
    write_jsonl(args.out, out)
    print(f"wrote {len(out)} traces of {len(rows)} problems to {args.out}: "
          f"{dict(Counter(r['consensus_status'] for r in out))}")


if __name__ == "__main__":
    main()
