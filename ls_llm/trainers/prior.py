"""The unigram smoothing prior: token frequencies of the training completions.

Smoothing towards the unigram distribution of the targets (instead of uniform over a 150k vocabulary) keeps
the smoothing mass on tokens that occur in reasoning traces. Counted once, from the dataset trl has prepared,
over exactly the tokens the collator trains on: trl folds the completion / assistant masks into a `labels`
column (-100 where not trained). With per-trace weights (trainers/weights.py) each trace's tokens count with
its weight, so a trace of weight 0 adds nothing, as if dropped, and one of weight 2 counts twice.
"""

from __future__ import annotations

import torch

from ls_llm.data.segments import ANSWER
from ls_llm.data.weights import WEIGHT_COLUMN

# `smoothing_prior` values -> the segment whose trained tokens are counted (None: all of them); "uniform" is the
# objectives' own default and counts nothing.
SMOOTHING_PRIORS: dict[str, int | None] = {"uniform": None, "unigram": None, "answer": ANSWER}


def unigram_prior(dataset, vocab_size: int, *, segment: int | None = None, batch_size: int = 1024) -> torch.Tensor:
    """Relative frequency of each token id among the trained tokens of a trl-prepared dataset (float64, sums to 1);
    with ``segment``, among the trained tokens of that segment only (the ``ls_segments`` column, see
    trainers/routing.py): ``smoothing_prior: answer`` counts the answer spans."""
    column = "labels" if "labels" in dataset.column_names else "input_ids"
    columns = [column] if segment is None else [column, "ls_segments"]
    weighted = WEIGHT_COLUMN in dataset.column_names
    columns += [WEIGHT_COLUMN] if weighted else []
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    for batch in dataset.select_columns(columns).iter(batch_size=batch_size):
        for row, ids in enumerate(batch[column]):
            ids = torch.as_tensor(ids, dtype=torch.long)
            if segment is not None:
                ids = ids[torch.as_tensor(batch["ls_segments"][row], dtype=torch.long) == segment]
            ids = ids[ids >= 0]
            if ids.numel() and int(ids.max()) >= vocab_size:
                raise ValueError(f"token id {int(ids.max())} in the training data is >= the head's vocab {vocab_size}")
            found = torch.bincount(ids, minlength=vocab_size).double()
            counts += found * batch[WEIGHT_COLUMN][row] if weighted else found
    total = counts.sum()
    if total == 0:
        which = "unigram" if segment is None else "answer"
        raise ValueError(f"smoothing_prior={which!r} but the training set has no such trained tokens to count")
    return counts / total


class PriorCache:
    """Smoothing priors by name (keys of SMOOTHING_PRIORS), each counted once from the prepared training set."""

    def __init__(self, dataset, vocab: int) -> None:
        self.dataset, self.vocab, self.cache = dataset, vocab, {}

    def kwargs(self, name: str) -> dict:
        """The objective keywords for the prior `name`: none for "uniform", else {"prior": frequencies}."""
        if name == "uniform":
            return {}
        if name not in self.cache:
            self.cache[name] = unigram_prior(self.dataset, self.vocab, segment=SMOOTHING_PRIORS[name])
        return {"prior": self.cache[name]}
