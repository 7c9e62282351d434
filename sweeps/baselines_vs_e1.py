"""The baselines (fixed settings) against E1's smoothing variants (docs/results.md, "Second study, baselines at fixed settings").

The pre-registration compares each baseline with ce and with the best E1 smoothing variant of the same noise type
(by mean), without naming the split: this picks it by the mean of the primary endpoint (test), and also prints the
comparison with the variant the same rule picks on validation where that one differs. The two sweeps' ce cells are the same runs (same data, seed and config; checked below, exactly equal),
so a baseline's gain over ce and an E1 variant's gain over ce pair by seed. Reads the committed reports:
    .venv/bin/python sweeps/baselines_vs_e1.py [E1_CSV] [BASELINES_CSV]
"""

from __future__ import annotations

import csv
import sys

from ls_llm.sweep.stats import endpoint_diffs, format_ci, paired_ci, verdict

SMOOTHING = ("ls", "ls_answer", "ls_answer_pi", "ls_reasoning")
BASELINES = ("ce_more", "nls0.2", "nls0.5", "gce_warm", "gce0.3", "lt", "drop")
RATES = (0.2, 0.4)


def load(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [{"variant": r["variant"], "noise_type": r["noise_type"], "noise_rho": float(r["noise_rho"]),
                 "seed": int(r["seed"]), "test_acc": float(r["test_acc"]), "val_acc": float(r["val_acc"])}
                for r in csv.DictReader(handle) if r["kind"] == "train"]


def gains(rows: list[dict], variant: str, noise: str, metric: str = "test_acc") -> list[float]:
    """Per seed: the gain over ce averaged over the noisy rates (the primary endpoint, as the sweep report has it)."""
    per_seed = endpoint_diffs(rows, {variant: "ce"}, {(variant, noise): RATES}, metric=metric)[(variant, noise)]
    return [per_seed[s] for s in sorted(per_seed)]


def cell(diffs: list[float]) -> str:
    mean, half = paired_ci(diffs)
    return f"{format_ci(mean, half)} {verdict(mean, half)}"


def main(e1_csv: str = "docs/results/e1_where/results.csv",
         baselines_csv: str = "docs/results/baselines/results.csv") -> None:
    e1, bl = load(e1_csv), load(baselines_csv)
    key = ("noise_type", "noise_rho", "seed")
    e1_ce = {tuple(r[k] for k in key): r["test_acc"] for r in e1 if r["variant"] == "ce"}
    bl_ce = {tuple(r[k] for k in key): r["test_acc"] for r in bl if r["variant"] == "ce"}
    assert bl_ce and all(e1_ce.get(k) == v for k, v in bl_ce.items()), "the two sweeps' ce cells differ: no pairing"
    for noise in ("answer", "box"):
        best = max(SMOOTHING, key=lambda v: sum(gains(e1, v, noise)))
        on_val = max(SMOOTHING, key=lambda v: sum(gains(e1, v, noise, "val_acc")))
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
