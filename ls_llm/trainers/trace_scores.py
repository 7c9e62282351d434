"""Model-loss scores of traces (``ls-llm audit --score-model CKPT``): how surprised a model is by each trace.

Per trace, under the model: ``loss_mean`` (mean cross-entropy over the completion's trained tokens, as trl trains
them: the chat template's rendering, the assistant turn only), and over its final-answer span (the ``answer``
segment of ls_llm.data.segments, the one segment logic that segment routing uses) ``answer_loss_mean``,
``answer_p_mean`` (mean p(y)) and ``answer_entropy_mean`` (mean entropy of the next-token distribution, nats).
The answer columns are None for a trace with no answer span.

Scores come from the engine's no-grad token path (``token_outputs`` inside the lm_head's forward, through the
head adapter): logits exist one chunk of tokens at a time, never tokens × V. The statistics p(y) and entropy are
formed for the answer tokens only, in a second pass over their hidden states, so the completion's tokens cost
what a plain no-grad loss costs. Rows are sorted by length and batched up to ``batch_tokens`` padded tokens.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from ls_llm.data.loading import split_completion
from ls_llm.data.segments import ANSWER, token_segments
from ls_llm.data.teacher_cache import tokenizer_hash
from ls_llm.objectives import build_objective
from ls_llm.objectives.base import ObjectiveKernel
from ls_llm.objectives.engine import token_outputs
from ls_llm.trainers.head import IGNORE_INDEX, install_hidden_forward

# Heavy imports stay inside functions (transformers): `ls-llm` imports this module before it knows a command
# needs them.

__all__ = ["SCORE_COLUMNS", "check_tokenizer_matches", "encode_trace", "load_scorer", "score_traces"]

SCORE_COLUMNS = ("loss_mean", "answer_loss_mean", "answer_p_mean", "answer_entropy_mean")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


@dataclass(frozen=True)
class _WithStats:
    """An engine kernel that always forms the named statistics (p_y, entropy) beside the loss."""

    kernel: object

    def select(self, idx, n_positions):
        return self

    def __call__(self, z, y, start, ws, *, need_grad, need_stats):
        return self.kernel(z, y, start, ws, need_grad=need_grad, need_stats=True)


def load_scorer(path: str, *, device: str = "auto", dtype: str = "auto"):
    """(model, tokenizer) of checkpoint ``path`` in eval mode, its forward able to take a head function."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not os.path.isdir(path):
        raise ValueError(f"--score-model {path!r} is not a checkpoint folder")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    if dtype not in _DTYPES:
        raise ValueError(f"--score-dtype must be one of {sorted(_DTYPES)} or auto, got {dtype!r}")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=_DTYPES[dtype]).to(device).eval()
    install_hidden_forward(model)
    return model, tokenizer


def check_tokenizer_matches(data_tokenizer, score_tokenizer, *, data_name: str, score_name: str) -> None:
    """Refuse a scoring model whose vocabulary maps tokens to other ids than the data's tokenizer."""
    if tokenizer_hash(data_tokenizer) != tokenizer_hash(score_tokenizer):
        raise ValueError(f"--score-model {score_name!r} has another tokenizer than the data's ({data_name!r}: "
                         f"{len(data_tokenizer)} vs {len(score_tokenizer)} tokens, other ids): its losses would "
                         "score other tokens than the traces were made of")


def encode_trace(row: dict, tokenizer) -> tuple[list[int], list[int], list[int]]:
    """(input ids, labels with the prompt ignored, segment per token) of a messages row, as trl tokenizes a
    conversational prompt/completion: the whole conversation through the chat template, the last assistant turn
    trained."""
    prompt, completion = split_completion(row["messages"])
    text = tokenizer.apply_chat_template(prompt + completion, tokenize=False)
    head = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    if not text.startswith(head):
        raise ValueError(f"row {row.get('id')!r}: the chat template does not render the prompt as a prefix of the "
                         "conversation, so the completion's tokens cannot be told apart")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = [IGNORE_INDEX if a < len(head) else t for t, (a, _) in zip(ids, enc["offset_mapping"], strict=True)]
    segments, _ = token_segments({"prompt": prompt, "completion": completion, "input_ids": ids, "labels": labels},
                                 tokenizer)
    return ids, labels, segments


def _head_fn(hidden, labels, spec, *, segments):
    """Inside the lm_head: per-token loss of every trained token; p(y), entropy and loss of the answer tokens."""
    kernel = ObjectiveKernel(build_objective("ce"))
    loss = token_outputs(kernel, hidden, spec, labels=labels)["loss"]
    answer_labels = torch.where(segments == ANSWER, labels, torch.full_like(labels, spec.ignore_index))
    stats = token_outputs(_WithStats(kernel), hidden, spec, labels=answer_labels)
    return loss, stats["loss"], stats["p_y"], stats["entropy"]


def _batches(lengths: list[int], batch_tokens: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, current = [], []
    for i in order:
        if current and lengths[i] * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current = []
        current.append(i)
    return batches + ([current] if current else [])


def _pad(encoded: list[tuple], batch: list[int], pad_id: int, device) -> dict[str, torch.Tensor]:
    width = max(len(encoded[i][0]) for i in batch)

    def col(k: int, fill: int) -> torch.Tensor:
        return torch.tensor([encoded[i][k] + [fill] * (width - len(encoded[i][k])) for i in batch], device=device)

    ids, labels, segments = col(0, pad_id), col(1, IGNORE_INDEX), col(2, -1)
    mask = torch.tensor([[1] * len(encoded[i][0]) + [0] * (width - len(encoded[i][0])) for i in batch], device=device)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "segments": segments}


def _row_means(values: torch.Tensor, mask: torch.Tensor) -> list[float | None]:
    """Per row, the mean of ``values`` where ``mask`` (None where nothing is masked in); one host sync per batch."""
    sums = torch.where(mask, values.double(), 0.0).sum(dim=1).tolist()
    counts = mask.sum(dim=1).tolist()
    return [s / n if n else None for s, n in zip(sums, counts, strict=True)]


@torch.no_grad()
def score_traces(rows: list[dict], model, tokenizer, *, batch_tokens: int = 8192, progress: bool = False) -> dict:
    """{column: per-row value} for SCORE_COLUMNS (see the module docstring)."""
    if batch_tokens < 1:
        raise ValueError(f"--score-batch-tokens must be >= 1, got {batch_tokens}")
    encoded = [encode_trace(row, tokenizer) for row in rows]
    out: dict[str, list] = {name: [None] * len(rows) for name in SCORE_COLUMNS}
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = _batches([len(e[0]) for e in encoded], batch_tokens)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, unit="batch", desc="score")
    for batch in batches:
        inputs = _pad(encoded, batch, pad_id, device)
        segments = inputs.pop("segments")
        loss, a_loss, a_p, a_ent = model(**inputs, ls_head_fn=_head_fn, ls_extra={"segments": segments})
        trained = inputs["labels"][:, 1:] != IGNORE_INDEX
        answer = (segments[:, 1:] == ANSWER) & trained
        means = {"loss_mean": _row_means(loss, trained), "answer_loss_mean": _row_means(a_loss, answer),
                 "answer_p_mean": _row_means(a_p, answer), "answer_entropy_mean": _row_means(a_ent, answer)}
        for name, values in means.items():
            for i, value in zip(batch, values, strict=True):
                out[name][i] = value
    _check_finite(out, rows)
    return out


def _check_finite(out: dict, rows: list[dict]) -> None:
    for name, values in out.items():
        for i, v in enumerate(values):
            if v is not None and not math.isfinite(v):
                raise ValueError(f"the scoring model gave {name}={v} on row {i} (id {rows[i].get('id')!r}): "
                                 "a non-finite loss (try --score-dtype float32)")
