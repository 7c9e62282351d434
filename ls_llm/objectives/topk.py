"""A teacher's top-k log-probabilities and tail mass per token, chunk by chunk (no tokens × V logits).

This is what `ls-llm distill-cache` stores and `objectives.distill.CachedTeacher` reads back. It is an engine
kernel: the engine forms each chunk's (capped) logits, the kernel keeps the top k.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ls_llm.objectives.engine import LogitsSpec, Workspace, token_outputs


@dataclass(frozen=True)
class TopKKernel:
    k: int
    temperature: float = 1.0

    def select(self, idx: Tensor, n_positions: int) -> TopKKernel:
        return self

    def __call__(self, z: Tensor, y: Tensor, start: int, ws: Workspace, *, need_grad: bool, need_stats: bool):
        z.div_(self.temperature)
        lse = torch.logsumexp(z, dim=1)
        top, top_ids = torch.topk(z, self.k, dim=1)
        z.scatter_(1, top_ids, float("-inf"))
        return {"ids": top_ids.to(torch.int32), "logprobs": top - lse[:, None],
                "log_tail": torch.logsumexp(z, dim=1) - lse}, None


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
    out = token_outputs(TopKKernel(k, temperature), hidden, LogitsSpec(weight, bias, softcap=softcap),
                        chunk_size=chunk_size)
    return out["ids"], out["logprobs"].float(), out["log_tail"].float()
