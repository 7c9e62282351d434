"""The report's figures: in the curves figure a variant keeps one colour in every panel and the legend names every
variant; in the students' figure no two group names overlap and the legend covers no bar."""

from __future__ import annotations

from ls_llm.sweep import plots


def _row(variant: str, rate: float, seed: int = 0) -> dict:
    curve = [{"step": s, "val_acc": 0.1 * s / 100 + 0.01 * seed, "mem_injected": 0.2} for s in (100, 200)]
    return {"variant": variant, "noise_type": "perturb", "noise_rho": rate, "curve": curve, "kind": "train"}


def test_a_variant_keeps_its_colour_where_a_rate_lacks_others(monkeypatch, tmp_path):
    # rate 0 has a clean control of two variants only; rate 0.2 has three: before the fix the third variant took
    # the second one's colour in the rate-0.2 panel, so the (first panel's) legend named the wrong line.
    rows = [_row("ce", 0.0), _row("ls0.3", 0.0), _row("ce", 0.2), _row("ls0.1", 0.2), _row("ls0.3", 0.2)]
    figures = []
    monkeypatch.setattr(plots, "_save", lambda plt, fig, path: figures.append(fig) or path)
    plots.curves(rows, "perturb", tmp_path / "c.png")
    (fig,) = figures
    colours: dict[str, set] = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            colours.setdefault(line.get_label(), set()).add(line.get_color())
    assert set(colours) == {"ce", "ls0.1", "ls0.3"}
    assert all(len(c) == 1 for c in colours.values()), colours
    assert len({next(iter(c)) for c in colours.values()}) == 3
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["ce", "ls0.3", "ls0.1"]
    legend_colour = {h.get_label(): h.get_color() for h in legend.legend_handles}
    assert all(legend_colour[v] == next(iter(c)) for v, c in colours.items())


def _boxes_overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_student_figure_names_do_not_overlap_and_the_legend_covers_no_bar(monkeypatch, tmp_path):
    # E6's five groups (four named like `from_ls0.3_top8`, and the student alone) drew their names over each other
    # at a fixed 6-inch width, and the legend sat on the student alone's error bar.
    rows = []
    for seed in range(3):
        for i, teacher in enumerate(("teacher_ce", "teacher_ls0.3")):
            rows.append({"cell_id": f"t{i}-{seed}", "kind": "train", "variant": teacher, "test_acc": 0.3})
        for variant, teacher in (("from_ce", 0), ("from_ls0.3", 1), ("from_ce_top8", 0), ("from_ls0.3_top8", 1)):
            rows.append({"cell_id": f"{variant}-{seed}", "kind": "distill", "variant": variant,
                         "teacher": f"t{teacher}-{seed}", "test_acc": 0.2 + 0.1 * seed})
        rows.append({"cell_id": f"alone-{seed}", "kind": "student", "variant": "alone", "test_acc": 0.8 + 0.1 * seed})
    figures = []
    monkeypatch.setattr(plots, "_save", lambda plt, fig, path: figures.append(fig) or path)
    plots.student_by_teacher(rows, tmp_path / "s.png")
    (fig,) = figures
    (ax,) = fig.axes
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    labels = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
    assert len(labels) == 5
    assert not any(_boxes_overlap(a, b) for i, a in enumerate(labels) for b in labels[i + 1:])
    legend = ax.get_legend().get_window_extent(renderer)
    artists = [p.get_window_extent(renderer) for p in ax.patches] + [
        line.get_window_extent(renderer) for container in ax.containers if hasattr(container, "errorbar")
        and container.errorbar for line in container.errorbar.lines[2]]
    assert not any(_boxes_overlap(legend, a) for a in artists)
