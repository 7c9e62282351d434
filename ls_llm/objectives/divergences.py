"""Divergences D(p ‖ q) of a teacher p from a student q over one chunk of tokens, with dD/du in place.

Every function works on float32 (float64 for float64 inputs) chunk buffers of shape (rows, V) that the
distillation loop owns and reuses; they are overwritten, never reallocated. Inputs:

    logq  student log-probabilities log softmax(u), u = student logits / τ
    q     exp(logq)
    logp  teacher log-probabilities (temperature and smoothing already applied)
    tmp   a scratch buffer

Each returns (D (rows,), dD/du (rows, V) or None); the gradient lives in one of the input buffers. The
caller turns dD/du into dD/dz = dD/du / τ. Convention and names follow trl's GKD
(`GKDTrainer.generalized_jsd_loss`, trl 1.16), which is checked in tests/distill:

- forward_kl  KL(p ‖ q) = Σ p (log p − log q).           dD/du = q − p
- reverse_kl  KL(q ‖ p) = Σ q (log q − log p).           dD/du = q ⊙ (log q − log p − D)
- jsd(β)      β·KL(p ‖ M) + (1−β)·KL(q ‖ M), M = β p + (1−β) q (Agarwal et al. 2024, Eq. 1).
              dD/dq_k = (1−β) log(q_k / M_k) (the p/M and q/M terms cancel), so through the softmax
              dD/du = (1−β) q ⊙ (log q − log M − KL(q ‖ M)).
              As in trl, β = 0 is forward_kl and β = 1 is reverse_kl exactly (the mixture formula itself
              tends to 0 at both ends).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ls_llm.registry import Registry

DivergenceFn = Callable[..., tuple[Tensor, Tensor | None]]
DIVERGENCES = Registry("distill_divergence")  # name -> DivergenceFn


def rowdot(a: Tensor, b: Tensor) -> Tensor:
    """Σ_k a_k b_k per row, as one batched dot (no (rows, V) temporary)."""
    return torch.bmm(a[:, None, :], b[:, :, None]).view(-1)


def log_softmax_(z: Tensor, work: Tensor, *, probs: bool = False) -> Tensor:
    """Turn z (rows, V) into log softmax(z) in place; ``work`` receives exp(z − max), or with ``probs`` the
    probabilities softmax(z) (one multiply instead of a second exp pass)."""
    z.sub_(z.amax(dim=1, keepdim=True))
    torch.exp(z, out=work)
    s = work.sum(dim=1, keepdim=True)
    z.sub_(torch.log(s))
    if probs:
        work.mul_(s.reciprocal_())
    return z


@DIVERGENCES.register("forward_kl")
def forward_kl(logq: Tensor, q: Tensor, logp: Tensor, tmp: Tensor, *, beta: float, need_grad: bool):
    diff = torch.sub(logp, logq, out=logq)  # log p − log q
    p = logp.exp_()
    d = rowdot(p, diff)  # p = 0 where log p underflows: 0 · finite, never 0 · inf
    return d, (q.sub_(p) if need_grad else None)


@DIVERGENCES.register("reverse_kl")
def reverse_kl(logq: Tensor, q: Tensor, logp: Tensor, tmp: Tensor, *, beta: float, need_grad: bool):
    diff = logq.sub_(logp)  # log q − log p
    d = rowdot(q, diff)
    return d, (diff.sub_(d[:, None]).mul_(q) if need_grad else None)


@DIVERGENCES.register("jsd")
def jsd(logq: Tensor, q: Tensor, logp: Tensor, tmp: Tensor, *, beta: float, need_grad: bool):
    if beta == 0.0:
        return forward_kl(logq, q, logp, tmp, beta=beta, need_grad=need_grad)
    if beta == 1.0:
        return reverse_kl(logq, q, logp, tmp, beta=beta, need_grad=need_grad)
    # log M = log β + logaddexp(log p, log q + log((1−β)/β)), in log space so that M never underflows to 0
    # where p and q both do (0 · log(0/0) would be nan).
    log_m = torch.add(logq, math.log((1.0 - beta) / beta), out=tmp)
    torch.logaddexp(logp, log_m, out=log_m).add_(math.log(beta))
    q_over_m = logq.sub_(log_m)
    kl_q = rowdot(q, q_over_m)
    p_over_m = torch.sub(logp, log_m, out=log_m)
    kl_p = rowdot(logp.exp_(), p_over_m)
    d = beta * kl_p + (1.0 - beta) * kl_q
    if not need_grad:
        return d, None
    return d, q_over_m.sub_(kl_q[:, None]).mul_(q).mul_(1.0 - beta)


def smooth_log_probs_(logp: Tensor, smoothing: float, vocab: int) -> Tensor:
    """log((1 − s)·p + s/V) in place: the teacher mixed with uniform (post-hoc teacher label smoothing)."""
    if smoothing == 0.0:
        return logp
    return logp.exp_().mul_(1.0 - smoothing).add_(smoothing / vocab).log_()


def smoothed_tail(log_tail: Tensor, smoothing: float, *, k: int, vocab: int) -> Tensor:
    """Log mass of the V − k tokens outside the top-k after smoothing: log((1 − s)·T + s·(V − k)/V)."""
    if smoothing == 0.0:
        return log_tail
    return torch.log(torch.exp(log_tail) * (1.0 - smoothing) + smoothing * (vocab - k) / vocab)
