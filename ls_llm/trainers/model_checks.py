"""A model checked before training, each refusal naming model_name_or_path: the folder holds config.json and
weights that load without pickled objects, and the embedding has a row for every token of the tokenizer."""

from __future__ import annotations

import glob
import os

__all__ = ["check_model_files", "check_vocabulary"]


def check_model_files(path: str, *, init_from_config: bool) -> None:
    """A local model is a folder holding config.json (or, to build fresh weights, that config.json itself):
    say which, rather than transformers' "Repo id must be in the form ..." or "Should have a model_type key"."""
    if os.path.isfile(path):
        if init_from_config and path.endswith(".json"):
            return
        raise ValueError(f"model_name_or_path={path!r} is a file: name the model's folder (the one holding "
                         "config.json and the weights)")
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(f"model_name_or_path={path!r} has no config.json: a model folder holds config.json and "
                         "its weights (model.safetensors, ...)")
    if os.path.isdir(path) and not init_from_config and not glob.glob(os.path.join(path, "*.safetensors")):
        from ls_llm.torch_files import unsafe_reason

        unsafe = unsafe_reason(path)  # pickled weights: weights-only loading would refuse them as a traceback
        if unsafe:
            raise ValueError(f"model_name_or_path={path!r}: {unsafe}")


def check_vocabulary(model, tokenizer, path: str) -> None:
    """A tokenizer with more tokens than the model's embedding has rows indexes past it at the first step
    (an IndexError deep in torch): refuse before training, naming both sizes."""
    vocab = model.config.get_text_config().vocab_size
    if vocab is not None and vocab < len(tokenizer):
        raise ValueError(
            f"model_name_or_path={path!r} has a vocabulary of {vocab} tokens, fewer than its tokenizer's "
            f"{len(tokenizer)} ({getattr(tokenizer, 'name_or_path', '?')!r}): token ids >= {vocab} have no "
            "embedding; use the tokenizer the model was trained with")
