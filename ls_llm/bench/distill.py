"""Benchmark: the online chunked divergence vs materializing both models' logits, and the cached (top-k) teacher.

    python -m ls_llm.bench.distill            # N=2048, V=151936, H_teacher=1536, H_student=896, fp32, CPU
    python -m ls_llm.bench.distill --quick    # N=256

Every variant runs in its own process (fresh allocator, honest peak RSS); one forward + backward each, after
one warm-up call at N=64 in the same process (thread pools, first-touch of the weights):

- materialized: student logits h_s W_sᵀ (with grad), teacher logits h_t W_tᵀ (no grad), then
  `distill_reference.reference_distill_loss` (ce + forward KL, distill_alpha 0.5) by plain autograd;
- online: `DistillLoss` with an `OnlineTeacher` (the same loss, chunked);
- sft: the plain fused ce objective on the student head (what one SFT step costs in the head);
- cached: `DistillLoss` with a `CachedTeacher` (top-k ids int32 + float16 log-probs + float16 log tail).

Working memory = peak RSS − RSS with inputs allocated − the student's hidden and weight gradients (held by
every method). Timings are of the lm-head part of a step (the backbone is identical across methods); CPU time
is reported beside wall time, as it is less sensitive to other load on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from ls_llm.bench.objectives import _cpu_seconds, _current_rss, _peak_rss, _reset_peak_rss

# Heavy imports stay inside functions (torch): a benchmark loads only what the case it runs needs.

VARIANTS = ("materialized", "online", "sft", "cached")


def _inputs(n: int, hs: int, ht: int, vocab: int, top_k: int):
    import torch

    g = torch.Generator().manual_seed(0)
    h = torch.randn(n, hs, generator=g).requires_grad_()
    w = torch.randn(vocab, hs, generator=g).mul_(0.02).requires_grad_()
    h_t = torch.randn(n, ht, generator=g)
    w_t = torch.randn(vocab, ht, generator=g).mul_(0.02)
    y = torch.randint(0, vocab, (n,), generator=g)
    ids = torch.stack([torch.randperm(vocab, generator=g)[:top_k] for _ in range(min(n, 64))]).repeat(-(-n // 64), 1)[:n]
    logprobs = torch.log_softmax(torch.randn(n, top_k + 1, generator=g), -1)
    cache = (ids.to(torch.int32), logprobs[:, :-1].half(), logprobs[:, -1].half())
    return h, w, h_t, w_t, y, cache


def _step(variant: str, h, w, h_t, w_t, y, cache, vocab: int):
    import torch

    from ls_llm.objectives import build_objective
    from ls_llm.objectives.distill import CachedTeacher, DistillLoss, OnlineTeacher
    from ls_llm.objectives.distill_reference import reference_distill_loss

    if variant == "materialized":
        with torch.no_grad():
            teacher_logits = h_t @ w_t.T
        loss = reference_distill_loss(h @ w.T, teacher_logits, y, alpha=0.5)
    elif variant == "sft":
        loss = build_objective("ce")(h, w, y)
    else:
        teacher = OnlineTeacher(h_t, w_t) if variant == "online" else CachedTeacher(*cache, vocab_size=vocab)
        loss = DistillLoss(build_objective("ce"), alpha=0.5)(h, w, y, teacher)
    loss.backward()


def _child(variant: str, args) -> dict:
    h, w, h_t, w_t, y, cache = _inputs(args.tokens, args.student_hidden, args.teacher_hidden, args.vocab, args.top_k)
    small = 64
    _step(variant, h[:small].detach().requires_grad_(), w, h_t[:small], w_t, y[:small],
          tuple(c[:small] for c in cache), args.vocab)
    w.grad = None
    grad_bytes = (h.numel() + w.numel()) * 4
    base = _current_rss()
    _reset_peak_rss()
    t0, c0 = time.perf_counter(), _cpu_seconds()
    _step(variant, h, w, h_t, w_t, y, cache, args.vocab)
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    working = max(_peak_rss() - base - grad_bytes, 0)
    return {"variant": variant, "seconds": seconds, "cpu_seconds": cpu, "working_bytes": working}


def _run_child(variant: str, args) -> dict:
    cmd = [sys.executable, "-m", "ls_llm.bench.distill", "--child", variant, "--tokens", str(args.tokens),
           "--student-hidden", str(args.student_hidden), "--teacher-hidden", str(args.teacher_hidden),
           "--vocab", str(args.vocab), "--top-k", str(args.top_k)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cache_bytes_per_token(top_k: int) -> int:
    """Payload per completion token on disk: ids int32 + log-probs float16 + log tail float16 + label int32."""
    return top_k * (4 + 2) + 2 + 4


def _table(r: dict, args) -> str:
    mib = 2**20
    m, o, s, c = (r[v] for v in VARIANTS)
    lines = ["| variant | wall s | CPU s | working MiB | time vs materialized (wall / CPU) | memory vs materialized "
             "| time vs plain SFT (wall / CPU) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, x in (("materialized logits (both models)", m), ("online chunked", o), ("plain SFT (ce, fused)", s),
                    (f"cached top-{args.top_k}", c)):
        lines.append(f"| {name} | {x['seconds']:.2f} | {x['cpu_seconds']:.2f} | {x['working_bytes'] / mib:.0f} | "
                     f"{x['seconds'] / m['seconds']:.2f}x / {x['cpu_seconds'] / m['cpu_seconds']:.2f}x | "
                     f"{m['working_bytes'] / max(x['working_bytes'], 1):.1f}x lower | "
                     f"{x['seconds'] / s['seconds']:.2f}x / {x['cpu_seconds'] / s['cpu_seconds']:.2f}x |")
    lines += ["", f"cache payload: {cache_bytes_per_token(args.top_k)} bytes per completion token (top-{args.top_k})"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=2048)
    p.add_argument("--student-hidden", type=int, default=896)
    p.add_argument("--teacher-hidden", type=int, default=1536)
    p.add_argument("--vocab", type=int, default=151936)
    p.add_argument("--top-k", type=int, default=64)
    p.add_argument("--quick", action="store_true", help="N=256")
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.tokens = 256
    if args.child:
        print(json.dumps(_child(args.child, args)))
        return 0
    print(f"N={args.tokens} V={args.vocab} H_teacher={args.teacher_hidden} H_student={args.student_hidden} fp32, "
          f"forward+backward, CPU threads: {os.cpu_count()}", flush=True)
    results = {}
    for variant in VARIANTS:
        results[variant] = _run_child(variant, args)
        print(f"  {variant}: {results[variant]['seconds']:.2f} s", flush=True)
    print(f"\n{_table(results, args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
