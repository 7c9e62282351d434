"""Per-trace weights in training (recipe: `trace_weight_column` / `trace_weight_from`, see data/weights.py).

Every trained token of trace t gets the trace's weight w_t, and the loss of an optimizer step is

    L = Σ_t w_t Σ_{i in t} ℓ_i  /  Σ_t w_t n_t

over the *global* batch (all micro-batches of the step, all processes): the trainer's `num_items_in_batch` is
the weighted token count Σ w_t n_t instead of the token count (`weighted_count`), and the engine scales each
token's loss and dloss/dz by its weight (objectives/weighted.py). So the same invariances hold as unweighted:
batch 4 x accumulation 1 equals 1 x 4 and 2 processes equal 1; a weight of 0 trains exactly as if the row were
absent; every weight 1 is the unweighted run bit for bit.

Only the training set is weighted; an evaluation set is scored unweighted (every trace counts, as with
`trace_objectives: drop`). Weights are per row, so `packing` (which merges rows) is refused.
"""

from __future__ import annotations

import logging

import torch

from ls_llm.data.weights import WEIGHT_COLUMN, TraceWeights
from ls_llm.trainers.routing import like_labels

logger = logging.getLogger(__name__)

TOKEN_WEIGHTS, ROW_WEIGHTS = "ls_token_weights", "ls_row_weights"  # batch keys
ZERO_WEIGHT_TRACES = "zero_weight_traces"  # logged count


def prepare_weighted_dataset(dataset, weights: TraceWeights, *, name: str = "train"):
    """The training set with its weights in ``WEIGHT_COLUMN``: as the loader resolved them, or resolved here
    from ``weights.column`` (a dataset built in code). An eval set loses the column (it is scored unweighted)."""
    if name != "train":
        return dataset.remove_columns([WEIGHT_COLUMN]) if WEIGHT_COLUMN in dataset.column_names else dataset
    if WEIGHT_COLUMN not in dataset.column_names:
        if weights.column not in dataset.column_names:
            raise ValueError(f"{weights.recipe_field} names column {weights.column!r}, which the {name} dataset does "
                             f"not have (columns: {sorted(dataset.column_names)})")
        values = [weights.weight({weights.column: v}, f"{name} dataset row {i + 1}")
                  for i, v in enumerate(dataset[weights.column])]
        dataset = dataset.add_column(WEIGHT_COLUMN, values)
    values = dataset[WEIGHT_COLUMN]
    zero = sum(1 for v in values if v == 0)
    if zero == len(values):
        raise ValueError(f"every trace weight of the {name} dataset is 0 ({weights.column}): nothing to train on")
    logger.info("trace weights (%s, from %s): %d rows, %d with weight 0, mean weight %.4f", name, weights.column,
                len(values), zero, sum(values) / max(len(values), 1))
    return dataset


class WeightCollator:
    """The collator plus ``ls_token_weights`` (each token its row's weight, 0 on padding, laid out like
    ``labels``) and ``ls_row_weights`` (one per row, for the zero-weight count). A batch whose rows carry no
    weight (evaluation) is collated unchanged."""

    def __init__(self, base) -> None:
        self.base = base

    def __call__(self, examples):
        if not examples or WEIGHT_COLUMN not in examples[0]:
            return self.base(examples)
        batch = self.base([{k: v for k, v in e.items() if k != WEIGHT_COLUMN} for e in examples])
        rows = torch.tensor([float(e[WEIGHT_COLUMN]) for e in examples], dtype=torch.float32)
        parts = [torch.full((len(e["input_ids"]),), float(w)) for e, w in zip(examples, rows, strict=True)]
        free = getattr(self.base, "padding_free", False) or getattr(getattr(self.base, "base", None),
                                                                     "padding_free", False)
        batch[TOKEN_WEIGHTS] = like_labels(batch, parts, 0.0, padding_free=free)
        batch[ROW_WEIGHTS] = rows
        return batch


def weighted_count(batch: dict, *, shifts_labels: bool = True) -> torch.Tensor:
    """Σ w over the trained tokens of one collated batch, counted on the labels the loss sees (the causal shift
    drops position 0, as transformers counts `num_items_in_batch`); float64."""
    weights = batch[TOKEN_WEIGHTS].double()
    if "shift_labels" in batch:
        labels = batch["shift_labels"]
    elif shifts_labels:
        labels, weights = batch["labels"][..., 1:], weights[..., 1:]
    else:
        labels = batch["labels"]
    return (weights * labels.ne(-100)).sum()
