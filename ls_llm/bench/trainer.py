"""Benchmark: LsSFTTrainer (label smoothing, fused) vs trl's SFTTrainer (label_smoothing_factor, and plain NLL).

    python -m ls_llm.bench.trainer                 # vocab 151936, hidden 256, 2 layers, 1024-token rows, CPU
    python -m ls_llm.bench.trainer --steps 2 --variants ls_label_smoothing ls_routed  # two variants

A small-but-wide model (Qwen2.5's vocabulary on a tiny body) makes the lm_head and the loss dominate, which
is where the paths differ:
- ls_label_smoothing: LsSFTTrainer(objective=label_smoothing, alpha=0.1): fused objective, no logits.
- trl_label_smoothing: SFTTrainer(label_smoothing_factor=0.1): a full-logits forward for transformers'
  LabelSmoother, plus trl's fused no-grad forward for its metrics.
- trl_nll: SFTTrainer's default fused NLL (the floor for a plain loss).
- ls_routed: label smoothing routed (objectives/routing.py) to each row's last ``--answer`` tokens, plain CE
  on the rest; against ls_label_smoothing: tokens/s within 5%, same step memory (no added matmul or buffer).
- ls_weighted: ls_label_smoothing with per-trace weights (trainers/weights.py; rows weighted 1, 0.5, 0.25, 2 in
  turn); against ls_label_smoothing: tokens/s within 3%.

Each variant runs in its own process (fresh allocator, honest peak RSS); all ratios come from one run of
this script, since timings on shared machines drift between runs. Throughput = trained tokens / wall time of
the measured steps (after one warm-up step). Peak step memory = peak RSS during the measured steps minus the
RSS after the warm-up step (model, gradients and optimizer state already allocated).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from ls_llm.bench.objectives import _current_rss, _peak_rss, _reset_peak_rss

# Heavy imports stay inside functions (torch, transformers, trl, datasets, tokenizers): a benchmark loads only
# what the case it runs needs.

VARIANTS = ("ls_label_smoothing", "trl_label_smoothing", "trl_nll", "ls_routed", "ls_weighted")
TRACE_WEIGHTS = (1.0, 0.5, 0.25, 2.0)
# Variant -> its config's own keys (ls_*: LsSFTConfig, trl_*: trl's SFTConfig).
VARIANT_KEYS = {
    "ls_label_smoothing": {"objective": "label_smoothing", "alpha": 0.1},
    "trl_label_smoothing": {"label_smoothing_factor": 0.1},
    "trl_nll": {},
    "ls_routed": {"objective": "ce", "segment_objectives": {"answer": {"objective": "label_smoothing", "alpha": 0.1}}},
    "ls_weighted": {"objective": "label_smoothing", "alpha": 0.1, "trace_weight_column": "w"},
}


def _model(vocab: int, hidden: int, layers: int):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      tie_word_embeddings=True)
    return Qwen2ForCausalLM(cfg)


def _trainer(variant: str, args: argparse.Namespace, out_dir: str):
    import torch
    from datasets import Dataset
    from transformers import PreTrainedTokenizerFast
    from trl import SFTConfig, SFTTrainer

    from ls_llm.trainers import LsSFTConfig, LsSFTTrainer

    g = torch.Generator().manual_seed(0)
    rows = [{"input_ids": torch.randint(0, args.vocab, (args.seq,), generator=g).tolist()}
            for _ in range(args.batch * (args.steps + 1))]
    if variant == "ls_routed":  # the answer span: each row's last `--answer` tokens (segment 1), the rest reasoning
        rows = [{**r, "ls_segments": [int(i >= args.seq - args.answer) for i in range(args.seq)]} for r in rows]
    if variant == "ls_weighted":
        rows = [{**r, "w": TRACE_WEIGHTS[i % len(TRACE_WEIGHTS)]} for i, r in enumerate(rows)]
    common = dict(output_dir=out_dir, per_device_train_batch_size=args.batch, max_steps=args.steps + 1,
                  learning_rate=1e-4, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
                  bf16=False, gradient_checkpointing=False, disable_tqdm=True, max_length=args.seq, seed=0,
                  dataloader_num_workers=0, optim="sgd")
    ours = variant.startswith("ls_")
    cfg = (LsSFTConfig if ours else SFTConfig)(**VARIANT_KEYS[variant], **common)
    trainer = (LsSFTTrainer if ours else SFTTrainer)(model=_model(args.vocab, args.hidden, args.layers), args=cfg,
                                                      train_dataset=Dataset.from_list(rows),
                                                      processing_class=_tokenizer(PreTrainedTokenizerFast))
    if ours:  # as `ls-llm train` runs it (trainers/run.prepare_run): with the NaN / signal guard
        from ls_llm.trainers.guard import install_guard

        install_guard(trainer)
    return trainer


def _tokenizer(fast_cls):
    # Pre-tokenized rows: the tokenizer only supplies pad/eos ids, so a one-token-per-word stand-in is enough.
    from tokenizers import Tokenizer, models

    tok = Tokenizer(models.WordLevel({"<pad>": 0, "<eos>": 1}, unk_token="<pad>"))
    return fast_cls(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


def _child(variant: str, args: argparse.Namespace) -> dict:
    from transformers import TrainerCallback

    marks: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, targs, state, control, **kwargs):
            if state.global_step == 1:  # warm-up step done: start the clock and the peak
                marks["base_rss"] = _current_rss()
                _reset_peak_rss()
                marks["t0"] = time.perf_counter()
            elif state.global_step == args.steps + 1:
                marks["t1"] = time.perf_counter()
                marks["peak_rss"] = _peak_rss()

    with tempfile.TemporaryDirectory() as out_dir:
        trainer = _trainer(variant, args, out_dir)
        trainer.add_callback(Clock())
        trainer.train()
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    tokens = args.steps * args.batch * args.seq
    return {"variant": variant, "tokens_per_s": tokens / (marks["t1"] - marks["t0"]),
            "peak_rss_gb": marks["peak_rss"] / 2**30, "step_mem_gb": (marks["peak_rss"] - marks["base_rss"]) / 2**30,
            "first_loss": losses[0]}


def _run_child(variant: str, argv: list[str]) -> dict:
    cmd = [sys.executable, "-m", "ls_llm.bench.trainer", "--child", variant, *argv]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"variant {variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(results: dict[str, dict]) -> str:
    lines = ["| variant | tokens/s | peak RSS (GB) | step memory (GB) | first loss |", "|---|---:|---:|---:|---:|",
             *(f"| {name} | {r['tokens_per_s']:.0f} | {r['peak_rss_gb']:.2f} | {r['step_mem_gb']:.2f} | "
               f"{r['first_loss']:.4f} |" for name, r in results.items()), ""]
    ls, trl_ls, nll, routed, weighted = (results.get(v) for v in VARIANTS)
    if ls and trl_ls:
        lines += [f"- throughput vs trl label smoothing: {ls['tokens_per_s'] / trl_ls['tokens_per_s']:.2f}x "
                  "(target >= 1.3x)",
                  f"- step memory, trl label smoothing / ours: "
                  f"{trl_ls['step_mem_gb'] / max(ls['step_mem_gb'], 1e-9):.1f}x (target >= 3x)"]
    if ls and nll:
        lines.append(f"- throughput vs trl plain NLL: {ls['tokens_per_s'] / nll['tokens_per_s']:.2f}x (target >= 1.0x)")
    if ls and routed:
        lines += [f"- routed / unrouted label smoothing throughput: {routed['tokens_per_s'] / ls['tokens_per_s']:.3f}x "
                  "(target within 5%)",
                  f"- routed / unrouted step memory: {routed['step_mem_gb'] / max(ls['step_mem_gb'], 1e-9):.3f}x "
                  f"(peak RSS {routed['peak_rss_gb']:.2f} vs {ls['peak_rss_gb']:.2f} GB)"]
    if ls and weighted:
        lines.append(f"- weighted / unweighted label smoothing throughput: "
                     f"{weighted['tokens_per_s'] / ls['tokens_per_s']:.3f}x (target within 3%)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="measured optimizer steps (after 1 warm-up step)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per variant (0: torch's default)")
    parser.add_argument("--answer", type=int, default=32, help="ls_routed: answer-span tokens at each row's end")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS), help="variants to run")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        print(json.dumps(_child(args.child, args)))
        return 0
    shape = ["--vocab", str(args.vocab), "--hidden", str(args.hidden), "--layers", str(args.layers), "--seq",
             str(args.seq), "--batch", str(args.batch), "--steps", str(args.steps), "--threads", str(args.threads),
             "--answer", str(args.answer)]
    results = {v: _run_child(v, shape) for v in args.variants}
    print(f"vocab {args.vocab}, hidden {args.hidden}, {args.layers} layers, batch {args.batch} x {args.seq} tokens, "
          f"{args.steps} measured steps, CPU ({os.cpu_count()} cores, torch threads: {args.threads or 'default'}), "
          "float32, SGD\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
