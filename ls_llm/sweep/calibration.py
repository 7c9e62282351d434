"""Expected calibration error of the final-answer tokens.

Definition used by the sweep (docs/results.md repeats it): every clean test trace is fed to the model
teacher-forced (chat-rendered prompt + the correct solution). At each answer token the model's next-token
distribution gives a confidence, the top probability, and a hit, whether its argmax is the gold token.
With the tokens split into `n_bins` equal-width confidence bins,

    ECE = sum_b |B_b| / N * | mean(hit in B_b) - mean(confidence in B_b) |     (Guo et al. 2017)

Two sets of answer tokens are scored: "boxed", the tokens inside the final `\\boxed{...}` / `\\fbox{...}`
(found by the project's one parser, `ls_llm.answers`), and "computed", the same answer where the trace
derives it (the last `= ANSWER` before the box). Where a trace writes its answer before boxing it, the box
repeats a value already written, so the boxed tokens measure copying; the computed tokens are where answer
noise (which rewrites that value too) can make the model over- or under-confident. A trace that never
writes `= ANSWER` before its box adds no computed tokens.
"""

from __future__ import annotations

import re

import torch

from ls_llm.answers import extract_final_answer, last_boxed_span


def expected_calibration_error(confidence: torch.Tensor, hit: torch.Tensor, n_bins: int = 10) -> float:
    """Top-label ECE of `confidence` (in [0, 1]) against 0/1 `hit`, over equal-width bins.

    A confidence of exactly 0 falls in the first bin and 1 in the last; an empty input has ECE 0.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins!r}")
    if confidence.shape != hit.shape:
        raise ValueError(f"confidence and hit must have one shape, got {tuple(confidence.shape)} and {tuple(hit.shape)}")
    if confidence.numel() == 0:
        return 0.0
    confidence, hit = confidence.double().flatten(), hit.double().flatten()
    bins = torch.clamp((confidence * n_bins).long(), max=n_bins - 1)
    conf_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bins, confidence)
    hit_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bins, hit)
    # sum_b |B_b|/N * |acc_b - conf_b| = sum_b |hit_sum_b - conf_sum_b| / N
    return float((hit_sum - conf_sum).abs().sum() / confidence.numel())


def computed_span(text: str, boxed: tuple[int, int]) -> tuple[int, int] | None:
    """Span of the final answer where the trace derives it: the last `= ANSWER` before the box (the box then
    only repeats that value, so predicting the box is a copy); None when the trace writes no such step."""
    steps = list(re.finditer(rf"= ({re.escape(text[boxed[0] : boxed[1]])})(?!\d|\.\d)", text[: boxed[0]]))
    return steps[-1].span(1) if steps else None


def _positions(offsets, span: tuple[int, int] | None) -> list[int]:
    if span is None:
        return []
    return [i for i, (a, b) in enumerate(offsets) if a < span[1] and b > span[0] and i > 0]


def _encode(tokenizer, problem: str, solution: str) -> tuple[list[int], dict[str, list[int]]]:
    """Token ids of the rendered conversation and, per kind of answer span, its token positions."""
    messages = [{"role": "user", "content": problem}, {"role": "assistant", "content": solution}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    boxed = last_boxed_span(text)
    if boxed is None or extract_final_answer(solution) is None:
        raise ValueError(f"solution has no final \\boxed{{}} answer: {solution!r}")
    offsets = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)["offset_mapping"]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids, {"boxed": _positions(offsets, boxed), "computed": _positions(offsets, computed_span(text, boxed))}


@torch.no_grad()
def answer_token_confidence(model, tokenizer, rows: list[dict], *, batch_size: int = 64) -> dict:
    """{"boxed" | "computed": (confidence, hit)} over the answer tokens of `rows` ({problem, solution}),
    teacher-forced: the tokens inside the final box, and those where the trace computes the answer."""
    model.eval()
    out: dict[str, tuple[list, list]] = {"boxed": ([], []), "computed": ([], [])}
    encoded = [_encode(tokenizer, row["problem"], row["solution"]) for row in rows]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, (row_ids, _) in enumerate(chunk):  # right padding: positions stay those of the unpadded row
            ids[r, : len(row_ids)] = torch.tensor(row_ids)
            mask[r, : len(row_ids)] = 1
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        for r, (_, spans) in enumerate(chunk):
            for kind, positions in spans.items():
                if not positions:
                    continue
                pos = torch.tensor(positions)
                top, arg = torch.softmax(logits[r, pos - 1], dim=-1).max(dim=-1)  # logits at i-1 predict i
                out[kind][0].append(top)
                out[kind][1].append((arg == ids[r, pos]).double())
    return {kind: (torch.cat(c) if c else torch.zeros(0), torch.cat(h) if h else torch.zeros(0))
            for kind, (c, h) in out.items()}
