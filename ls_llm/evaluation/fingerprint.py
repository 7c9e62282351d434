"""What a journaled generation is keyed on besides its request: the checkpoint's files and the run's settings."""

from __future__ import annotations

import json
from pathlib import Path

from ls_llm.evaluation.backends import get_backend
from ls_llm.evaluation.config import EvalConfig

__all__ = ["checkpoint_fingerprint", "run_fingerprint"]


def checkpoint_fingerprint(path: Path) -> str:
    """Path plus size and mtime of the config and weight files: a checkpoint retrained in place
    gets a new fingerprint, so its journaled samples are not replayed for the new weights."""
    files = sorted(p for p in path.iterdir() if p.name == "config.json" or p.suffix in {".safetensors", ".bin"})
    stamps = ",".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    return f"{path}|{stamps}"


def run_fingerprint(checkpoint: Path, cfg: EvalConfig) -> str:
    """What a journaled sample is keyed on besides its request: the weights and every setting that changes what
    is generated (backend, seed, dtype and the other engine arguments). The request itself (lm-eval's
    ``Instance.args``) carries the rest: the prompt as rendered by the chat template (system prompt, prompt
    template, few-shot) and the generation kwargs (temperature, top_p, max_gen_toks, stop sequences)."""
    settings = {"backend": cfg.backend, "seed": cfg.seed, "model_args": get_backend(cfg).model_args(cfg)}
    return f"{checkpoint_fingerprint(checkpoint)}|{json.dumps(settings, sort_keys=True, default=str)}"
