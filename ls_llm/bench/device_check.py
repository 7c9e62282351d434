"""The GPU check in one call (scripts/device_check.sh): what a lent GPU box must confirm, in under 8 minutes.

    python -m ls_llm.bench.device_check [--out DIR] [--tokens 8192 16384] [--skip-bench]

1. versions and device;
2. the engine's CUDA tests (tests/objectives/test_cuda.py: fp32 / bf16 / fp16 against float64), through pytest;
3. one `LsSFTTrainer` step and one online-distillation step in bf16 (fp32 on CPU) on a small Qwen2;
4. the objective benchmark against Liger-Kernel's fused linear cross-entropy with label smoothing (α = 0.1) at
   N tokens, H = 4096, V = 151936, bf16: forward + backward time and peak memory, as ratios in one run.

On a machine without CUDA, parts 2 and 4 are skipped (said so in the report), so CI checks that the script runs.
Everything is written to DIR/device_check.md and printed.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ls_llm.data.synthetic import generate_split, tokenizer_path

# Heavy imports stay inside functions (torch, transformers, trl, datasets, liger_kernel): a benchmark loads
# only what the case it runs needs.

ROOT = Path(__file__).resolve().parents[2]


def _versions() -> list[str]:
    import torch

    lines = [f"python {sys.version.split()[0]}"]
    for name in ("torch", "transformers", "trl", "accelerate", "peft", "datasets", "liger_kernel", "triton"):
        try:
            lines.append(f"{name} {importlib.import_module(name).__version__}")
        except Exception as err:  # noqa: BLE001 (a report line, not a failure)
            lines.append(f"{name}: not importable ({type(err).__name__})")
    lines.append(f"device: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu (no CUDA)'}")
    return lines


def _engine_tests() -> tuple[bool, str]:
    import torch

    if not torch.cuda.is_available():
        return True, "skipped: no CUDA device"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/objectives/test_cuda.py",
           "tests/objectives/test_identities.py", "-m", "gpu"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    return proc.returncode == 0, "\n".join(proc.stdout.strip().splitlines()[-15:])


def _tiny(vocab: int, hidden: int, seed: int):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    return Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=512, tie_word_embeddings=False, pad_token_id=0))


def _trainer_steps(out: Path) -> list[str]:
    """One SFT step (label smoothing) and one online-distillation step; losses must be finite."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer

    from ls_llm.trainers import LsDistillConfig, LsDistillTrainer, LsSFTConfig, LsSFTTrainer

    cuda = torch.cuda.is_available()
    tok = AutoTokenizer.from_pretrained(tokenizer_path())
    data = Dataset.from_list([{"messages": r["messages"]} for r in generate_split("train", 16, seed=0)])
    common = dict(per_device_train_batch_size=8, max_steps=1, learning_rate=1e-3, logging_steps=1, save_strategy="no",
                  report_to="none", use_cpu=not cuda, bf16=cuda, seed=0, dataloader_num_workers=0,
                  disable_tqdm=True, max_length=128)
    dtype = torch.bfloat16 if cuda else torch.float32
    sft = LsSFTTrainer(model=_tiny(len(tok), 256, 0).to(dtype), processing_class=tok, train_dataset=data,
                       args=LsSFTConfig(output_dir=str(out / "sft"), objective="label_smoothing", alpha=0.1, **common))
    loss = sft.train().training_loss
    teacher = _tiny(len(tok), 320, 1).to(dtype)
    distill = LsDistillTrainer(model=_tiny(len(tok), 256, 2).to(dtype), teacher_model=teacher, processing_class=tok,
                               train_dataset=data,
                               args=LsDistillConfig(output_dir=str(out / "distill"), teacher_model_name_or_path="tiny",
                                                    distill_alpha=0.5, teacher_smoothing=0.1, **common))
    dloss = distill.train().training_loss
    if not (math.isfinite(loss) and math.isfinite(dloss)):
        raise RuntimeError(f"non-finite loss in a trainer step: sft {loss}, distill {dloss}")
    return [f"LsSFTTrainer step ({'bf16, cuda' if cuda else 'fp32, cpu'}): loss {loss:.4f}",
            f"LsDistillTrainer online step: loss {dloss:.4f}"]


def _bench_one(fn, n: int, hidden: int, vocab: int, reps: int = 3) -> tuple[float, float]:
    """Median forward+backward ms and peak working memory (GiB above the inputs) of fn(h, w, y)."""
    import torch

    torch.manual_seed(0)
    h = (torch.randn(n, hidden, device="cuda") * 0.5).bfloat16().requires_grad_()
    w = (torch.randn(vocab, hidden, device="cuda") * 0.02).bfloat16().requires_grad_()
    y = torch.randint(0, vocab, (n,), device="cuda")
    fn(h, w, y).backward()  # warm-up (Triton compilation, allocator)
    h.grad = w.grad = None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(h, w, y).backward()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
        h.grad = w.grad = None
    peak = (torch.cuda.max_memory_allocated() - base) / 2**30
    return sorted(times)[len(times) // 2], peak


def _liger_bench(tokens: list[int], hidden: int = 4096, vocab: int = 151936) -> list[str]:
    import torch

    if not torch.cuda.is_available():
        return ["skipped: no CUDA device"]
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss
    except ImportError as err:
        return [f"skipped: liger_kernel not importable ({err})"]
    from ls_llm.objectives import build_objective

    ours = build_objective("label_smoothing", alpha=0.1)
    liger = LigerFusedLinearCrossEntropyLoss(label_smoothing=0.1)
    rows = ["| N | ours ms | Liger ms | time ours/Liger | ours GiB | Liger GiB | memory ours/Liger | loss diff |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in tokens:
        t_o, m_o = _bench_one(lambda h, w, y: ours(h, w, y), n, hidden, vocab)
        t_l, m_l = _bench_one(lambda h, w, y: liger(w, h, y), n, hidden, vocab)
        h = (torch.randn(n, hidden, device="cuda") * 0.5).bfloat16()
        w = (torch.randn(vocab, hidden, device="cuda") * 0.02).bfloat16()
        y = torch.randint(0, vocab, (n,), device="cuda")
        with torch.no_grad():
            diff = abs(float(ours(h, w, y)) - float(liger(w, h, y)))
        rows.append(f"| {n} | {t_o:.1f} | {t_l:.1f} | {t_o / t_l:.2f} | {m_o:.2f} | {m_l:.2f} | "
                    f"{m_o / max(m_l, 1e-9):.2f} | {diff:.2e} |")
        del h, w, y
        torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="report folder (default: a temporary one)")
    parser.add_argument("--tokens", type=int, nargs="+", default=[8192, 16384])
    parser.add_argument("--skip-bench", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="device-check-"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    report = ["# device check", "", "## versions", "", *_versions(), ""]
    ok, tail = _engine_tests()
    report += ["## engine CUDA tests (fp32 / bf16 / fp16 vs float64)", "", "```", tail, "```", "",
               "## trainer steps", "", *_trainer_steps(out), ""]
    if not args.skip_bench:
        report += ["## label smoothing α=0.1 vs Liger FLCE (bf16, H=4096, V=151936, fwd+bwd)", "",
                   *_liger_bench(args.tokens), ""]
    report.append(f"total {time.time() - t0:.0f} s; {'OK' if ok else 'FAILED'}")
    text = "\n".join(report)
    (out / "device_check.md").write_text(text + "\n")
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
