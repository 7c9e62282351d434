"""Is this folder a checkpoint an evaluation can load? Checked from the files alone, before any import of
torch, transformers or vLLM, so a bad folder stops in milliseconds with one line naming it and the file.

A checkpoint folder holds ``config.json`` (valid JSON), weights (``model.safetensors``, sharded
``*.safetensors`` with their ``model.safetensors.index.json``, or the ``pytorch_model.bin`` equivalents)
that are complete on disk, and a tokenizer (``tokenizer.json``, ``tokenizer.model``, or
``vocab.json`` + ``merges.txt``). A truncated safetensors file is caught by comparing its size with what
its own header says it holds; a truncated ``.bin`` (a zip archive) has lost its central directory.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = (("tokenizer.json",), ("tokenizer.model",), ("vocab.json", "merges.txt"))


def _weight_files(path: Path) -> list[Path]:
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = path / index_name
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            except (json.JSONDecodeError, KeyError, AttributeError) as err:
                raise ValueError(f"checkpoint folder {path}: {index_name} is not a valid weight index ({err})") from err
            missing = [name for name in shards if not (path / name).is_file()]
            if missing:
                raise FileNotFoundError(f"checkpoint folder {path}: weight shard {missing[0]} named in {index_name} "
                                        f"is missing ({len(missing)} of {len(shards)} shards missing)")
            return [path / name for name in shards]
    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("pytorch_model*.bin"))
    if not files:
        raise FileNotFoundError(f"checkpoint folder {path} has no weights: none of {', '.join(WEIGHT_FILES)}")
    return files


def safetensors_expected_size(file: Path) -> int | None:
    """Bytes a safetensors file must have according to its header (8-byte length, JSON, data); None if
    the header itself is unreadable."""
    with file.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            return None
        (header_len,) = struct.unpack("<Q", head)
        try:
            header = json.loads(handle.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    return 8 + header_len + max(ends, default=0)


def _check_complete(file: Path, folder: Path) -> None:
    size = file.stat().st_size
    if file.suffix == ".safetensors":
        expected = safetensors_expected_size(file)
        if expected is None or size < expected:
            what = "an unreadable header" if expected is None else f"{size} of the {expected} bytes its header declares"
            raise ValueError(f"checkpoint folder {folder}: weight file {file.name} is truncated ({what})")
    elif file.suffix == ".bin" and not zipfile.is_zipfile(file):
        raise ValueError(f"checkpoint folder {folder}: weight file {file.name} is truncated or not a torch archive")


def check_checkpoint(model: str, *, need_tokenizer: bool = True) -> Path:
    """The resolved folder, or FileNotFoundError / ValueError naming the folder and the missing or bad file."""
    path = Path(model)
    if path.is_file():
        raise ValueError(f"model={model!r} is a file, not a checkpoint folder: name the folder holding config.json")
    if not path.is_dir():
        raise FileNotFoundError(f"model checkpoint folder {model!r} does not exist")
    config = path / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"model={model!r} is not a checkpoint folder: it has no config.json")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"checkpoint folder {path}: config.json is not valid JSON ({err})") from err
    for file in _weight_files(path):
        _check_complete(file, path)
    if need_tokenizer and not any(all((path / name).is_file() for name in group) for group in TOKENIZER_FILES):
        raise FileNotFoundError(f"checkpoint folder {path} has no tokenizer: none of tokenizer.json, "
                                "tokenizer.model, vocab.json + merges.txt")
    return path.resolve()
