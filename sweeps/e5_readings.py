"""The pre-registered readings of the third study's E5 (docs/results.md, "Third study, E5 and E6: registration").

Written and committed before any E5 cell ran. From the report of sweeps/e5_teacher.yaml (report-e5/results.csv):
- primary: per seed, each method's test accuracy minus ce's (ce on every trace, which is the same run at both
  reference-error rates: it trains on the same traces), at the method's registered rate; mean, 95% paired-t interval,
  two-sided paired t-test, Holm over the eight at familywise 0.05;
- secondary (no test): drop_loss at clean references; each method against ce early-stopped; what early stopping
  buys; the share of the oracle filter's gain each other method keeps (read only where the oracle filter helps);
  the teachers; per base.
    .venv/bin/python sweeps/e5_readings.py sweeps/e5_teacher.yaml outputs/sweeps/e4_perturb/report-e5
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import yaml

from ls_llm.sweep.stats import format_ci, holm_family, mean_ci_cell, paired_ci, verdict

BASELINE, EARLY, ORACLE = "ce", "ce_early", "drop_oracle"
# (method, the reference-error rate it is read at): the family of the primary endpoint
FAMILY = (("drop_oracle", 0.0), ("drop_reference", 0.1), ("drop_consensus", 0.0), ("drop_loss", 0.1),
          ("drop_v90", 0.0), ("drop_v70", 0.0), ("weight_consensus", 0.0), ("route_ls", 0.1))
ALPHA = 0.05


def load(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [{**r, "noise_rho": float(r["noise_rho"]), "seed": int(r["seed"]),
                 "test_acc": float(r["test_acc"]) if r["test_acc"] else None,
                 "val_acc": float(r["val_acc"]) if r["val_acc"] else None} for r in csv.DictReader(handle)]


def diffs(acc: dict, method: str, rate: float, reference: str, seeds: list[int], metric: str = "test_acc") -> dict:
    """seed -> method at `rate` minus `reference` at rate 0 (ce and its reading train on the same traces at every
    rate, and run at 0 only)."""
    return {s: acc[(method, rate, s)][metric] - acc[(reference, 0.0, s)][metric] for s in seeds
            if (method, rate, s) in acc and (reference, 0.0, s) in acc}


def per_seed(values: dict) -> str:
    return ", ".join(f"{values[s] * 100:+.1f}" for s in sorted(values))


def main(sweep_file: str, report_dir: str) -> None:
    spec = yaml.safe_load(Path(sweep_file).read_text())
    bases = spec["bases"]["seeds"]
    base_of = {s: bases[i % len(bases)] for i, s in enumerate(spec["seeds"])}
    rows = load(Path(report_dir) / "results.csv")
    acc = {(r["variant"], r["noise_rho"], r["seed"]): r for r in rows if r["kind"] == "train"}
    seeds = sorted({r["seed"] for r in rows if r["kind"] == "train"})
    print(f"# E5 readings: {Path(sweep_file).name}, {len(acc)} train rows, seeds {seeds}\n")

    teachers = sorted((r for r in rows if r["kind"] == "teacher"), key=lambda r: r["seed"])
    print("## Teachers (greedy accuracy on the students' validation and test splits, %)\n")
    for t in teachers:
        print(f"- seed {t['seed']} (base {base_of.get(t['seed'])}): validation {t['val_acc'] * 100:.1f}, "
              f"test {t['test_acc'] * 100:.1f}")
    print("\n(The share of each teacher's traces that are right and each detector's precision / recall: the report's "
          "'The teacher loop' section.)\n")

    print(f"## Primary: method − {BASELINE} (on every trace), test accuracy, Holm over {len(FAMILY)} at familywise "
          f"{ALPHA}\n")
    print("| method | reference errors | n | per seed | mean [95% paired-t] | p | Holm |\n|---|---:|---:|---|---:|---:|---|")
    primary = {m: diffs(acc, m, rate, BASELINE, seeds) for m, rate in FAMILY}
    verdicts = holm_family({m: list(d.values()) for m, d in primary.items()}, ALPHA)
    for m, rate in FAMILY:
        (p, word), d = verdicts[m], primary[m]
        interval = format_ci(*paired_ci(list(d.values()))) if p is not None else "—"
        print(f"| {m} | {rate:g} | {len(d)} | {per_seed(d)} | {interval} | {f'{p:.3f}' if p is not None else '—'} | "
              f"{word} |")

    print("\n## Secondary (no test)\n")
    print("| comparison | n | mean [95% paired-t] | interval |\n|---|---:|---:|---|")
    lines = [("drop_loss (clean references) − ce", diffs(acc, "drop_loss", 0.0, BASELINE, seeds)),
             (f"{EARLY} − ce", diffs(acc, EARLY, 0.0, BASELINE, seeds))]
    lines += [(f"{m} ({rate:g}) − {EARLY}", diffs(acc, m, rate, EARLY, seeds)) for m, rate in FAMILY]
    lines += [(f"{m} ({rate:g}) − ce, validation", diffs(acc, m, rate, BASELINE, seeds, "val_acc")) for m, rate in FAMILY]
    for label, d in lines:
        values = list(d.values())
        cell = format_ci(*paired_ci(values)) if values else "—"
        print(f"| {label} | {len(values)} | {cell} | {verdict(*paired_ci(values)) if values else '—'} |")

    oracle = primary[ORACLE]
    oracle_helps = verdicts[ORACLE][1] == "helps"
    print("\n### The share of the oracle filter's gain each method keeps (mean gain / the oracle filter's mean gain)\n")
    if not oracle_helps:
        print("Not read: the oracle filter's gain over ce was not detected, so there is no gain to keep.\n")
    else:
        gain = sum(oracle.values()) / len(oracle)
        for m, _ in FAMILY[1:]:
            d = primary[m]
            print(f"- {m}: {sum(d.values()) / len(d) / gain * 100:.0f}%" if d else f"- {m}: —")

    print("\n### Per base (descriptive): mean test accuracy (%) over its seeds, at each method's rate\n")
    by = defaultdict(list)
    for (variant, rate, seed), r in acc.items():
        by[(variant, rate, base_of.get(seed))].append(r["test_acc"])
    cols = [(BASELINE, 0.0), (EARLY, 0.0)] + list(FAMILY)
    print("| base | " + " | ".join(f"{m} ({rate:g})" for m, rate in cols) + " |\n|---|" + "---:|" * len(cols))
    for b in sorted(set(base_of.values())):
        print(f"| {b} | " + " | ".join(mean_ci_cell(by.get((m, rate, b)), 100, 2).split(" [")[0] if by.get((m, rate, b))
                                       else "—" for m, rate in cols) + " |")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[-1].strip())
    main(*sys.argv[1:])
