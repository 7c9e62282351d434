"""Reading lm-eval results back: markdown tables, bar charts, and side-by-side comparison of runs.

All files are written atomically (temporary file in the same folder, then ``os.replace``), so a
reader never sees half a results file even if the run dies mid-write.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ls_llm.files import write_atomic

# Heavy imports stay inside functions (matplotlib): `ls-llm` imports this module before it knows a command
# needs them.

RESULTS_FILE = "results.json"
FILTER = "verify"


@dataclass(frozen=True)
class Row:
    name: str
    is_suite: bool
    k: int | None
    n: int | None
    acc: float
    stderr: float | None
    pass_at_k: float | None


def _metric(entry: dict, metric: str) -> float | None:
    value = entry.get(f"{metric},{FILTER}")
    return float(value) if isinstance(value, (int, float)) and not math.isnan(value) else None


def rows_from_results(results: dict) -> list[Row]:
    """Task rows in run order, then one row per suite (lm-eval group)."""
    groups = set(results.get("group_subtasks", {})) | set(results.get("groups", {}))
    entries = {**results.get("results", {}), **results.get("groups", {})}
    configs, n_samples = results.get("configs", {}), results.get("n-samples", {})
    rows = []
    for name, entry in entries.items():
        acc = _metric(entry, "acc")
        if acc is None:
            continue
        rows.append(Row(name, name in groups, configs.get(name, {}).get("repeats"),
                        n_samples.get(name, {}).get("effective"), acc, _metric(entry, "acc_stderr"),
                        _metric(entry, "pass_at_k")))
    return sorted(rows, key=lambda row: row.is_suite)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def markdown_table(rows: list[Row]) -> str:
    lines = ["| task | n | k | avg@k (%) | ± stderr | pass@k (%) |", "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        name = f"**{row.name}** (suite mean)" if row.is_suite else row.name
        lines.append(f"| {name} | {row.n if row.n is not None else '-'} | {row.k if row.k is not None else '-'} "
                     f"| {_pct(row.acc)} | {_pct(row.stderr)} | {_pct(row.pass_at_k)} |")
    return "\n".join(lines) + "\n"


def _save_figure(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    write_atomic(path, buffer.getvalue())


def bar_chart(runs: dict[str, list[Row]], path: Path, *, title: str) -> None:
    """Grouped bars: one group per task/suite, one bar per run, stderr as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(row.name for rows in runs.values() for row in rows))
    width = 0.8 / max(1, len(runs))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names) * max(1, len(runs)) ** 0.5), 4.0))
    for offset, (label, rows) in enumerate(runs.items()):
        by_name = {row.name: row for row in rows}
        xs = [i + (offset - (len(runs) - 1) / 2) * width for i in range(len(names))]
        heights = [100 * by_name[n].acc if n in by_name else 0.0 for n in names]
        errors = [100 * (by_name[n].stderr or 0.0) if n in by_name else 0.0 for n in names]
        bars = ax.bar(xs, heights, width, yerr=errors, capsize=3, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize="x-small", padding=2)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylim(0, 105)
    ax.set_ylabel("avg@k accuracy (%)")
    ax.set_title(title)
    if len(runs) > 1:
        ax.legend(fontsize="small")
    _save_figure(fig, path)
    plt.close(fig)


def load_run(run_dir: Path) -> dict:
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"run folder {run_dir} has no {RESULTS_FILE} (is it an `ls-llm eval` output?)")
    return json.loads(path.read_text(encoding="utf-8"))


def compare_table(runs: dict[str, list[Row]]) -> str:
    names = list(dict.fromkeys(row.name for rows in runs.values() for row in rows))
    lines = ["| task | " + " | ".join(runs) + " |", "|---|" + "---:|" * len(runs)]
    for name in names:
        found = [next((r for r in rows if r.name == name), None) for rows in runs.values()]
        cells = ["-" if row is None else f"{_pct(row.acc)} ± {_pct(row.stderr)}" for row in found]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
