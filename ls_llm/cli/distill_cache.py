"""`ls-llm distill-cache RECIPE.yaml [--key value ...]`: run the teacher once and cache its top-k on disk.

Takes the same recipe as `ls-llm distill` (with `teacher_cache_dir` set): the training data is prepared exactly
as the student will see it and, for every trained token, the teacher's `distill_top_k` ids (int32) and
log-probs at `distill_temperature` (`cache_logprob_dtype`, float16 by default) and the log of the remaining
mass are written to `teacher_cache_dir` in shards of `cache_shard_rows` rows. Interrupted? Run it again: the
finished shards are kept. Then `ls-llm distill RECIPE.yaml` trains the student with no teacher in memory.
Backend (`teacher_cache_backend`): `hf`, Hugging Face transformers (one process, the teacher on `cuda` when
available, else CPU), or `vllm`, vLLM's offline `LLM` (needs vllm installed and `distill_temperature: 1`).
"""

from __future__ import annotations

import os
import shutil
import sys

USAGE = "usage: ls-llm distill-cache RECIPE.yaml [--key value ...]   (same recipe as ls-llm distill)"


def _hf(args, model_args, tokenizer, train_dataset) -> int:
    from ls_llm.trainers.distill_cache import build_teacher_cache
    from ls_llm.trainers.loading import load_teacher

    teacher = load_teacher(args, model_args, tokenizer).to(args.device)
    return build_teacher_cache(args, teacher, tokenizer, train_dataset)


def _vllm(args, model_args, tokenizer, train_dataset) -> int:
    from ls_llm.trainers.distill_cache_vllm import build_teacher_cache_vllm
    from ls_llm.trainers.loading import check_teacher_tokenizer

    check_teacher_tokenizer(args, model_args, tokenizer)  # vLLM loads the weights itself
    return build_teacher_cache_vllm(args, tokenizer, train_dataset)


BUILDERS = {"hf": _hf, "vllm": _vllm}  # by teacher_cache_backend (LsDistillConfig.TEACHER_CACHE_BACKENDS)


def build(argv: list[str]) -> str:
    """Write the cache the recipe names; a folder this call created is removed if it fails before a shard."""
    from ls_llm.trainers.run import distill_arg_types, load_inputs

    (_, _, args, model_args), tokenizer, data, _ = load_inputs(argv, distill_arg_types(), training=False)
    if args.teacher_cache_dir is None:
        raise ValueError("teacher_cache_dir is required: it is where the cache is written")
    existed = os.path.exists(args.teacher_cache_dir)
    output_existed = os.path.exists(args.output_dir)  # trl's Trainer creates it while preparing the rows
    try:
        written = BUILDERS[args.teacher_cache_backend](args, model_args, tokenizer, data["train"])
    except BaseException:
        if not existed and not _has_shard(args.teacher_cache_dir):
            shutil.rmtree(args.teacher_cache_dir, ignore_errors=True)
        raise
    finally:
        if not output_existed and os.path.isdir(args.output_dir) and not os.listdir(args.output_dir):
            os.rmdir(args.output_dir)
    return f"teacher cache complete in {args.teacher_cache_dir} ({written} shard(s) written by this run)"


def _has_shard(path: str) -> bool:
    return os.path.isdir(path) and any(n.startswith("shard-") and not n.endswith(".tmp") for n in os.listdir(path))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    from ls_llm.cli.errors import guarded

    return guarded("distill-cache", lambda: print(build(argv)))


if __name__ == "__main__":
    sys.exit(main())
