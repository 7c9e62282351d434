"""The pre-registered readings of the third study's E6 (docs/results.md, "Third study, E5 and E6: registration").

Written and committed before any E6 cell ran. From the report of sweeps/e6_teachers.yaml (report-e6: results.csv,
curves.csv):
- the gate (E4's): the ce teacher memorises, its injected-share rise at perturb rho 0.4 has mean >= 10 points with its
  95% interval above 0; otherwise nothing is compared;
- primary: per seed, the test accuracy of the student of the label-smoothing teacher minus that of the student of the
  ce teacher (teachers matched on validation), online and from the top-8 cache; mean, 95% paired-t interval, paired
  t-test, Holm over the two at familywise 0.05;
- secondary (no test): each student against the student alone; the teachers; memorisation inherited: each student's
  last-step injected share minus the student alone's, and the teachers' own.
    .venv/bin/python sweeps/e6_readings.py outputs/sweeps/e4_perturb/report-e6
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

from ls_llm.sweep.memorisation import MEMORISES_POINTS, last_value, rise
from ls_llm.sweep.stats import format_ci, holm_family, mean_ci_cell, paired_ci, verdict

PAIRS = (("from_ls0.3", "from_ce"), ("from_ls0.3_top8", "from_ce_top8"))
TEACHERS = ("teacher_ce", "teacher_ls0.3")
ALONE = "alone"
ALPHA = 0.05


def load(report: Path) -> tuple[dict, dict]:
    """(variant, seed) -> row; (variant, seed) -> curve points."""
    with open(report / "results.csv", encoding="utf-8") as handle:
        rows = {(r["variant"], int(r["seed"])): {**r, "test_acc": float(r["test_acc"]), "val_acc": float(r["val_acc"])}
                for r in csv.DictReader(handle) if r["kind"] in ("train", "distill", "student")}
    curves = defaultdict(list)
    with open(report / "curves.csv", encoding="utf-8") as handle:
        for r in csv.DictReader(handle):
            point = {"step": int(r["step"])}
            if r.get("mem_injected"):
                point["mem_injected"] = float(r["mem_injected"])
            curves[(r["variant"], int(r["seed"]))].append(point)
    return rows, curves


def paired(rows: dict, a: str, b: str, seeds: list[int], metric: str = "test_acc") -> dict:
    return {s: rows[(a, s)][metric] - rows[(b, s)][metric] for s in seeds if (a, s) in rows and (b, s) in rows}


def main(report_dir: str) -> None:
    rows, curves = load(Path(report_dir))
    seeds = sorted({s for _, s in rows})
    print(f"# E6 readings: {len(rows)} rows, seeds {seeds}\n")
    rises = [x for s in seeds if (c := curves.get(("teacher_ce", s))) and (x := rise(c)) is not None]
    mean, half = paired_ci(rises) if len(rises) >= 2 else (None, None)
    passed = mean is not None and mean >= MEMORISES_POINTS and mean - half > 0
    print(f"## Gate: the ce teacher's injected-share rise (mean ≥ {MEMORISES_POINTS * 100:.0f} points, interval above "
          f"0): {format_ci(mean, half) if mean is not None else '—'}: **{'passes' if passed else 'fails'}**\n")
    if not passed:
        print("Gate failed: by the registration no student comparison is read.")
        return

    print("## Teachers (final models; the matched ones are in the sweep report's matching table)\n")
    for t in TEACHERS:
        print(f"- {t}: validation {mean_ci_cell([rows[(t, s)]['val_acc'] for s in seeds if (t, s) in rows], 100, 6)}, "
              f"test {mean_ci_cell([rows[(t, s)]['test_acc'] for s in seeds if (t, s) in rows], 100, 6)}")

    print(f"\n## Primary: student of the smoothed teacher − student of the ce teacher, test, Holm over {len(PAIRS)}\n")
    print("| comparison | n | per seed | mean [95% paired-t] | p | Holm |\n|---|---:|---|---:|---:|---|")
    gains = {a: paired(rows, a, b, seeds) for a, b in PAIRS}
    verdicts = holm_family({a: list(d.values()) for a, d in gains.items()}, ALPHA)
    for a, b in PAIRS:
        (p, word), d = verdicts[a], gains[a]
        seeds_text = ", ".join(f"{d[s] * 100:+.1f}" for s in sorted(d))
        interval = format_ci(*paired_ci(list(d.values()))) if p is not None else "—"
        print(f"| {a} − {b} | {len(d)} | {seeds_text} | {interval} | {f'{p:.3f}' if p is not None else '—'} | {word} |")

    print("\n## Secondary (no test)\n")
    print("| comparison | n | mean [95% paired-t] | interval |\n|---|---:|---:|---|")
    for a in ("from_ce", "from_ls0.3", "from_ce_top8", "from_ls0.3_top8"):
        d = list(paired(rows, a, ALONE, seeds).values())
        print(f"| {a} − student alone | {len(d)} | {format_ci(*paired_ci(d)) if d else '—'} | "
              f"{verdict(*paired_ci(d)) if d else '—'} |")
    print("\n### Memorisation at the last tracked step (injected share, %), and inherited: − the student alone\n")
    print("| model | injected share | − student alone (paired) |\n|---|---:|---:|")
    last = {(v, s): last_value(c) for (v, s), c in curves.items()}
    for v in TEACHERS + ("from_ce", "from_ls0.3", "from_ce_top8", "from_ls0.3_top8", ALONE):
        own = [last[(v, s)] for s in seeds if last.get((v, s)) is not None]
        d = [last[(v, s)] - last[(ALONE, s)] for s in seeds
             if last.get((v, s)) is not None and last.get((ALONE, s)) is not None]
        print(f"| {v} | {mean_ci_cell(own, 100, len(seeds))} | "
              f"{format_ci(*paired_ci(d)) if d and v != ALONE else '—'} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.strip().splitlines()[-1].strip())
    main(*sys.argv[1:])
