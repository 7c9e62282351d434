"""The `traces:` section of a sweep file (the teacher loop, ls_llm.sweep.teacher_loop) and the checks it puts on the
sweep's variants: they route and weight by the traces' own columns and inject nothing."""

from __future__ import annotations

from ls_llm.data.detectors import LOSS_FLAG_COLUMNS
from ls_llm.sweep.config import _NAME_RE, NOISE_RHO, DataSpec, SweepError, TracesSpec, TrackSpec, Variant
from ls_llm.sweep.load_fields import SET_PER_RUN, mapping, placeholder_at, typed
from ls_llm.sweep.teacher_loop import trace_columns


def read_traces(raw) -> TracesSpec:
    """The `traces:` section, checked; SweepError naming the field and the value."""
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
        raise SweepError(f"traces must be a mapping with a `data:` mapping (the teachers' clean set), got {raw!r}")
    spec = typed(TracesSpec, raw, "traces")
    spec = TracesSpec(**{**spec.__dict__, "data": typed(DataSpec, spec.data, "traces.data"),
                         "overrides": mapping(spec.overrides, "traces.overrides"),
                         "verifiers": mapping(spec.verifiers, "traces.verifiers")})
    if isinstance(spec.k, bool) or not isinstance(spec.k, int) or spec.k < 2:
        raise SweepError(f"traces.k must be an integer >= 2 (consensus needs two traces of a problem), got {spec.k!r}")
    for key in ("temperature", "top_p"):
        value = getattr(spec, key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= (1 if key == "top_p" else 10):
            raise SweepError(f"traces.{key} must be a number in (0, {1 if key == 'top_p' else 10}], got {value!r}")
    share = spec.loss_share
    if share is not None and (isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < 1):
        raise SweepError(f"traces.loss_share must be a fraction in (0, 1) or absent, got {share!r}")
    if spec.loss_model not in ("base", "teacher"):
        raise SweepError(f"traces.loss_model must be 'base' or 'teacher', got {spec.loss_model!r}")
    if spec.loss_column not in LOSS_FLAG_COLUMNS:
        raise SweepError(f"traces.loss_column must be one of {list(LOSS_FLAG_COLUMNS)}, got {spec.loss_column!r}")
    for name, rates in spec.verifiers.items():
        if not isinstance(name, str) or not _NAME_RE.match(name) or not isinstance(rates, dict) \
                or sorted(rates) != ["false_positive_rate", "recall"] \
                or any(isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1 for v in rates.values()):
            raise SweepError(f"traces.verifiers.{name}: must be {{recall: r, false_positive_rate: f}} with r, f in "
                             f"[0, 1] (and a name matching {_NAME_RE.pattern}), got {rates!r}")
    taken = sorted(k for k in spec.overrides if k in SET_PER_RUN + _MODEL_KEYS or k.startswith("noise"))
    if taken:
        raise SweepError(f"traces.overrides.{taken[0]}: set by the sweep for each teacher (it fine-tunes the seed's "
                         "base on `traces.data` with the sweep seed)")
    return spec


_MODEL_KEYS = ("model_name_or_path", "model_init_from_config")


def check_trace_variants(variants: tuple[Variant, ...], spec: TracesSpec, track: TrackSpec | None) -> None:
    """A traces sweep's variants route and weight by the traces' own columns, inject nothing, and `${noise_rho}` (the
    reference-error rate there) is not an objective's noise rate; no memorisation can be tracked (no injected rows)."""
    columns = trace_columns(spec)
    for i, v in enumerate(variants):
        where = f"variants[{i}] ({v.name!r})"
        noise = sorted(k for k in v.overrides if k.startswith("noise_"))
        if noise:
            raise SweepError(f"{where}.{noise[0]}: a traces sweep injects nothing (the traces' errors are the "
                             "teacher's; its noise_rho is the reference-error rate)")
        if placeholder_at(v.overrides, "", NOISE_RHO) is not None:
            raise SweepError(f"{where}: {NOISE_RHO} is the reference-error rate in a traces sweep, not a noise rate of "
                             "the traces: write the number")
        column = v.overrides.get("trace_objective_column")
        if column is not None:
            if column not in columns:
                raise SweepError(f"{where}.trace_objective_column must be a column of the traces {sorted(columns)}, "
                                 f"got {column!r}")
            routes = v.overrides.get("trace_objectives")
            unknown = sorted(str(k) for k in (routes if isinstance(routes, dict) else {}) if str(k) not in columns[column])
            if unknown:
                raise SweepError(f"{where}.trace_objectives: {unknown[0]!r} is not a value of {column!r} "
                                 f"{list(columns[column])}")
        weight = v.overrides.get("trace_weight_column")
        if weight is not None and weight != "consensus_share":
            raise SweepError(f"{where}.trace_weight_column: the traces' numeric column is 'consensus_share', got "
                             f"{weight!r}")
    if track is not None and track.corrupted_rows:
        raise SweepError("track.corrupted_rows: a traces sweep injects no answers, so there are no corrupted rows to "
                         "track memorisation on; set it to 0 (validation accuracy is still tracked)")
