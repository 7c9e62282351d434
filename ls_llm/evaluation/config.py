"""Typed configuration of an evaluation run; the CLI flags are generated from these fields."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

# Environment variable naming another task folder (a copy of eval/tasks to edit, say).
TASKS_ENV = "LS_LLM_EVAL_TASKS"


def default_tasks_dir() -> Path:
    """Where the task YAMLs are: ``$LS_LLM_EVAL_TASKS``; else, in a checkout (editable install), the
    repository's ``eval/tasks``; else the copy the wheel ships as ``ls_llm/evaluation/tasks`` (setup.py
    copies eval/tasks there at build time, so eval/tasks stays the one place they are written)."""
    if os.environ.get(TASKS_ENV):
        return Path(os.environ[TASKS_ENV])
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "eval" / "tasks").is_dir():
        return root / "eval" / "tasks"
    return Path(__file__).resolve().parent / "tasks"


DEFAULT_TASKS_DIR = default_tasks_dir()
SUITES: dict[str, tuple[str, ...]] = {"ls_math": ("ls_math",), "ls_ood": ("ls_ood",),
                                      "all": ("ls_math", "ls_ood")}


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class EvalConfig:
    model: str = field(metadata=_help("checkpoint folder (config.json + weights + tokenizer)"))
    suite: str = field(default="all", metadata=_help("ls_math | ls_ood | all | TASK[,TASK...]"))
    backend: str = field(default="auto", metadata=_help("vllm (GPU build, or vLLM's CPU build), hf (transformers, "
                                                        "one device), or auto: vllm when importable, else hf"))
    output: str | None = field(default=None, metadata=_help("run folder; default eval_runs/<model folder name>"))
    data_dir: str | None = field(default=None, metadata=_help("read DIR/<task>/test.jsonl instead of the hub"))
    num_samples: int | None = field(default=None, metadata=_help("k samples per problem for every task "
                                                                 "(default per task: 16 AIME/AMC, 4 or 1 elsewhere)"))
    max_gen_toks: int = field(default=32768, metadata=_help("maximum generated tokens per sample"))
    temperature: float | None = field(default=None, metadata=_help("sampling temperature (task default 0.6)"))
    top_p: float | None = field(default=None, metadata=_help("nucleus sampling (task default 0.95)"))
    limit: int | None = field(default=None, metadata=_help("only the first N problems of each task (testing)"))
    tensor_parallel_size: int = field(default=1, metadata=_help("vllm: GPUs per model replica"))
    data_parallel_size: int = field(default=1, metadata=_help("vllm: model replicas (needs ray)"))
    gpu_memory_utilization: float | None = field(default=None, metadata=_help(
        "vllm: fraction of GPU memory to use (default 0.9); on the CPU build, of host memory for the engine's "
        "weights + KV cache (default 0.25)"))
    max_model_len: int | None = field(default=None, metadata=_help("vllm: context length (prompt + generation)"))
    enforce_eager: bool | None = field(default=None, metadata=_help(
        "vllm: true = no CUDA graphs / torch.compile (default true on the CPU build, false on GPUs)"))
    dtype: str = field(default="auto", metadata=_help("model dtype: auto | bfloat16 | float16 | float32"))
    batch_size: str | None = field(default=None, metadata=_help(
        "hf: an integer or auto (transformers' probe); default auto on a GPU and, on CPU, the largest batch whose "
        "KV cache fits half the free memory (1 to 32); vllm: auto"))
    device: str | None = field(default=None, metadata=_help("hf: torch device (default cuda if available, else cpu)"))
    seed: int = field(default=1234, metadata=_help("sampling / python / numpy / torch seed"))
    include_path: list[str] = field(default_factory=list, metadata=_help("extra lm-eval task folder (repeatable)"))
    resume_chunk: int | None = field(default=None, metadata=_help(
        "requests generated between two journal writes (default 1024 x data-parallel size); larger keeps "
        "vLLM's batch full longer, smaller loses less to an interruption"))
    verify_workers: int = field(default=2, metadata=_help("math-verify worker processes"))
    model_args: str | None = field(default=None, metadata=_help("extra lm-eval model args as a JSON object"))

    def __post_init__(self) -> None:
        for name in ("max_gen_toks", "tensor_parallel_size", "data_parallel_size", "verify_workers",
                     "num_samples", "limit", "max_model_len", "resume_chunk"):  # (the first four: never None)
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.gpu_memory_utilization is not None and not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.batch_size is not None and self.batch_size != "auto" and not (
                str(self.batch_size).isdigit() and int(self.batch_size) >= 1):
            raise ValueError(f"batch_size must be 'auto' or a positive integer, got {self.batch_size!r}")
        if self.model_args is not None:
            try:
                extra = json.loads(self.model_args)
            except json.JSONDecodeError as err:
                raise ValueError(f"model_args must be a JSON object, got {self.model_args!r}: {err}") from err
            if not isinstance(extra, dict):
                raise ValueError(f"model_args must be a JSON object, got {self.model_args!r}")

    @property
    def output_dir(self) -> Path:
        return Path(self.output) if self.output else Path("eval_runs") / Path(self.model).resolve().name

    @property
    def chunk_size(self) -> int:
        # lm-eval starts its Ray replicas afresh on every call, so data parallel runs get larger chunks.
        return self.resume_chunk or 1024 * self.data_parallel_size

    @property
    def extra_model_args(self) -> dict:
        return json.loads(self.model_args) if self.model_args else {}

    def task_names(self) -> list[str]:
        """The suite as lm-eval names: a suite's groups, or the comma-separated tasks."""
        if self.suite in SUITES:
            return list(SUITES[self.suite])
        names = [name.strip() for name in self.suite.split(",") if name.strip()]
        if not names:
            raise ValueError(f"suite must be one of {sorted(SUITES)} or TASK[,TASK...], got {self.suite!r}")
        return names
