"""The recipe keys a sweep file sets, checked against the training fields' types before any cell runs."""

from __future__ import annotations

from ls_llm.trainers.recipe_types import check_value_types
from ls_llm.trainers.run import distill_arg_types, sft_arg_types

__all__ = ["check_override_types"]


def check_override_types(sweep) -> None:
    """The recipe keys a sweep file sets (overrides, variants, distillation students, bases) against the training
    fields' types, as a recipe's own keys are (`ls_llm.trainers.recipe_types.check_value_types`): a list for a string
    field would reach the cell as JSON text. Run when a sweep runs (it imports the training stack)."""
    where = f"sweep {sweep.name!r}"
    check_value_types(f"{where} overrides", dict(sweep.overrides), sft_arg_types())
    rate = sweep.noise_rho[0]
    for v in sweep.variants:
        check_value_types(f"{where} variant {v.name!r}", v.recipe_keys(rate), sft_arg_types())
    if sweep.bases is not None:
        check_value_types(f"{where} bases.overrides", dict(sweep.bases.overrides), sft_arg_types())
    if sweep.traces is not None:
        check_value_types(f"{where} traces.overrides", dict(sweep.traces.overrides), sft_arg_types())
    if sweep.distill is not None:
        spec = sweep.distill
        check_value_types(f"{where} distill.overrides", dict(spec.overrides), distill_arg_types())
        for student in spec.student_list():
            keys = {k: v for k, v in student.items() if k not in ("name", "teacher", "cache_top_k")}
            check_value_types(f"{where} distill student {student['name']!r}", keys, distill_arg_types())
        if spec.student_alone:
            check_value_types(f"{where} distill.student_alone", dict(spec.student_alone), sft_arg_types())
