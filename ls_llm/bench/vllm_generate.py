"""Benchmark: greedy generation throughput of vLLM (the CPU build) against transformers, same model, same prompts.

    .venv-eval/bin/python -m ls_llm.bench.vllm_generate                 # tiny and small models, float32
    .venv-eval/bin/python -m ls_llm.bench.vllm_generate --dtype bfloat16 --sizes small

Runs in the CPU evaluation environment (`make eval-env-cpu`; `make bench-vllm`). Each model is a random Qwen2
built from a config with the shipped arithmetic tokenizer (head_dim 64, what vLLM's CPU attention supports).
Both sides get the same chat-templated prompt token ids and generate exactly `--new-tokens` tokens greedily
(end of sequence ignored), all prompts as one batch: transformers' `generate` on a left-padded batch, vLLM's
offline `LLM.generate`. One warm-up call each, then one timed run; tokens/s = prompts x new tokens / wall time
of the timed call. Load time (weights, and for vLLM the engine and its worker process) is reported apart.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ls_llm.data.synthetic import tokenizer_path

# Heavy imports stay inside functions (torch, transformers, vllm): a benchmark loads only what the case it
# runs needs.

# name -> (hidden, layers, heads, kv heads); head_dim = hidden / heads = 64
SIZES = {"tiny": (128, 2, 2, 1), "small": (512, 8, 8, 2)}


def build_model(path: Path, size: str, dtype: str) -> Path:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM


    hidden, layers, heads, kv_heads = SIZES[size]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path())
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=2048, tie_word_embeddings=False,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).to(getattr(torch, dtype)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def prompts(path: Path, n: int) -> list[list[int]]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    questions = [f"Sam has {7 * i + 3} apples and buys {i + 11} more. How many apples does Sam have now?"
                 for i in range(n)]
    return [tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                          tokenize=True, return_dict=False) for q in questions]


def run_hf(path: Path, ids: list[list[int]], new_tokens: int, dtype: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).eval()
    model.generation_config.eos_token_id = None  # exactly new_tokens per prompt, like vLLM's ignore_eos
    load = time.perf_counter() - start
    width = max(map(len, ids))
    pad = model.config.pad_token_id
    batch = torch.tensor([[pad] * (width - len(row)) + row for row in ids])
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in ids])

    def generate(rows, tokens):
        with torch.no_grad():
            return model.generate(input_ids=batch[:rows], attention_mask=mask[:rows], do_sample=False,
                                  max_new_tokens=tokens, min_new_tokens=0, pad_token_id=pad)

    generate(1, 8)  # warm-up
    start = time.perf_counter()
    out = generate(len(ids), new_tokens)
    wall = time.perf_counter() - start
    if out.shape[1] - width != new_tokens:  # the token count the rate divides by must be the one generated
        raise RuntimeError(f"HF generated {out.shape[1] - width} tokens per row, expected {new_tokens}")
    return {"load_s": load, "wall_s": wall, "tokens": len(ids) * new_tokens}


def run_vllm(path: Path, ids: list[list[int]], new_tokens: int, dtype: str) -> dict:
    from vllm import LLM, SamplingParams, TokensPrompt

    start = time.perf_counter()
    llm = LLM(model=str(path), dtype=dtype, max_model_len=1024, enforce_eager=True, gpu_memory_utilization=0.25,
              seed=0)
    load = time.perf_counter() - start
    try:
        def generate(rows, tokens):
            params = SamplingParams(temperature=0, max_tokens=tokens, ignore_eos=True, detokenize=False)
            return llm.generate([TokensPrompt(prompt_token_ids=row) for row in ids[:rows]], params, use_tqdm=False)

        generate(1, 8)  # warm-up
        start = time.perf_counter()
        out = generate(len(ids), new_tokens)
        wall = time.perf_counter() - start
    finally:
        llm.llm_engine.engine_core.shutdown()
    tokens = sum(len(o.outputs[0].token_ids) for o in out)
    if tokens != len(ids) * new_tokens:
        raise RuntimeError(f"vLLM generated {tokens} tokens, expected {len(ids) * new_tokens}")
    return {"load_s": load, "wall_s": wall, "tokens": tokens}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="tiny,small", help=f"comma-separated, of {sorted(SIZES)}")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            path = build_model(Path(tmp) / size, size, args.dtype)
            ids = prompts(path, args.prompts)
            hf = run_hf(path, ids, args.new_tokens, args.dtype)
            vl = run_vllm(path, ids, args.new_tokens, args.dtype)
            hidden, layers, heads, kv = SIZES[size]
            rows.append(f"| {size} (hidden {hidden}, {layers} layers, {heads}/{kv} heads) | {args.dtype} "
                        f"| {args.prompts} x {args.new_tokens} | {hf['tokens'] / hf['wall_s']:.0f} "
                        f"| {vl['tokens'] / vl['wall_s']:.0f} | {hf['wall_s'] / vl['wall_s']:.1f}x "
                        f"| {hf['load_s']:.1f} / {vl['load_s']:.1f} |")
    print("| model | dtype | prompts x new tokens | HF tokens/s | vLLM CPU tokens/s | vLLM / HF | load s (HF / vLLM) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
