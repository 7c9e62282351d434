"""Loss truncation (Kang & Hashimoto 2020, "Improved Natural Language Generation via Loss Truncation").

Noisy references are the ones the model finds least likely, so after a warm-up each batch drops the fraction
c of its sequences with the highest mean token loss. Plain functions on tensors; the trainer wires them.
"""

from __future__ import annotations

import math

import torch


def sequence_ids(input_ids: torch.Tensor, position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """A sequence id per token, shape of `input_ids`: one sequence per row, except in packed / padding-free
    rows, where a new sequence starts wherever `position_ids` restarts at 0."""
    batch, length = input_ids.shape
    row = torch.arange(batch, device=input_ids.device).unsqueeze(1) * length
    if position_ids is None:
        return row.expand(batch, length).contiguous()
    starts = (position_ids == 0).long()
    starts[:, 0] = 1  # a row always starts a sequence, even when padded positions are not 0
    return row + starts.cumsum(dim=1) - 1


def truncation_keep_mask(token_losses: torch.Tensor, labels: torch.Tensor, seq_ids: torch.Tensor,
                         fraction: float, *, ignore_index: int = -100) -> torch.Tensor:
    """Boolean mask (shape of labels): True for tokens of the sequences kept.

    Sequences are ranked by mean loss over their non-ignored tokens; floor(fraction * n) of the n sequences
    with at least one such token, the highest, are dropped (ties: the earlier sequence goes first).
    """
    valid = labels != ignore_index
    ids = torch.unique(seq_ids[valid], return_inverse=False)
    n_drop = math.floor(fraction * ids.numel())
    if n_drop == 0:
        return torch.ones_like(valid)
    # Dense sequence index per token, then per-sequence sums by scatter_add.
    dense = torch.searchsorted(ids, seq_ids.clamp(min=int(ids[0]))).clamp(max=ids.numel() - 1)
    member = valid & (ids[dense] == seq_ids)
    sums = torch.zeros(ids.numel(), dtype=torch.float64, device=labels.device)
    counts = torch.zeros_like(sums)
    sums.scatter_add_(0, dense[member], token_losses[member].double())
    counts.scatter_add_(0, dense[member], torch.ones_like(sums[dense[member]]))
    order = torch.sort(sums / counts, descending=True, stable=True).indices  # by mean loss, highest first
    return ~torch.isin(seq_ids, ids[order[:n_drop]])
