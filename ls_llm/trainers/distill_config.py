"""`LsDistillConfig`: `LsSFTConfig` (the student's token objective and everything SFT) plus the teacher.

Two modes, chosen by `teacher_cache_dir`:
- online (no cache dir): `teacher_model_name_or_path` is loaded frozen and run in the same step;
- cached: the student trains from the top-k cache that `ls-llm distill-cache` wrote to `teacher_cache_dir`
  (from the same recipe), with no teacher in memory.

Field names avoid trl's and LsSFTConfig's: `beta` is already the bootstrap / sce parameter of the objective,
so the JSD mixing weight is `jsd_beta`; the temperature is `distill_temperature`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ls_llm.data.teacher_cache import LOGPROB_DTYPES
from ls_llm.objectives.base import check_range
from ls_llm.objectives.divergences import DIVERGENCES
from ls_llm.trainers.config import LsSFTConfig

TEACHER_CACHE_BACKENDS = ("hf", "vllm")  # the keys of ls_llm.trainers.distill_cache.BUILDERS


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class LsDistillConfig(LsSFTConfig):
    teacher_model_name_or_path: str | None = field(
        default=None, metadata=_help("Teacher checkpoint (local folder or hub id); needed online and by distill-cache.")
    )
    teacher_tokenizer_name_or_path: str | None = field(
        default=None, metadata=_help("Teacher's tokenizer (default: the teacher's own); must equal the student's.")
    )
    teacher_dtype: str = field(default="float32", metadata=_help("Teacher weights dtype: float32, bfloat16, float16."))
    teacher_cache_dir: str | None = field(
        default=None, metadata=_help("Train from this teacher cache (written by `ls-llm distill-cache`) instead of "
                                     "running the teacher; distill-cache writes it here."))
    distill_alpha: float = field(
        default=0.5, metadata=_help("Weight of the divergence: (1 − a)·objective + a·τ²·D, a in [0, 1]."))
    distill_divergence: str = field(
        default="forward_kl", metadata=_help("D(teacher ‖ student): forward_kl, reverse_kl or jsd."))
    jsd_beta: float = field(
        default=0.5, metadata=_help("jsd's β as in trl's GKD: M = β·teacher + (1−β)·student; 0 = forward KL, "
                                    "1 = reverse KL."))
    distill_temperature: float = field(default=1.0, metadata=_help("Softmax temperature τ of both models, > 0."))
    teacher_smoothing: float = field(
        default=0.0, metadata=_help("Mix the teacher with uniform: (1 − s)·p_teacher + s/V, s in [0, 1)."))
    distill_top_k: int = field(default=64, metadata=_help("distill-cache: teacher log-probs kept per token."))
    cache_logprob_dtype: str = field(
        default="float16", metadata=_help("distill-cache: dtype of the stored log-probs, float16 or float32.")
    )
    teacher_cache_backend: str = field(
        default="hf", metadata=_help("distill-cache: run the teacher with hf (transformers) or vllm (offline LLM; "
                                     "needs distill_temperature 1)."))
    teacher_vllm_memory_fraction: float | None = field(
        default=None, metadata=_help("distill-cache with vllm: the engine's gpu_memory_utilization (default 0.9 on "
                                     "GPUs; on the CPU build, of host memory for weights + KV cache, default 0.25).")
    )
    cache_shard_rows: int = field(
        default=1024, metadata=_help("distill-cache: dataset rows per shard (the unit of resumption)."))

    def __post_init__(self):
        super().__post_init__()
        if self.trace_weights() is not None:  # the distillation loss has no weighted path yet
            raise ValueError("trace_weight_column / trace_weight_from are not supported by distillation yet; weight "
                             "traces with `ls-llm train`")

        DIVERGENCES.lookup(self.distill_divergence)
        check_range("distill_alpha", self.distill_alpha, lo=0.0, hi=1.0)
        check_range("jsd_beta", self.jsd_beta, lo=0.0, hi=1.0)
        check_range("distill_temperature", self.distill_temperature, lo=0.0, lo_open=True)
        check_range("teacher_smoothing", self.teacher_smoothing, lo=0.0, hi=1.0, hi_open=True)
        if self.teacher_dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"teacher_dtype must be one of float32, bfloat16, float16, got {self.teacher_dtype!r}")
        if self.cache_logprob_dtype not in LOGPROB_DTYPES:
            raise ValueError(f"cache_logprob_dtype must be one of {', '.join(LOGPROB_DTYPES)}, "
                             f"got {self.cache_logprob_dtype!r}")
        if self.teacher_cache_backend not in TEACHER_CACHE_BACKENDS:
            raise ValueError(f"teacher_cache_backend must be one of {', '.join(TEACHER_CACHE_BACKENDS)}, "
                             f"got {self.teacher_cache_backend!r}")
        if self.teacher_cache_backend == "vllm" and self.distill_temperature != 1.0:
            # vLLM's prompt log-probs skip the sampler, so they are always at temperature 1.
            raise ValueError(f"teacher_cache_backend='vllm' gives log-probs at temperature 1 only, but "
                             f"distill_temperature={self.distill_temperature!r}: use the hf backend or temperature 1")
        fraction = self.teacher_vllm_memory_fraction
        if fraction is not None and not 0.0 < fraction <= 1.0:
            raise ValueError(f"teacher_vllm_memory_fraction must be in (0, 1], got {fraction!r}")
        for name in ("distill_top_k", "cache_shard_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.loss_truncation:
            raise ValueError(f"loss_truncation={self.loss_truncation!r} is not supported by LsDistillTrainer; set it to 0")
        if self.teacher_cache_dir is None and not self.teacher_model_name_or_path:
            raise ValueError("teacher_model_name_or_path is required (or teacher_cache_dir, to train from a cache)")
        if self.teacher_cache_dir is not None and (self.packing or self.padding_free):
            # The cache is per dataset row in order; packing re-cuts rows and padding-free joins them.
            raise ValueError(f"packing={self.packing!r} / padding_free={self.padding_free!r}: a teacher cache is per "
                             "dataset row; set both to false with teacher_cache_dir")

    @property
    def cached(self) -> bool:
        return self.teacher_cache_dir is not None
