"""The hf backend's batch size on a CPU: the largest that fits the free memory (transformers' "auto" probe
finds the limit by failing, which on a CPU is the kernel's OOM killer)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ls_llm.evaluation.config import EvalConfig

# A prompt's share of the sequence an hf batch must hold besides the generated tokens.
PROMPT_ALLOWANCE = 2048
MAX_CPU_BATCH = 32


def cpu_batch_size(model_config: dict, *, tokens: int, free_bytes: int, weight_bytes: int) -> int:
    """The largest batch (1..MAX_CPU_BATCH) whose float32 KV cache for ``tokens`` positions per sequence fits
    half of the memory left after the weights. transformers' "auto" probe grows a batch until it fails,
    which on a CPU is the kernel's OOM killer, not a catchable error."""
    text = model_config.get("text_config", model_config)
    layers, heads = int(text["num_hidden_layers"]), int(text["num_attention_heads"])
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or int(text["hidden_size"]) // heads)
    per_sequence = 2 * layers * kv_heads * head_dim * 4 * tokens + 4 * int(text.get("vocab_size", 0)) * 2
    budget = (free_bytes - weight_bytes) // 2
    return max(1, min(MAX_CPU_BATCH, budget // max(per_sequence, 1)))


def _free_memory() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def batch_size(cfg: EvalConfig, device: str | None) -> int | str:
    if cfg.batch_size is not None:
        return cfg.batch_size if cfg.batch_size == "auto" else int(cfg.batch_size)
    if cfg.backend != "hf" or not str(device).startswith("cpu"):
        return "auto"
    model = Path(cfg.model)
    weights = sum(p.stat().st_size for p in model.iterdir() if p.suffix in {".safetensors", ".bin"})
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    batch = cpu_batch_size(config, tokens=cfg.max_gen_toks + PROMPT_ALLOWANCE, free_bytes=_free_memory(),
                           weight_bytes=weights)
    print(f"ls-llm eval: hf on CPU, batch size {batch} (fits the free memory; set --batch-size to change)",
          file=sys.stderr)
    return batch
