"""Torch pickle files (`.pt`, `.pth`, `.bin`) read before anything loads them: weights-only loading refuses an
arbitrary pickle, but as a traceback and only when the file is finally loaded (after training, for a resume's
RNG state). Here the pickled globals are listed from the archive's pickle alone, without its tensors, so a
payload is named up front and a cut archive is recognised. Used by resume (`ls_llm.trainers.checkpoints`),
model loading (`ls_llm.trainers.loading`) and evaluation (`ls_llm.evaluation.runner`).
"""

from __future__ import annotations

import os
from pathlib import Path

# Heavy imports stay inside functions (torch, transformers): `ls-llm` imports this module before it knows a
# command needs them.


def torch_files(folder: Path) -> list[Path]:
    # training_args.bin is a full pickle of the config by design and never loaded on resume.
    return sorted(p for p in folder.iterdir() if p.suffix in (".pt", ".pth", ".bin") and p.name != "training_args.bin")


def unsafe_globals(file: Path) -> list[str] | None:
    """The pickled globals in a torch file that weights-only loading refuses (numpy's RNG state allowed, as
    transformers allows it), read from its pickle alone (no tensor data); None if it is not a readable archive."""
    from torch.serialization import get_unsafe_globals_in_checkpoint
    from transformers.trainer_pt_utils import safe_globals

    try:
        with safe_globals():
            return get_unsafe_globals_in_checkpoint(str(file))
    except Exception:  # torch raises several types for a cut or foreign archive  # noqa: BLE001
        return None


def unsafe_reason(folder: str | os.PathLike) -> str | None:
    """None, or which torch file of `folder` holds pickled objects that weights-only loading refuses (an
    arbitrary-code payload, not something transformers writes): named before anything loads it."""
    for file in torch_files(Path(folder)):
        unsafe = unsafe_globals(file)
        if unsafe:
            return (f"{file} holds pickled objects that weights-only loading refuses ({', '.join(unsafe[:3])}): "
                    "it was not written by transformers; remove it")
    return None

