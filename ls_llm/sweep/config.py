"""The sweep file: a typed config read from YAML, and its expansion into cells.

A cell is one training (or distillation) run plus its evaluation: one objective variant x noise type x
noise rate x seed. The sweep file names a base recipe (any `ls-llm train` recipe); a variant is a set of
recipe overrides, so a cell is exactly `ls-llm train BASE.yaml --key value ...` and nothing the training
path does not already accept can sneak in. Unknown keys fail, naming the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

_NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")


class SweepError(ValueError):
    """A sweep file that cannot be used; the message names the field and the value."""


# A variant's recipe values may name the cell's noise rate: `noise_rate: ${noise_rate}` (forward correction with
# epsilon = rho); the cell's rate replaces it, as a number where the value is the placeholder alone.
NOISE_RATE = "${noise_rate}"
# Keys of a variant that are not recipe keys: which noise types / rates the variant runs on (default: all);
# `init_from`: an earlier variant whose final model (same noise type, rate and seed) this one continues from;
# `audit: true`: the noisy training set is audited first (`ls_llm.data.audit`, math-verify against the reference
# answer) and trained with its verdicts in the `audit_status` column (for `trace_objectives`, e.g. `drop`).
# `compare_with`: the variant its gains are reported against (default: the sweep's first variant).
VARIANT_SCOPE = ("noise_types", "noise_rates", "init_from", "audit", "compare_with")


@dataclass(frozen=True)
class Variant:
    """One objective variant: a label for tables and plots, the recipe keys it sets, and optionally the noise
    types and rates it runs on (`noise_types`, `noise_rates` in the sweep file; None: every one)."""

    name: str
    overrides: dict
    noise_types: tuple[str, ...] | None = None
    noise_rates: tuple[float, ...] | None = None
    init_from: str | None = None
    audit: bool = False
    compare_with: str | None = None

    def runs_on(self, noise_type: str, rate: float) -> bool:
        return ((self.noise_types is None or noise_type in self.noise_types)
                and (self.noise_rates is None or rate in self.noise_rates))

    def recipe_keys(self, rate: float) -> dict:
        """The overrides with `${noise_rate}` replaced by `rate` (at any depth)."""
        return _substitute(self.overrides, rate)


def _substitute(value, rate: float):
    if isinstance(value, dict):
        return {k: _substitute(v, rate) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, rate) for v in value]
    if value == NOISE_RATE:
        return rate
    if isinstance(value, str) and NOISE_RATE in value:
        return value.replace(NOISE_RATE, f"{rate:g}")
    return value


@dataclass(frozen=True)
class DataSpec:
    """The synthetic task (ls_llm.data.synthetic) the sweep writes once and every cell reads."""

    train_size: int = 3000
    validation_size: int = 200
    test_size: int = 200
    seed: int = 0
    min_steps: int = 1
    max_steps: int = 2
    max_operand: int = 9
    max_multiplier: int = 3
    ops: tuple[str, ...] = ("add", "sub")
    split_by: str = "question"  # or "expression": no test computation appears in train (ls_llm.data.synthetic)


@dataclass(frozen=True)
class EvalSpec:
    """Greedy decoding through ls_llm.evaluation (hf backend); ECE over `ece_bins` equal-width bins."""

    max_gen_toks: int = 48
    batch_size: int = 64
    ece_bins: int = 10


@dataclass(frozen=True)
class TrackSpec:
    """Measured during training (ls_llm.sweep.tracking) every `every` steps and at the end: accuracy on the first
    `validation_rows` validation problems and, on the first `corrupted_rows` corrupted training rows, the share of
    greedy answers equal to the injected answer vs the true one (memorisation)."""

    every: int = 500
    validation_rows: int = 200
    corrupted_rows: int = 200
    keep_models: bool = False  # save the model at every tracked step (cells/<id>/tracked/step-N), for matching


@dataclass(frozen=True)
class ReportSpec:
    """A study's wording for the report (ls_llm.sweep.report), whose own headings are neutral: `endpoint` labels the
    gain-over-reference table (e.g. "Primary endpoint"), `student_endpoint` the students' paired table, and
    `memorisation_note` is added to the memorisation tables' headings (e.g. "the pre-registered readings")."""

    endpoint: str | None = None
    student_endpoint: str | None = None
    memorisation_note: str | None = None


@dataclass(frozen=True)
class DistillSpec:
    """Teachers are finished train cells (variant `teachers`, at `noise_rate`, same seed); each is
    distilled into a student by `ls-llm <command> RECIPE --<teacher_key> TEACHER_DIR ...`.

    `student_alone` (recipe keys over the sweep's base train recipe, e.g. the student's model and steps)
    adds, per seed, the student trained by `ls-llm train` on the same noisy traces without a teacher: the
    row that says whether a teacher helps at all."""

    recipe: str
    teachers: tuple[str, ...]
    noise_rate: float
    command: str = "distill"
    teacher_key: str = "teacher_model_name_or_path"
    overrides: dict = field(default_factory=dict)
    student_alone: dict | None = None
    # Students: [{name, teacher, <recipe keys>, cache_top_k?}, ...]; default one per teacher, named after it.
    # `cache_top_k: k`: the teacher runs once through `ls-llm distill-cache` (top-k log-probs) and the student
    # trains from that cache. `match_teachers`: each teacher is the final or the tracked model chosen by
    # ls_llm.sweep.matching (teachers of nearly equal validation accuracy; needs `track.keep_models`).
    students: tuple[dict, ...] | None = None
    match_teachers: bool = False

    def student_list(self) -> list[dict]:
        return list(self.students) if self.students is not None else [{"name": t, "teacher": t} for t in self.teachers]


STUDENT_ALONE = "alone"  # the variant label of the student-alone cells


@dataclass(frozen=True)
class Cell:
    kind: str  # "train", "distill" or "student" (the student trained alone)
    variant: str
    noise_type: str
    noise_rate: float
    seed: int
    teacher: str | None = None  # cell id of the teacher (distill cells)
    source: str | None = None  # cell id of the model this train cell continues from (a variant's `init_from`)
    also_needs: tuple[str, ...] = ()  # further cells that must finish first (the other teachers, when matched)

    @property
    def needs(self) -> tuple[str, ...]:
        """Cell ids that must have finished before this one runs."""
        return tuple(c for c in (self.teacher, self.source) if c) + self.also_needs

    @property
    def cell_id(self) -> str:
        return f"{self.kind}-{self.variant}-{self.noise_type}{self.noise_rate:g}-s{self.seed}"


@dataclass(frozen=True)
class SweepConfig:
    name: str
    recipe: str  # base train recipe, resolved against the sweep file's folder
    output_dir: str
    variants: tuple[Variant, ...]
    noise_types: tuple[str, ...]
    noise_rates: tuple[float, ...]  # every rate of any noise type, sorted (tables' columns)
    seeds: tuple[int, ...]
    data: DataSpec = DataSpec()
    eval: EvalSpec = EvalSpec()
    rates_by_type: dict = field(default_factory=dict)  # noise type -> its rates (default: noise_rates for all)
    track: TrackSpec | None = None
    overrides: dict = field(default_factory=dict)  # recipe keys every train cell sets
    select: dict = field(default_factory=dict)  # family label -> variants, one picked on validation
    distill: DistillSpec | None = None
    report: ReportSpec = ReportSpec()

    def train_cells(self, seeds: tuple[int, ...] | None = None) -> list[Cell]:
        return [
            Cell("train", v.name, noise_type, rate, seed,
                 source=Cell("train", v.init_from, noise_type, rate, seed).cell_id if v.init_from else None)
            for seed in (self.seeds if seeds is None else seeds)
            for noise_type in self.noise_types
            for v in self.variants
            for rate in self.rates_of(noise_type)
            if v.runs_on(noise_type, rate)
        ]

    def rates_of(self, noise_type: str) -> tuple[float, ...]:
        return tuple(self.rates_by_type.get(noise_type, self.noise_rates))

    def distill_cells(self, seeds: tuple[int, ...] | None = None) -> list[Cell]:
        if self.distill is None:
            return []
        spec, noise_type = self.distill, self.noise_types[0]  # teachers come from the first noise type
        cells = []
        for seed in self.seeds if seeds is None else seeds:
            teacher_ids = {t: Cell("train", t, noise_type, spec.noise_rate, seed).cell_id for t in spec.teachers}
            for student in spec.student_list():
                others = tuple(i for t, i in teacher_ids.items() if t != student["teacher"]) if spec.match_teachers else ()
                cells.append(Cell("distill", student["name"], noise_type, spec.noise_rate, seed,
                                  teacher=teacher_ids[student["teacher"]], also_needs=others))
            if spec.student_alone is not None:
                cells.append(Cell("student", STUDENT_ALONE, noise_type, spec.noise_rate, seed))
        return cells

    def cells(self) -> list[Cell]:
        """Every cell, seed by seed (a sweep cut short still has whole seeds), each seed's train cells
        before its distillation cells (which need their teachers)."""
        return [c for seed in self.seeds for c in self.train_cells((seed,)) + self.distill_cells((seed,))]

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def references(self) -> dict[str, str]:
        """variant -> the variant its gains are reported against (`compare_with`, else the first variant)."""
        return {v.name: v.compare_with or self.variants[0].name for v in self.variants}

    def expected_rates(self) -> dict[tuple[str, str], tuple[float, ...]]:
        """(variant, noise type) -> the rates the sweep runs the variant at."""
        return {(v.name, t): tuple(r for r in self.rates_of(t) if v.runs_on(t, r))
                for v in self.variants for t in self.noise_types}


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SweepError(f"{where} must be a mapping, got {value!r}")
    return value


def _typed(cls, raw, where: str):
    known = {f.name for f in fields(cls)}
    raw = _mapping(raw, where)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SweepError(f"{where}: unknown key {unknown[0]!r} (known: {sorted(known)})")
    if "ops" in raw:
        raw = {**raw, "ops": tuple(raw["ops"])}
    for key in ("teachers", "students"):
        if isinstance(raw.get(key), list):
            raw = {**raw, key: tuple(raw[key])}
    return cls(**raw)


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
        for key in ("noise_types", "noise_rates"):
            if key in item:
                where = f"variants[{i}].{key}"
                scope[key] = _noise_types(item[key], where) if key == "noise_types" else _rates(item[key], where)
        if "init_from" in item:
            earlier = [v.name for v in out if v.init_from is None]
            if item["init_from"] not in earlier:
                raise SweepError(f"variants[{i}].init_from must name an earlier variant without init_from "
                                 f"({earlier}), got {item['init_from']!r}")
            scope["init_from"] = item["init_from"]
        if "compare_with" in item:
            if item["compare_with"] not in [v.name for v in out]:
                raise SweepError(f"variants[{i}].compare_with must name an earlier variant, got {item['compare_with']!r}")
            scope["compare_with"] = item["compare_with"]
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


def _rates(raw, where: str = "noise_rates") -> tuple[float, ...]:
    if not isinstance(raw, list) or not raw:
        raise SweepError(f"{where} must be a non-empty list, got {raw!r}")
    for rate in raw:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
            raise SweepError(f"{where}: every rate must be a number in [0, 1], got {rate!r}")
    return tuple(float(r) for r in raw)


def _rates_by_type(raw, noise_types: tuple[str, ...]) -> dict[str, tuple[float, ...]]:
    """`noise_rates`: one list for every noise type, or a mapping noise type -> list (its keys are the types)."""
    if isinstance(raw, dict):
        if sorted(raw) != sorted(noise_types):
            raise SweepError(f"noise_rates: a mapping must have one entry per noise_type {list(noise_types)!r}, "
                             f"got keys {sorted(raw)!r}")
        return {t: _rates(raw[t], f"noise_rates.{t}") for t in noise_types}
    rates = _rates(raw)
    return {t: rates for t in noise_types}


def _noise_types(raw, where: str = "noise_type") -> tuple[str, ...]:
    """`noise_type`: one injector name or a list of them (ls_llm.data.noise.INJECTORS)."""
    from ls_llm.data.noise import INJECTORS

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


_TOP_KEYS = {"name", "recipe", "output_dir", "variants", "noise_type", "noise_rates", "seeds", "data", "eval",
             "overrides", "select", "distill", "track", "report"}


def load_sweep(path: str | Path) -> SweepConfig:
    """Read and check a sweep file. Paths to recipes are relative to the sweep file."""
    from ls_llm.sweep.checks import check_distill, check_scopes, check_select

    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file {str(path)!r} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise SweepError(f"sweep file {str(path)!r} must be a YAML mapping, got {type(raw).__name__}")
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
    distill = None
    if raw.get("distill") is not None:
        distill = _typed(DistillSpec, raw["distill"], "distill")
        distill = DistillSpec(**{**distill.__dict__, "recipe": str(path.parent / distill.recipe)})
        check_distill(distill, variants)
        if distill.noise_rate not in _rates_by_type(raw.get("noise_rates"), _noise_types(raw.get("noise_type")))[
                _noise_types(raw.get("noise_type"))[0]]:
            raise SweepError(f"distill.noise_rate {distill.noise_rate!r} must be one of noise_rates "
                             f"{raw.get('noise_rates')!r} (the teachers are that rate's train cells)")
    select = _mapping(raw.get("select"), "select")
    check_select(select, variants)
    noise_types = _noise_types(raw.get("noise_type"))
    by_type = _rates_by_type(raw.get("noise_rates"), noise_types)
    check_scopes(variants, by_type)
    track = _typed(TrackSpec, raw["track"], "track") if raw.get("track") is not None else None
    if track is not None and (track.every < 1 or track.validation_rows < 0 or track.corrupted_rows < 0):
        raise SweepError(f"track: every must be >= 1 and the row counts >= 0, got {raw['track']!r}")
    if distill is not None and distill.match_teachers and (track is None or not track.keep_models
                                                           or len(distill.teachers) < 2):
        raise SweepError("distill.match_teachers needs two or more teachers and `track: {keep_models: true}` "
                         "(the teachers' tracked models are what is matched)")
    report = _typed(ReportSpec, raw.get("report"), "report")
    for key, value in report.__dict__.items():
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise SweepError(f"report.{key} must be a non-empty string, got {value!r}")
    return SweepConfig(
        name=raw["name"], recipe=str(recipe), output_dir=raw["output_dir"], variants=variants,
        noise_types=noise_types, noise_rates=tuple(sorted({r for rates in by_type.values() for r in rates})),
        seeds=_seeds(raw.get("seeds")), data=_typed(DataSpec, raw.get("data"), "data"),
        eval=_typed(EvalSpec, raw.get("eval"), "eval"), overrides=_mapping(raw.get("overrides"), "overrides"),
        select=select, distill=distill, rates_by_type=by_type, track=track, report=report,
    )
