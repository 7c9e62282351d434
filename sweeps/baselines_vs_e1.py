"""The tuned baselines against E1's smoothing variants (docs/results.md, "Second study, tuned baselines").

The pre-registration compares each baseline with ce and with the best E1 smoothing variant of the same noise type
(by mean), without naming the split: this picks it by the mean of the primary endpoint (test), and also prints the
comparison with the variant the same rule picks on validation where that one differs. The two sweeps' ce cells are the same runs (same data, seed and config; checked below, exactly equal),
so a baseline's gain over ce and an E1 variant's gain over ce pair by seed. Reads the committed reports:
    .venv/bin/python sweeps/baselines_vs_e1.py [E1_CSV] [BASELINES_CSV]
"""

from __future__ import annotations

import csv
import sys

from ls_llm.sweep.stats import format_ci, paired_ci, verdict

SMOOTHING = ("ls", "ls_answer", "ls_answer_pi", "ls_reasoning")
BASELINES = ("ce_more", "nls0.2", "nls0.5", "gce_warm", "gce0.3", "lt", "drop")
RATES, SEEDS = (0.2, 0.4), range(5)


def load(path: str, metric: str = "test_acc") -> dict[tuple, float]:
    with open(path, encoding="utf-8") as handle:
        return {(r["variant"], r["noise_type"], float(r["noise_rate"]), int(r["seed"])): float(r[metric])
                for r in csv.DictReader(handle) if r["kind"] == "train"}


def gains(table: dict[tuple, float], variant: str, noise: str) -> list[float]:
    """Per seed: the test-accuracy gain over ce, averaged over the noisy rates (the primary endpoint)."""
    return [sum(table[(variant, noise, r, s)] - table[("ce", noise, r, s)] for r in RATES) / len(RATES)
            for s in SEEDS]


def cell(diffs: list[float]) -> str:
    mean, half = paired_ci(diffs)
    return f"{format_ci(mean, half)} {verdict(mean, half)}"


def main(e1_csv: str = "docs/results/e1_where/results.csv",
         baselines_csv: str = "docs/results/baselines/results.csv") -> None:
    e1, bl, e1_val = load(e1_csv), load(baselines_csv), load(e1_csv, "val_acc")
    shared = [k for k in bl if k[0] == "ce"]
    assert shared and all(bl[k] == e1[k] for k in shared), "the two sweeps' ce cells differ: no pairing"
    for noise in ("answer", "box"):
        best = max(SMOOTHING, key=lambda v: sum(gains(e1, v, noise)))
        on_val = max(SMOOTHING, key=lambda v: sum(gains(e1_val, v, noise)))
        print(f"\n`{noise}` noise: best E1 smoothing variant by test mean = {best}, {cell(gains(e1, best, noise))}; "
              f"by validation mean = {on_val}\n")
        refs = dict.fromkeys([best, on_val])
        print("| baseline | − ce | " + " | ".join(f"− {v} (E1)" for v in refs) + " |\n|---|---:|" + "---:|" * len(refs))
        for variant in BASELINES:
            own = gains(bl, variant, noise)
            others = [cell([a - b for a, b in zip(own, gains(e1, v, noise))]) for v in refs]
            print(f"| {variant} | {cell(own)} | " + " | ".join(others) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])
