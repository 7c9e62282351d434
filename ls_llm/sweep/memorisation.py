"""Readings of the tracked curves, as plain functions (the second study pre-registered them: docs/results.md, "E2").

From each cell's curve (`track:`: validation accuracy and, on the corrupted training rows, the share of greedy
answers equal to the injected answer, every N steps):

- rise: the injected share at the last tracked step minus its smallest value over the first half of training
  (tracked steps <= last / 2), per seed. A variant **memorises** when the mean rise is >= 10 points and its 95%
  interval lies above 0.
- against the reference (ce): the last-step injected share minus the reference's, paired by seed. A variant
  **prevents memorisation** when that interval lies below 0.
- speed: the first tracked step at which the mean validation accuracy over seeds reaches 50%, and per seed how
  often the variant got there at an earlier / the same / a later step than the reference (never: counts as later
  than any step). A continuation (a variant with `init_from`) has no speed reading, nor does a variant compared
  with one: its curve starts where its parent's ended, so its first step at 50% says nothing about speed.
"""

from __future__ import annotations

from collections import defaultdict

from ls_llm.sweep.stats import gain_ci_cell, mean_ci_cell, paired_ci

MEMORISES_POINTS = 0.10
SPEED_THRESHOLD = 0.50
MEMORISATION_LEGEND = (
    "Injected share: corrupted training rows answered greedily with the injected answer, mean [95% t interval] "
    "over seeds, %. Rise: the last step's share minus the smallest over the first half of training, per seed; "
    "memorises: mean rise >= 10 points with its interval above 0. − reference: paired by seed; prevents: interval "
    "below 0. Speed: the first tracked step at which the mean validation accuracy over seeds reaches 50%; none for a "
    "continuation (`init_from`) or a variant compared with one, whose curve starts where its parent's ended.\n")


def rise(curve: list[dict], metric: str = "mem_injected") -> float | None:
    """Last tracked value minus the smallest over the first half (steps <= last step / 2); None without both."""
    points = [p for p in curve if metric in p]
    if not points:
        return None
    last = max(points, key=lambda p: p["step"])
    early = [p[metric] for p in points if p["step"] <= last["step"] / 2]
    return last[metric] - min(early) if early else None


def last_value(curve: list[dict], metric: str = "mem_injected") -> float | None:
    points = [p for p in curve if metric in p]
    return max(points, key=lambda p: p["step"])[metric] if points else None


def first_step_reaching(curve: list[dict], threshold: float = SPEED_THRESHOLD, metric: str = "val_acc") -> int | None:
    """The first tracked step whose `metric` is >= threshold; None if none is."""
    return next((p["step"] for p in sorted(curve, key=lambda p: p["step"]) if p.get(metric, -1) >= threshold), None)


def best_point(curve: list[dict]) -> dict | None:
    """The tracked point of highest validation accuracy, the earliest of equals (early stopping on validation:
    `ls_llm.sweep.tracking` keeps that step's model); None when no point has one."""
    points = sorted((p for p in curve if "val_acc" in p), key=lambda p: p["step"])
    return max(points, key=lambda p: p["val_acc"]) if points else None


def reading_row(result: dict, reading: str) -> dict:
    """The row of an early-stopping reading: the cell's identity and the best tracked model's evaluation only (no
    other number of the final model), marked `reading_of` (its compute is the cell's, counted once)."""
    early = result["early"]
    identity = {k: result[k] for k in ("kind", "noise_type", "noise_rho", "seed", "teacher", "source", "base")
                if k in result}
    return {"cell_id": f"{result['cell_id']}@{reading}", "variant": reading, **identity, "reading_of": result["cell_id"],
            "early_step": early["step"], **{k: v for k, v in early.items() if k not in ("step", "tracked_val_acc")}}


def mean_curve(curves: list[list[dict]], metric: str = "val_acc") -> list[dict]:
    """The per-step mean of `metric` over the curves (steps every curve has)."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for curve in curves:
        for p in curve:
            if metric in p:
                by_step[p["step"]].append(p[metric])
    return [{"step": s, metric: sum(v) / len(v)} for s, v in sorted(by_step.items()) if len(v) == len(curves)]


def memorisation_table(rows: list[dict], references: dict[str, str], rate: float, *, n_seeds: int,
                       continued: frozenset[str] = frozenset()) -> str:
    """At one noise rate: per variant, the injected share at the last step, its rise over the first half (and
    whether it memorises), the paired difference from the reference at the last step (and whether it prevents
    memorisation), and the 50%-validation speed against the reference (not for the `continued` variants, those
    with `init_from`, nor for a variant whose reference is one). "" when no cell tracked."""
    curves = {(r["variant"], r["seed"]): r["curve"] for r in rows if r["noise_rho"] == rate and r.get("curve")}
    if not curves:
        return ""
    lines = ["| variant | injected share, last step | rise over the first half | memorises | − reference, last step "
             "| prevents | first step at 50% val (mean curve) | per seed vs reference: earlier / same / later |",
             "|---|---:|---:|:-:|---:|:-:|---:|:-:|"]
    for variant in dict.fromkeys(v for v, _ in curves):
        seeds = sorted(s for v, s in curves if v == variant)
        own = {s: curves[(variant, s)] for s in seeds}
        last = [x for x in map(last_value, own.values()) if x is not None]
        rises = [x for x in (rise(c) for c in own.values()) if x is not None]
        cells = [variant, mean_ci_cell(last, 100, n_seeds), gain_ci_cell(rises, n_seeds)]
        if len(rises) >= 2:
            mean, half = paired_ci(rises)
            cells.append("yes" if mean >= MEMORISES_POINTS and mean - half > 0 else "no")
        else:
            cells.append("—")
        reference = references.get(variant)
        paired = [s for s in seeds if reference and reference != variant and (reference, s) in curves]
        pairs = [(last_value(own[s]), last_value(curves[(reference, s)])) for s in paired]
        diffs = [a - b for a, b in pairs if a is not None and b is not None]  # token noise tracks no injected share
        if len(diffs) >= 2:
            mean, half = paired_ci(diffs)
            cells += [gain_ci_cell(diffs, n_seeds), "yes" if mean + half < 0 else "no"]
        else:
            cells += ["—", "—"]
        if variant in continued or reference in continued:
            lines.append("| " + " | ".join(cells + ["—", "—"]) + " |")
            continue
        step = first_step_reaching(mean_curve(list(own.values())))
        cells.append("never" if step is None else str(step))
        if paired:
            def step_or_never(curve):  # never reaching 50% counts as later than any step
                step = first_step_reaching(curve)
                return float("inf") if step is None else step

            mine = [step_or_never(own[s]) for s in paired]
            theirs = [step_or_never(curves[(reference, s)]) for s in paired]
            cells.append(" / ".join(str(sum(f(a, b) for a, b in zip(mine, theirs)))
                                    for f in (lambda a, b: a < b, lambda a, b: a == b, lambda a, b: a > b)))
        else:
            cells.append("—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
