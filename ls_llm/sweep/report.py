"""Sweep results: one CSV (a row per finished cell), markdown tables of mean ± std over seeds, PNG plots.

Tables say how many seeds each entry has, and list the cells that have not finished, so a partial sweep
can never read as the full one. "Picked on validation" rows choose, per noise rate and seed, the variant
of a family (e.g. label smoothing 0.1 vs 0.3) with the best validation accuracy and report its test
accuracy: the only hyperparameter choice the sweep makes, and it never looks at the test split.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from pathlib import Path

from ls_llm.files import read_jsonl, write_atomic
from ls_llm.sweep.config import SweepConfig
from ls_llm.sweep.memorisation import MEMORISATION_LEGEND, memorisation_table
from ls_llm.sweep.plots import write_plots
from ls_llm.sweep.stats import (
    STUDENT_ALONE_LABEL,
    endpoint_diffs,
    gain_ci_cell,
    grid,
    mean_ci_cell,
    paired_ci,
    student_groups,
    verdict,
)
from ls_llm.sweep.teacher_loop import loop_lines

CSV_FIELDS = ("cell_id", "kind", "variant", "teacher", "noise_type", "noise_rho", "seed", "val_acc", "n_val",
              "test_acc", "n_test", "ece", "answer_token_acc", "answer_token_conf", "answer_tokens", "computed_ece",
              "computed_answer_token_acc", "computed_answer_token_conf", "computed_answer_tokens",
              "train_seconds", "cell_seconds")


def _csv(fields: tuple[str, ...], rows) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# Columns only a sweep with pretrained bases or early-stopping readings has (others' CSVs stay as they were).
OPTIONAL_CSV_FIELDS = ("reading_of", "early_step", "pretrain_val_acc")


def to_csv(rows: list[dict]) -> str:
    return _csv(CSV_FIELDS + tuple(f for f in OPTIONAL_CSV_FIELDS if any(f in r for r in rows)), rows)


def _table(first: str, columns: list[str], body: list[tuple[str, list[str]]]) -> str:
    """A markdown table: `first` heads the label column, `columns` the others; `body`: (label, cells)."""
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    return "\n".join(lines + [f"| {label} | " + " | ".join(cells) + " |" for label, cells in body]) + "\n"


def picked_on_validation(rows: list[dict], select: dict) -> list[dict]:
    """Per family, noise rate and seed: the member variant with the best val_acc (ties: listed first),
    relabelled `<family> (val-picked)`. Only (rate, seed) pairs where every member finished count."""
    train = {(r["variant"], r["noise_rho"], r["seed"]): r for r in rows if r["kind"] == "train"}
    picked = []
    for family, members in select.items():
        pairs = {(rate, seed) for (_, rate, seed) in train}
        for rate, seed in sorted(pairs):
            cands = [train.get((m, rate, seed)) for m in members]
            if any(c is None for c in cands):
                continue
            best = max(cands, key=lambda c: (c["val_acc"], -members.index(c["variant"])))
            picked.append({**best, "variant": f"{family} (val-picked)", "picked": best["variant"]})
    return picked


def markdown_table(rows: list[dict], metric: str, rates: tuple[float, ...], *, n_seeds: int, scale: float = 100.0) -> str:
    """Variants × noise rates, entries mean ± std over seeds ("(n=k)" where fewer than all seeds ran)."""
    return _table("variant", [f"noise {r:g}" for r in rates],
                  [(variant, [mean_ci_cell(by_rate.get(r), scale, n_seeds) for r in rates])
                   for variant, by_rate in grid(rows, metric).items()])


def paired_table(rows: list[dict], reference: str | dict, rates: tuple[float, ...], *, n_seeds: int) -> str:
    """Test accuracy minus the reference variant's at the same noise rate and seed (same initialisation, same
    corrupted traces): mean and 95% paired-t interval over seeds, in points ("(n=k)" where fewer than all seeds).
    `reference`: one variant for all, or variant -> its reference (the first value is the default)."""
    refs = reference if isinstance(reference, dict) else {}
    default = reference if isinstance(reference, str) else next(iter(refs.values()))
    acc = {(r["variant"], r["noise_rho"], r["seed"]): r["test_acc"] for r in rows}
    label = f"variant − {default}" if all(v == default for v in refs.values()) else "variant − its reference"
    body = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        reference = refs.get(variant, default)
        if variant == reference:
            continue
        cells = [gain_ci_cell([value - acc[(reference, rate, seed)] for (v, r, seed), value in acc.items()
                               if v == variant and r == rate and (reference, rate, seed) in acc], n_seeds)
                 for rate in rates]
        body.append((variant if reference == default else f"{variant} − {reference}", cells))
    return _table(label, [f"noise {r:g}" for r in rates], body)


def endpoint_table(rows: list[dict], references: dict[str, str], expected: dict, noise_types: tuple[str, ...], *,
                   n_seeds: int) -> str:
    """The primary endpoint: per variant and noise type, the gain over the variant's reference averaged over the
    noisy rates it runs at, per seed, then its mean and 95% paired-t interval, and the verdict (helps / hurts / not
    detected). An entry with a rate missing on every seed is `—`, never an average over fewer rates."""
    diffs = endpoint_diffs(rows, references, expected)
    body = []
    for variant in references:
        if any((variant, t) in diffs for t in noise_types):
            per_type = [list(diffs.get((variant, t), {}).values()) for t in noise_types]
            body.append((f"{variant} (− {references[variant]})",
                         [f"{gain_ci_cell(d, n_seeds)} {verdict(*paired_ci(d))}" if d else "—"
                          for d in per_type]))
    return _table("variant (− reference)", [f"`{t}` noise" for t in noise_types], body)


# metric -> (what it is, the scale of the table: 100 for a share in percent, 1 for a value as it is)
CURVE_METRICS = {
    "val_acc": ("validation accuracy (%)", 100),
    "mem_injected": ("share of corrupted training rows answered with the injected answer (%)", 100),
    "mem_true": ("share of corrupted training rows answered with the true answer (%)", 100),
    "tf_injected": ("share of corrupted training rows whose corrupted completion is likelier than the clean one, "
                    "teacher-forced (%)", 100),
    "tf_gap": ("teacher-forced log p(corrupted completion) − log p(clean completion), mean over corrupted training "
               "rows (nats)", 1),
}


def curve_table(rows: list[dict], rate: float, metric: str, *, n_seeds: int) -> str:
    """Tracked during training, at noise `rate`: per variant and step, `metric` (a key of CURVE_METRICS) as mean
    [95% t interval] over seeds, in the metric's scale; "" when no cell tracked it."""
    points: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row["noise_rho"] == rate and row.get("curve"):
            for point in row["curve"]:
                if metric in point:
                    points[row["variant"]][point["step"]].append(point[metric])
    if not points:
        return ""
    steps = sorted({step for by_step in points.values() for step in by_step})
    scale = CURVE_METRICS[metric][1]
    body = [(v, [mean_ci_cell(by_step.get(s), scale, n_seeds) for s in steps]) for v, by_step in points.items()]
    return _table("variant", [f"step {s}" for s in steps], body)


def student_table(rows: list[dict], *, n_seeds: int) -> str:
    """Teacher variant -> teacher test accuracy and its student's, mean ± std over seeds; the student
    trained alone (no teacher) as the last row when the sweep has it."""
    by_id = {r["cell_id"]: r for r in rows}
    lines = ["| student of (teacher objective) | final teacher's test acc | student test acc | student val acc | student ECE (boxed) "
             "| student ECE (computed) |", "|---|---:|---:|---:|---:|---:|"]
    for teacher, group in student_groups(rows).items():
        t_acc = [by_id[r["teacher"]]["test_acc"] for r in group if r.get("teacher") in by_id]
        lines.append(f"| {teacher} | {mean_ci_cell(t_acc, 100, n_seeds)} | {mean_ci_cell([r['test_acc'] for r in group], 100, n_seeds)}"
                     f" | {mean_ci_cell([r['val_acc'] for r in group], 100, n_seeds)}"
                     f" | {mean_ci_cell([r['ece'] for r in group], 100, n_seeds)}"
                     f" | {mean_ci_cell([r['computed_ece'] for r in group], 100, n_seeds)} |")
    return "\n".join(lines) + "\n"


def student_gain_table(rows: list[dict], reference: str, *, n_seeds: int) -> str:
    """Each student's test accuracy minus the student of the `reference` teacher, paired by seed (95% CI)."""
    acc = {(r["variant"] if r["kind"] == "distill" else STUDENT_ALONE_LABEL, r["seed"]): r["test_acc"]
           for r in rows if r["kind"] in ("distill", "student")}
    lines = [f"| student of | − student of {reference} | verdict |", "|---|---:|---|"]
    for name in dict.fromkeys(v for v, _ in acc):
        if name == reference:
            continue
        diffs = [a - acc[(reference, seed)] for (v, seed), a in acc.items() if v == name and (reference, seed) in acc]
        if diffs:
            lines.append(f"| {name} | {gain_ci_cell(diffs, n_seeds)} | {verdict(*paired_ci(diffs))} |")
    return "\n".join(lines) + "\n"


def matching_table(rows: list[dict]) -> str:
    """Per seed: the teacher models the matching chose (step, validation accuracy) and their gap, on validation."""
    seen, lines = set(), []
    for row in rows:
        if row["kind"] != "distill" or not row.get("matching") or row["seed"] in seen:
            continue
        seen.add(row["seed"])
        chosen = row["matching"]
        if not lines:
            lines = ["| seed | " + " | ".join(f"{t} (step, val acc)" for t in chosen) + " | gap (points) |",
                     "|---|" + "---:|" * (len(chosen) + 1)]
        accs = [c["val_acc"] for c in chosen.values()]
        lines.append(f"| {row['seed']} | " + " | ".join(
            f"{c['step']}{'' if not c['final'] else ' (final)'}, {100 * c['val_acc']:.1f}" for c in chosen.values())
            + f" | {100 * (max(accs) - min(accs)):.1f} |")
    return ("\n".join(lines) + "\n") if lines else ""


def majority_baseline(test_file: Path) -> float | None:
    """Test accuracy of always answering the split's most common answer: the floor any model must beat."""
    if not test_file.is_file():
        return None
    answers = [row["answer"] for row in read_jsonl(test_file)]
    return max(Counter(answers).values()) / len(answers) if answers else None


def compute_lines(rows: list[dict]) -> str:
    if not rows:
        return "no cell finished\n"
    rows = [r for r in rows if "reading_of" not in r]  # a reading's compute is its cell's
    total = sum(r["cell_seconds"] for r in rows)
    per_kind = ", ".join(f"{kind}: {sum(r['cell_seconds'] for r in rows if r['kind'] == kind) / n:.0f} s/cell"
                         for kind, n in Counter(r["kind"] for r in rows).items())
    return (f"{len(rows)} cells, {total / 60:.1f} min of cell wall time in all (train + eval + ECE; shards run "
            f"side by side), {per_kind}.\n")


def base_lines(rows: list[dict]) -> list[str]:
    """The pretrained bases' accuracy on their own corpus and, before any fine-tuning, on the sweep's task."""
    bases = [r for r in rows if r["kind"] == "base"]
    if not bases:
        return []
    body = [(r["cell_id"], [f"{100 * r['pretrain_val_acc']:.1f}", f"{100 * r['val_acc']:.1f}",
                            f"{100 * r['test_acc']:.1f}", f"{r['cell_seconds'] / 60:.1f}"]) for r in bases]
    return ["## Pretrained bases\n", _table("base", ["own corpus, validation (%)", "this task, validation (%)",
                                                      "this task, test (%)", "minutes"], body)]


def _heading(level: str, label: str | None, text: str) -> str:
    """`level label: text`, or `level Text` without a label (the sweep file's `report:` names the labels)."""
    return f"{level} {label}: {text}\n" if label else f"{level} {text[:1].upper()}{text[1:]}\n"


def summary_markdown(sweep: SweepConfig, rows: list[dict]) -> str:
    train = [r for r in rows if r["kind"] == "train"]
    done = {r["cell_id"] for r in rows} & {c.cell_id for c in sweep.cells()}  # (not the early-stopping readings)
    missing = [c.cell_id for c in sweep.cells() if c.cell_id not in done]
    baseline = majority_baseline(Path(sweep.output_dir) / "data" / "test.jsonl")
    n, reference = len(sweep.seeds), sweep.variants[0].name
    continued = frozenset(v.name for v in sweep.variants if v.init_from is not None)
    parts = [
        f"# Sweep `{sweep.name}`: {len(done)} of {len(sweep.cells())} cells finished\n",
        "Accuracy tables: mean [95% t interval] over seeds, in percent. Gains: mean [95% paired-t interval] over "
        f"seeds, in points. `(n=k)`: fewer than all {n} seeds; `—`: not run.\n",
        (f"Majority-answer baseline (always the test split's most common answer): {100 * baseline:.1f}%.\n"
         if baseline is not None else ""),
    ]
    parts += base_lines(rows) + loop_lines(rows)
    endpoint = endpoint_table(train, sweep.references(), sweep.expected_rates(), sweep.noise_types, n_seeds=n)
    comparisons = len(endpoint.splitlines()) - 2
    label = sweep.report.endpoint or ("Teachers" if sweep.distill is not None else None)
    parts += [_heading("##", label, "test-accuracy gain over the reference, averaged over the noisy rates"),
              "Per seed, the gain at each noise rate above 0 (on a traces sweep's reference axis, every rate: its "
              "traces carry the teacher's errors) is averaged; then mean and 95% interval over seeds. "
              "helps / hurts: the interval excludes 0. "
              f"{comparisons} variant(s) × {len(sweep.noise_types)} noise type(s), no multiplicity correction.\n",
              endpoint]
    for noise_type in sweep.noise_types:
        typed = [r for r in train if r["noise_type"] == noise_type]
        typed += picked_on_validation(typed, sweep.select)
        rates = sweep.rates_of(noise_type)
        title = f" (`{noise_type}` noise)" if len(sweep.noise_types) > 1 else ""
        parts += [
            f"## Clean test accuracy{title} (greedy, math-verify)\n",
            markdown_table(typed, "test_acc", rates, n_seeds=n),
            f"### Gain over {reference}{title}, paired by seed (same initialisation, same corrupted traces)\n",
            paired_table(typed, {**dict.fromkeys((r["variant"] for r in typed), reference), **sweep.references()},
                         rates, n_seeds=n),
            f"### Validation accuracy{title} (the split any choice is made on)\n",
            markdown_table(typed, "val_acc", rates, n_seeds=n),
            f"### ECE of the final-answer tokens inside \\boxed{{}}{title} (clean test traces, teacher-forced)\n",
            markdown_table(typed, "ece", rates, n_seeds=n),
            f"### ECE of the final answer where the trace computes it{title} (last `= ANSWER`; teacher-forced)\n",
            markdown_table(typed, "computed_ece", rates, n_seeds=n),
        ]
        for rate in rates:
            for metric, (label, _) in CURVE_METRICS.items():
                table = curve_table(typed, rate, metric, n_seeds=n)
                if table:
                    parts += [f"### During training{title}, noise {rate:g}: {label}\n", table]
            table = (memorisation_table(typed, sweep.references(), rate, n_seeds=n, continued=continued)
                     if rate > 0 else "")
            if table:
                note = f"{sweep.report.memorisation_note}, " if sweep.report.memorisation_note else ""
                parts += [f"### Memorisation and speed{title}, noise {rate:g} ({note}ls_llm.sweep.memorisation)\n",
                          MEMORISATION_LEGEND, table]
    if sweep.distill is not None:
        parts += [f"## Distillation (teachers trained at noise {sweep.distill.noise_rho:g})\n",
                  student_table(rows, n_seeds=n)]
        matched = matching_table(rows)
        if matched:
            parts += ["### Teachers matched on validation accuracy (ls_llm.sweep.matching)\n",
                      "The teacher columns of the table above are the final teachers' test accuracy; the students "
                      "learned from these models:\n", matched]
        first = sweep.distill.student_list()[0]["name"]
        parts += [_heading("###", sweep.report.student_endpoint,
                           f"students paired by seed with the student of `{first}` (95% CI, points)"),
                  student_gain_table(rows, first, n_seeds=n)]
    parts += ["## Compute\n", compute_lines(rows), "## Cells not finished\n",
              ("\n".join(f"- {c}" for c in missing) + "\n") if missing else "none\n"]
    return "\n".join(parts)


def curves_csv(rows: list[dict]) -> str:
    """One line per tracked point of every cell: cell_id, variant, noise type / rate, seed, step, the metrics."""
    fields = ("cell_id", "variant", "noise_type", "noise_rho", "seed", "step", "val_acc", "mem_injected", "mem_true",
              "mem_other", "n_val", "n_corrupted") + (("tf_gap", "tf_injected") if any(
                  "tf_gap" in p for row in rows for p in row.get("curve") or []) else ())  # (earlier sweeps: as they were)
    return _csv(fields, ({**{k: row[k] for k in fields[:5]}, **point}
                         for row in rows for point in row.get("curve") or []))


def _labelled(select: dict, rows: list[dict]) -> dict:
    """`select` in the labels of by_noise_type: one family per noise type when there are several."""
    types = sorted({r["noise_type"] for r in rows})
    if len(types) < 2:
        return select
    return {f"{family} ({t})": [f"{m} ({t})" for m in members] for family, members in select.items() for t in types}


def by_noise_type(rows: list[dict]) -> list[dict]:
    """With several noise types, each variant's rows become `variant (type)` so plots keep them apart."""
    if len({r["noise_type"] for r in rows}) < 2:
        return rows
    return [{**r, "variant": f"{r['variant']} ({r['noise_type']})"} for r in rows]


def write_report(sweep: SweepConfig, rows: list[dict], out_dir: Path) -> dict[str, Path]:
    """results.csv, results.md and the PNG plots under out_dir; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "results.csv", "markdown": out_dir / "results.md"}
    # write_atomic: a unique temporary name, so two shards finishing together cannot clash.
    write_atomic(paths["csv"], to_csv(rows))
    write_atomic(paths["markdown"], summary_markdown(sweep, rows))
    if any(r.get("curve") for r in rows):
        paths["curves_csv"] = out_dir / "curves.csv"
        write_atomic(paths["curves_csv"], curves_csv(rows))
    if rows:
        train = by_noise_type([r for r in rows if r["kind"] == "train"])
        train += picked_on_validation(train, _labelled(sweep.select, train))
        paths.update(write_plots(train, rows, out_dir))
    return paths
