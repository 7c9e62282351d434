"""Read a sweep file into its typed config (`ls_llm.sweep.config`): unknown keys fail, naming the key; then the
checks that need the whole of it (variant scopes against the grid, distillation, selection)."""

from __future__ import annotations

from pathlib import Path

import yaml

from ls_llm.data.noise import INJECTORS
from ls_llm.sweep.config import (
    _NAME_RE,
    NOISE_RHO,
    REFERENCE_NOISE,
    VARIANT_SCOPE,
    BaseSpec,
    DataSpec,
    DistillSpec,
    EvalSpec,
    ReportSpec,
    SweepConfig,
    SweepError,
    TrackSpec,
    Variant,
)
from ls_llm.sweep.load_fields import SET_PER_RUN, mapping, placeholder_at, typed
from ls_llm.sweep.traces_section import check_trace_variants, read_traces


def _variants(raw) -> tuple[Variant, ...]:
    if not isinstance(raw, list) or not raw:
        raise SweepError(f"variants must be a non-empty list of {{name: ..., <recipe key>: ...}}, got {raw!r}")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise SweepError(f"variants[{i}] must be a mapping with a string 'name', got {item!r}")
        if not _NAME_RE.match(item["name"]):
            raise SweepError(f"variants[{i}].name must match {_NAME_RE.pattern}, got {item['name']!r}")
        scope = {}
        for key in ("noise_types", "noise_rho"):
            if key in item:
                where = f"variants[{i}].{key}"
                scope[key] = _noise_types(item[key], where) if key == "noise_types" else _rates(item[key], where)
        if "init_from" in item:
            earlier = [v.name for v in out if v.init_from is None and v.early_stop_of is None]
            if item["init_from"] not in earlier:
                raise SweepError(f"variants[{i}].init_from must name an earlier variant without init_from "
                                 f"({earlier}), got {item['init_from']!r}")
            scope["init_from"] = item["init_from"]
        if "compare_with" in item:
            if item["compare_with"] not in [v.name for v in out]:
                raise SweepError(f"variants[{i}].compare_with must name an earlier variant, got {item['compare_with']!r}")
            scope["compare_with"] = item["compare_with"]
        if "early_stop_of" in item:
            earlier = [v.name for v in out if v.early_stop_of is None]
            if item["early_stop_of"] not in earlier:
                raise SweepError(f"variants[{i}].early_stop_of must name an earlier variant that runs ({earlier}), "
                                 f"got {item['early_stop_of']!r}")
            own = sorted(set(item) - {"name", "early_stop_of", "compare_with"})
            if own:
                raise SweepError(f"variants[{i}] ({item['name']!r}) reads {item['early_stop_of']!r}'s cells at their "
                                 f"best validation step and trains nothing: it cannot set {own[0]!r}")
            scope["early_stop_of"] = item["early_stop_of"]
        if "audit" in item:
            if not isinstance(item["audit"], bool):
                raise SweepError(f"variants[{i}].audit must be true or false, got {item['audit']!r}")
            scope["audit"] = item["audit"]
        out.append(Variant(item["name"], {k: v for k, v in item.items() if k != "name" and k not in VARIANT_SCOPE},
                           **scope))
    names = [v.name for v in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SweepError(f"variants: name {dupes[0]!r} is used twice")
    return tuple(out)


def _rates(raw, where: str = "noise_rho") -> tuple[float, ...]:
    if not isinstance(raw, list) or not raw:
        raise SweepError(f"{where} must be a non-empty list, got {raw!r}")
    for rate in raw:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise SweepError(f"{where}: every rate must be a number in [0, 1], got {rate!r}")
    return tuple(float(r) for r in raw)


def _rates_by_type(raw, noise_types: tuple[str, ...]) -> dict[str, tuple[float, ...]]:
    """`noise_rho`: one list for every noise type, or a mapping noise type -> list (its keys are the types)."""
    if isinstance(raw, dict):
        if sorted(raw) != sorted(noise_types):
            raise SweepError(f"noise_rho: a mapping must have one entry per noise_type {list(noise_types)!r}, "
                             f"got keys {sorted(raw)!r}")
        return {t: _rates(raw[t], f"noise_rho.{t}") for t in noise_types}
    rates = _rates(raw)
    return {t: rates for t in noise_types}


def _noise_types(raw, where: str = "noise_type") -> tuple[str, ...]:
    """`noise_type`: one injector name or a list of them (ls_llm.data.noise.INJECTORS)."""
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not names or any(n not in INJECTORS for n in names) or len(set(names)) != len(names):
        raise SweepError(f"{where} must be one of {sorted(INJECTORS)} or a list of distinct ones, got {raw!r}")
    return tuple(names)


def _seeds(raw) -> tuple[int, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(s, int) and not isinstance(s, bool) for s in raw):
        raise SweepError(f"seeds must be a non-empty list of integers, got {raw!r}")
    if len(set(raw)) != len(raw):
        raise SweepError(f"seeds must be distinct, got {raw!r}")
    return tuple(raw)


_TOP_KEYS = {"name", "recipe", "output_dir", "variants", "noise_type", "noise_rho", "seeds", "data", "eval",
             "overrides", "select", "distill", "track", "report", "bases", "traces"}


# Names a sweep file used before the injected rate rho had one name (`noise_rho`, as in a recipe): each is refused,
# naming its replacement. The objectives' own `noise_rate` (their assumed epsilon) is a recipe key and stays.
_RENAMED_KEYS = {"noise_rates": "noise_rho"}  # at the top and in a variant
_RENAMED_PLACEHOLDER = "${noise_rate}"


def _check_renamed(raw: dict) -> None:
    variants = raw.get("variants") if isinstance(raw.get("variants"), list) else []
    scopes = [("", raw)] + [(f"variants[{i}].", v) for i, v in enumerate(variants) if isinstance(v, dict)]
    for where, section in scopes:
        for old, new in _RENAMED_KEYS.items():
            if old in section:
                raise SweepError(f"{where}{old}: renamed {new} (the injected noise rate rho); write {where}{new}")
    if isinstance(raw.get("distill"), dict) and "noise_rate" in raw["distill"]:
        raise SweepError("distill.noise_rate: renamed distill.noise_rho (the injected noise rate rho of the teachers)")
    found = placeholder_at(raw, "", _RENAMED_PLACEHOLDER)
    if found is not None:
        raise SweepError(f"{found}: the placeholder {_RENAMED_PLACEHOLDER} was renamed {NOISE_RHO} (the cell's "
                         f"injected noise rate rho), e.g. `noise_rate: {NOISE_RHO}`")


def load_sweep(path: str | Path) -> SweepConfig:
    """Read and check a sweep file. Paths to recipes are relative to the sweep file."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file {str(path)!r} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise SweepError(f"sweep file {str(path)!r} must be a YAML mapping, got {type(raw).__name__}")
    _check_renamed(raw)
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise SweepError(f"sweep file {str(path)!r}: unknown key {unknown[0]!r} (known: {sorted(_TOP_KEYS)})")
    for key in ("name", "recipe", "output_dir"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise SweepError(f"{key} must be a non-empty string, got {raw.get(key)!r}")
    recipe = path.parent / raw["recipe"]
    if not recipe.is_file():
        raise SweepError(f"recipe {raw['recipe']!r} (resolved to {str(recipe)!r}) does not exist")
    variants = _variants(raw.get("variants"))
    traces = read_traces(raw.get("traces")) if raw.get("traces") is not None else None
    if traces is not None and raw.get("noise_type") != REFERENCE_NOISE:
        raise SweepError(f"noise_type must be {REFERENCE_NOISE!r} with `traces:` (the share of wrong reference answers; "
                         f"the traces' own errors are the teacher's), got {raw.get('noise_type')!r}")
    noise_types = (REFERENCE_NOISE,) if traces is not None else _noise_types(raw.get("noise_type"))
    by_type = _rates_by_type(raw.get("noise_rho"), noise_types)
    distill = None
    if raw.get("distill") is not None:
        distill = typed(DistillSpec, raw["distill"], "distill")
        distill = DistillSpec(**{**distill.__dict__, "recipe": str(path.parent / distill.recipe)})
        check_distill(distill, variants)
        if distill.noise_rho not in by_type[noise_types[0]]:
            raise SweepError(f"distill.noise_rho {distill.noise_rho!r} must be one of noise_rho "
                             f"{raw.get('noise_rho')!r} (the teachers are that rate's train cells)")
    select = mapping(raw.get("select"), "select")
    check_select(select, variants)
    check_scopes(variants, by_type)
    track = typed(TrackSpec, raw["track"], "track") if raw.get("track") is not None else None
    if track is not None and (track.every < 1 or track.validation_rows < 0 or track.corrupted_rows < 0):
        raise SweepError(f"track: every must be >= 1 and the row counts >= 0, got {raw['track']!r}")
    if distill is not None and distill.match_teachers and (track is None or not track.keep_models
                                                           or len(distill.teachers) < 2):
        raise SweepError("distill.match_teachers needs two or more teachers and `track: {keep_models: true}` "
                         "(the teachers' tracked models are what is matched)")
    if any(v.early_stop_of for v in variants) and (track is None or track.validation_rows < 1):
        raise SweepError("variants: an `early_stop_of` reading needs `track:` with validation_rows > 0 (its model is "
                         "the tracked step with the best validation accuracy)")
    readings = {v.name for v in variants if v.early_stop_of}
    for family, members in select.items():
        if readings & set(members):
            raise SweepError(f"select.{family}: {sorted(readings & set(members))[0]!r} is an early-stopping reading, "
                             "whose step was chosen on validation already: it cannot be picked on validation again")
    seeds = _seeds(raw.get("seeds"))
    bases = _bases(raw.get("bases"), path) if raw.get("bases") is not None else None
    if distill is not None and distill.student_base not in ("same", "next"):
        raise SweepError(f"distill.student_base must be 'same' or 'next' (the base after the teacher's), got "
                         f"{distill.student_base!r}")
    if distill is not None and distill.student_base == "next" and (bases is None or len(bases.seeds) < 2):
        raise SweepError("distill.student_base: next needs `bases:` with two or more seeds")
    if distill is not None and bases is not None:  # the students fine-tune a base: nothing may name another model
        for where, keys in [("distill.overrides", distill.overrides), ("distill.student_alone", distill.student_alone)] \
                + [(f"distill.students[{i}]", s) for i, s in enumerate(distill.students or ())]:
            taken = sorted(set(keys or {}) & {"model_name_or_path", "model_init_from_config"})
            if taken:
                raise SweepError(f"{where}.{taken[0]}: with `bases:` each student fine-tunes a pretrained base "
                                 "(distill.student_base), so it cannot name its own model")
    if traces is not None and (bases is None or distill is not None):
        raise SweepError("traces: needs `bases:` (each seed's teacher fine-tunes its base) and no `distill:`")
    if traces is not None:
        check_trace_variants(variants, traces, track)
    if traces is not None and any(v.audit for v in variants):
        raise SweepError("traces: a variant's `audit: true` audits injected noise; the traces are audited already "
                         "(route by their columns: trace_objective_column)")
    report = typed(ReportSpec, raw.get("report"), "report")
    for key, value in report.__dict__.items():
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise SweepError(f"report.{key} must be a non-empty string, got {value!r}")
    if report.dir is not None and not _NAME_RE.match(report.dir):
        raise SweepError(f"report.dir must be a folder name ({_NAME_RE.pattern}) under output_dir, got {report.dir!r}")
    return SweepConfig(
        name=raw["name"], recipe=str(recipe), output_dir=raw["output_dir"], variants=variants,
        noise_types=noise_types, noise_rho=tuple(sorted({r for rates in by_type.values() for r in rates})),
        seeds=seeds, data=typed(DataSpec, raw.get("data"), "data"), bases=bases,
        eval=typed(EvalSpec, raw.get("eval"), "eval"), overrides=mapping(raw.get("overrides"), "overrides"),
        select=select, distill=distill, rates_by_type=by_type, track=track, report=report, traces=traces,
    )


def _bases(raw, path: Path) -> BaseSpec:
    raw = mapping(raw, "bases")
    unknown = sorted(set(raw) - {"recipe", "seeds", "data", "overrides"})
    if unknown:
        raise SweepError(f"bases: unknown key {unknown[0]!r} (known: ['data', 'overrides', 'recipe', 'seeds'])")
    if not isinstance(raw.get("recipe"), str) or not (path.parent / raw["recipe"]).is_file():
        raise SweepError(f"bases.recipe must name a recipe file (relative to the sweep file), got {raw.get('recipe')!r}")
    try:
        seeds = _seeds(raw.get("seeds"))
    except SweepError as err:
        raise SweepError(f"bases.{err}") from None
    overrides = mapping(raw.get("overrides"), "bases.overrides")
    taken = sorted(k for k in overrides if k in SET_PER_RUN or k.startswith("noise"))
    if taken:
        raise SweepError(f"bases.overrides.{taken[0]}: set by the sweep for each base (a base trains on its clean "
                         "corpus, `bases.data`, with its seed from `bases.seeds`)")
    return BaseSpec(recipe=str(path.parent / raw["recipe"]), seeds=seeds,
                    data=typed(DataSpec, raw.get("data"), "bases.data"), overrides=overrides)


def check_scopes(variants: tuple[Variant, ...], by_type: dict[str, tuple[float, ...]]) -> None:
    """A variant's scope names types and rates of the sweep, and an `init_from` source runs wherever it does."""
    for i, v in enumerate(variants):
        for noise_type in v.noise_types or ():
            if noise_type not in by_type:
                raise SweepError(f"variants[{i}].noise_types: {noise_type!r} is not a noise_type of this sweep "
                                 f"({sorted(by_type)})")
        cells = {(t, r) for t, rates in by_type.items() for r in rates if v.runs_on(t, r)}
        if not cells:
            raise SweepError(f"variants[{i}] ({v.name!r}) runs nowhere: its noise_types / noise_rho match no "
                             f"noise type and rate of this sweep {dict(by_type)}")
        if v.init_from is not None:
            source = next(s for s in variants if s.name == v.init_from)
            missing = sorted(c for c in cells if not source.runs_on(*c))
            if missing:
                raise SweepError(f"variants[{i}].init_from: {v.init_from!r} does not run at {missing[0]} (noise "
                                 f"type, rate), where {v.name!r} does")


def check_distill(spec: DistillSpec, variants: tuple[Variant, ...]) -> None:
    names = {v.name for v in variants if v.early_stop_of is None}
    missing = [t for t in spec.teachers if t not in names]
    if not spec.teachers or missing:
        raise SweepError(f"distill.teachers must name variants of this sweep, got {list(spec.teachers)!r}")
    if not Path(spec.recipe).is_file():
        raise SweepError(f"distill.recipe {spec.recipe!r} does not exist")
    if not 0.0 <= spec.noise_rho <= 1.0:
        raise SweepError(f"distill.noise_rho must be in [0, 1], got {spec.noise_rho!r}")
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
