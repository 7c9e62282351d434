"""Run a teacher once over the prepared training set and store its top-k log-probs (HF backend).

The dataset is prepared by trl's SFTTrainer with the recipe's own settings (chat template, max_length,
completion-only loss), so the cache's rows and trained tokens are exactly those the student will see; the
student checks this token by token. Rows are processed in order, `per_device_eval_batch_size` at a time,
with the teacher's top-k formed inside its lm_head forward (a sharded head is gathered there) chunk by chunk
(`objectives.topk.teacher_topk`), never tokens × V. One process; see `data/teacher_cache.py` for the layout
and resumption.
"""

from __future__ import annotations

import os
from dataclasses import replace

import torch
from trl import SFTTrainer

from ls_llm.data.teacher_cache import (
    CacheMeta,
    cache_row,
    check_same,
    data_fingerprint,
    model_fingerprint,
    tokenizer_hash,
    write_cache,
)
from ls_llm.objectives.engine import token_outputs
from ls_llm.objectives.topk import TopKKernel
from ls_llm.trainers.distill_config import LsDistillConfig
from ls_llm.trainers.head import install_hidden_forward, vocab_size_of


def _topk_head(hidden, labels, spec, *, k: int, temperature: float, vocab_size: int):
    keep = labels != spec.ignore_index
    bias = None if spec.bias is None else spec.bias[:vocab_size]
    out = token_outputs(TopKKernel(k, temperature), hidden[keep], replace(spec, weight=spec.weight[:vocab_size],
                                                                            bias=bias))
    return out["ids"], out["logprobs"], out["log_tail"], labels[keep], keep.sum(dim=1)


def fingerprints(args: LsDistillConfig, tokenizer, prepared) -> dict[str, str]:
    """The cache's content address: the teacher's weights, the tokenizer, and the prepared rows it covers."""
    return {"teacher_fingerprint": model_fingerprint(str(args.teacher_model_name_or_path)),
            "tokenizer_hash": tokenizer_hash(tokenizer), "data_fingerprint": data_fingerprint(prepared)}


def check_cache_matches(args: LsDistillConfig, meta, tokenizer, prepared) -> None:
    """Refuse (before training) a cache whose settings or fingerprints differ from this run's, naming which."""
    here = fingerprints(args, tokenizer, prepared)
    teacher = args.teacher_model_name_or_path
    gone = not teacher or (not os.path.exists(teacher) and not meta.teacher_fingerprint.startswith("hub:"))
    if gone:  # no teacher, or a local one since deleted: the cache is all there is, its teacher can't be re-checked
        here["teacher_fingerprint"] = meta.teacher_fingerprint
    problems = {"distill_temperature": (meta.temperature, args.distill_temperature),
                "vocab_size (tokenizer length)": (meta.vocab_size, len(tokenizer)),
                "rows (prepared train dataset)": (meta.n_rows, len(prepared))}
    for what, (cached, now) in problems.items():
        if cached != now:
            raise ValueError(f"teacher_cache_dir={args.teacher_cache_dir!r} was built with {what}={cached!r}, "
                             f"this run has {now!r}")


    check_same(meta, replace(meta, **here), args.teacher_cache_dir)


def prepared_dataset(args: LsDistillConfig, teacher, tokenizer, train_dataset):
    """(prepared dataset, collator) exactly as the distillation trainer will prepare them."""
    sft = SFTTrainer(model=teacher, args=args, train_dataset=train_dataset, processing_class=tokenizer)
    return sft.train_dataset, sft.data_collator


@torch.no_grad()
def build_teacher_cache(args: LsDistillConfig, teacher, tokenizer, train_dataset, *, log=print) -> int:
    """Write (or finish) the cache in `args.teacher_cache_dir`; returns the number of shards written."""
    if args.teacher_cache_dir is None:
        raise ValueError("teacher_cache_dir is required: it is where the cache is written")
    vocab_size = len(tokenizer)
    rows = vocab_size_of(teacher)
    if rows < vocab_size:
        raise ValueError(f"the teacher's lm_head has {rows} rows but the tokenizer has {vocab_size} tokens")
    if args.distill_top_k > vocab_size:
        raise ValueError(f"distill_top_k={args.distill_top_k} exceeds the vocabulary ({vocab_size} tokens)")
    data, collator = prepared_dataset(args, teacher, tokenizer, train_dataset)
    teacher.eval().requires_grad_(False)
    install_hidden_forward(teacher)
    device = next(teacher.parameters()).device
    meta = CacheMeta(teacher=str(args.teacher_model_name_or_path), top_k=args.distill_top_k,
                     temperature=args.distill_temperature, vocab_size=vocab_size, n_rows=len(data),
                     shard_rows=args.cache_shard_rows, logprob_dtype=args.cache_logprob_dtype,
                     **fingerprints(args, tokenizer, data))
    head = dict(k=args.distill_top_k, temperature=args.distill_temperature, vocab_size=vocab_size)
    batch_size = args.per_device_eval_batch_size

    def compute(start: int, stop: int):
        for lo in range(start, stop, batch_size):
            examples = [data[i] for i in range(lo, min(lo + batch_size, stop))]
            batch = {k: v.to(device) for k, v in collator(examples).items()}
            ids, logprobs, log_tail, labels, counts = teacher(
                **batch, ls_head_fn=lambda h, y, spec: _topk_head(h, y, spec, **head))
            offsets = [0, *torch.cumsum(counts, 0).tolist()]
            for a, b in zip(offsets[:-1], offsets[1:]):
                yield cache_row(ids[a:b], logprobs[a:b], log_tail[a:b], labels[a:b],
                                logprob_dtype=args.cache_logprob_dtype)

    return write_cache(args.teacher_cache_dir, meta, compute, log=log)
