"""Checks of a sweep file that need the whole of it: variant scopes against the grid, distillation, selection."""

from __future__ import annotations

from pathlib import Path

from ls_llm.sweep.config import _NAME_RE, DistillSpec, SweepError, Variant


def check_scopes(variants: tuple[Variant, ...], by_type: dict[str, tuple[float, ...]]) -> None:
    """A variant's scope names types and rates of the sweep, and an `init_from` source runs wherever it does."""
    for i, v in enumerate(variants):
        for noise_type in v.noise_types or ():
            if noise_type not in by_type:
                raise SweepError(f"variants[{i}].noise_types: {noise_type!r} is not a noise_type of this sweep "
                                 f"({sorted(by_type)})")
        cells = {(t, r) for t, rates in by_type.items() for r in rates if v.runs_on(t, r)}
        if not cells:
            raise SweepError(f"variants[{i}] ({v.name!r}) runs nowhere: its noise_types / noise_rates match no "
                             f"noise type and rate of this sweep {dict(by_type)}")
        if v.init_from is not None:
            source = next(s for s in variants if s.name == v.init_from)
            missing = sorted(c for c in cells if not source.runs_on(*c))
            if missing:
                raise SweepError(f"variants[{i}].init_from: {v.init_from!r} does not run at {missing[0]} (noise "
                                 f"type, rate), where {v.name!r} does")


def check_distill(spec: DistillSpec, variants: tuple[Variant, ...]) -> None:
    names = {v.name for v in variants}
    missing = [t for t in spec.teachers if t not in names]
    if not spec.teachers or missing:
        raise SweepError(f"distill.teachers must name variants of this sweep, got {list(spec.teachers)!r}")
    if not Path(spec.recipe).is_file():
        raise SweepError(f"distill.recipe {spec.recipe!r} does not exist")
    if not 0.0 <= spec.noise_rate <= 1.0:
        raise SweepError(f"distill.noise_rate must be in [0, 1], got {spec.noise_rate!r}")
    if spec.student_alone is not None and not isinstance(spec.student_alone, dict):
        raise SweepError(f"distill.student_alone must be a mapping of recipe keys, got {spec.student_alone!r}")
    if spec.students is not None:
        names = []
        for i, student in enumerate(spec.students):
            if (not isinstance(student, dict) or not isinstance(student.get("name"), str)
                    or not _NAME_RE.match(student["name"]) or student.get("teacher") not in spec.teachers):
                raise SweepError(f"distill.students[{i}] must be a mapping with a 'name' ({_NAME_RE.pattern}) and a "
                                 f"'teacher' from distill.teachers {list(spec.teachers)!r}, got {student!r}")
            k = student.get("cache_top_k")
            if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
                raise SweepError(f"distill.students[{i}].cache_top_k must be an integer >= 1, got {k!r}")
            names.append(student["name"])
        if not names or len(set(names)) != len(names):
            raise SweepError(f"distill.students must be a non-empty list with distinct names, got {names!r}")


def check_select(select: dict, variants: tuple[Variant, ...]) -> None:
    names = {v.name for v in variants}
    for family, members in select.items():
        if not isinstance(members, list) or len(members) < 2 or any(m not in names for m in members):
            raise SweepError(f"select.{family} must list two or more variant names, got {members!r}")


def check_override_types(sweep) -> None:
    """The recipe keys a sweep file sets (overrides, variants, distillation students) against the training
    fields' types, as a recipe's own keys are (`ls_llm.trainers.recipe.check_value_types`): a list for a string
    field would reach the cell as JSON text. Run when a sweep runs (it imports the training stack)."""
    from ls_llm.trainers.recipe import check_value_types
    from ls_llm.trainers.run import distill_arg_types, sft_arg_types

    where = f"sweep {sweep.name!r}"
    check_value_types(f"{where} overrides", dict(sweep.overrides), sft_arg_types())
    rate = sweep.noise_rates[0]
    for v in sweep.variants:
        check_value_types(f"{where} variant {v.name!r}", v.recipe_keys(rate), sft_arg_types())
    if sweep.distill is not None:
        spec = sweep.distill
        check_value_types(f"{where} distill.overrides", dict(spec.overrides), distill_arg_types())
        for student in spec.student_list():
            keys = {k: v for k, v in student.items() if k not in ("name", "teacher", "cache_top_k")}
            check_value_types(f"{where} distill student {student['name']!r}", keys, distill_arg_types())
        if spec.student_alone:
            check_value_types(f"{where} distill.student_alone", dict(spec.student_alone), sft_arg_types())
