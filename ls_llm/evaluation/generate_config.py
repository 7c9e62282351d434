"""Typed configuration of `ls-llm generate`; the CLI flags are generated from these fields.

The engine and sampling fields are `ls-llm eval`'s (:class:`~ls_llm.evaluation.config.EvalConfig`): their help is
read from there, so each is documented once, and :meth:`GenerateConfig.eval_config` hands them to the same backends
with the same checks.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ls_llm.data.args import DEFAULT_ANSWER_INSTRUCTION
from ls_llm.evaluation.config import EvalConfig

_EVAL_FIELDS = {spec.name: spec for spec in dataclasses.fields(EvalConfig)}
# HF on CPU: lm-eval's batch_size='auto' probes for the largest batch by catching CUDA out-of-memory errors; a CPU
# has none to catch (the kernel kills the process), so 'auto' means this fixed size there.
HF_AUTO_BATCH = 16
HF_CHUNK_BATCHES = 4  # hf: requests per journal write = this many batches


def _like_eval(name: str, **default) -> dataclasses.Field:
    """`ls-llm eval`'s field `name` (its help; its default unless one is given)."""
    spec = _EVAL_FIELDS[name]
    if "default" not in default and spec.default_factory is not dataclasses.MISSING:
        return field(default_factory=spec.default_factory, metadata=spec.metadata)
    return field(default=default.get("default", spec.default), metadata=spec.metadata)


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class GenerateConfig:
    model: str = _like_eval("model")
    data: str = field(metadata=_help("problems: any file/folder/hub id `ls-llm train` reads (the prompt is used, "
                                     "the reference `answer` carried along) or a jsonl of problem/answer"))
    out: str = field(metadata=_help("output folder: traces.jsonl, manifest.json and the resume journal"))
    num_samples: int = field(metadata=_help("k completions sampled per problem"))
    backend: str = _like_eval("backend")
    temperature: float = _like_eval("temperature", default=0.6)
    top_p: float = _like_eval("top_p", default=0.95)
    max_gen_toks: int = _like_eval("max_gen_toks")
    seed: int = _like_eval("seed")
    limit: int | None = field(default=None, metadata=_help("only the first N problems"))
    data_format: str = field(default="auto", metadata=_help("row format of --data (as dataset_format); 'problem' "
                                                            "for a jsonl of problem/answer"))
    field_map: str | None = field(default=None, metadata=_help("JSON mapping {column: expected name} for --data"))
    split: str = field(default="train", metadata=_help("split of a hub dataset"))
    system_prompt: str | None = field(default=None, metadata=_help("system message added to every prompt"))
    answer_instruction: str = field(default=DEFAULT_ANSWER_INSTRUCTION, metadata=_help(
        "appended to prompts built from problem/question fields (as dataset_answer_instruction); '' for none"))
    tensor_parallel_size: int = _like_eval("tensor_parallel_size")
    data_parallel_size: int = _like_eval("data_parallel_size")
    gpu_memory_utilization: float | None = _like_eval("gpu_memory_utilization")
    max_model_len: int | None = _like_eval("max_model_len")
    enforce_eager: bool | None = _like_eval("enforce_eager")
    dtype: str = _like_eval("dtype")
    batch_size: str | None = field(default=None, metadata=_help(
        f"batch size (default: hf on CPU the largest that fits the free memory, as `ls-llm eval`; else auto; "
        f"hf: auto = {HF_AUTO_BATCH})"))
    device: str | None = _like_eval("device")
    resume_chunk: int | None = field(default=None, metadata=_help(
        f"samples generated between two journal writes (default vllm: 1024 x data-parallel size, hf: "
        f"{HF_CHUNK_BATCHES} batches); a kill loses at most this many"))
    model_args: str | None = _like_eval("model_args")

    def __post_init__(self) -> None:
        if not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {self.num_samples!r}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if not str(self.data or "").strip():
            raise ValueError(f"data must name a problem file, folder or hub dataset, got {self.data!r}")
        if not str(self.out or "").strip():
            raise ValueError(f"out must name an output folder, got {self.out!r}")
        self.eval_config()  # the engine and sampling fields, checked as `ls-llm eval` checks them

    def eval_config(self) -> EvalConfig:
        """The same run as `ls-llm eval` sees it: what the backends take."""
        shared = {name: getattr(self, name) for name in _EVAL_FIELDS if hasattr(self, name)}
        shared["batch_size"] = None if self.batch_size is None else str(self.batch_size)
        if self.backend == "hf" and shared["batch_size"] == "auto":
            shared["batch_size"] = str(HF_AUTO_BATCH)
        return EvalConfig(**shared | {"output": self.out, "num_samples": self.num_samples})

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    def gen_kwargs(self) -> dict:
        """lm-eval's generation kwargs of one request (greedy drops the sampling knobs, as HF wants)."""
        kwargs: dict = {"max_gen_toks": self.max_gen_toks, "do_sample": self.do_sample}
        if self.do_sample:
            kwargs |= {"temperature": self.temperature, "top_p": self.top_p}
        else:
            kwargs["temperature"] = 0.0
        return kwargs

    def chunk_size(self) -> int:
        if self.resume_chunk is not None:
            return self.resume_chunk
        if self.backend == "hf":
            batch = self.eval_config().batch_size
            return HF_CHUNK_BATCHES * (int(batch) if batch is not None else HF_AUTO_BATCH)
        return self.eval_config().chunk_size

    def settings(self) -> dict:
        """What decides the samples' distribution: a run folder holds samples of one such setting only."""
        keys = ("backend", "temperature", "top_p", "max_gen_toks", "seed", "dtype", "model_args", "system_prompt",
                "answer_instruction", "data_format", "field_map")
        values = {key: getattr(self, key) for key in keys}
        if not self.do_sample:  # greedy: top_p and the seed change nothing
            values["top_p"] = values["seed"] = None
        if values["model_args"]:
            values["model_args"] = json.loads(values["model_args"])
        return values
