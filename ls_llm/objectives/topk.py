"""A teacher's top-k log-probabilities and tail mass per token, chunk by chunk (no tokens × V logits).

This is what `ls-llm distill-cache` stores and `objectives.distill.CachedTeacher` reads back.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ls_llm.objectives.base import CHUNK_BYTES


@torch.no_grad()
def teacher_topk(hidden: Tensor, weight: Tensor, bias: Tensor | None = None, *, k: int, temperature: float = 1.0,
                 softcap: float | None = None, chunk_size: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """For hidden states (n, H) and a head (V, H): top-k ids (n, k) int32, their log-probabilities at
    temperature τ (n, k) float32, and log T (n,) float32 with T the probability of the V − k other tokens
    (−inf when k = V). log T is computed as logsumexp over the non-top-k logits minus logsumexp over all,
    not as log(1 − Σ p_top), which cancels when the top-k hold almost all the mass."""
    vocab = weight.shape[0]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= vocab:
        raise ValueError(f"top_k must be an int in [1, {vocab}], got {k!r}")
    rows = chunk_size or max(16, min(4096, CHUNK_BYTES // (4 * vocab)))
    n = hidden.shape[0]
    ids = torch.empty(n, k, dtype=torch.int32, device=hidden.device)
    logprobs = torch.empty(n, k, dtype=torch.float32, device=hidden.device)
    log_tail = torch.empty(n, dtype=torch.float32, device=hidden.device)
    w_t = weight.t()
    for start in range(0, n, rows):
        hc = hidden[start:start + rows].to(weight.dtype)
        z = (torch.mm(hc, w_t) if bias is None else torch.addmm(bias, hc, w_t)).float()
        if softcap is not None:
            z.div_(softcap).tanh_().mul_(softcap)
        z.div_(temperature)
        lse = torch.logsumexp(z, dim=1)
        top, top_ids = torch.topk(z, k, dim=1)
        ids[start:start + rows] = top_ids.to(torch.int32)
        logprobs[start:start + rows] = top - lse[:, None]
        z.scatter_(1, top_ids, float("-inf"))
        log_tail[start:start + rows] = torch.logsumexp(z, dim=1) - lse
    return ids, logprobs, log_tail
