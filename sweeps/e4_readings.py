"""The pre-registered readings of the third study's E4 (docs/results.md, "Third study, E4: registration").

Written and committed before any E4 result was read. For one noise type's sweep (its report's results.csv and
curves.csv):
- the gate: ce's injected-share rise at rho 0.4 (last tracked step minus the lowest over the first half), mean over
  seeds >= 10 points with its 95% interval above 0; where it fails, no comparison is read (only the gate is printed);
- primary: per seed, each of the six methods' test accuracy minus `ce_early`'s averaged over rho 0.2 and 0.4; mean,
  95% paired-t interval, two-sided paired t-test, Holm over the six at familywise 0.05;
- secondary (no test): each method against final ce; `ce_early` - ce; memorisation at the last tracked step (injected
  share, `tf_gap`) of each method minus ce's, paired, and each method's rise; the clean control (rho 0); and every
  number per base (seed s fine-tunes the base the sweep file assigns it), since the bases differ.
    .venv/bin/python sweeps/e4_readings.py sweeps/e4_perturb.yaml docs/results/e4_perturb
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import yaml

from ls_llm.sweep.memorisation import MEMORISES_POINTS, last_value, rise
from ls_llm.sweep.stats import (
    endpoint_diffs,
    format_ci,
    holm_family,
    mean_ci_cell,
    paired_ci,
    verdict,
)

FAMILY = ("ls0.1", "ls0.3", "ls_answer0.1", "ls_answer0.3", "nls", "fc_answer")
BASELINE, FINAL = "ce_early", "ce"
RATES = (0.2, 0.4)
GATE_RATE = 0.4
ALPHA = 0.05


def _number(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


def load_results(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [{**r, "noise_rho": float(r["noise_rho"]), "seed": int(r["seed"]), "test_acc": float(r["test_acc"]),
                 "val_acc": float(r["val_acc"])} for r in csv.DictReader(handle)]


def load_curves(path: Path) -> dict[tuple[str, float, int], list[dict]]:
    """(variant, rho, seed) -> the tracked points, each with the numbers it has."""
    curves: dict[tuple[str, float, int], list[dict]] = defaultdict(list)
    with open(path, encoding="utf-8") as handle:
        for r in csv.DictReader(handle):
            point = {"step": int(r["step"])}
            for key in ("val_acc", "mem_injected", "tf_gap"):
                if _number(r.get(key)) is not None:
                    point[key] = float(r[key])
            curves[(r["variant"], float(r["noise_rho"]), int(r["seed"]))].append(point)
    return curves


def base_of(sweep_file: Path) -> dict[int, int]:
    """Fine-tuning seed -> its base's seed: the i-th seed fine-tunes bases.seeds[i mod n] (ls_llm.sweep's rule)."""
    spec = yaml.safe_load(sweep_file.read_text())
    bases = spec["bases"]["seeds"]
    return {seed: bases[i % len(bases)] for i, seed in enumerate(spec["seeds"])}


def per_seed(values: dict[int, float]) -> str:
    return ", ".join(f"{values[s] * 100:+.1f}" for s in sorted(values))


def ci(values: list[float], scale: float = 100.0) -> str:
    return format_ci(*paired_ci(values), scale=scale) if values else "—"


def gains(rows: list[dict], noise: str, variant: str, reference: str, rates=RATES, metric="test_acc") -> dict:
    return endpoint_diffs(rows, {variant: reference}, {(variant, noise): rates}, metric=metric).get((variant, noise), {})


def paired_last(curves, noise_seeds, variant: str, rate: float, metric: str) -> list[float]:
    out = []
    for seed in noise_seeds:
        mine, ce = curves.get((variant, rate, seed)), curves.get((FINAL, rate, seed))
        a, b = (last_value(mine, metric) if mine else None), (last_value(ce, metric) if ce else None)
        if a is not None and b is not None:
            out.append(a - b)
    return out


def gate(curves, seeds: list[int]) -> tuple[bool, list[float]]:
    rises = [r for s in seeds if (c := curves.get((FINAL, GATE_RATE, s))) and (r := rise(c)) is not None]
    if len(rises) < 2:
        return False, rises
    mean, half = paired_ci(rises)
    return mean >= MEMORISES_POINTS and mean - half > 0, rises


def main(sweep_file: str, report_dir: str) -> None:
    sweep_path, report = Path(sweep_file), Path(report_dir)
    rows = [r for r in load_results(report / "results.csv") if r["kind"] == "train"]
    bases = [r for r in load_results(report / "results.csv") if r["kind"] == "base"]
    curves = load_curves(report / "curves.csv")
    noise = rows[0]["noise_type"]
    seeds = sorted({r["seed"] for r in rows})
    base = base_of(sweep_path)
    print(f"# E4 readings: {sweep_path.name} ({noise}), {len(rows)} train rows, seeds {seeds}\n")

    print("## Bases (pretrained; accuracy on their own validation problems, then the fine-tuning task's before it)\n")
    for b in sorted(bases, key=lambda r: r["seed"]):
        own = _number(b.get("pretrain_val_acc"))
        print(f"- base {b['seed']}: own validation {own * 100:.1f}%, task validation {b['val_acc'] * 100:.1f}%, "
              f"task test {b['test_acc'] * 100:.1f}%; fine-tuned by seeds "
              f"{[s for s in seeds if base.get(s) == b['seed']]}" if own is not None else f"- base {b['seed']}")

    passed, rises = gate(curves, seeds)
    print(f"\n## Gate: ce's injected-share rise at ρ = {GATE_RATE} (needs mean ≥ {MEMORISES_POINTS * 100:.0f} points, "
          "interval above 0)\n")
    print(f"per seed {', '.join(f'{r * 100:+.1f}' for r in rises)}; mean {ci(rises)}: "
          f"**{'passes' if passed else 'fails'}**\n")
    if not passed:
        print(f"Gate failed for {noise}: by the registration none of its comparisons is read.")
        return

    print(f"## Primary: method − {BASELINE}, test accuracy averaged over ρ ∈ {RATES}, Holm over {len(FAMILY)} at "
          f"familywise {ALPHA}\n")
    print("| method | n | per seed | mean [95% paired-t] | p | Holm |\n|---|---:|---|---:|---:|---|")
    primary = {m: gains(rows, noise, m, BASELINE) for m in FAMILY}
    verdicts = holm_family({m: list(d.values()) for m, d in primary.items()}, ALPHA)
    for m in FAMILY:
        (p, word), d = verdicts[m], primary[m]
        print(f"| {m} | {len(d)} | {per_seed(d)} | {ci(list(d.values())) if p is not None else '—'} | "
              f"{f'{p:.3f}' if p is not None else '—'} | {word} |")

    print("\n## Secondary (no test)\n")
    print("| comparison | ρ = 0.2 | ρ = 0.4 | averaged | verdict of the interval |\n|---|---:|---:|---:|---|")
    for m, ref in [(BASELINE, FINAL)] + [(m, FINAL) for m in FAMILY] + [(m, BASELINE) for m in FAMILY]:
        if ref == BASELINE and m in FAMILY:
            cells = [ci(list(gains(rows, noise, m, ref, (r,), "val_acc").values())) for r in RATES]
            avg = list(gains(rows, noise, m, ref, metric="val_acc").values())
            label = f"{m} − {ref} (validation)"
        else:
            cells = [ci(list(gains(rows, noise, m, ref, (r,)).values())) for r in RATES]
            avg = list(gains(rows, noise, m, ref).values())
            label = f"{m} − {ref} (test)"
        print(f"| {label} | {cells[0]} | {cells[1]} | {ci(avg)} | {verdict(*paired_ci(avg)) if avg else '—'} |")

    print("\n### Memorisation at the last tracked step, method − ce, paired (prevents: interval below 0)\n")
    print("| method | injected share ρ 0.2 | ρ 0.4 | tf_gap (nats) ρ 0.2 | ρ 0.4 | rise at ρ 0.4 (own curve) |")
    print("|---|---:|---:|---:|---:|---:|")
    for m in (FINAL,) + FAMILY:
        shares = [ci(paired_last(curves, seeds, m, r, "mem_injected")) if m != FINAL else "—" for r in RATES]
        gaps = [ci(paired_last(curves, seeds, m, r, "tf_gap"), scale=1.0) if m != FINAL else "—" for r in RATES]
        own = [x for s in seeds if (c := curves.get((m, GATE_RATE, s))) and (x := rise(c)) is not None]
        print(f"| {m} | {shares[0]} | {shares[1]} | {gaps[0]} | {gaps[1]} | {ci(own)} |")
    lasts = {r: [v for s in seeds if (c := curves.get((FINAL, r, s))) and (v := last_value(c)) is not None]
             for r in RATES}
    steps = sorted(int(r["early_step"]) for r in rows if r["variant"] == BASELINE and r.get("early_step"))
    print(f"\nce's own last-step injected share (%): ρ 0.2 {mean_ci_cell(lasts[0.2], 100, len(seeds))}, "
          f"ρ 0.4 {mean_ci_cell(lasts[0.4], 100, len(seeds))}; {BASELINE}'s chosen steps: {steps}\n")

    clean = [m for m in ("ls0.3", "ls_answer0.3") if gains(rows, noise, m, FINAL, (0.0,))]
    if clean or any(r["noise_rho"] == 0.0 for r in rows):
        print("\n### Clean control (ρ = 0): method − ce, test accuracy\n")
        by = {(r["variant"], r["noise_rho"], r["seed"]): r["test_acc"] for r in rows}
        for m in ("ls0.3", "ls_answer0.3"):
            d = [by[(m, 0.0, s)] - by[(FINAL, 0.0, s)] for s in seeds if (m, 0.0, s) in by and (FINAL, 0.0, s) in by]
            print(f"- {m} − ce: {ci(d)} (n = {len(d)})")

    print("\n### Per base (descriptive): mean test accuracy (%) over its seeds, averaged over ρ 0.2 and 0.4\n")
    by = defaultdict(list)
    for r in rows:
        if r["noise_rho"] in RATES:
            by[(r["variant"], base.get(r["seed"]))].append(r["test_acc"])
    variants = (FINAL, BASELINE) + FAMILY
    print("| base | " + " | ".join(variants) + " |\n|---|" + "---:|" * len(variants))
    for b in sorted(set(base.values())):
        vals = [by.get((v, b)) for v in variants]
        print(f"| {b} | " + " | ".join(f"{sum(x) / len(x) * 100:.1f}" if x else "—" for x in vals) + " |")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[-1].strip())
    main(*sys.argv[1:])
