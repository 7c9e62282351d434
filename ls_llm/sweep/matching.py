"""Teachers matched for accuracy (the second study's E3): which tracked model of each teacher to distill from.

Rule (fixed in docs/results.md before the sweep ran, and decided on validation only): the teacher whose final
validation accuracy is lowest is used as trained (ties: the one listed first); every other teacher is replaced by
its tracked model (a point of its `curve`, ls_llm.sweep.tracking) whose validation accuracy is closest to that one
(ties: the later step). A teacher that is already closest at its final step is used as trained.
"""

from __future__ import annotations


def _distance(point: dict, target: float) -> float:
    # Rounded: accuracies are counts over the same rows, so equal gaps must tie (0.65 - 0.6 vs 0.6 - 0.55).
    return round(abs(point["val_acc"] - target), 9)


def match_teachers(curves: dict[str, list[dict]]) -> dict[str, dict]:
    """teacher name -> its curve (points with `step`, `val_acc`; the last is the final model), in listed order
    -> teacher name -> {step, val_acc, final}: the model of that teacher to use."""
    if not curves or any(not curve for curve in curves.values()):
        raise ValueError("matching needs every teacher's tracked validation accuracy (track: in the sweep file)")
    names = list(curves)
    finals = {name: curve[-1] for name, curve in curves.items()}
    low = min(names, key=lambda n: (finals[n]["val_acc"], names.index(n)))
    target = finals[low]["val_acc"]
    chosen = {}
    for name, curve in curves.items():
        point = finals[name] if name == low else min(curve, key=lambda p: (_distance(p, target), -p["step"]))
        chosen[name] = {"step": point["step"], "val_acc": point["val_acc"], "final": point["step"] == curve[-1]["step"]}
    return chosen
