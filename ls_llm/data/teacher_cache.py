"""On-disk teacher cache for distillation: per completion token, the teacher's top-k ids and log-probs and
the log of the remaining (tail) probability mass, as a `datasets.Dataset` saved in shards.

Layout of a cache folder:

    meta.json          what produced it (teacher, top_k, temperature, vocab_size, n_rows, ...) and the
                       fingerprints of the teacher's weights, its tokenizer and the prepared data it covers
    shard-00000/ ...   `Dataset.save_to_disk` folders of `shard_rows` rows each, in dataset order, each with
                       `checksums.json` (sha256 of its files), verified before the shard is used or skipped

One cache row per prepared training row; its lists are flat over that row's trained tokens (the positions
whose shifted label is not ignored), in order: `teacher_ids` (n·k int32), `teacher_logprobs` (n·k float16,
or float32), `teacher_log_tail` (n float16/float32), `teacher_labels` (n int32, the tokens the entries
predict, checked against the batch labels at training time so a cache built from other data or another
tokenization fails loudly). A shard is written to a temporary folder and renamed when complete, so an
interrupted run resumes by skipping the shards that exist and pass their checksums (a corrupt one is
rewritten); `meta.json` is written last. A cache is content-addressed: a run whose teacher weights, tokenizer or
prepared data differ from the ones recorded is refused with the reason, whatever the paths say.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from ls_llm.files import sha256_file, staged_dir, write_atomic

# Heavy imports stay inside functions (datasets, pyarrow): `ls-llm` imports this module before it knows a
# command needs them.

CACHE_COLUMNS = ("teacher_ids", "teacher_logprobs", "teacher_log_tail", "teacher_labels")
LOGPROB_DTYPES = ("float16", "float32")
META_FILE = "meta.json"
CHECKSUM_FILE = "checksums.json"
FORMAT_VERSION = 2  # 2: teacher / data fingerprints and per-shard checksums
# What a fingerprint compares, in the words a refusal uses.
FINGERPRINTS = {"teacher_fingerprint": "teacher weights", "tokenizer_hash": "tokenizer",
                "data_fingerprint": "prepared training data"}
# Files that define a model's outputs (weights and config); tokenizer files are covered by tokenizer_hash.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_DATA_COLUMNS = ("input_ids", "completion_mask", "assistant_masks")  # what decides the trained tokens


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
    format_version: int = FORMAT_VERSION
    teacher_fingerprint: str = ""
    data_fingerprint: str = ""

    def __post_init__(self) -> None:
        # A hand-edited or foreign meta.json must fail here, naming the key, not as a ZeroDivisionError in distill.
        for f in fields(self):
            value, wanted = getattr(self, f.name), {"int": int, "float": (int, float), "str": str}[f.type]
            if isinstance(value, bool) or not isinstance(value, wanted):
                raise ValueError(f"{f.name} must be {f.type}, got {value!r}")
        for name, low in (("top_k", 1), ("vocab_size", 1), ("shard_rows", 1), ("n_rows", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")

    def n_shards(self) -> int:
        return -(-self.n_rows // self.shard_rows)


def _features(meta: CacheMeta):
    from datasets import Features, Sequence, Value

    lp = Value(meta.logprob_dtype)
    return Features({"teacher_ids": Sequence(Value("int32")), "teacher_logprobs": Sequence(lp),
                     "teacher_log_tail": Sequence(lp), "teacher_labels": Sequence(Value("int32"))})


def tokenizer_hash(tokenizer) -> str:
    """A fingerprint of a tokenizer's vocabulary (token -> id), to refuse a cache built with another one."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:16]


def model_fingerprint(name_or_path: str, revision: str = "main") -> str:
    """sha256 over a local model folder's weight and config files (names and contents), so retraining a
    teacher in the same folder changes it and copying it elsewhere does not. A hub id (not on disk) is
    fingerprinted by its name and revision."""
    root = Path(name_or_path)
    if not root.exists():
        return "hub:" + hashlib.sha256(f"{name_or_path}@{revision}".encode()).hexdigest()[:16]
    files = [root] if root.is_file() else sorted(
        p for p in root.iterdir() if p.is_file() and (p.suffix in _WEIGHT_SUFFIXES or p.name.endswith("config.json")
                                                      and "tokenizer" not in p.name))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        sha256_file(path, digest)
    return digest.hexdigest()[:16]


def data_fingerprint(dataset) -> str:
    """sha256 over the prepared rows' token ids and trained-token masks, in order (so other data, another
    tokenization, max_length or completion setting gives another fingerprint)."""
    import pyarrow.compute as pc

    columns = [c for c in _DATA_COLUMNS if c in dataset.column_names]
    digest = hashlib.sha256(json.dumps(columns).encode())
    for table in dataset.select_columns(columns).with_format("arrow").iter(batch_size=4096):
        for name in columns:
            column = table.column(name).combine_chunks()
            digest.update(pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64).tobytes())
            values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
            digest.update(values.astype(np.int64).tobytes())
    return digest.hexdigest()[:16]


def _shard_checksums(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file() and p.name != CHECKSUM_FILE}


def shard_problem(folder: str | os.PathLike) -> str | None:
    """None if the shard's files match its checksums.json, else what is wrong (naming the file)."""
    folder = Path(folder)
    if not folder.is_dir():
        return "is missing"
    try:
        recorded = json.loads((folder / CHECKSUM_FILE).read_text())
    except FileNotFoundError:
        return f"has no {CHECKSUM_FILE}"
    except (OSError, ValueError) as err:
        return f"has an unreadable {CHECKSUM_FILE} ({err})"
    for name, digest in recorded.items():
        path = folder / name
        if not path.is_file():
            return f"misses {name}"
        if sha256_file(path).hexdigest() != digest:
            return f"{name} does not match its checksum (truncated or modified)"
    return None


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
    try:
        with open(file) as f:
            data = json.load(f)
    except ValueError as err:
        raise ValueError(f"teacher cache file {file!r} is not valid JSON ({err})") from None
    known = {f.name for f in fields(CacheMeta)}
    if not isinstance(data, dict):
        raise ValueError(f"teacher cache file {file!r} must hold a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"teacher cache file {file!r} has unknown key {unknown[0]!r} (known: {sorted(known)})")
    try:
        return CacheMeta(**data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"teacher cache file {file!r}: {err}") from None


def check_same(found: CacheMeta, wanted: CacheMeta, path: str) -> None:
    """Refuse a cache built with other settings or (content-addressed) another teacher, tokenizer or data.
    The teacher's path is not compared: its weights' fingerprint is."""
    for f in fields(CacheMeta):
        a, b = getattr(found, f.name), getattr(wanted, f.name)
        if f.name == "teacher" or a == b:
            continue
        if f.name in FINGERPRINTS:
            raise ValueError(f"teacher cache {path!r} was built from other {FINGERPRINTS[f.name]} ({f.name} "
                             f"{a!r}, this run {b!r}): delete it (or use another teacher_cache_dir) and run "
                             "`ls-llm distill-cache` again")
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
        check_same(previous, meta, path)
    write_atomic(pending, json.dumps(asdict(meta), indent=2))
    written = 0
    for i in range(meta.n_shards()):
        final = _shard_dir(path, i)
        if os.path.isdir(final):
            problem = shard_problem(final)
            if problem is None:
                continue
            log(f"teacher cache: shard {final!r} {problem}: rewriting it")
            shutil.rmtree(final)
        start, stop = i * meta.shard_rows, min((i + 1) * meta.shard_rows, meta.n_rows)
        rows = list(compute(start, stop))
        if len(rows) != stop - start:
            raise RuntimeError(f"teacher cache: shard {i} produced {len(rows)} rows for {stop - start} dataset rows")
        columns = {c: [r[c] for r in rows] for c in CACHE_COLUMNS}
        with staged_dir(final) as tmp:  # a unique folder beside it, renamed into place when complete
            Dataset.from_dict(columns, features=_features(meta)).save_to_disk(str(tmp))
            write_atomic(tmp / CHECKSUM_FILE, json.dumps(_shard_checksums(tmp), indent=2))
        written += 1
        log(f"teacher cache: shard {i + 1}/{meta.n_shards()} written ({stop} of {meta.n_rows} rows)")
    write_atomic(os.path.join(path, META_FILE), json.dumps(asdict(meta), indent=2))
    os.remove(pending)
    return written


def load_cache(path: str):
    """(Dataset with CACHE_COLUMNS, CacheMeta) of a complete cache; ValueError naming what is wrong."""
    from datasets import concatenate_datasets, load_from_disk

    meta = _read_meta(path) if os.path.isdir(path) else None
    if meta is None:
        hint = " (an interrupted `ls-llm distill-cache` run: run it again to finish)" if os.path.exists(
            os.path.join(path, "pending-" + META_FILE)) else ""
        raise ValueError(f"teacher_cache_dir={path!r} is not a finished teacher cache{hint}")
    if meta.format_version != FORMAT_VERSION:
        raise ValueError(f"teacher_cache_dir={path!r} has format_version={meta.format_version} (this ls-llm writes "
                         f"{FORMAT_VERSION}, with fingerprints and checksums): run `ls-llm distill-cache` into a new "
                         "folder")
    for i in range(meta.n_shards()):
        problem = shard_problem(_shard_dir(path, i))
        if problem is not None:
            raise ValueError(f"teacher cache shard {_shard_dir(path, i)!r} {problem}: run `ls-llm distill-cache` "
                             "again to rewrite it")
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
