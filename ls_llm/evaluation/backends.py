"""Model backends: which lm-eval model class serves the checkpoint, and with which arguments.

Nothing here imports vllm or torch: lm-eval imports the chosen model class (and through it vllm)
only when the runner instantiates it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from ls_llm.evaluation.config import EvalConfig


@dataclass(frozen=True)
class Backend:
    lm_eval_name: str  # key in lm-eval's model registry
    model_args: Callable[[EvalConfig], dict]
    requires: Callable[[EvalConfig], list[str]]  # importable modules checked before anything loads
    device: Callable[[EvalConfig], str | None]
    install_hint: str = ""


def _vllm_args(cfg: EvalConfig) -> dict:
    args = {
        "pretrained": cfg.model,
        "dtype": cfg.dtype,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "data_parallel_size": cfg.data_parallel_size,
        "gpu_memory_utilization": cfg.gpu_memory_utilization,
        "max_gen_toks": cfg.max_gen_toks,
        "seed": cfg.seed,
    }
    if cfg.max_model_len is not None:
        args["max_model_len"] = cfg.max_model_len
    return args | cfg.extra_model_args


def _hf_args(cfg: EvalConfig) -> dict:
    # The generation length reaches HFLM through the tasks' generation_kwargs, not the constructor.
    return {"pretrained": cfg.model, "dtype": cfg.dtype} | cfg.extra_model_args


def _vllm_requires(cfg: EvalConfig) -> list[str]:
    return ["vllm", "ray"] if cfg.data_parallel_size > 1 else ["vllm"]  # lm-eval runs replicas as Ray actors


def _hf_device(cfg: EvalConfig) -> str | None:
    if cfg.device is not None:
        return cfg.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


BACKENDS: dict[str, Backend] = {
    "vllm": Backend("vllm", _vllm_args, requires=_vllm_requires, device=lambda cfg: None,
                    install_hint='pip install -e ".[eval,vllm]" (see eval/README.md, Environments)'),
    "hf": Backend("hf", _hf_args, requires=lambda cfg: [], device=_hf_device),
}


def get_backend(cfg: EvalConfig) -> Backend:
    if cfg.backend not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {cfg.backend!r}")
    backend = BACKENDS[cfg.backend]
    missing = [name for name in backend.requires(cfg) if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"backend={cfg.backend!r} needs the package(s) {missing}, not installed here; "
                         f"{backend.install_hint or 'pip install them'}")
    return backend


def build_lm(cfg: EvalConfig):
    """Instantiate the lm-eval model (this is where weights load and vllm is imported)."""
    from lm_eval.api.registry import get_model

    backend = get_backend(cfg)
    batch = cfg.batch_size if cfg.batch_size == "auto" else int(cfg.batch_size)
    extra = {"batch_size": batch, "device": backend.device(cfg)}
    return get_model(backend.lm_eval_name).create_from_arg_obj(backend.model_args(cfg), extra)
