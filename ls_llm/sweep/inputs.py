"""The content of the files a sweep cell reads, for its fingerprint (issue #23, case 4).

A cell's fingerprint hashed its command line and recipe, so a file they *name* could change under a finished
cell unnoticed: a model `config.json` edited from 2 to 3 layers left every cell `done`. Here the keys that name
something a run reads (model, tokenizer, teacher, data, chat template) are resolved as the run resolves them (the
recipe with its includes, then the command line) and each local file or folder they name is hashed by content.
Paths inside the sweep's own folder are left out: the cells' models are covered by their parents' fingerprints
and the sweep's data by its `data:` settings. Hashes are cached per (path, size, mtime, inode) for files not
modified in the last 2 s, so a sweep that asks "is this cell finished?" many times reads each file once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from pathlib import Path

from ls_llm.files import sha256_file
from ls_llm.trainers.recipe import load_recipe

# Recipe keys whose value names a file or folder the run reads.
READ_KEYS = ("model_name_or_path", "tokenizer_name_or_path", "teacher_model_name_or_path",
             "teacher_tokenizer_name_or_path", "dataset_name", "dataset_mixture", "chat_template_path",
             "noise_tokenizer")


def effective_keys(argv: list[str]) -> dict:
    """The recipe's keys (includes resolved) with the command line's `--key=value` over them."""
    keys = dict(load_recipe(argv[0]))
    for flag in argv[1:]:
        if flag.startswith("--") and "=" in flag:
            key, value = flag[2:].split("=", 1)
            keys[key] = value
    return keys


def read_paths(keys: dict) -> list[str]:
    """The local paths the READ_KEYS of `keys` name (a mixture's sources included)."""
    paths = []
    for key in READ_KEYS:
        value = keys.get(key)
        if key == "dataset_mixture" and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = None
        if isinstance(value, list):
            paths += [str(item["source"] if isinstance(item, dict) else item) for item in value
                      if isinstance(item, str | dict) and (not isinstance(item, dict) or "source" in item)]
        elif isinstance(value, str):
            paths.append(value)
    return [p for p in paths if os.path.exists(p)]


def inputs_fingerprint(argv: list[str], root: Path) -> dict[str, str]:
    """{path: content hash} of every local file or folder the cell's command line reads, outside `root`."""
    inside = Path(root).resolve()
    out = {}
    for path in read_paths(effective_keys(argv)):
        resolved = Path(path).resolve()
        if resolved == inside or inside in resolved.parents:
            continue
        out[path] = path_hash(resolved)
    return out


def path_hash(path: Path) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative names and contents, hidden ones left out)."""
    if path.is_file():
        return _file_hash(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(path).parts)):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        digest.update(_file_hash(file).encode())
    return digest.hexdigest()[:16]


def _file_hash(path: Path) -> str:
    stat = path.stat()
    if time.time_ns() - stat.st_mtime_ns < _RACY_NS:  # written just now: an edit within the same clock tick
        return sha256_file(path).hexdigest()[:16]    # would keep size and mtime (git's "racy" case): no cache
    return _cached_hash(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


_RACY_NS = 2_000_000_000


@functools.lru_cache(maxsize=4096)
def _cached_hash(path: str, size: int, mtime_ns: int, inode: int) -> str:  # all but path: the cache key
    return sha256_file(path).hexdigest()[:16]
