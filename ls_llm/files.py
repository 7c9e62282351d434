"""File helpers for every layer (data, training, evaluation, sweeps; the ground floor, so none of them imports
another's): files and jsonl written atomically, never over an existing file unless asked; sets of files and
folders published together (written into a temporary folder beside them, then moved into place); jsonl read back
with a bad line named. What they publish gets the mode the umask gives an ordinary open() / mkdir(), not
mkstemp's private 0600 / 0700."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO

__all__ = ["check_writable", "sha256_file", "read_jsonl", "staged_dir", "staged_files", "write_atomic", "write_jsonl"]


def check_writable(path: str | os.PathLike, *, overwrite: bool, field: str = "output",
                   create_parent: bool = True) -> Path:
    """Refuse an existing path unless ``overwrite``; create the parent folder (unless ``create_parent`` is
    False: a check made before a long computation must not leave an empty folder if that computation fails)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ValueError(f"{field} {str(path)!r} exists; pass --overwrite (overwrite=True) to replace it")
    if create_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _atomic(path: Path, mode: str) -> Iterator[IO]:
    """A file handle on a fresh temporary file beside ``path`` (``mkstemp``: no other process or thread ever has
    the same name, so two sweep shards writing one file each publish their own complete copy). When the block
    ends normally it is flushed, fsynced and renamed onto ``path``; if it raises (a full disk) it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600: give the mode an ordinary open() would
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # readers never see a half-written file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask sets it to read it, a race
    with threads that create files meanwhile)."""
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mkdtemp(prefix: str, parent: Path) -> Path:
    """A fresh folder beside the output, with the mode mkdir() would give it (mkdtemp makes 0700, and a
    staged folder becomes the output: a colleague on a shared cluster must be able to read it)."""
    stage = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(stage, 0o777 & ~_umask())
    return stage


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write text or bytes to ``path`` atomically (its folder is created)."""
    with _atomic(Path(path), "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    with _atomic(Path(path), "w") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def sha256_file(path: str | os.PathLike, digest=None):
    """``digest`` (a new sha256 if None) updated with the file's bytes, read in blocks."""
    digest = digest or hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest


def read_jsonl(path: str | os.PathLike, *, what: str | None = None, objects: bool = False,
               errors: str = "strict") -> list:
    """The rows of a jsonl file, blank lines skipped. A line that is not JSON (with ``objects``: not a JSON
    object) raises ValueError naming ``what`` (default: the path) and the line. ``errors`` is open()'s: "replace"
    reads past bytes that are not UTF-8, for a caller that reports those apart."""
    what = str(path) if what is None else what
    rows = []
    with open(path, encoding="utf-8", errors=errors) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{what} line {number}: not valid JSON ({err.msg}, column {err.colno})") from None
            if objects and not isinstance(row, dict):
                raise ValueError(f"{what} line {number}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def _move(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError:  # another filesystem (EXDEV): copy, then rename there
        shutil.move(str(src), str(dst))


@contextlib.contextmanager
def staged_files(paths: Mapping[str, str | os.PathLike]) -> Iterator[dict[str, Path]]:
    """Temporary paths for the files ``paths`` (name -> final path), in one hidden staging folder beside the
    first. When the block ends normally they are moved into place in the order given, so the *last* one's
    presence means the whole set is there; if it raises (or the process dies) no final path is touched."""
    finals = {name: Path(p) for name, p in paths.items()}
    first = next(iter(finals.values()))
    first.parent.mkdir(parents=True, exist_ok=True)
    stage = _mkdtemp(f".{first.name}.staging-", first.parent)
    try:
        staged = {name: stage / f"{i}-{p.name}" for i, (name, p) in enumerate(finals.items())}
        yield staged
        for name, final in finals.items():
            final.parent.mkdir(parents=True, exist_ok=True)
            _move(staged[name], final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(out_dir: str | os.PathLike, *, last: str | None = None) -> Iterator[Path]:
    """A temporary folder beside ``out_dir`` to write into; on success it is renamed to ``out_dir`` (or, when
    ``out_dir`` exists, its files are moved in, ``last`` last), on failure removed: ``out_dir`` appears with
    all its files or not at all."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = _mkdtemp(f".{out.name}.staging-", out.parent)
    try:
        yield stage
        if not out.exists():
            os.rename(stage, out)
            return
        for name in sorted(sorted(p.name for p in stage.iterdir()), key=lambda n: n == last):
            _move(stage / name, out / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
