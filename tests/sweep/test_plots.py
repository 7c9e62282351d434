"""The curves figure: a variant keeps one colour in every panel and the legend names every variant."""

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
