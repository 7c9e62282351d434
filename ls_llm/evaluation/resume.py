"""Resumable generation: every finished sample is journaled, so a restarted run does not redo it.

lm-eval's own ``use_cache`` (``CachingLM``) skips requests that sample (``do_sample=True``), since it
keys on the request alone and would return one cached text for all k repeats. Here the journal
stores *each* generation under the request's key, in order; on resume the j-th copy of a request
reuses the j-th journaled sample and only the missing copies are generated. Requests are sent to
the model in chunks and each chunk is appended (flushed and fsynced) as soon as it returns, so an
interruption loses at most one chunk. A torn last line from a crash, or a line of another shape, is ignored.
The key covers the run's settings too (``fingerprint.run_fingerprint``): another seed, dtype or backend generates
afresh instead of replaying samples made under other settings.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any


def request_key(fingerprint: str, args: tuple) -> str:
    """Stable key of a generation request: model fingerprint + prompt + generation kwargs."""
    payload = json.dumps([fingerprint, list(args)], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def read_journal(path: Path) -> dict[str, list[str]]:
    done: dict[str, list[str]] = defaultdict(list)
    if not path.exists():
        return done
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash; its sample is generated again
            if not (isinstance(entry, dict) and isinstance(entry.get("key"), str)
                    and isinstance(entry.get("output"), str)):
                continue  # valid JSON of another shape (an edited or foreign line): like a torn line
            done[entry["key"]].append(entry["output"])
    return done


class JournaledLM:
    """Wraps an lm-eval LM; ``generate_until`` replays journaled samples and journals new ones.

    Like lm-eval's ``CachingLM`` it is a transparent proxy: every other attribute (rank,
    chat templates, log-likelihood requests) goes to the wrapped model.
    """

    def __init__(self, lm: Any, journal: Path, *, fingerprint: str, chunk_size: int = 512) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.lm, self.journal, self.fingerprint, self.chunk_size = lm, Path(journal), fingerprint, chunk_size
        self.done = read_journal(self.journal)
        self.replayed = self.generated = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.lm, name)

    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
        keys = [request_key(self.fingerprint, tuple(req.args)) for req in requests]
        outputs: list[str | None] = [None] * len(requests)
        used: dict[str, int] = defaultdict(int)
        pending = []
        for index, key in enumerate(keys):
            if used[key] < len(self.done[key]):
                outputs[index] = self.done[key][used[key]]
                used[key] += 1
            else:
                pending.append(index)
        self.replayed += len(requests) - len(pending)
        for start in range(0, len(pending), self.chunk_size):
            chunk = pending[start : start + self.chunk_size]
            batch = [requests[i] for i in chunk]
            # A caller with its own progress bar (ls-llm generate) silences the model's per-call one.
            results = self.lm.generate_until(batch, disable_tqdm=True) if disable_tqdm else self.lm.generate_until(batch)
            self._append([(keys[i], text) for i, text in zip(chunk, results, strict=True)])
            for index, text in zip(chunk, results, strict=True):
                outputs[index] = text
        self.generated += len(pending)
        return outputs  # type: ignore[return-value]

    def _append(self, entries: list[tuple[str, str]]) -> None:
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.journal)
        with self.journal.open("a", encoding="utf-8") as handle:
            for key, text in entries:
                handle.write(json.dumps({"key": key, "output": text}, ensure_ascii=False) + "\n")
                self.done[key].append(text)
            handle.flush()
            os.fsync(handle.fileno())


def _drop_torn_tail(path) -> None:
    """A kill mid-write leaves a last line without its newline (unreadable, so skipped on replay): cut it before
    appending, or the next entry would be glued to it and lost too."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as handle:
        data = handle.read()
        if data.endswith(b"\n"):
            return
        handle.truncate(data.rfind(b"\n") + 1)
