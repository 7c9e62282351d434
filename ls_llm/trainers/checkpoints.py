"""Which checkpoints can be resumed from, and whether an output folder may be trained into.

transformers writes `checkpoint-N/` file by file (weights, optimizer, scheduler, RNG, `trainer_state.json`
last) straight into its final name, so a run killed (or out of disk) during a save leaves a partial folder
that its own `get_last_checkpoint` then picks. A checkpoint counts here as complete when its
`trainer_state.json` parses and records step N, and every `*.safetensors` file in it is as long as its
header says (a truncated weight file is caught before it is loaded). Resuming with
`resume_from_checkpoint: true` takes the newest complete one and names, then removes, the newer partial ones
(the resumed run rewrites those steps).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ls_llm.torch_files import torch_files, unsafe_globals, unsafe_reason

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
# Files whose presence means "a trained model lives here" (full weights, sharded index, or a PEFT adapter).
MODEL_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
               "pytorch_model.bin.index.json", "adapter_model.safetensors", "adapter_model.bin")


def checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The `checkpoint-N` folders of `output_dir`, oldest step first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def incomplete_reason(checkpoint: str | os.PathLike) -> str | None:
    """None if `checkpoint` looks complete, else why not (one short phrase)."""
    path = Path(checkpoint)
    state = path / TRAINER_STATE
    if not state.is_file():
        return f"no {TRAINER_STATE} (the save was interrupted)"
    try:
        step = json.loads(state.read_text(encoding="utf-8")).get("global_step")
    except (OSError, ValueError, AttributeError):
        return f"{TRAINER_STATE} is not valid JSON"
    match = _CHECKPOINT.match(path.name)
    if match and step != int(match.group(1)):
        return f"{TRAINER_STATE} records step {step!r}"
    for weights in sorted(path.glob("*.safetensors")):
        problem = _safetensors_problem(weights)
        if problem:
            return f"{weights.name} {problem}"
    for file in torch_files(path):
        if unsafe_globals(file) is None:
            return f"{file.name} is truncated or not a torch archive"
    return None


def _safetensors_problem(path: Path) -> str | None:
    # Layout: 8-byte little-endian header length, JSON header, then the tensors; the largest end offset in
    # the header is the data size. Reading the header only is cheap even for large files.
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size:
                return "is truncated"
            header = json.loads(f.read(n))
    except (OSError, ValueError, struct.error):
        return "has an unreadable header"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    return None if size >= 8 + n + end else f"is truncated ({size} of {8 + n + end} bytes)"


@dataclass
class ResumePoint:
    checkpoint: str | None  # what to pass to Trainer.train(resume_from_checkpoint=...)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (folder, reason), newest first

    def message(self) -> str:
        lines = [f"skipped incomplete {p} ({why}); removed" for p, why in self.skipped]
        if self.checkpoint:
            lines.append(f"resuming from {self.checkpoint}")
        return "\n".join(lines)


def resolve_resume(output_dir: str, value: str | bool | None) -> ResumePoint:
    """The checkpoint that `resume_from_checkpoint: value` means. `true`/`last`: the newest complete one in
    `output_dir`, after removing newer incomplete ones; a path: that checkpoint, if complete. ValueError else."""
    if value is None or value is False or str(value).lower() in ("false", "none", ""):
        return ResumePoint(None)
    if value is True or str(value).lower() in ("true", "last"):
        skipped = []
        for path in reversed(checkpoints(output_dir)):
            reason = incomplete_reason(path)
            if reason is None:
                _refuse_unsafe(path)
                for bad, _ in skipped:
                    shutil.rmtree(bad, ignore_errors=True)
                return ResumePoint(str(path), skipped)
            skipped.append((str(path), reason))
        found = f"; incomplete: {', '.join(f'{Path(p).name} ({r})' for p, r in skipped)}" if skipped else ""
        raise ValueError(f"resume_from_checkpoint=true but output_dir={output_dir!r} holds no complete "
                         f"checkpoint{found}: drop resume_from_checkpoint to start from scratch")
    path = str(value)
    if not os.path.isdir(path):
        raise ValueError(f"resume_from_checkpoint={path!r} does not exist")
    reason = incomplete_reason(path)
    if reason is not None:
        raise ValueError(f"resume_from_checkpoint={path!r} is incomplete: {reason}")
    _refuse_unsafe(path)
    return ResumePoint(path)


def _refuse_unsafe(checkpoint: str | os.PathLike) -> None:
    unsafe = unsafe_reason(checkpoint)
    if unsafe:
        raise ValueError(f"resume_from_checkpoint: {unsafe}, or resume from another checkpoint")


def resumable_checkpoint(checkpoint: str | os.PathLike) -> bool:
    """A checkpoint a resume can load: complete, and nothing in it that weights-only loading refuses."""
    return incomplete_reason(checkpoint) is None and unsafe_reason(checkpoint) is None


def _check_writable(root: Path) -> None:
    """The first save comes after `save_steps` of training: a folder it cannot write is named now."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"output_dir={str(root)!r}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "output_dir" if existing == root else f"its parent {str(existing)!r} (where it would be created)"
        raise ValueError(f"output_dir={str(root)!r} cannot be written: {what} is read-only for this user")


def check_output_dir(output_dir: str, *, resuming: bool, overwrite: bool) -> None:
    """Refuse to train from scratch into a folder that holds a trained model or checkpoints, unless
    `overwrite` (then its checkpoints are deleted so that a later resume cannot mix two runs)."""
    root = Path(output_dir)
    _check_writable(root)
    if resuming or not root.is_dir():
        return
    held = [name for name in MODEL_FILES if (root / name).exists()] + [p.name for p in checkpoints(root)]
    if not held:
        return
    if not overwrite:
        what = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
        raise ValueError(f"output_dir={output_dir!r} already holds a run ({what}): pass --overwrite_output_dir "
                         "true to replace it, --resume_from_checkpoint true to continue it, or choose another "
                         "output_dir")
    for path in checkpoints(root):
        shutil.rmtree(path, ignore_errors=True)  # every rank of a launch runs this
