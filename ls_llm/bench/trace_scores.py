"""Model-loss scoring cost against the engine's no-grad forward: ``python -m ls_llm.bench.trace_scores``.

A Qwen2-shaped model built from a config (random weights; ``--hidden``, ``--layers``) with the vocabulary of
``--tokenizer`` (the target was set with the Qwen3 tokenizer's 151k, which ``make bench-audit`` passes when
../shared/data/tokenizers has it; default: the shipped arithmetic tokenizer) scores the traces of ``--data``
(default: generated MATH-like answers, see ls_llm.bench.audit). Timed, on the same padded batches of the same tokens:

- ``engine``: the backbone and the engine's no-grad per-token loss (``TokenObjective.token_losses`` inside the
  lm_head, no logits materialized), tokens already prepared;
- ``score_traces``: ls_llm.trainers.trace_scores end to end (chat-template tokenization, answer segments, the
  loss of every token and p(y) / entropy of the answer tokens, per-trace means).

Target: ``score_traces`` within 1.2x of ``engine`` on CPU. Best of ``--repeats`` interleaved runs after a warm-up.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from ls_llm.bench.math_rows import math_rows
from ls_llm.data.synthetic import tokenizer_path

# Heavy imports stay inside functions (torch, transformers): a benchmark loads only what the case it runs
# needs.


def _tokenizer(path: str | None):
    from transformers import AutoTokenizer


    path = path or tokenizer_path()
    return AutoTokenizer.from_pretrained(path), path


def _checkpoint(tokenizer, hidden: int, layers: int, folder: str) -> str:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 3,
                      num_hidden_layers=layers, num_attention_heads=max(hidden // 64, 1), num_key_value_heads=1,
                      max_position_embeddings=4096, tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id)
    Qwen2ForCausalLM(cfg).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _engine_pass(model, encoded, batches, pad_id) -> float:
    import torch

    from ls_llm.objectives import build_objective
    from ls_llm.trainers.trace_scores import _pad

    ce = build_objective("ce")

    def head(hidden, labels, spec, segments=None):
        return ce.token_losses(hidden, labels=labels, spec=spec)

    start = time.perf_counter()
    with torch.no_grad():
        for batch in batches:
            inputs = _pad(encoded, batch, pad_id, "cpu")
            inputs.pop("segments")
            model(**inputs, ls_head_fn=head)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ls_llm.bench.trace_scores", description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", help="tokenizer folder (default: the shipped arithmetic tokenizer)")
    parser.add_argument("--data", help="traces to score (default: generated MATH-like answers)")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-tokens", type=int, default=4096)
    ns = parser.parse_args(argv)

    from ls_llm.trainers.trace_scores import _batches, encode_trace, load_scorer, score_traces

    tokenizer, tok_path = _tokenizer(ns.tokenizer)
    rows, _ = math_rows(ns.rows, 0, ns.data)
    with tempfile.TemporaryDirectory() as folder:
        model, tokenizer = load_scorer(_checkpoint(tokenizer, ns.hidden, ns.layers, folder), device="cpu")
    encoded = [encode_trace(row, tokenizer) for row in rows]
    batches = _batches([len(e[0]) for e in encoded], ns.batch_tokens)
    tokens = sum(len(e[0]) for e in encoded)
    pad_id = tokenizer.pad_token_id or 0
    score_traces(rows[:2], model, tokenizer)  # warm-up
    engine, ours = [], []
    for _ in range(ns.repeats):  # interleaved, best of each: the machine is shared, its load drifts
        engine.append(_engine_pass(model, encoded, batches, pad_id))
        start = time.perf_counter()
        scores = score_traces(rows, model, tokenizer, batch_tokens=ns.batch_tokens)
        ours.append(time.perf_counter() - start)
    engine, ours = min(engine), min(ours)
    answered = sum(v is not None for v in scores["answer_loss_mean"])
    print(f"\nmodel-loss scoring: vocab {len(tokenizer)} ({tok_path}), hidden {ns.hidden}, {ns.layers} layers, "
          f"{len(rows)} traces, {tokens} tokens, {len(batches)} batches, {answered} with an answer span; "
          f"torch threads {__import__('torch').get_num_threads()}")
    print("| path | seconds | tokens/s | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| engine no-grad forward (token_losses) | {engine:.2f} | {tokens / engine:.0f} | 1.00 |")
    print(f"| score_traces (tokenize + segments + stats) | {ours:.2f} | {tokens / ours:.0f} | {ours / engine:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
