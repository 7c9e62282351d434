"""The pre-registered readings of the third study's part S (docs/results.md, "Third study, S").

Primary: `ls` - ce and `ls0.1` - ce on the 15 new seeds (sweeps/settle_ls.yaml), the endpoint averaged over answer
rho 0.2 and 0.4 per seed, two-sided paired t-tests with Holm at familywise 0.05. Secondary: `ls` - ce pooled with
E1's seeds 0-4 (20 seeds), and per rate. Reads the committed reports:
    .venv/bin/python sweeps/settle_vs_e1.py [SETTLE_CSV] [E1_CSV]
"""

from __future__ import annotations

import csv
import sys

from ls_llm.sweep.stats import endpoint_diffs, format_ci, holm, paired_ci
from ls_llm.sweep.stats import paired_t_pvalue as p_value

RATES = (0.2, 0.4)
FAMILY = ("ls", "ls0.1")
ALPHA = 0.05


def load(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [{"variant": r["variant"], "noise_type": r["noise_type"], "noise_rho": float(r["noise_rho"]),
                 "seed": int(r["seed"]), "test_acc": float(r["test_acc"]), "val_acc": float(r["val_acc"])}
                for r in csv.DictReader(handle) if r["kind"] == "train" and r["noise_type"] == "answer"]


def gains(rows: list[dict], variant: str, rates: tuple[float, ...] = RATES, metric: str = "test_acc") -> dict:
    return endpoint_diffs(rows, {variant: "ce"}, {(variant, "answer"): rates}, metric=metric).get((variant, "answer"), {})


def main(settle_csv: str = "docs/results/settle_ls/results.csv",
         e1_csv: str = "docs/results/e1_where/results.csv") -> None:
    new, e1 = load(settle_csv), load(e1_csv)
    overlap = {r["seed"] for r in new} & {r["seed"] for r in e1}
    if overlap:
        raise SystemExit(f"the two sweeps share seeds {sorted(overlap)}: they cannot pool")
    print("Primary: 15 new seeds, Holm over {ls - ce, ls0.1 - ce} at familywise 0.05\n")
    print("| variant − ce | n | mean [95% paired-t] | per seed | p | Holm |\n|---|---:|---:|---|---:|---|")
    per = {v: gains(new, v) for v in FAMILY}
    pvals = {v: p_value(list(per[v].values())) for v in FAMILY}
    rejected = holm(pvals, ALPHA)
    for v in FAMILY:
        diffs = [per[v][s] for s in sorted(per[v])]
        mean, half = paired_ci(diffs)
        word = ("helps" if mean > 0 else "hurts") if rejected[v] else "not detected"
        seeds = ", ".join(f"{d * 100:+.1f}" for d in diffs)
        print(f"| {v} | {len(diffs)} | {format_ci(mean, half)} | {seeds} | {pvals[v]:.3f} | {word} |")
    print("\nSecondary: ls - ce pooled with E1's seeds 0-4 (20 seeds; includes the seeds that chose the question)\n")
    pooled = {**gains(e1, "ls"), **gains(new, "ls")}
    diffs = [pooled[s] for s in sorted(pooled)]
    print(f"ls − ce, {len(diffs)} seeds: {format_ci(*paired_ci(diffs))}, p = {p_value(diffs):.3f}, "
          f"ahead on {sum(d > 0 for d in diffs)} of {len(diffs)} seeds")
    print("\nPer rate (secondary), and validation accuracy (the endpoint on validation):\n")
    print("| variant − ce | seeds | ρ = 0.2 | ρ = 0.4 | endpoint on validation |\n|---|---|---:|---:|---:|")
    for v, rows, label in (("ls", new + e1, "0–19"), ("ls", new, "5–19"), ("ls0.1", new, "5–19")):
        rows = [r for r in rows if label == "0–19" or r["seed"] >= 5]
        cells = [format_ci(*paired_ci(list(gains(rows, v, (rate,)).values()))) for rate in RATES]
        val = format_ci(*paired_ci(list(gains(rows, v, metric="val_acc").values())))
        print(f"| {v} | {label} | {cells[0]} | {cells[1]} | {val} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
