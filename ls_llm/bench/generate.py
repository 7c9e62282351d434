"""Benchmark: samples/s of `ls-llm generate` against the backend's own generate call, same prompts and settings.

    .venv/bin/python -m ls_llm.bench.generate --backends hf                  # transformers on CPU
    .venv-eval/bin/python -m ls_llm.bench.generate --backends hf,vllm        # + vLLM's CPU build (make eval-env-cpu)

A random Qwen2 built from a config with the shipped arithmetic tokenizer (`bench.vllm_generate.build_model`,
head_dim 64), `--problems` chat-templated problems x `--k` samples, greedy (both sides then compute the same
tokens, which is checked), `--max-gen-toks` at most. The backend's own call: transformers' `generate` on
left-padded batches of `--batch-size` (the size `ls-llm generate` uses), or vLLM's offline `LLM.generate` on all
prompts at once. `ls-llm generate` is timed by its manifest's `generate_seconds` (the generation calls, journal
writes included; model load, problem reading and the final write are reported apart as its wall time). One
warm-up call each; the backend's own call is timed once before and once after `ls-llm generate` (a shared machine's
load drifts; the ratio is against their mean). One torch thread by default (`--threads`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ls_llm import vllm_support
from ls_llm.bench.vllm_generate import build_model
from ls_llm.evaluation.generate import generate_traces, load_problems
from ls_llm.evaluation.generate_config import GenerateConfig

# Heavy imports stay inside functions (torch, transformers, vllm): a benchmark loads only what the case it
# runs needs.


def write_problems(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            problem = f"Sam has {7 * i + 3} apples and buys {i + 11} more. How many apples does Sam have now?"
            handle.write(json.dumps({"id": f"q{i}", "problem": problem, "answer": str(8 * i + 14)}) + "\n")
    return path


def chat_ids(model: Path, problems: Path) -> list[list[int]]:
    """The prompts exactly as `ls-llm generate` builds them (its problem loader, then the chat template)."""
    from transformers import AutoTokenizer


    tokenizer = AutoTokenizer.from_pretrained(model)
    cfg = GenerateConfig(model=str(model), data=str(problems), out="unused", num_samples=1, backend="hf")
    return [tokenizer.apply_chat_template(p.prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
            for p in load_problems(cfg)]


def raw_hf(model_path: Path, ids: list[list[int]], *, k: int, max_gen_toks: int, batch_size: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    rows = [row for row in ids for _ in range(k)]
    pad = tokenizer.pad_token_id

    def generate(batch_rows):
        width = max(map(len, batch_rows))
        batch = torch.tensor([[pad] * (width - len(r)) + r for r in batch_rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in batch_rows])
        with torch.no_grad():
            out = model.generate(input_ids=batch, attention_mask=mask, do_sample=False, max_new_tokens=max_gen_toks,
                                 pad_token_id=pad)
        return tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)

    generate(rows[:2])  # warm-up
    start = time.perf_counter()
    texts = [text for i in range(0, len(rows), batch_size) for text in generate(rows[i : i + batch_size])]
    return {"seconds": time.perf_counter() - start, "texts": texts}


def raw_vllm(model_path: Path, ids: list[list[int]], *, k: int, max_gen_toks: int) -> dict:
    from vllm import LLM, SamplingParams, TokensPrompt


    defaults = vllm_support.engine_defaults()
    llm = LLM(model=str(model_path), dtype="float32", enforce_eager=defaults.enforce_eager,
              gpu_memory_utilization=defaults.gpu_memory_utilization, seed=1234)
    try:
        params = SamplingParams(temperature=0, max_tokens=max_gen_toks, skip_special_tokens=True)
        prompts = [TokensPrompt(prompt_token_ids=row) for row in ids for _ in range(k)]
        llm.generate(prompts[:2], params, use_tqdm=False)  # warm-up
        start = time.perf_counter()
        out = llm.generate(prompts, params, use_tqdm=False)
        seconds = time.perf_counter() - start
    finally:
        llm.llm_engine.engine_core.shutdown()
    return {"seconds": seconds, "texts": [o.outputs[0].text for o in out]}


def ours(model_path: Path, problems: Path, out: Path, *, backend: str, k: int, max_gen_toks: int,
         batch_size: int) -> dict:
    common = dict(model=str(model_path), data=str(problems), num_samples=k, backend=backend, temperature=0.0,
                  max_gen_toks=max_gen_toks, dtype="float32",
                  batch_size=str(batch_size) if backend == "hf" else "auto")
    generate_traces(GenerateConfig(out=str(out / "warmup"), limit=1, **common | {"num_samples": 2}))
    manifest = generate_traces(GenerateConfig(out=str(out / "run"), **common))
    rows = [json.loads(line) for line in (out / "run" / "traces.jsonl").read_text(encoding="utf-8").splitlines()]
    return {"seconds": manifest["generate_seconds"], "wall": manifest["wall_seconds"],
            "texts": [row["completion"] for row in rows]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="hf", help="comma-separated, of hf, vllm")
    parser.add_argument("--problems", type=int, default=50)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-gen-toks", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16, help="hf: batch size of both sides")
    parser.add_argument("--size", default="tiny", help="model size of bench.vllm_generate (tiny, small)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (vLLM's CPU build serves with 1; "
                        "on a shared machine 2 spinning threads make every wall time a measure of the others' load)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)

    table = ["| backend | model | problems x k, max tokens | backend's own samples/s (before / after) | ls-llm generate samples/s "
             "| ratio | same texts | ls-llm generate wall s (load + write) |", "|---|---|---|---:|---:|---:|---|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / "model", args.size, "float32")
        problems = write_problems(Path(tmp) / "problems.jsonl", args.problems)
        ids = chat_ids(model, problems)
        samples = args.problems * args.k
        for backend in args.backends.split(","):
            def own(backend=backend):
                if backend == "hf":
                    return raw_hf(model, ids, k=args.k, max_gen_toks=args.max_gen_toks, batch_size=args.batch_size)
                return raw_vllm(model, ids, k=args.k, max_gen_toks=args.max_gen_toks)

            before = own()
            mine = ours(model, problems, Path(tmp) / backend, backend=backend, k=args.k,
                        max_gen_toks=args.max_gen_toks, batch_size=args.batch_size)
            after = own()
            raw_seconds = (before["seconds"] + after["seconds"]) / 2
            same = sum(a == b for a, b in zip(before["texts"], mine["texts"], strict=True))
            table.append(f"| {backend} | {args.size} | {args.problems} x {args.k}, {args.max_gen_toks} "
                         f"| {samples / before['seconds']:.1f} / {samples / after['seconds']:.1f} "
                         f"| {samples / mine['seconds']:.1f} | {raw_seconds / mine['seconds']:.2f}x "
                         f"| {same}/{samples} | {mine['wall']:.1f} |")
    print("\n".join(table))


if __name__ == "__main__":
    main()
