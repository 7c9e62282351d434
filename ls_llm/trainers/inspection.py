"""`ls-llm inspect RECIPE`: the first rows of a recipe as `ls-llm train` trains them, without training.

The recipe is read and its tokenizer and data loaded by the training commands' own `load_inputs`; the rows are
then prepared by the trainer itself (`LsSFTTrainer`: trl's tokenisation, chat template and completion mask,
`max_length`, the routing of segments and traces, `drop` verdicts, trace weights) and collated by its collator,
so the mask shown is the `labels != -100` of a real training batch and the route of each token is the one
`LsSFTTrainer.head_loss` computes (`routing.route_ids`). The trainer is built around a stand-in model: the
recipe's architecture one layer deep with fresh weights (the rows do not depend on the weights, which are never
read). A distillation recipe shows the student's rows; the divergence term covers the same trained tokens.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field

from ls_llm.data.segments import NOT_TRAINED, SEGMENTS, token_segments
from ls_llm.data.weights import WEIGHT_COLUMN
from ls_llm.trainers.describe import describe_spec, route_lines, top_spec
from ls_llm.trainers.lengths import rows_at_length
from ls_llm.trainers.recipe import load_recipe
from ls_llm.trainers.run import distill_arg_types, load_inputs, sft_arg_types

# Heavy imports stay inside functions (transformers, trl): `ls-llm` imports this module before it knows a
# command needs them.

# Settings that cannot change the rows, forced so that inspecting writes nothing and runs on any machine.
_FORCED = ("--report_to", "none", "--use_cpu", "true", "--bf16", "false", "--fp16", "false")


@dataclass
class RowView:
    """One given row: its tokens as trained, or why it is not trained."""

    row_id: str
    dropped: str | None = None  # why the row is not trained at all
    ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)  # the collator's labels (-100: not trained)
    segments: list[int] = field(default_factory=list)  # NOT_TRAINED, or an index into SEGMENTS
    routes: list[int | None] = field(default_factory=list)  # index into Inspection.route_names; None: not trained
    trace: str | None = None  # the trace column's value and the group it picks
    weight: float | None = None


@dataclass
class Inspection:
    recipe_lines: list[str]
    route_names: list[str]
    rows: list[RowView]
    given: int  # rows handed to the trainer
    trained: int  # rows the trainer keeps
    dropped_by_verdict: int
    cut_by_length: int
    length_report: str | None
    trainer: object = None  # the LsSFTTrainer that prepared the rows (tests compare against it)


def _distill_fields() -> set[str]:
    from ls_llm.trainers.config import LsSFTConfig
    from ls_llm.trainers.distill_config import LsDistillConfig

    return {f.name for f in dataclasses.fields(LsDistillConfig)} - {f.name for f in dataclasses.fields(LsSFTConfig)}


def _arg_types(recipe: str, overrides: list[str]) -> tuple:
    keys = set(load_recipe(recipe)) | {a[2:].split("=")[0] for a in overrides if a.startswith("--")}
    return distill_arg_types() if keys & _distill_fields() else sft_arg_types()


def stand_in_model(model_args, load_args, args, tokenizer):
    """The recipe's architecture one layer deep with fresh weights, its vocabulary as `load_model` sizes it."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = model_args.model_name_or_path
    try:
        config = AutoConfig.from_pretrained(path, revision=model_args.model_revision,
                                            trust_remote_code=bool(args.trust_remote_code))
    except (OSError, ValueError) as err:
        raise ValueError(f"model_name_or_path={path!r}: its config could not be read: {err}") from err
    text = config.get_text_config()
    if hasattr(text, "num_hidden_layers"):
        text.num_hidden_layers = 1
    if load_args.model_init_from_config:
        text.vocab_size = len(tokenizer)
    return AutoModelForCausalLM.from_config(config, trust_remote_code=bool(args.trust_remote_code))


def build_trainer(argv: list[str], output_dir: str):
    """(LsSFTTrainer holding the prepared training rows, the given training rows); raises like `ls-llm train`."""
    from ls_llm.trainers.sft import LsSFTTrainer

    argv = [*argv, *_FORCED, "--output_dir", output_dir]
    (load_args, _, args, model_args), tokenizer, data, _ = load_inputs(argv, _arg_types(argv[0], argv[1:]),
                                                                       training=False)
    model = stand_in_model(model_args, load_args, args, tokenizer)
    trainer = LsSFTTrainer(model=model, args=args, train_dataset=data["train"], processing_class=tokenizer)
    return trainer, data["train"]


def inspect_recipe(argv: list[str], *, rows: int = 2) -> Inspection:
    """The first `rows` given rows of the recipe's training set, as the trainer trains them."""
    if rows < 1:
        raise ValueError(f"--rows must be >= 1, got {rows}")
    with tempfile.TemporaryDirectory(prefix="ls-llm-inspect-") as tmp:
        trainer, given = build_trainer(argv, tmp)
    prepared, args = trainer.train_dataset, trainer.args
    plan = trainer.routing
    route_names = [describe_spec(s) for s in plan.specs] if plan is not None else [describe_spec(top_spec(args))]
    verdicts = _verdict_drops(given, plan)
    index = _index_by_id(prepared)
    if index:  # every given row, trained or not, found by its id
        views = [_row_view(trainer, given[i], index.get(str(given[i].get("id")))) for i in range(min(rows, len(given)))]
    else:  # no unique ids to match: the first rows the trainer keeps
        views = [_row_view(trainer, prepared[i], i) for i in range(min(rows, len(prepared)))]
    cut = rows_at_length(prepared, args.max_length) if args.max_length and not args.packing else 0
    return Inspection(recipe_lines=route_lines(args), route_names=route_names, rows=views, given=len(given),
                      trained=len(prepared), dropped_by_verdict=sum(verdicts), cut_by_length=cut,
                      length_report=trainer.length_report, trainer=trainer)


def _verdict_drops(given, plan) -> list[bool]:
    if plan is None or not plan.trace_column or plan.trace_column not in given.column_names:
        return [False] * len(given)
    return [plan.trace_groups.get(str(v), 0) is None for v in given[plan.trace_column]]


def _row_view(trainer, row: dict, index: int | None) -> RowView:
    from ls_llm.trainers.routing import SEGMENT_COLUMN, TRACE_COLUMN, route_ids

    row_id, plan = str(row.get("id", index)), trainer.routing
    if index is None:
        if plan is not None and plan.trace_column in row and plan.trace_groups.get(str(row[plan.trace_column]), 0) is None:
            return RowView(row_id, dropped=f"{plan.trace_column}={row[plan.trace_column]}: trace_objectives drops it")
        return RowView(row_id, dropped=f"no completion token left to train; max_length={trainer.args.max_length}: "
                                       "the prompt alone fills it, or the completion is empty")
    example = trainer.train_dataset[index]
    batch = trainer.data_collator([example])
    labels = batch["labels"][0].tolist()
    if SEGMENT_COLUMN in batch:
        segments = batch[SEGMENT_COLUMN][0].tolist()
        routes = route_ids(batch[SEGMENT_COLUMN], batch[TRACE_COLUMN])[0].tolist()
    else:
        segments, _ = token_segments({**example, "labels": labels}, trainer.processing_class,
                                     chat_template=getattr(trainer, "chat_template", None))
        routes = [0] * len(labels)
    view = RowView(row_id, ids=batch["input_ids"][0].tolist(), labels=labels, segments=segments,
                   routes=[r if lab != -100 else None for r, lab in zip(routes, labels, strict=True)])
    if plan is not None and plan.trace_column:
        value = row.get(plan.trace_column)
        view.trace = f"{plan.trace_column}={value} -> trace group {example[TRACE_COLUMN]}"
    if WEIGHT_COLUMN in example:
        view.weight = float(example[WEIGHT_COLUMN])
    return view


def _index_by_id(prepared) -> dict[str, int]:
    """Prepared row index by the loader's row id ({} when the ids are missing or not unique)."""
    ids = [str(v) for v in prepared["id"]] if "id" in prepared.column_names else []
    return {v: i for i, v in enumerate(ids)} if len(set(ids)) == len(ids) else {}


def segment_name(segment: int, seen_trained: bool) -> str:
    """A token's part: its segment when trained, else `prompt` before the first trained token, `not trained` after."""
    if segment == NOT_TRAINED:
        return "not trained" if seen_trained else "prompt"
    return SEGMENTS[segment]
