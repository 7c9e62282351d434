"""Naive materialized distillation: both models' full logits, plain autograd, formulas as written.

The obvious reference the tests compare `DistillLoss` against, and the "materialized path" of the
distillation benchmark. The cached (top-k) teacher is written in its bucket form here — (k + 1)-outcome
distributions (top-k tokens, the rest) — independently of the completed-teacher form the fused code uses.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ls_llm.objectives.reference import reference_token_losses


def divergence(logp: Tensor, logq: Tensor, name: str, beta: float = 0.5) -> Tensor:
    """Per-row D(p ‖ q) from log-probabilities (rows, V)."""
    p, q = logp.exp(), logq.exp()
    if name == "forward_kl" or (name == "jsd" and beta == 0.0):
        return (p * (logp - logq)).sum(-1)
    if name == "reverse_kl" or (name == "jsd" and beta == 1.0):
        return (q * (logq - logp)).sum(-1)
    log_m = torch.log(beta * p + (1.0 - beta) * q)
    return beta * (p * (logp - log_m)).sum(-1) + (1.0 - beta) * (q * (logq - log_m)).sum(-1)


def _mix(logits: Tensor, labels: Tensor, d: Tensor, *, objective: str, objective_params: dict, alpha: float,
         temperature: float, num_items_in_batch, ignore_index: int) -> Tensor:
    obj = reference_token_losses(objective, logits, labels, ignore_index=ignore_index, **objective_params)
    total = (1.0 - alpha) * obj + alpha * temperature**2 * d
    denom = num_items_in_batch if num_items_in_batch is not None else max(total.numel(), 1)
    return total.sum() / max(float(denom), 1.0)


def reference_distill_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, *, objective: str = "ce",
                           objective_params: dict | None = None, divergence_name: str = "forward_kl",
                           alpha: float = 0.5, temperature: float = 1.0, teacher_smoothing: float = 0.0,
                           beta: float = 0.5, num_items_in_batch=None, ignore_index: int = -100) -> Tensor:
    """Online distillation from full logits (..., V_s) and (..., V_t); D over the first min(V_s, V_t) tokens."""
    vocab = min(student_logits.shape[-1], teacher_logits.shape[-1])
    keep = labels.reshape(-1) != ignore_index
    zs = student_logits.reshape(-1, student_logits.shape[-1])[keep][:, :vocab]
    zt = teacher_logits.reshape(-1, teacher_logits.shape[-1])[keep][:, :vocab].detach()
    logq = torch.log_softmax(zs / temperature, -1)
    p = torch.softmax(zt / temperature, -1)
    logp = torch.log((1.0 - teacher_smoothing) * p + teacher_smoothing / vocab)
    d = divergence(logp, logq, divergence_name, beta)
    return _mix(student_logits, labels, d, objective=objective, objective_params=objective_params or {},
                alpha=alpha, temperature=temperature, num_items_in_batch=num_items_in_batch,
                ignore_index=ignore_index)


def reference_cached_distill_loss(student_logits: Tensor, labels: Tensor, topk_ids: Tensor, topk_logprobs: Tensor,
                                  log_tail: Tensor, *, vocab_size: int, objective: str = "ce",
                                  objective_params: dict | None = None, divergence_name: str = "forward_kl",
                                  alpha: float = 0.5, temperature: float = 1.0, teacher_smoothing: float = 0.0,
                                  beta: float = 0.5, num_items_in_batch=None, ignore_index: int = -100) -> Tensor:
    """Cached distillation in bucket form: (p_K, T) against (q_K, Q) with Q the student's non-top-k mass."""
    keep = labels.reshape(-1) != ignore_index
    zs = student_logits.reshape(-1, student_logits.shape[-1])[keep][:, :vocab_size]
    logq = torch.log_softmax(zs / temperature, -1)
    ids = topk_ids.long()
    k, s = ids.shape[1], teacher_smoothing
    p_top, p_tail = topk_logprobs.double().exp(), log_tail.double().exp()
    if k == vocab_size:
        p_tail = torch.zeros_like(p_tail)
    total = p_top.sum(-1) + p_tail  # stored float16 values do not sum to exactly 1
    p_top, p_tail = p_top / total[:, None], p_tail / total
    p_top = (1.0 - s) * p_top + s / vocab_size
    q_top = logq.gather(1, ids).exp()
    if k == vocab_size:
        return _mix(student_logits, labels, divergence(p_top.log(), q_top.log(), divergence_name, beta),
                    objective=objective, objective_params=objective_params or {}, alpha=alpha,
                    temperature=temperature, num_items_in_batch=num_items_in_batch, ignore_index=ignore_index)
    tail_mask = torch.ones_like(logq, dtype=torch.bool).scatter_(1, ids, False)
    q_tail = torch.logsumexp(logq.masked_fill(~tail_mask, float("-inf")), -1).exp()
    p_tail = (1.0 - s) * p_tail + s * (vocab_size - k) / vocab_size
    logp = torch.cat([p_top, p_tail[:, None]], 1).log()
    logq_b = torch.cat([q_top, q_tail[:, None]], 1).log()
    return _mix(student_logits, labels, divergence(logp, logq_b, divergence_name, beta), objective=objective,
                objective_params=objective_params or {}, alpha=alpha, temperature=temperature,
                num_items_in_batch=num_items_in_batch, ignore_index=ignore_index)
