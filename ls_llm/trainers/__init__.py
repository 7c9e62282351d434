"""Trainers: transformers / trl wiring of the token objectives.

`LsSFTConfig` / `LsSFTTrainer` (SFT with any objective from `ls_llm.objectives`), `LsDistillConfig` /
`LsDistillTrainer` (distillation of a teacher into a student), and the reusable lm_head
adapter in `ls_llm.trainers.head`. Names are resolved lazily so that importing a submodule (e.g. `head`)
does not pull in trl.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "LsSFTConfig": "ls_llm.trainers.config",
    "LsSFTTrainer": "ls_llm.trainers.sft",
    "LsDistillConfig": "ls_llm.trainers.distill_config",
    "LsDistillTrainer": "ls_llm.trainers.distill",
    "objective_head": "ls_llm.trainers.sft",
    "install_hidden_forward": "ls_llm.trainers.head",
    "call_through_head": "ls_llm.trainers.head",
    "head_weight": "ls_llm.trainers.head",
    "head_rows": "ls_llm.trainers.head",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ls_llm.trainers' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
