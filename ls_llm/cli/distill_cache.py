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

import sys

from ls_llm.cli.errors import guarded

USAGE = "usage: ls-llm distill-cache RECIPE.yaml [--key value ...]   (same recipe as ls-llm distill)"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    from ls_llm.trainers.run import build_cache_from_recipe

    return guarded("distill-cache", lambda: print(build_cache_from_recipe(argv)))


if __name__ == "__main__":
    sys.exit(main())
