"""`LsDistillTrainer`: LsSFTTrainer whose loss is (1 − α)·objective + α·τ²·D(teacher ‖ student).

The student runs exactly as in LsSFTTrainer (backbone only; the loss is computed inside its lm_head forward,
so DDP / FSDP2 / ZeRO-3 / PEFT behave as for SFT, and normalisation by `num_items_in_batch` keeps gradient
accumulation exact). The teacher:

- online: frozen, eval mode, no grad. Its backbone runs first (same inputs, same causal shift, through the
  same `install_hidden_forward`), then, inside the student's head function, the teacher's lm_head module is
  called through `call_through_head` so that a sharded teacher head is gathered by its own hooks. The fused
  loss is carried out of the teacher's head call through a closure, not as its output, so the teacher's
  sharding hooks never attach a backward to the student's loss.
- cached: the batch carries the cached top-k of its trained tokens (`ls_llm.data.teacher_cache`); their
  labels are checked against the batch's before the loss is formed.
"""

from __future__ import annotations

import functools

import torch
from datasets import concatenate_datasets

from ls_llm.data.teacher_cache import CACHE_COLUMNS, cache_tensors, load_cache
from ls_llm.objectives.distill import CachedTeacher, DistillLoss, OnlineTeacher
from ls_llm.objectives.engine import head_loss
from ls_llm.trainers.distill_cache import check_cache_matches
from ls_llm.trainers.distill_config import LsDistillConfig
from ls_llm.trainers.head import call_through_head, head_rows, install_hidden_forward, logits_transform
from ls_llm.trainers.sft import LsSFTTrainer, _unwrap_peft


def _hidden_only(hidden, labels, spec):
    return hidden


def distill_head(hidden, labels, spec, *, loss_fn, teacher_hidden=None, teacher_head=None, teacher_transform=None,
                 cache=None, vocab_size: int, num_items_in_batch=None):
    """Student head function: (loss, named TokenStats with the divergence)."""
    def fused(teacher):
        return head_loss(loss_fn.kernel(teacher, spec), hidden, labels, spec, num_items_in_batch=num_items_in_batch,
                         chunk_size=loss_fn.chunk_size, return_stats=True)

    if cache is not None:
        trained = labels[labels != spec.ignore_index]
        if not torch.equal(trained.cpu(), cache["teacher_labels"].cpu()):
            raise ValueError("the teacher cache's tokens do not match this batch's labels: the cache was built from "
                             "other data, another tokenizer or other max_length / completion settings")
        dev = hidden.device
        return fused(CachedTeacher(cache["teacher_ids"].to(dev), cache["teacher_logprobs"].to(dev),
                                   cache["teacher_log_tail"].to(dev), vocab_size))
    box = {}

    def inside_teacher_head(h_t, _labels, t_spec):
        box["out"] = fused(OnlineTeacher.from_spec(h_t, t_spec, vocab_size=vocab_size))
        return h_t.new_zeros(())

    call_through_head(teacher_head, inside_teacher_head, teacher_hidden, labels, transform=teacher_transform)
    return box["out"]


class _CacheCollator:
    """The SFT collator plus the cache columns, flattened over each micro-batch's trained tokens."""

    def __init__(self, base, top_k: int) -> None:
        self.base, self.top_k = base, top_k

    def __call__(self, examples):
        batch = self.base([{k: v for k, v in e.items() if k not in CACHE_COLUMNS} for e in examples])
        batch["ls_teacher_cache"] = cache_tensors(examples, self.top_k)
        return batch


class LsDistillTrainer(LsSFTTrainer):
    """Distill `teacher_model` (online) or a teacher cache into the student; see `LsDistillConfig`."""

    _tag_names = ["trl", "sft", "distillation", "ls_llm"]
    _name = "LsDistill"

    config_class = LsDistillConfig

    def __init__(self, model=None, args=None, *rest, teacher_model=None, **kwargs):
        args = self._as_config(args, model)
        if args.routing_plan() is not None:
            raise ValueError("segment_objectives / trace_objectives / smoothing_prior: answer are not supported by "
                             "distillation yet; route objectives with `ls-llm train`")
        if not args.cached and teacher_model is None:
            raise ValueError("online distillation needs teacher_model (or set teacher_cache_dir)")
        super().__init__(model, args, *rest, **kwargs)
        self.vocab_size = len(self.processing_class)
        self._check_head_rows("student", _unwrap_peft(self.model))
        self.teacher = None
        if args.cached:
            if self.eval_dataset is not None:
                raise ValueError("an eval dataset has no teacher cache: with teacher_cache_dir set eval_strategy: no")
            self._attach_cache()
        else:
            self._prepare_teacher(teacher_model)

    def _check_head_rows(self, who: str, model) -> None:
        head = model.get_output_embeddings()
        rows = head_rows(head)
        if rows < self.vocab_size:
            raise ValueError(f"the {who}'s lm_head ({type(head).__name__}) has {rows} rows but the tokenizer has "
                             f"{self.vocab_size} tokens: "
                             "teacher and student must share the tokenizer and vocabulary")

    def _prepare_teacher(self, teacher) -> None:
        self._check_head_rows("teacher", teacher)
        teacher.eval().requires_grad_(False)
        install_hidden_forward(teacher)
        self.teacher_head = teacher.get_output_embeddings()
        self.teacher_transform = logits_transform(teacher)
        if self.is_deepspeed_enabled:
            from trl.models.utils import prepare_deepspeed

            self.teacher = prepare_deepspeed(teacher, self.accelerator)
        elif self.is_fsdp_enabled:
            from trl.models.utils import prepare_fsdp

            self.teacher = prepare_fsdp(teacher, self.accelerator)
        else:
            self.teacher = self.accelerator.prepare_model(teacher, evaluation_mode=True)

    def _attach_cache(self) -> None:
        cache, meta = load_cache(self.args.teacher_cache_dir)  # checks every shard's checksums
        check_cache_matches(self.args, meta, self.processing_class, self.train_dataset)
        self.cache_meta = meta
        self.train_dataset = concatenate_datasets([self.train_dataset, cache], axis=1)
        self.data_collator = _CacheCollator(self.data_collator, meta.top_k)

    def extra_signature_columns(self) -> list[str]:
        return super().extra_signature_columns() + (list(CACHE_COLUMNS) if self.args.cached else [])

    def distill_loss(self):
        args = self.args
        return DistillLoss(self.current_objective(), divergence=args.distill_divergence, alpha=args.distill_alpha,
                           temperature=args.distill_temperature, teacher_smoothing=args.teacher_smoothing,
                           beta=args.jsd_beta)

    def model_loss(self, model, inputs: dict, num_items_in_batch, mode: str):
        cache = inputs.pop("ls_teacher_cache", None)
        head_fn = functools.partial(distill_head, loss_fn=self.distill_loss(), cache=cache,
                                    vocab_size=self.vocab_size, num_items_in_batch=num_items_in_batch)
        if cache is None:
            with torch.no_grad():
                teacher_hidden = self.teacher(**inputs, ls_head_fn=_hidden_only)
            head_fn = functools.partial(head_fn, teacher_hidden=teacher_hidden, teacher_head=self.teacher_head,
                                        teacher_transform=self.teacher_transform)
        return model(**inputs, ls_head_fn=head_fn)
