"""The unigram smoothing prior: token frequencies of the training completions.

Smoothing towards the unigram distribution of the targets (instead of uniform over a 150k vocabulary) keeps
the smoothing mass on tokens that occur in reasoning traces. Counted once, from the dataset trl has prepared,
over exactly the tokens the collator trains on: trl folds the completion / assistant masks into a `labels`
column (-100 where not trained).
"""

from __future__ import annotations

import torch


def unigram_prior(dataset, vocab_size: int, *, batch_size: int = 1024) -> torch.Tensor:
    """Relative frequency of each token id among the trained tokens of a trl-prepared dataset (float64, sums to 1)."""
    column = "labels" if "labels" in dataset.column_names else "input_ids"
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    for batch in dataset.select_columns([column]).iter(batch_size=batch_size):
        for ids in batch[column]:
            ids = torch.as_tensor(ids, dtype=torch.long)
            ids = ids[ids >= 0]
            if ids.numel() and int(ids.max()) >= vocab_size:
                raise ValueError(f"token id {int(ids.max())} in the training data is >= the head's vocab {vocab_size}")
            counts += torch.bincount(ids, minlength=vocab_size).double()
    total = counts.sum()
    if total == 0:
        raise ValueError("smoothing_prior='unigram' but the training set has no trained tokens to count")
    return counts / total
