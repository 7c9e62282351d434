"""`LsSFTTrainer`: trl's SFTTrainer with the token objective computed by the fused engine.

Everything trl does to the data (chat templates, completion-only and assistant-only masks, packing,
padding-free batches) is kept. Only the loss changes: the model runs its backbone, and the objective is
evaluated on the final hidden states with the lm_head weight, inside the lm_head's forward (see `head.py`),
so the (tokens x vocab) logits are never built.

Normalisation is trl's and transformers': the objective sums per-token losses over unmasked tokens and
divides by `num_items_in_batch`, the number of trained tokens of the whole optimizer step (all accumulation
steps, all processes). Each micro-batch therefore contributes its exact share of the global-batch mean,
whatever the split; DDP then averages gradients across processes, which the loss undoes by multiplying by
the number of processes (as `Trainer.compute_loss` does). With per-trace weights (`trace_weight_column`, see
`weights.py`) each token's loss is scaled by its trace's weight and `num_items_in_batch` is the weighted count
Σ w·n of the same tokens, so the same argument holds for Σ w·ℓ / Σ w·n.
"""

from __future__ import annotations

import dataclasses
import functools

import torch
from trl import SFTTrainer

from ls_llm.data.segments import SEGMENTS
from ls_llm.data.weights import WEIGHT_COLUMN
from ls_llm.objectives import build_objective
from ls_llm.objectives.base import ObjectiveKernel
from ls_llm.objectives.engine import head_loss
from ls_llm.objectives.routing import routed_kernel, routed_token_losses
from ls_llm.objectives.weighted import WeightedKernel
from ls_llm.trainers.config import LsSFTConfig
from ls_llm.trainers.head import (
    check_head_supported,
    install_hidden_forward,
    pop_router_aux_loss,
    vocab_size_of,
)
from ls_llm.trainers.lengths import length_report
from ls_llm.trainers.metrics import StatSums
from ls_llm.trainers.prior import PriorCache
from ls_llm.trainers.routing import SEGMENT_COLUMN, TRACE_COLUMN, RoutingCollator, prepare_routed_dataset
from ls_llm.trainers.selection import sequence_ids, truncation_keep_mask
from ls_llm.trainers.trl_seams import TrlSeams, check_trl
from ls_llm.trainers.weights import (
    ROW_WEIGHTS,
    TOKEN_WEIGHTS,
    ZERO_WEIGHT_TRACES,
    WeightCollator,
    prepare_weighted_dataset,
    weighted_count,
)


def _weighted(kernel, weights: torch.Tensor | None):
    return kernel if weights is None else WeightedKernel(kernel, weights)


def objective_head(hidden: torch.Tensor, labels: torch.Tensor, spec, *, objective, num_items_in_batch=None,
                   truncation: float = 0.0, seq_ids: torch.Tensor | None = None, weights: torch.Tensor | None = None):
    """Head function (runs inside the lm_head forward): (loss, named TokenStats). ``weights``: per-token trace
    weights (trainers/weights.py), with num_items_in_batch their weighted count."""
    if truncation > 0:
        # Rank sequences by the loss being optimised, without a graph; then train on the kept ones only.
        token_losses = objective.token_losses(hidden, labels=labels, spec=spec)
        keep = truncation_keep_mask(token_losses, labels, seq_ids, truncation)
        labels = labels.masked_fill(~keep, spec.ignore_index)
    return head_loss(_weighted(ObjectiveKernel(objective), weights), hidden, labels, spec,
                     num_items_in_batch=num_items_in_batch, chunk_size=objective.chunk_size, return_stats=True)


def routed_head(hidden: torch.Tensor, labels: torch.Tensor, spec, *, objectives, route: torch.Tensor,
                segments: torch.Tensor, num_items_in_batch=None, chunk_size: int | None = None,
                truncation: float = 0.0, seq_ids: torch.Tensor | None = None, weights: torch.Tensor | None = None):
    """Head function for routed objectives (trainers/routing.py): token i trained by objectives[route[i]]."""
    kernel = routed_kernel(objectives, route.reshape(-1), segments.reshape(-1), SEGMENTS)
    if truncation > 0:
        token_losses = routed_token_losses(kernel, hidden, labels, spec, chunk_size=chunk_size)
        keep = truncation_keep_mask(token_losses, labels, seq_ids, truncation)
        labels = labels.masked_fill(~keep, spec.ignore_index)
    return head_loss(_weighted(kernel, weights), hidden, labels, spec, num_items_in_batch=num_items_in_batch,
                     chunk_size=chunk_size, return_stats=True)


def _unwrap_peft(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def tied_parameter_names(model) -> set[str]:
    """Names of parameters that share their tensor with another parameter (tied embeddings), every name."""
    by_tensor: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        by_tensor.setdefault(id(param), []).append(name)
    return {name for names in by_tensor.values() if len(names) > 1 for name in names}


class LsSFTTrainer(TrlSeams, SFTTrainer):
    """SFTTrainer whose loss is `args.objective` (see `LsSFTConfig`), computed without full logits. trl's private
    names are reached only through `TrlSeams` (trl_seams.py)."""

    # trl's names for the model card, set by each subclass (checked: trl_seams.CARD_ATTRIBUTES).
    _tag_names = ["trl", "sft", "ls_llm"]
    _name = "LsSFT"

    config_class = LsSFTConfig

    def __init__(self, model=None, args=None, *rest, **kwargs):
        given = {"train": kwargs.get("train_dataset", rest[1] if len(rest) > 1 else None),
                 "validation": kwargs.get("eval_dataset", rest[2] if len(rest) > 2 else None)}
        super().__init__(model, self._as_config(args, model), *rest, **kwargs)
        check_trl(self)
        prepared = {"train": self.train_dataset, "validation": self.eval_dataset}
        self.length_report = length_report(given, prepared, self.args)
        base = _unwrap_peft(self.model)
        install_hidden_forward(base)
        check_head_supported(base)
        # The loss is always normalised by `num_items_in_batch`, so Trainer must count it and must not
        # divide again by the accumulation steps.
        self.model_accepts_loss_kwargs = True
        self.routing = self.args.routing_plan()
        if self.routing is not None:
            self._prepare_routing()
        self.trace_weights = self.args.trace_weights()
        if self.trace_weights is not None:
            self._prepare_weights()
        self.objective, self.warmup_objective = self._build_objectives(base)
        self._stat_sums = {"train": StatSums(), "eval": StatSums()}

    def hidden_missing_keys(self) -> set[str]:
        # A tied lm_head is not saved (safetensors refuses shared tensors) and is restored with the embedding it
        # shares: "There were missing keys in the checkpoint model loaded: ['lm_head.weight']" is true and
        # harmless but alarming, so only untied missing keys are reported.
        return tied_parameter_names(self.accelerator.unwrap_model(self.model))

    @classmethod
    def _as_config(cls, args, model):
        """Like trl: None gives the defaults (output_dir from the model's name) and a plain `SFTConfig` (or
        another `TrainingArguments`) keeps its settings, with this trainer's own fields at their defaults."""
        if isinstance(args, cls.config_class):
            return args
        if args is None:
            name = model if isinstance(model, str) else getattr(getattr(model, "config", None), "_name_or_path", "")
            return cls.config_class(output_dir=f"{str(name).split('/')[-1] or 'model'}-{cls._name}")
        if not dataclasses.is_dataclass(args):
            raise ValueError(f"args must be an {cls.config_class.__name__} or an SFTConfig, got {type(args).__name__}")
        own = {f.name for f in dataclasses.fields(cls.config_class)}
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(args) if f.init and f.name in own}
        return cls.config_class(**values)

    def _build_objectives(self, base):
        shared = {}
        if self.args.objective_chunk_size is not None:
            shared["chunk_size"] = self.args.objective_chunk_size
        kwargs = {**self.args.objective_kwargs(), **shared}
        priors = PriorCache(self.train_dataset, vocab_size_of(base))
        if self.routing is not None:
            # One objective per route (trace group x segment), a prior counted once however many routes use it.
            self.route_objectives = [
                build_objective(spec.objective, **spec.params, **shared, **priors.kwargs(spec.smoothing_prior))
                .to(self.args.device) for spec in self.routing.specs]
            self.warmup_route_objectives = [build_objective("ce", **shared).to(self.args.device)] * len(
                self.route_objectives)
            return self.route_objectives[0], (self.warmup_route_objectives[0] if self.args.objective_warmup_steps
                                              else None)
        objective = build_objective(self.args.objective, **kwargs, **priors.kwargs(self.args.smoothing_prior))
        warmup = None
        if self.args.objective_warmup_steps > 0:
            warmup = build_objective("ce", **shared).to(self.args.device)
        return objective.to(self.args.device), warmup

    def _in_warmup(self) -> bool:
        return self.args.objective_warmup_steps > 0 and self.state.global_step < self.args.objective_warmup_steps

    def current_objective(self):
        return self.warmup_objective if self._in_warmup() else self.objective

    def _prepare_routing(self) -> None:
        """Drop routed-out traces, add each token's segment and each row's trace group, and collate them."""
        self._map_datasets(functools.partial(prepare_routed_dataset, plan=self.routing,
                                             tokenizer=self.processing_class,
                                             chat_template=getattr(self, "chat_template", None)))
        self.data_collator = RoutingCollator(self.data_collator)

    def _prepare_weights(self) -> None:
        """Resolve and check the training set's trace weights, drop any from eval sets, and collate them."""
        self._map_datasets(functools.partial(prepare_weighted_dataset, weights=self.trace_weights))
        self.data_collator = WeightCollator(self.data_collator)

    def _map_datasets(self, prepare) -> None:
        self.train_dataset = prepare(self.train_dataset)
        if isinstance(self.eval_dataset, dict):
            self.eval_dataset = {k: prepare(v, name=f"eval {k}") for k, v in self.eval_dataset.items()}
        elif self.eval_dataset is not None:
            self.eval_dataset = prepare(self.eval_dataset, name="eval")

    def weighted_num_items(self, batch_samples: list, *, shifts_labels: bool):
        """With trace weights: the weighted count Σ w·n of the step's trained tokens (this process's)."""
        if not batch_samples or TOKEN_WEIGHTS not in batch_samples[0]:
            return None
        return sum(weighted_count(b, shifts_labels=shifts_labels) for b in batch_samples)

    def extra_signature_columns(self) -> list[str]:
        columns = [SEGMENT_COLUMN, TRACE_COLUMN] if getattr(self, "routing", None) is not None else []
        return columns + ([WEIGHT_COLUMN] if getattr(self, "trace_weights", None) is not None else [])

    def _truncation(self, mode: str) -> float:
        active = mode == "train" and self.state.global_step >= self.args.loss_truncation_warmup_steps
        return self.args.loss_truncation if active else 0.0

    def model_loss(self, model, inputs: dict, num_items_in_batch, mode: str):
        """The one hook subclasses override: run `model` with a head function -> (loss, named TokenStats)."""
        truncation = self._truncation(mode)
        extra = {}
        if TOKEN_WEIGHTS in inputs:
            extra["weights"] = inputs.pop(TOKEN_WEIGHTS)
        if truncation > 0:
            extra["seq_ids"] = sequence_ids(inputs["input_ids"], inputs.get("position_ids"))
        if self.routing is not None:
            from ls_llm.trainers.routing import SEGMENT_COLUMN, TRACE_COLUMN, route_ids

            segments, traces = inputs.pop(SEGMENT_COLUMN), inputs.pop(TRACE_COLUMN)
            extra.update(segments=segments, route=route_ids(segments, traces))
            objectives = self.warmup_route_objectives if self._in_warmup() else self.route_objectives
            head_fn = functools.partial(routed_head, objectives=objectives, num_items_in_batch=num_items_in_batch,
                                        chunk_size=self.args.objective_chunk_size, truncation=truncation)
        else:
            head_fn = functools.partial(objective_head, objective=self.current_objective(),
                                        num_items_in_batch=num_items_in_batch, truncation=truncation)
        return model(**inputs, ls_head_fn=head_fn, ls_extra=extra)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        inputs = dict(inputs)
        row_weights = inputs.pop(ROW_WEIGHTS, None)
        loss, stats = self.model_loss(model, inputs, num_items_in_batch, mode)
        aux = pop_router_aux_loss(_unwrap_peft(self.model))
        if row_weights is not None:
            stats[ZERO_WEIGHT_TRACES] = (row_weights == 0).sum().float()
        inputs = {k: v for k, v in inputs.items() if not k.startswith("ls_")}
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # num_items_in_batch counts every process's tokens and DDP averages gradients: undo the average.
            loss = loss * self.accelerator.num_processes
        loss = self.add_router_aux_loss(loss, aux, mode=mode, num_items_in_batch=num_items_in_batch)
        self._record(mode, stats, inputs)
        if return_outputs:
            # The logits for compute_metrics: the fused head never builds them, so (as trl does) one more
            # forward, without gradients.
            with torch.no_grad():
                outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
            return loss, outputs
        return loss

    def _record(self, mode: str, stats, inputs) -> None:
        reduce = None
        if self.accelerator.num_processes > 1:
            reduce = functools.partial(self.accelerator.reduce, reduction="sum")
        self._stat_sums[mode].add(stats, reduce=reduce)
        self.count_train_tokens(inputs, mode)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        prefix = "eval_" if mode == "eval" else ""
        logs.update({prefix + k: v for k, v in self._stat_sums[mode].pop_means().items()})
        super().log(logs, start_time)
