"""`LsSFTConfig`: trl's `SFTConfig` plus the token objective, its parameters, warm-up and loss truncation.

Objective parameters carry the names the objectives take (`alpha`, `noise_rate`, `q`, `beta`, ...; the data
layer's injection rate is `noise_rho`, so the two never meet in a flat recipe) and default to
None, which means "the objective's own default". Only the ones set are passed to
`ls_llm.objectives.build_objective`, which rejects a parameter the chosen objective does not take or a value
out of range, naming it. The config builds the objective once in `__post_init__` so a bad recipe stops
before any model or dataset is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig

from ls_llm.data.weights import TraceWeights
from ls_llm.objectives import OBJECTIVES, build_objective
from ls_llm.trainers.guard import NAN_POLICIES
from ls_llm.trainers.prior import SMOOTHING_PRIORS
from ls_llm.trainers.routing import ObjectiveSpec, as_mapping, build_plan

# config field -> objective keyword. `smoothing_prior` is resolved to a tensor by the trainer ("unigram"
# needs the dataset), so it is not listed here.
OBJECTIVE_FIELDS: dict[str, str] = {
    "alpha": "alpha",
    "noise_rate": "noise_rate",
    "q": "q",
    "beta": "beta",
    "log_zero": "log_zero",
    "gamma": "gamma",
    "z_loss": "z_loss",
    "objective_chunk_size": "chunk_size",
}


def _opt(help_: str) -> float | None:
    return field(default=None, metadata={"help": help_})


@dataclass
class LsSFTConfig(SFTConfig):
    objective: str = field(default="ce", metadata={
        "help": "Token objective, a name from ls_llm.objectives.OBJECTIVES (ce, label_smoothing, ...)."})
    alpha: float | None = _opt("Smoothing mass (label_smoothing; negative = negative smoothing) or sce's CE weight.")
    # The per-token flip rate the corrections assume; the data layer's injection rate is `noise_rho`.
    noise_rate: float | None = _opt(
        "Assumed symmetric per-token label-flip rate of forward_correction / backward_correction (their noise_rate)."
    )
    q: float | None = _opt("GCE exponent in (0, 1].")
    beta: float | None = _opt("Bootstrap mixing weight, or sce's reverse-CE weight.")
    log_zero: float | None = _opt("sce: value standing in for log(0) in the reverse cross-entropy.")
    gamma: float | None = _opt("Focal-loss focusing parameter.")
    z_loss: float | None = _opt("Weight of the z-loss (logsumexp^2) regulariser, any objective.")
    objective_chunk_size: int | None = field(
        default=None, metadata={"help": "Tokens per chunk in the fused objective (memory vs. speed)."})
    smoothing_prior: str = field(default="uniform", metadata={
        "help": "Prior the smoothing mass goes to: 'uniform', 'unigram' (token frequencies of the "
        "training completions, counted once from the prepared dataset) or 'answer' (the same over the answer "
        "spans). Only for objectives taking a prior."})
    segment_objectives: dict | str | None = field(default=None, metadata={
        "help": "Objective per trace segment, e.g. {answer: {objective: label_smoothing, alpha: 0.3, "
        "smoothing_prior: answer}}; segments: answer (the final answer span), reasoning (every other "
        "trained token); unlisted segments use `objective`. See ls_llm/trainers/routing.py."})
    trace_objective_column: str | None = field(default=None, metadata={
        "help": "Dataset column whose value routes whole traces through `trace_objectives` (e.g. "
        "audit_status, written by `ls-llm audit`)."})
    trace_objectives: dict | str | None = field(default=None, metadata={
        "help": "Column value -> objective spec (may nest its own segment_objectives) or 'drop' (remove "
        "those rows), e.g. {wrong: {objective: label_smoothing, alpha: 0.5}, unparsable: drop}."})
    trace_weight_column: str | None = field(default=None, metadata={
        "help": "Dataset column holding each trace's weight, a finite number >= 0 that scales all its "
        "token losses (0 = drop it); the loss is Σ w·ℓ / Σ w·n over the global batch. See "
        "ls_llm/trainers/weights.py and docs/training.md."})
    trace_weight_from: dict | str | None = field(default=None, metadata={
        "help": "A weight derived from a column: {column: C} (its value), {column: C, threshold: t} (1 "
        "if value >= t else 0) or {column: C, map: {value: weight, ...}, default: w}; instead of "
        "trace_weight_column. See ls_llm/data/weights.py."})
    objective_warmup_steps: int = field(default=0, metadata={
        "help": "Optimizer steps of plain ce before switching to `objective` (needed by negative "
        "smoothing at high noise)."})
    loss_truncation: float = field(default=0.0, metadata={
        "help": "Loss truncation (Kang & Hashimoto 2020): fraction c in [0, 1) of the sequences of "
        "each micro-batch with the highest mean token loss that are dropped."})
    loss_truncation_warmup_steps: int = field(
        default=0, metadata={"help": "Optimizer steps trained on every sequence before truncation starts."})
    # transformers 5 dropped TrainingArguments.overwrite_output_dir; a finished run is refused without it.
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Train into an output_dir that already holds a trained model or checkpoints, deleting "
        "its checkpoints first (resuming with resume_from_checkpoint is not an overwrite)."})

    nan_policy: str = field(default="stop", metadata={
        "help": "What a non-finite loss or gradient norm does: 'stop' (stop with one line naming the step, "
        "exit 2; the last checkpoint is kept) or 'skip_step' (skip that optimizer step and go on). See "
        "ls_llm/trainers/guard.py."})
    # transformers' filter replaces a NaN/inf micro-batch loss by the window's running mean (0 at a window's start),
    # so a diverged run logged `loss 0.0000`; a logged loss here is what was computed (see nan_policy).
    logging_nan_inf_filter: bool = field(
        default=False, metadata={"help": "Hide non-finite losses in the logs (transformers' filter); off."})

    def __post_init__(self):
        super().__post_init__()

        if self.nan_policy not in NAN_POLICIES:
            raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {self.nan_policy!r}")
        if self.assistant_only_loss and self.completion_only_loss is None:
            # The loader emits prompt/completion rows, on which trl's default is completion-only: that would drop
            # the earlier assistant turns of a multi-turn row. Assistant-only means every assistant turn.
            self.completion_only_loss = False
        self._check_ranges()
        self._check_conflicts()
        for name in ("objective_warmup_steps", "loss_truncation_warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.loss_truncation < 1.0:
            raise ValueError(f"loss_truncation must be in [0, 1), got {self.loss_truncation!r}")
        if self.smoothing_prior not in SMOOTHING_PRIORS:
            raise ValueError(f"smoothing_prior must be one of {tuple(SMOOTHING_PRIORS)}, got {self.smoothing_prior!r}")
        self._check_objective()

        self.segment_objectives = as_mapping("segment_objectives", self.segment_objectives)
        self.trace_objectives = as_mapping("trace_objectives", self.trace_objectives)
        self.trace_weight_from = as_mapping("trace_weight_from", self.trace_weight_from)
        if self.trace_weights() is not None and self.packing:
            raise ValueError("packing: true with trace_weight_column / trace_weight_from: a trace's weight is per "
                             "row, which packing merges; set packing: false")
        if self.routing_plan() is not None and self.packing:
            raise ValueError("packing: true with segment_objectives / trace_objectives / smoothing_prior: answer: "
                             "routing needs each row's segments, which packing drops; set packing: false")

    def routing_plan(self):
        """The objectives routed by segment and trace (trainers/routing.py), or None when nothing is routed."""
        params = {k: v for k, v in self.objective_kwargs().items() if k != "chunk_size"}
        default = ObjectiveSpec(self.objective, params, self.smoothing_prior)
        return build_plan(default, self.segment_objectives, self.trace_objective_column, self.trace_objectives)

    def trace_weights(self):
        """The per-trace weights the recipe asks for (a data.weights.TraceWeights), or None."""
        return TraceWeights.from_recipe(self.trace_weight_column, self.trace_weight_from)

    def _check_ranges(self) -> None:
        # transformers accepts these and fails mid-training (or never trains); name them before any loading.
        positive = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"max_length must be >= 1 (or null for no truncation), got {self.max_length!r}")
        if not self.learning_rate >= 0:  # also catches NaN
            raise ValueError(f"learning_rate must be >= 0, got {self.learning_rate!r}")
        if self.save_steps is not None and self.save_steps <= 0:
            raise ValueError(f"save_steps must be > 0, got {self.save_steps!r}")

    def _check_conflicts(self) -> None:
        # Two ways of asking for the same thing would silently stack (trl's LabelSmoother runs a second,
        # full-logits forward); refuse and say which knob to use.
        if self.label_smoothing_factor:
            raise ValueError(
                f"label_smoothing_factor={self.label_smoothing_factor!r} is not used by LsSFTTrainer: set "
                f"`objective: label_smoothing` and `alpha: {self.label_smoothing_factor}` instead")
        if self.loss_type != "nll":
            raise ValueError(
                f"loss_type={self.loss_type!r} is trl's loss switch, not used by LsSFTTrainer: set "
                f"`objective: {self.loss_type}` instead")

    def objective_kwargs(self) -> dict:
        """The objective parameters that were set, under the objective's keyword names."""
        return {kw: getattr(self, name) for name, kw in OBJECTIVE_FIELDS.items() if getattr(self, name) is not None}

    def _check_objective(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {self.objective!r}")
        takes_prior = "prior" in OBJECTIVES[self.objective].PARAMS
        if self.smoothing_prior != "uniform" and not takes_prior:
            raise ValueError(
                f"smoothing_prior={self.smoothing_prior!r} needs an objective that takes a prior; "
                f"objective {self.objective!r} does not")
        # Building it once validates names and ranges; the trainer builds the real one (with the prior).
        try:
            build_objective(self.objective, **self.objective_kwargs())
        except ValueError as err:
            renamed = [f for f, kw in OBJECTIVE_FIELDS.items() if f != kw and kw in str(err) and getattr(self, f) is not None]
            raise ValueError(f"{err}" + (f" (recipe field {renamed[0]!r})" if renamed else "")) from err
