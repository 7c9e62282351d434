"""On-disk teacher cache for distillation: per completion token, the teacher's top-k ids and log-probs and
the log of the remaining (tail) probability mass, as a `datasets.Dataset` saved in shards.

Layout of a cache folder:

    meta.json          what produced it (teacher, top_k, temperature, vocab_size, n_rows, ...)
    shard-00000/ ...   `Dataset.save_to_disk` folders of `shard_rows` rows each, in dataset order

One cache row per prepared training row; its lists are flat over that row's trained tokens (the positions
whose shifted label is not ignored), in order: `teacher_ids` (n·k int32), `teacher_logprobs` (n·k float16,
or float32), `teacher_log_tail` (n float16/float32), `teacher_labels` (n int32, the tokens the entries
predict, checked against the batch labels at training time so a cache built from other data or another
tokenization fails loudly). A shard is written to a temporary folder and renamed when complete, so an
interrupted run resumes by skipping the shards that exist; `meta.json` is written last.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields

import torch

CACHE_COLUMNS = ("teacher_ids", "teacher_logprobs", "teacher_log_tail", "teacher_labels")
LOGPROB_DTYPES = ("float16", "float32")
META_FILE = "meta.json"


@dataclass(frozen=True)
class CacheMeta:
    teacher: str
    top_k: int
    temperature: float
    vocab_size: int
    n_rows: int
    shard_rows: int
    logprob_dtype: str = "float16"
    tokenizer_hash: str = ""
    format_version: int = 1

    def n_shards(self) -> int:
        return -(-self.n_rows // self.shard_rows)


def _features(meta: CacheMeta):
    from datasets import Features, Sequence, Value

    lp = Value(meta.logprob_dtype)
    return Features({"teacher_ids": Sequence(Value("int32")), "teacher_logprobs": Sequence(lp),
                     "teacher_log_tail": Sequence(lp), "teacher_labels": Sequence(Value("int32"))})


def tokenizer_hash(tokenizer) -> str:
    """A fingerprint of a tokenizer's vocabulary (token -> id), to refuse a cache built with another one."""
    import hashlib

    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:16]


def cache_row(ids: torch.Tensor, logprobs: torch.Tensor, log_tail: torch.Tensor, labels: torch.Tensor,
              *, logprob_dtype: str) -> dict:
    """One cache row from a training row's trained tokens: ids / logprobs (n, k), log_tail / labels (n,)."""
    dtype = getattr(torch, logprob_dtype)
    return {"teacher_ids": ids.to(torch.int32).reshape(-1).tolist(),
            "teacher_logprobs": logprobs.to(dtype).float().reshape(-1).tolist(),
            "teacher_log_tail": log_tail.to(dtype).float().tolist(),
            "teacher_labels": labels.to(torch.int32).tolist()}


def _shard_dir(path: str, i: int) -> str:
    return os.path.join(path, f"shard-{i:05d}")


def _read_meta(path: str, name: str = META_FILE) -> CacheMeta | None:
    file = os.path.join(path, name)
    if not os.path.exists(file):
        return None
    with open(file) as f:
        return CacheMeta(**json.load(f))


def _check_same(found: CacheMeta, wanted: CacheMeta, path: str) -> None:
    for f in fields(CacheMeta):
        a, b = getattr(found, f.name), getattr(wanted, f.name)
        if a != b:
            raise ValueError(f"teacher cache {path!r} was built with {f.name}={a!r}, but this run has {f.name}={b!r}: "
                             "use another cache folder or delete this one")


def write_cache(path: str, meta: CacheMeta, compute: Callable[[int, int], Iterable[dict]], *,
                log: Callable[[str], None] = print) -> int:
    """Write every missing shard: ``compute(start, stop)`` yields the cache rows of dataset rows [start, stop).

    Returns the number of shards written by this call (0 when the cache was already complete).
    """
    from datasets import Dataset

    os.makedirs(path, exist_ok=True)
    pending = os.path.join(path, "pending-" + META_FILE)
    previous = _read_meta(path) or _read_meta(path, "pending-" + META_FILE)
    if previous is not None:
        _check_same(previous, meta, path)
    _atomic_json(pending, asdict(meta))
    written = 0
    for i in range(meta.n_shards()):
        final = _shard_dir(path, i)
        if os.path.isdir(final):
            continue
        start, stop = i * meta.shard_rows, min((i + 1) * meta.shard_rows, meta.n_rows)
        rows = list(compute(start, stop))
        if len(rows) != stop - start:
            raise RuntimeError(f"teacher cache: shard {i} produced {len(rows)} rows for {stop - start} dataset rows")
        columns = {c: [r[c] for r in rows] for c in CACHE_COLUMNS}
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        Dataset.from_dict(columns, features=_features(meta)).save_to_disk(tmp)
        os.replace(tmp, final)
        written += 1
        log(f"teacher cache: shard {i + 1}/{meta.n_shards()} written ({stop} of {meta.n_rows} rows)")
    _atomic_json(os.path.join(path, META_FILE), asdict(meta))
    os.remove(pending)
    return written


def _atomic_json(file: str, data: dict) -> None:
    tmp = file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, file)


def load_cache(path: str):
    """(Dataset with CACHE_COLUMNS, CacheMeta) of a complete cache; ValueError naming what is wrong."""
    from datasets import concatenate_datasets, load_from_disk

    meta = _read_meta(path) if os.path.isdir(path) else None
    if meta is None:
        hint = " (an interrupted `ls-llm distill-cache` run: run it again to finish)" if os.path.exists(
            os.path.join(path, "pending-" + META_FILE)) else ""
        raise ValueError(f"teacher_cache_dir={path!r} is not a finished teacher cache{hint}")
    shards = [load_from_disk(_shard_dir(path, i)) for i in range(meta.n_shards())]
    data = concatenate_datasets(shards)
    if len(data) != meta.n_rows:
        raise ValueError(f"teacher_cache_dir={path!r} holds {len(data)} rows, its meta.json says {meta.n_rows}")
    return data, meta


def cache_tensors(examples: list[dict], top_k: int) -> dict[str, torch.Tensor]:
    """Collate the cache columns of a micro-batch, flat over its trained tokens in row order."""
    ids = [torch.as_tensor(e["teacher_ids"], dtype=torch.int32) for e in examples]
    return {
        "teacher_ids": torch.cat(ids).view(-1, top_k) if ids else torch.zeros(0, top_k, dtype=torch.int32),
        "teacher_logprobs": torch.cat([torch.as_tensor(e["teacher_logprobs"], dtype=torch.float32)
                                       for e in examples]).view(-1, top_k),
        "teacher_log_tail": torch.cat([torch.as_tensor(e["teacher_log_tail"], dtype=torch.float32) for e in examples]),
        "teacher_labels": torch.cat([torch.as_tensor(e["teacher_labels"], dtype=torch.long) for e in examples]),
    }
