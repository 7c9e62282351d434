"""Expected calibration error of the final-answer tokens.

Definition used by the sweep (docs/results.md repeats it): every clean test trace is fed to the model
teacher-forced (chat-rendered prompt + the correct solution). At each token inside the final
`\\boxed{...}` the model's next-token distribution gives a confidence, the top probability, and a hit,
whether its argmax is the gold token. With the tokens split into `n_bins` equal-width confidence bins,

    ECE = sum_b |B_b| / N * | mean(hit in B_b) - mean(confidence in B_b) |     (Guo et al. 2017)

Top-label ECE per token is what Lukasik et al. 2020 and Guo et al. report; answer tokens only, because the
noise the sweep injects sits there and that is where over-confidence on corrupted labels would show.
"""

from __future__ import annotations

import torch


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


def boxed_span(text: str) -> tuple[int, int] | None:
    """Character span of the content of the last `\\boxed{...}` (braces balanced), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    begin = start + len("\\boxed{")
    depth = 1
    for i in range(begin, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return begin, i
    return None


def _encode(tokenizer, problem: str, solution: str) -> tuple[list[int], list[int]]:
    """Token ids of the rendered conversation and the positions of the answer tokens."""
    messages = [{"role": "user", "content": problem}, {"role": "assistant", "content": solution}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    span = boxed_span(text)
    if span is None:
        raise ValueError(f"solution has no \\boxed{{}} answer: {solution!r}")
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    positions = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < span[1] and b > span[0] and i > 0]
    return enc["input_ids"], positions


@torch.no_grad()
def answer_token_confidence(model, tokenizer, rows: list[dict], *, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(confidence, hit) of every answer token of `rows` ({problem, solution}), teacher-forced."""
    model.eval()
    confidences, hits = [], []
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
        for r, (_, positions) in enumerate(chunk):
            pos = torch.tensor(positions)
            probs = torch.softmax(logits[r, pos - 1], dim=-1)  # the logits at i-1 predict token i
            top, arg = probs.max(dim=-1)
            confidences.append(top)
            hits.append((arg == ids[r, pos]).double())
    if not confidences:
        return torch.zeros(0), torch.zeros(0)
    return torch.cat(confidences), torch.cat(hits)
