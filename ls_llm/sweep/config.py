"""The sweep file: a typed config read from YAML, and its expansion into cells.

A cell is one training (or distillation) run plus its evaluation: one objective variant x noise type x
noise rate x seed. The sweep file names a base recipe (any `ls-llm train` recipe); a variant is a set of
recipe overrides, so a cell is exactly `ls-llm train BASE.yaml --key value ...` and nothing the training
path does not already accept can sneak in. Unknown keys fail, naming the key.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

_NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")


class SweepError(ValueError):
    """A sweep file that cannot be used; the message names the field and the value."""


# The injected noise rate rho is `noise_rho` throughout a sweep (file keys, cells, results, CSV columns), as in a
# recipe; an objective's assumed flip rate epsilon is its own `noise_rate`. A variant's recipe values may name the
# cell's rho: `noise_rate: ${noise_rho}` (forward correction with epsilon = rho); the cell's rho replaces it, as a
# number where the value is the placeholder alone.
NOISE_RHO = "${noise_rho}"
# Keys of a variant that are not recipe keys: which noise types / rates the variant runs on (default: all);
# `init_from`: an earlier variant whose final model (same noise type, rate and seed) this one continues from;
# `audit: true`: the noisy training set is audited first (`ls_llm.data.audit`, math-verify against the reference
# answer) and trained with its verdicts in the `audit_status` column (for `trace_objectives`, e.g. `drop`).
# `compare_with`: the variant its gains are reported against (default: the sweep's first variant).
# `early_stop_of`: the variant is no run of its own but a reading of another variant's cells: the model of their
# tracked step with the best validation accuracy (the practitioner's early stopping; needs `track:`).
VARIANT_SCOPE = ("noise_types", "noise_rho", "init_from", "audit", "compare_with", "early_stop_of")


@dataclass(frozen=True)
class Variant:
    """One objective variant: a label for tables and plots, the recipe keys it sets, and optionally the noise
    types and rates it runs on (`noise_types`, `noise_rho` in the sweep file; None: every one)."""

    name: str
    overrides: dict
    noise_types: tuple[str, ...] | None = None
    noise_rho: tuple[float, ...] | None = None
    init_from: str | None = None
    audit: bool = False
    compare_with: str | None = None
    early_stop_of: str | None = None

    def runs_on(self, noise_type: str, rate: float) -> bool:
        return ((self.noise_types is None or noise_type in self.noise_types)
                and (self.noise_rho is None or rate in self.noise_rho))

    def recipe_keys(self, rate: float) -> dict:
        """The overrides with `${noise_rho}` replaced by `rate` (at any depth)."""
        return _substitute(self.overrides, rate)


def _substitute(value, rate: float):
    if isinstance(value, dict):
        return {k: _substitute(v, rate) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, rate) for v in value]
    if value == NOISE_RHO:
        return rate
    if isinstance(value, str) and NOISE_RHO in value:
        return value.replace(NOISE_RHO, f"{rate:g}")
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
    think: bool = True  # the steps inside <think>...</think>; false: bare lines (a format a fine-tuning set can add)

    def settings(self) -> dict:
        """The settings as the data stamp and the cells' fingerprints record them: `think` only where it is not the
        default, so the data and cells of sweeps written before it existed stay theirs."""
        out = asdict(self)
        if out["think"]:
            del out["think"]
        return out


@dataclass(frozen=True)
class BaseSpec:
    """Pretrained bases: `ls-llm train RECIPE` on a synthetic corpus of its own (`data`), once per base seed
    (`seeds`); the sweep's train cells of the i-th sweep seed fine-tune the base of seed `seeds[i % len(seeds)]`
    (its final model is their `model_name_or_path`). `overrides`: recipe keys of the base runs."""

    recipe: str
    seeds: tuple[int, ...]
    data: DataSpec = DataSpec()
    overrides: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TracesSpec:
    """The teacher loop (`traces:`): per sweep seed, a teacher (the seed's base fine-tuned by `ls-llm train` with the
    sweep's recipe and `overrides` on a clean set of its own, `data`'s train split) writes `k` traces per training
    problem (`ls-llm generate`'s library path, sampling at `temperature` / `top_p`); the traces are audited by every
    detector (ls_llm.sweep.teacher_loop) under each reference-error rate of the sweep's `reference` noise axis, and
    the train cells train on them. `verifiers`: simulated verifiers, name -> {recall, false_positive_rate}, that flag
    a wrong trace with probability recall and a right one with the false-positive rate. `loss_share`: the share of
    highest-loss traces the small-loss detector flags (None: the share the reference audit flags at that rate), by
    `loss_column` (`loss_mean`: the completion's mean token loss; `answer_loss_mean`: the answer span's) under
    `loss_model` (`base`: the seed's base; `teacher`: the teacher that sampled them, whose unlikely samples are the
    suspects)."""

    data: DataSpec
    k: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    overrides: dict = field(default_factory=dict)
    verifiers: dict = field(default_factory=dict)
    loss_share: float | None = None
    loss_model: str = "base"
    loss_column: str = "loss_mean"


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
    `memorisation_note` is added to the memorisation tables' headings (e.g. "the pre-registered readings").
    `dir`: the report's folder under output_dir (default `report`): sweeps that share an output folder (and so its
    pretrained bases) each name their own."""

    endpoint: str | None = None
    student_endpoint: str | None = None
    memorisation_note: str | None = None
    dir: str | None = None

    def folder(self, root: Path) -> Path:
        return root / (self.dir or "report")


@dataclass(frozen=True)
class DistillSpec:
    """Teachers are finished train cells (variant `teachers`, at `noise_rho`, same seed); each is
    distilled into a student by `ls-llm <command> RECIPE --<teacher_key> TEACHER_DIR ...`.

    `student_alone` (recipe keys over the sweep's base train recipe, e.g. the student's model and steps)
    adds, per seed, the student trained by `ls-llm train` on the same noisy traces without a teacher: the
    row that says whether a teacher helps at all."""

    recipe: str
    teachers: tuple[str, ...]
    noise_rho: float
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
    # With the sweep's `bases`: the pretrained base each student (and the student alone) fine-tunes: `same` as its
    # teacher's, or `next` (the base after the teacher's in bases.seeds, cyclic: a student that shares no
    # pretraining with its teacher).
    student_base: str = "same"

    def student_list(self) -> list[dict]:
        return list(self.students) if self.students is not None else [{"name": t, "teacher": t} for t in self.teachers]


STUDENT_ALONE = "alone"  # the variant label of the student-alone cells


@dataclass(frozen=True)
class Cell:
    kind: str  # "train", "distill", "student" (the student trained alone), "base" (a pretrained base), "teacher"
    # (the teacher loop's teacher) or "traces" (its generated and audited traces)
    variant: str
    noise_type: str
    noise_rho: float
    seed: int
    teacher: str | None = None  # cell id of the teacher (distill cells)
    source: str | None = None  # cell id of the model this train cell continues from (a variant's `init_from`)
    also_needs: tuple[str, ...] = ()  # further cells that must finish first (the other teachers, when matched)
    base: str | None = None  # cell id of the pretrained base this train cell fine-tunes (the sweep's `bases`)
    traces: str | None = None  # cell id of the teacher's audited traces this train cell trains on (`traces:`)

    @property
    def needs(self) -> tuple[str, ...]:
        """Cell ids that must have finished before this one runs."""
        return tuple(c for c in (self.teacher, self.source, self.base, self.traces) if c) + self.also_needs

    @property
    def cell_id(self) -> str:
        if self.kind in SEED_KINDS:
            return f"{self.kind}-s{self.seed}"
        return f"{self.kind}-{self.variant}-{self.noise_type}{self.noise_rho:g}-s{self.seed}"


BASE_KIND = "base"
TEACHER_KIND, TRACES_KIND = "teacher", "traces"
SEED_KINDS = (BASE_KIND, TEACHER_KIND, TRACES_KIND)  # one cell per seed, named `<kind>-s<seed>`
# The noise axis of a sweep with `traces:`: the share of training problems whose reference answer is wrong (the
# traces' own errors are the teacher's; nothing is injected into them).
REFERENCE_NOISE = "reference"


def base_cell(seed: int) -> Cell:
    """The cell that pretrains the base of seed `seed` (clean data: no noise type, rate 0)."""
    return Cell(BASE_KIND, "base", "none", 0.0, seed)


@dataclass(frozen=True)
class SweepConfig:
    name: str
    recipe: str  # base train recipe, resolved against the sweep file's folder
    output_dir: str
    variants: tuple[Variant, ...]
    noise_types: tuple[str, ...]
    noise_rho: tuple[float, ...]  # every rate of any noise type, sorted (tables' columns)
    seeds: tuple[int, ...]
    data: DataSpec = DataSpec()
    eval: EvalSpec = EvalSpec()
    rates_by_type: dict = field(default_factory=dict)  # noise type -> its rates (default: noise_rho for all)
    track: TrackSpec | None = None
    overrides: dict = field(default_factory=dict)  # recipe keys every train cell sets
    select: dict = field(default_factory=dict)  # family label -> variants, one picked on validation
    distill: DistillSpec | None = None
    report: ReportSpec = ReportSpec()
    bases: BaseSpec | None = None
    traces: TracesSpec | None = None

    def base_of(self, seed: int) -> Cell | None:
        """The base the train cells of sweep seed `seed` fine-tune (None without `bases`)."""
        if self.bases is None:
            return None
        return base_cell(self.bases.seeds[self.seeds.index(seed) % len(self.bases.seeds)])

    def student_base_of(self, seed: int) -> str | None:
        """The base the students of sweep seed `seed` fine-tune (`distill.student_base`); None without `bases`."""
        if self.bases is None:
            return None
        shift = 1 if self.distill.student_base == "next" else 0
        seeds = self.bases.seeds
        return base_cell(seeds[(self.seeds.index(seed) + shift) % len(seeds)]).cell_id

    def base_cells(self) -> list[Cell]:
        return [base_cell(s) for s in self.bases.seeds] if self.bases is not None else []

    def loop_cells(self, seed: int) -> list[Cell]:
        """The teacher loop's cells of a seed (`traces:`): its teacher, then the teacher's audited traces."""
        if self.traces is None:
            return []
        base = self.base_of(seed).cell_id
        teacher = Cell(TEACHER_KIND, TEACHER_KIND, "none", 0.0, seed, base=base)
        return [teacher, Cell(TRACES_KIND, TRACES_KIND, "none", 0.0, seed, teacher=teacher.cell_id, base=base)]

    def train_cells(self, seeds: tuple[int, ...] | None = None) -> list[Cell]:
        return [
            Cell("train", v.name, noise_type, rate, seed,
                 source=Cell("train", v.init_from, noise_type, rate, seed).cell_id if v.init_from else None,
                 base=None if v.init_from or self.bases is None else self.base_of(seed).cell_id,
                 traces=Cell(TRACES_KIND, TRACES_KIND, "none", 0.0, seed).cell_id if self.traces else None)
            for seed in (self.seeds if seeds is None else seeds)
            for noise_type in self.noise_types
            for v in self.variants
            for rate in self.rates_of(noise_type)
            if v.runs_on(noise_type, rate) and v.early_stop_of is None
        ]

    def rates_of(self, noise_type: str) -> tuple[float, ...]:
        return tuple(self.rates_by_type.get(noise_type, self.noise_rho))

    def distill_cells(self, seeds: tuple[int, ...] | None = None) -> list[Cell]:
        if self.distill is None:
            return []
        spec, noise_type = self.distill, self.noise_types[0]  # teachers come from the first noise type
        cells = []
        for seed in self.seeds if seeds is None else seeds:
            teacher_ids = {t: Cell("train", t, noise_type, spec.noise_rho, seed).cell_id for t in spec.teachers}
            base = self.student_base_of(seed)
            for student in spec.student_list():
                others = tuple(i for t, i in teacher_ids.items() if t != student["teacher"]) if spec.match_teachers else ()
                cells.append(Cell("distill", student["name"], noise_type, spec.noise_rho, seed,
                                  teacher=teacher_ids[student["teacher"]], also_needs=others, base=base))
            if spec.student_alone is not None:
                cells.append(Cell("student", STUDENT_ALONE, noise_type, spec.noise_rho, seed, base=base))
        return cells

    def cells(self) -> list[Cell]:
        """Every cell: the pretrained bases first, then seed by seed (a sweep cut short still has whole seeds): the
        seed's teacher loop, its train cells, then its distillation cells (which need their teachers)."""
        return self.base_cells() + [c for seed in self.seeds
                                    for c in self.loop_cells(seed) + self.train_cells((seed,)) + self.distill_cells((seed,))]

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def references(self) -> dict[str, str]:
        """variant -> the variant its gains are reported against (`compare_with`, else the first variant)."""
        return {v.name: v.compare_with or self.variants[0].name for v in self.variants}

    def expected_rates(self) -> dict[tuple[str, str], tuple[float, ...]]:
        """(variant, noise type) -> the rates the sweep runs the variant at (an early-stopping reading: its source's)."""
        return {(v.name, t): tuple(r for r in self.rates_of(t) if self.variant(v.early_stop_of or v.name).runs_on(t, r))
                for v in self.variants for t in self.noise_types}

    def early_readings(self, variant: str) -> list[str]:
        """The variants that read `variant`'s cells at their best tracked validation step."""
        return [v.name for v in self.variants if v.early_stop_of == variant]
