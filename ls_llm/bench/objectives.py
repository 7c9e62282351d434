"""Benchmark: fused chunked objectives vs the materialized path, and vs the three-matmul floor.

    python -m ls_llm.bench.objectives            # N=2048, H=896, V=151936 (Qwen2.5-0.5B head), fp32, CPU
    python -m ls_llm.bench.objectives --quick    # smaller shapes, three objectives (used by `make demo`)

Every measurement runs in its own process (fresh allocator, honest peak RSS), and all ratios come from
one run of this script, since timings on shared machines drift between runs.

- materialized: logits = hidden @ weight.T, then the same objective on the logits (plain autograd).
- fused: ``build_objective(name)(hidden, weight, labels)``.
- floor: the three bare matmuls one step needs: logits (N×H·H×V), grad of hidden (N×V·V×H) and grad of
  weight (V×N·N×H).
Working memory = peak RSS − RSS with inputs allocated − the hidden and weight gradients (held by every method).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

# Heavy imports stay inside functions (torch): a benchmark loads only what the case it runs needs.

OBJECTIVE_PARAMS = {"label_smoothing": {"alpha": 0.1}, "backward_correction": {"noise_rate": 0.2},
                    "forward_correction": {"noise_rate": 0.2}}


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM (the peak RSS), so setup allocations do not count.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _current_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpu_seconds() -> float:
    """CPU time of this process and its reaped children (verification workers): on a shared machine the
    wall-clock rate depends on the other jobs' load, the CPU seconds do not."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def _child(variant: str, name: str, n: int, hidden: int, vocab: int) -> dict:
    import torch

    from ls_llm.objectives import build_objective
    from ls_llm.objectives.reference import reference_linear_loss

    torch.manual_seed(0)
    h = torch.randn(n, hidden, requires_grad=True)
    w = torch.randn(vocab, hidden).mul_(0.02).requires_grad_()
    y = torch.randint(0, vocab, (n,))
    grad_bytes = (h.numel() + w.numel()) * 4
    params = OBJECTIVE_PARAMS.get(name, {})

    def floor():
        with torch.no_grad():
            logits = h @ w.T
            _ = logits @ w
            _ = logits.T @ h

    obj = build_objective(name, **params) if variant == "fused" else None  # built before the clock starts
    step = {"floor": floor, "fused": lambda: obj(h, w, y).backward(),
            "materialized": lambda: reference_linear_loss(name, h, w, y, **params).backward()}[variant]
    base = _current_rss()
    _reset_peak_rss()
    t0, c0 = time.perf_counter(), _cpu_seconds()
    step()
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    working = max(_peak_rss() - base - (0 if variant == "floor" else grad_bytes), 0)
    return {"variant": variant, "objective": name, "seconds": seconds, "cpu_seconds": cpu, "working_bytes": working}


def _run_child(variant: str, name: str, args) -> dict:
    """Best of ``args.repeat`` runs, each in a fresh process (time: fastest; memory: largest)."""
    cmd = [sys.executable, "-m", "ls_llm.bench.objectives", "--child", variant, "--objective", name,
           "--tokens", str(args.tokens), "--hidden", str(args.hidden), "--vocab", str(args.vocab)]
    runs = [json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            for _ in range(args.repeat)]
    return {**runs[0], "seconds": min(r["seconds"] for r in runs),
            "cpu_seconds": min(r.get("cpu_seconds", r["seconds"]) for r in runs),
            "working_bytes": max(r["working_bytes"] for r in runs)}


def _table(rows: list[dict]) -> str:
    mib = 2**20
    lines = ["| objective | materialized s | fused s | fused / materialized | fused / 3-matmul floor "
             "| CPU time: fused / materialized, fused / floor | materialized working MiB | fused working MiB | memory ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m, f, floor = r["materialized"], r["fused"], r["floor"]
        lines.append(f"| {r['objective']} | {m['seconds']:.2f} | {f['seconds']:.2f} | "
                     f"{f['seconds'] / m['seconds']:.2f} | {f['seconds'] / floor['seconds']:.2f} | "
                     f"{f['cpu_seconds'] / m['cpu_seconds']:.2f} / {f['cpu_seconds'] / floor['cpu_seconds']:.2f} | "
                     f"{m['working_bytes'] / mib:.0f} | {f['working_bytes'] / mib:.0f} | "
                     f"{m['working_bytes'] / max(f['working_bytes'], 1):.0f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=2048)
    p.add_argument("--hidden", type=int, default=896)
    p.add_argument("--vocab", type=int, default=151936)
    p.add_argument("--objectives", default="all", help="comma-separated names, or 'all'")
    p.add_argument("--quick", action="store_true", help="N=512, three objectives")
    p.add_argument("--repeat", type=int, default=1, help="runs per measurement (fastest kept)")
    p.add_argument("--child", choices=["fused", "materialized", "floor"], help=argparse.SUPPRESS)
    p.add_argument("--objective", default="ce", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.objective, args.tokens, args.hidden, args.vocab)))
        return 0
    from ls_llm.objectives import OBJECTIVES

    if args.quick:
        args.tokens, args.objectives = 512, "ce,label_smoothing,forward_correction"
    names = list(OBJECTIVES) if args.objectives == "all" else args.objectives.split(",")
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown:
        print(f"unknown objective {unknown[0]!r}; choose from {sorted(OBJECTIVES)}", file=sys.stderr)
        return 2
    print(f"N={args.tokens} H={args.hidden} V={args.vocab} fp32, forward+backward, CPU threads: "
          f"{os.cpu_count()}", flush=True)
    rows = []
    for name in names:
        # The floor is measured next to each objective's runs, so each ratio compares neighbours in time.
        row = {"objective": name}
        for variant in ("floor", "fused", "materialized"):
            row[variant] = _run_child(variant, name, args)
        rows.append(row)
        print(f"  {name}: floor {row['floor']['seconds']:.2f} s, fused {row['fused']['seconds']:.2f} s, "
              f"materialized {row['materialized']['seconds']:.2f} s", flush=True)
    print(f"\n{_table(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
