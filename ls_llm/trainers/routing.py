"""Objectives routed by segment and by trace: the recipe side (`LsSFTConfig` fields) and the data side.

    objective: ce                    # the default for every segment of every trace
    segment_objectives:
      answer: {objective: label_smoothing, alpha: 0.3, smoothing_prior: answer}
    trace_objective_column: audit_status
    trace_objectives:
      wrong: {objective: label_smoothing, alpha: 0.5}
      unparsable: drop

Segments (ls_llm.data.segments): ``answer`` (the final answer span) and ``reasoning`` (every other trained
token). A segment spec that names an ``objective`` is complete (that objective with its own defaults and the
parameters given); one without ``objective`` keeps the default objective and overrides its parameters.
``smoothing_prior`` is ``uniform``, ``unigram`` (trained-token frequencies) or ``answer`` (frequencies over
the answer spans of the training set).

Traces: the value of ``trace_objective_column`` picks a spec from ``trace_objectives`` (trace first); a listed
trace's spec replaces the top-level objective *and* segment_objectives for its tokens, and may route its own
segments with a nested ``segment_objectives``; ``drop`` removes those rows from the training set (the
rejection-sampling baseline). Values not listed follow the top level.

Each (trace group, segment) pair is one route; the trainer builds one objective per route and the engine's
RoutedKernel trains each token with its route's objective in the same pass.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import torch

from ls_llm.answers import STATUSES
from ls_llm.data.audit import NO_REFERENCE
from ls_llm.data.consensus import CONSENSUS_STATUSES, REFERENCE_STATUSES
from ls_llm.data.segments import NOT_TRAINED, SEGMENTS, token_segments
from ls_llm.objectives import OBJECTIVES, build_objective
from ls_llm.trainers.prior import SMOOTHING_PRIORS

logger = logging.getLogger(__name__)
# The vocabularies the project's audits write into a trace column (ls_llm.data.audit, ls_llm.data.consensus, the
# sweep's teacher loop). A value listed in trace_objectives that no row has is accepted only when every value the
# column holds and the listed one belong to one vocabulary (`unparsable` where no trace happens to be, `disagrees`
# where every problem agrees); anything else is a typo or the wrong column, and refused.
AUDIT_VOCABULARIES = (frozenset(STATUSES + (NO_REFERENCE,)), frozenset(CONSENSUS_STATUSES),
                      frozenset(REFERENCE_STATUSES), frozenset(("flagged", "kept")), frozenset(("right", "wrong")),
                      frozenset(("True", "False")))


def _one_vocabulary(value: str, held: set[str]) -> bool:
    return any(value in vocab and held <= vocab for vocab in AUDIT_VOCABULARIES)

SEGMENT_COLUMN, TRACE_COLUMN = "ls_segments", "ls_trace"
DROP = "drop"
_ENGINE_KEYS = ("chunk_size", "ignore_index", "softcap")  # set once for every route, not per route


@dataclass(frozen=True)
class ObjectiveSpec:
    """One objective as a route trains it: registry name, keyword parameters, and the smoothing prior's name."""

    objective: str
    params: dict = field(default_factory=dict)
    smoothing_prior: str = "uniform"


@dataclass(frozen=True)
class RoutingPlan:
    """groups[g][s]: the spec of segment s (index into SEGMENTS) of trace group g; group 0 is the top level."""

    groups: tuple[tuple[ObjectiveSpec, ...], ...]
    trace_column: str | None = None
    trace_groups: dict = field(default_factory=dict)  # column value -> group index, or None for drop

    @property
    def specs(self) -> list[ObjectiveSpec]:
        """Route r = group·len(SEGMENTS) + segment."""
        return [spec for group in self.groups for spec in group]

    def priors(self) -> set[str]:
        return {s.smoothing_prior for s in self.specs}


def as_mapping(name: str, value) -> dict | None:
    """A dict-valued recipe field: a YAML mapping, or JSON text from the command line."""
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"{name} must be a mapping (or JSON text), got {value!r}: {err.msg}") from None
        if isinstance(value, dict):
            return value
    raise ValueError(f"{name} must be a mapping, got {value!r}")


def parse_spec(where: str, value, default: ObjectiveSpec) -> ObjectiveSpec:
    """A spec mapping, merged over ``default`` (see the module docstring); ValueError naming ``where``."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a mapping such as {{objective: label_smoothing, alpha: 0.1}}, got {value!r}")
    value = dict(value)
    name = value.pop("objective", None)
    prior = value.pop("smoothing_prior", None)
    if name is None:
        name, params, prior = default.objective, {**default.params, **value}, prior or default.smoothing_prior
    else:
        params, prior = value, prior or "uniform"
    if name not in OBJECTIVES:
        raise ValueError(f"{where}.objective={name!r} is not known; choose one of {sorted(OBJECTIVES)}")
    for key in _ENGINE_KEYS:
        if key in value:
            raise ValueError(f"{where}.{key}: set once for every route at the top level, not per route")
    if prior not in SMOOTHING_PRIORS:
        raise ValueError(f"{where}.smoothing_prior must be one of {tuple(SMOOTHING_PRIORS)}, got {prior!r}")
    if prior != "uniform" and "prior" not in OBJECTIVES[name].PARAMS:
        raise ValueError(f"{where}.smoothing_prior={prior!r} needs an objective that takes a prior; {name!r} does not")
    _check_builds(where, name, params)
    return ObjectiveSpec(name, params, prior)


def _check_builds(where: str, name: str, params: dict) -> None:
    if "prior" in params:
        raise ValueError(f"{where}.prior: set smoothing_prior (one of {', '.join(SMOOTHING_PRIORS)}) instead")
    try:
        build_objective(name, **params)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where}: {err}") from None


def _segment_group(where: str, mapping, default: ObjectiveSpec) -> tuple[ObjectiveSpec, ...]:
    mapping = mapping or {}
    if not isinstance(mapping, dict):
        raise ValueError(f"{where} must be a mapping from segment to objective, got {mapping!r}")
    unknown = sorted(set(mapping) - set(SEGMENTS))
    if unknown:
        raise ValueError(f"{where}: unknown segment {unknown[0]!r}; segments are {list(SEGMENTS)}")
    return tuple(parse_spec(f"{where}.{s}", mapping[s], default) if s in mapping else default for s in SEGMENTS)


def build_plan(default: ObjectiveSpec, segment_objectives: dict | None, trace_column: str | None,
               trace_objectives: dict | None) -> RoutingPlan | None:
    """The routing plan of a recipe, or None when nothing is routed."""
    if trace_objectives and not trace_column:
        raise ValueError("trace_objectives is set but trace_objective_column is not: name the dataset column "
                         "whose value picks the trace's objective (e.g. audit_status)")
    if not segment_objectives and not trace_column and default.smoothing_prior != "answer":
        return None
    groups = [_segment_group("segment_objectives", segment_objectives, default)]
    trace_groups: dict = {}
    for value, spec in (trace_objectives or {}).items():
        where = f"trace_objectives.{value}"
        if spec == DROP:
            trace_groups[str(value)] = None
            continue
        if not isinstance(spec, dict):
            raise ValueError(f"{where} must be a mapping or {DROP!r}, got {spec!r}")
        spec = dict(spec)
        nested = spec.pop("segment_objectives", None)
        trace_default = parse_spec(where, spec, default)
        trace_groups[str(value)] = len(groups)
        groups.append(_segment_group(f"{where}.segment_objectives", nested, trace_default))
    return RoutingPlan(tuple(groups), trace_column, trace_groups)


# ---- the data side ----------------------------------------------------------------------------------------------

def prepare_routed_dataset(dataset, plan: RoutingPlan, tokenizer, *, chat_template=None, name: str = "train"):
    """trl's prepared dataset with rows of dropped traces removed and two columns added: ``ls_segments`` (per
    token, NOT_TRAINED / segment index; kept as is when the dataset already has it) and ``ls_trace`` (the
    trace group). Logs how many rows have no answer span (all reasoning). Only the training set loses rows: an
    eval set keeps its dropped-verdict rows, scored with the top-level objectives, so that evaluation still
    measures every trace."""
    if plan.trace_column:
        dataset = _route_traces(dataset, plan, name)
    if SEGMENT_COLUMN not in dataset.column_names:
        found = []

        def add(row):
            segments, ok = token_segments(row, tokenizer, chat_template=chat_template)
            found.append(ok)
            return {SEGMENT_COLUMN: segments}

        dataset = dataset.map(add, desc=f"Finding answer spans in the {name} dataset")
        missing = found.count(False)
        log = logger.warning if missing else logger.info
        log("segments (%s): %d of %d rows have no final answer span; all their trained tokens are reasoning",
            name, missing, len(found))
    if TRACE_COLUMN not in dataset.column_names:
        dataset = dataset.add_column(TRACE_COLUMN, [0] * len(dataset))
    return dataset


def _route_traces(dataset, plan: RoutingPlan, name: str):
    column = plan.trace_column
    if column not in dataset.column_names:
        if name != "train":  # e.g. the loader's noise columns exist in the train split only
            logger.info("trace routing (%s): no %r column; every row uses the top-level objectives", name, column)
            return _with_trace_groups(dataset, [0] * len(dataset))
        raise ValueError(f"trace_objective_column={column!r} is not a column of the {name} dataset "
                         f"(columns: {sorted(dataset.column_names)})")
    values = [str(v) for v in dataset[column]]
    if name != "train":
        return _with_trace_groups(dataset, [plan.trace_groups.get(v, 0) or 0 for v in values])
    _check_trace_keys(plan, values, column)
    keep = [i for i, v in enumerate(values) if plan.trace_groups.get(v, 0) is not None]
    if len(keep) < len(values):
        logger.info("trace routing (%s): dropped %d of %d rows (%s)", name, len(values) - len(keep), len(values),
                    ", ".join(f"{column}={v}" for v, g in plan.trace_groups.items() if g is None))
        if not keep:
            raise ValueError(f"trace_objectives drops every row of the {name} dataset")
        dataset = dataset.select(keep)
        values = [values[i] for i in keep]
    return _with_trace_groups(dataset, [plan.trace_groups.get(v, 0) for v in values])


def _check_trace_keys(plan: RoutingPlan, values: list[str], column: str) -> None:
    """A listed value that no row has is a typo (`Wrong` for `wrong`, `1` for `1.0`): refuse it, naming the values
    the column does hold, unless it is a value of the audit vocabulary the column holds (AUDIT_VOCABULARIES:
    `unparsable` where no trace happens to be, `disagrees` where every problem agrees), which routes no row and is
    said so (a warning); say how many rows each listed value routes."""
    counts = {v: values.count(v) for v in plan.trace_groups}
    held = set(values)
    unmatched = sorted(v for v, n in counts.items() if n == 0 and not _one_vocabulary(v, held))
    if unmatched:
        seen = sorted(held)
        raise ValueError(f"trace_objectives lists {unmatched} but no training row has {column} equal to it "
                         f"(the column holds {seen[:10]}{' ...' if len(seen) > 10 else ''})")
    absent = [v for v, n in counts.items() if n == 0]
    if absent:
        logger.warning("trace routing: no training row has %s in %s: those routes are empty", column, absent)
    logger.info("trace routing: %s", ", ".join(f"{column}={v}: {n} rows" for v, n in counts.items()))


def _with_trace_groups(dataset, groups: list[int]):
    if TRACE_COLUMN in dataset.column_names:
        dataset = dataset.remove_columns([TRACE_COLUMN])
    return dataset.add_column(TRACE_COLUMN, groups)


class RoutingCollator:
    """The SFT collator plus ``ls_segments`` (padded with NOT_TRAINED, or concatenated padding-free) and
    ``ls_trace`` (per token), shaped like the batch's ``labels``."""

    def __init__(self, base) -> None:
        self.base = base

    def __call__(self, examples):
        own = (SEGMENT_COLUMN, TRACE_COLUMN)
        batch = self.base([{k: v for k, v in e.items() if k not in own} for e in examples])
        seg = [torch.as_tensor(e[SEGMENT_COLUMN], dtype=torch.long) for e in examples]
        trace = [torch.full_like(s, int(e[TRACE_COLUMN])) for s, e in zip(seg, examples, strict=True)]
        for key, parts in ((SEGMENT_COLUMN, seg), (TRACE_COLUMN, trace)):
            batch[key] = like_labels(batch, parts, NOT_TRAINED, padding_free=getattr(self.base, "padding_free", False))
        return batch


def like_labels(batch: dict, parts: list[torch.Tensor], fill, *, padding_free: bool) -> torch.Tensor:
    """Per-example token values ``parts`` laid out like the collated ``labels``: one row per example padded with
    ``fill``, or (padding-free) concatenated into one row."""
    shape = batch["labels"].shape
    dtype = parts[0].dtype if parts else torch.long
    if padding_free:
        out = torch.full((1, shape[1]), fill, dtype=dtype)
        flat = torch.cat(parts)
        out[0, :flat.numel()] = flat
        return out
    out = torch.full(shape, fill, dtype=dtype)
    for i, p in enumerate(parts):
        out[i, :p.numel()] = p
    return out


def route_ids(segments: torch.Tensor, traces: torch.Tensor) -> torch.Tensor:
    """Route of each position: trace group · len(SEGMENTS) + segment (0 where not trained)."""
    return traces.clamp_min(0) * len(SEGMENTS) + segments.clamp_min(0)
