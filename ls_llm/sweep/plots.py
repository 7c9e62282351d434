"""PNG plots of a sweep (matplotlib, Agg backend, imported only here)."""

from __future__ import annotations

import io
import textwrap
from collections import defaultdict
from pathlib import Path

from ls_llm.files import write_atomic
from ls_llm.sweep.stats import grid, mean_std, student_groups

# Heavy imports stay inside functions (matplotlib): `ls-llm` imports this module before it knows a command
# needs them.


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    try:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
        write_atomic(path, buffer.getvalue())  # no half-written PNG
        return path
    finally:
        plt.close(fig)


def metric_vs_noise(rows: list[dict], metric: str, ylabel: str, *, path: Path) -> Path:
    """One line per variant: the metric's mean over seeds against the noise rate, ± std as error bars."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for variant, by_rate in grid(rows, metric).items():
        rates = sorted(by_rate)
        stats = [mean_std(by_rate[r]) for r in rates]
        ax.errorbar(rates, [100 * m for m, _ in stats], yerr=[100 * s for _, s in stats], marker="o",
                    capsize=3, label=variant, linestyle="--" if "val-picked" in variant else "-")
    ax.set_xlabel("answer-noise rate (fraction of training traces)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _save(plt, fig, path)


def student_by_teacher(rows: list[dict], path: Path) -> Path:
    """Bars: teacher and student clean test accuracy per teacher objective (mean ± std over seeds), and
    the student trained alone where the sweep has it."""
    plt = _pyplot()
    by_id = {r["cell_id"]: r for r in rows}
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for label, cells in student_groups(rows).items():
        for row in cells:
            groups[label]["student"].append(row["test_acc"])
            if row.get("teacher") in by_id:
                groups[label]["teacher"].append(by_id[row["teacher"]]["test_acc"])
    names = list(groups)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(names)), 4))  # room for names like `from_ls0.3_top8`
    for offset, role in ((-0.2, "teacher"), (0.2, "student")):
        have = [i for i, n in enumerate(names) if groups[n][role]]  # the lone student has no teacher bar
        stats = [mean_std(groups[names[i]][role]) for i in have]
        ax.bar([i + offset for i in have], [100 * m for m, _ in stats], width=0.4,
               yerr=[100 * s for _, s in stats], capsize=3, label=role)
    ax.set_xticks(range(len(names)), [textwrap.fill(n, 15, break_long_words=False) for n in names])
    ax.set_xlabel("teacher objective")
    ax.set_ylabel("clean test accuracy (%)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: it covers no bar or error bar
    return _save(plt, fig, path)


# The rows of the curves figure: metric, axis label, scale (a row is drawn where some point has the metric).
_CURVE_ROWS = (("val_acc", "validation accuracy (%)", 100), ("mem_injected", "injected answer, greedy (%)", 100),
               ("tf_gap", "log p corrupted − clean,\nteacher-forced (nats)", 1))


def curves(rows: list[dict], noise_type: str, path: Path) -> Path:
    """Per noise rate (columns), against training steps: validation accuracy, the share of corrupted training rows
    answered greedily with the injected answer (where the noise injects answers) and the teacher-forced log-prob
    gap of the corrupted over the clean completion (where tracked); one line per variant, mean over seeds with the
    seeds' range shaded."""
    plt = _pyplot()
    typed = [r for r in rows if r["noise_type"] == noise_type and r.get("curve")]
    rates = sorted({r["noise_rho"] for r in typed})
    metrics = [(m, label, scale) for m, label, scale in _CURVE_ROWS
               if m == "val_acc" or any(m in p for r in typed for p in r["curve"])]
    n_rows = len(metrics)
    fig, axes = plt.subplots(n_rows, len(rates), figsize=(4.2 * len(rates), 3.4 * n_rows), squeeze=False, sharex=True)
    # One colour per variant across every panel, and one legend naming them all: a rate some variants skip (a clean
    # control, a method run at one rate) must not shift the others' colours away from the legend.
    variants = list(dict.fromkeys(r["variant"] for r in typed))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {v: cycle[i % len(cycle)] for i, v in enumerate(variants)}
    for col, rate in enumerate(rates):
        by_variant: dict[str, dict[int, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
        for row in typed:
            if row["noise_rho"] == rate:
                for point in row["curve"]:
                    for metric, _, scale in metrics:
                        if metric in point:
                            by_variant[row["variant"]][point["step"]][metric].append(scale * point[metric])
        for i, (metric, label, _) in enumerate(metrics):
            ax = axes[i][col]
            for variant, by_step in by_variant.items():
                steps = [s for s in sorted(by_step) if by_step[s][metric]]
                if not steps:
                    continue
                values = [by_step[s][metric] for s in steps]
                ax.plot(steps, [sum(v) / len(v) for v in values], marker="o", markersize=3, label=variant,
                        color=colour[variant])
                ax.fill_between(steps, [min(v) for v in values], [max(v) for v in values], alpha=0.12,
                                color=colour[variant])
            ax.set_title(f"{noise_type} noise {rate:g}", fontsize=9)
            ax.set_ylabel(label if col == 0 else "")
            ax.grid(alpha=0.3)
            if i == n_rows - 1:
                ax.set_xlabel("training step")
    handles = [plt.Line2D([], [], color=colour[v], marker="o", markersize=3, label=v) for v in variants]
    axes[0][0].legend(handles=handles, fontsize=7)
    return _save(plt, fig, path)


def write_plots(train_rows: list[dict], all_rows: list[dict], out_dir: Path) -> dict[str, Path]:
    paths = {
        "accuracy_png": metric_vs_noise(train_rows, "test_acc", "clean test accuracy (%)",
                                        path=out_dir / "accuracy_vs_noise.png"),
        "ece_png": metric_vs_noise(train_rows, "ece", "ECE, answer tokens in \\boxed{} (%)",
                                   path=out_dir / "ece_vs_noise.png"),
        "computed_ece_png": metric_vs_noise(train_rows, "computed_ece", "ECE, answer tokens where computed (%)",
                                            path=out_dir / "computed_ece_vs_noise.png"),
    }
    tracked = [r for r in all_rows if r["kind"] == "train" and r.get("curve")]
    for noise_type in sorted({r["noise_type"] for r in tracked}):
        paths[f"curves_{noise_type}_png"] = curves(tracked, noise_type, out_dir / f"curves_{noise_type}.png")
    if student_groups(all_rows):
        paths["students_png"] = student_by_teacher(all_rows, out_dir / "student_by_teacher.png")
    return paths
