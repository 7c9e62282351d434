"""Distillation loss fused with the student's lm head: token objective + divergence from a teacher.

Per non-ignored token, with u = z_student/τ, p the teacher at temperature τ mixed with uniform
(p' = (1 − s)·p + s/V, `teacher_smoothing` s) and D one of `divergences.DIVERGENCES`:

    loss_token = (1 − α)·objective(z_student, y) + α·τ²·D(p' ‖ softmax(u))
    loss       = Σ loss_token / num_items_in_batch (or the number of non-ignored tokens)

The student's logits chunk is formed once per chunk (the engine's chunk loop; this is its distillation kernel); the objective and the divergence
both read it and their gradients are summed into one dloss/dz, so one set of gradient matmuls serves both:
dloss/dz = (1 − α)·dobjective/dz + α·τ·dD/du. The teacher's chunk comes from a *teacher source*:

- OnlineTeacher: the teacher's hidden states and lm head (no grad), one (rows, V) matmul per chunk;
- CachedTeacher: top-k ids, log-probs and the log tail mass from `ls-llm distill-cache`.

Cached (sparse) teacher: the teacher is known on its top-k tokens K and through its tail mass T = 1 − Σ_K p.
The tail is one extra bucket: the divergence is taken between the (k + 1)-outcome distributions
(p_K, T) and (q_K, Q), Q = Σ_{j∉K} q_j. This equals the dense divergence against the *completed* teacher
p̃_j = T·q_j/Q for j ∉ K (the tail spread over the non-top-k tokens in proportion to the student), since
p̃_j/q_j is then constant over the tail; and for forward KL, reverse KL and JSD the gradient of the bucket
form equals the dense gradient with p̃ held fixed (checked against an autograd bucket reference), so the
dense code path is reused. With k = V there is no tail and the result is the online one exactly.
The stored buckets are renormalized to sum to 1 (float16 rounding), then smoothed:
p'_K = (1 − s)·p_K + s/V, T' = (1 − s)·T + s·(V − k)/V. A tail mass of exactly 0 (k = V, or underflow) is
clamped to exp(−10⁴): reverse KL against a teacher with no tail would be infinite.

The divergence is over the first V_d rows of both heads: V_d = min(V_student, V_teacher, vocab_size) online
(heads padded past the tokenizer, e.g. Qwen2.5-7B's 152064 rows vs 1.5B's 151936, share their real rows; the
trainer sets vocab_size to the tokenizer's length), the cache's V for cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ls_llm.objectives.base import TokenObjective, check_range, objective_chunk
from ls_llm.objectives.divergences import (
    DIVERGENCES,
    log_softmax_,
    smooth_log_probs_,
    smoothed_tail,
)
from ls_llm.objectives.engine import LogitsSpec, Workspace, head_loss

MIN_LOG_TAIL = -1.0e4


@dataclass
class OnlineTeacher:
    """Teacher hidden states (..., H_t) aligned with the student's, and its lm head (V_t, H_t)."""

    hidden: Tensor
    weight: Tensor
    bias: Tensor | None = None
    softcap: float | None = None
    vocab_size: int | None = None  # distill over the first vocab_size rows only (e.g. the tokenizer's tokens)

    @classmethod
    def from_spec(cls, hidden: Tensor, spec: LogitsSpec, *, vocab_size: int | None = None) -> OnlineTeacher:
        """The teacher's hidden states and the head its adapter describes (scale folded into hidden and bias)."""
        bias = spec.bias
        if spec.scale != 1.0:
            hidden, bias = hidden * spec.scale, (None if bias is None else bias * spec.scale)
        return cls(hidden, spec.weight, bias, spec.softcap, vocab_size)

    def vocab(self) -> int:
        rows = int(self.weight.shape[0])
        return rows if self.vocab_size is None else min(rows, self.vocab_size)

    def select(self, idx: Tensor, n_all: int) -> OnlineTeacher:
        flat = self.hidden.reshape(-1, self.hidden.shape[-1])
        if flat.shape[0] != n_all:
            raise ValueError(f"teacher hidden of shape {tuple(self.hidden.shape)} does not match the student's "
                             f"{n_all} positions")
        return OnlineTeacher(flat.index_select(0, idx).detach(), self.weight.detach(),
                             None if self.bias is None else self.bias.detach(), self.softcap, self.vocab_size)

    def log_probs_(self, out: Tensor, start: int, logq: Tensor, q: Tensor, tmp: Tensor, *, temperature: float,
                   smoothing: float) -> None:
        rows, vocab = out.shape
        hc = self.hidden[start:start + rows].to(self.weight.dtype)
        w_t = self.weight[:vocab].t()
        # Straight into the chunk buffer when dtypes agree; a low-precision head multiplies in its dtype.
        z = out if self.weight.dtype == out.dtype else None
        z = torch.mm(hc, w_t, out=z) if self.bias is None else torch.addmm(self.bias[:vocab], hc, w_t, out=z)
        if z is not out:
            out.copy_(z)
        if self.softcap is not None:
            out.div_(self.softcap).tanh_().mul_(self.softcap)
        log_softmax_(out.div_(temperature) if temperature != 1.0 else out, tmp)
        smooth_log_probs_(out, smoothing, vocab)


@dataclass
class CachedTeacher:
    """Per non-ignored token, in order: top-k ids (n, k), log-probs at τ (n, k), log tail mass (n,)."""

    ids: Tensor
    logprobs: Tensor
    log_tail: Tensor
    vocab_size: int

    def vocab(self) -> int:
        return self.vocab_size

    def select(self, idx: Tensor, n_all: int) -> CachedTeacher:
        if self.ids.shape[0] != idx.numel():
            raise ValueError(f"the teacher cache has {self.ids.shape[0]} tokens for this batch but the labels have "
                             f"{idx.numel()} trained tokens: the cache does not match the dataset")
        return self

    def log_probs_(self, out: Tensor, start: int, logq: Tensor, q: Tensor, tmp: Tensor, *, temperature: float,
                   smoothing: float) -> None:
        rows, vocab = out.shape
        ids = self.ids[start:start + rows].long()
        k = ids.shape[1]
        top = self.logprobs[start:start + rows].to(out.dtype)
        tail = self.log_tail[start:start + rows].to(out.dtype).clamp_min(MIN_LOG_TAIL)
        # Stored (float16) top-k and tail do not sum to exactly 1: renormalize, so that D(p ‖ p) = 0 and the
        # gradient below is the bucket form's exactly.
        norm = torch.logsumexp(torch.cat([top, tail[:, None]], dim=1), dim=1, keepdim=True)
        if k == vocab:  # no tail: every entry is written below
            out.scatter_(1, ids, smooth_log_probs_(top - norm, smoothing, vocab))
            return
        top = smooth_log_probs_(top - norm, smoothing, vocab)
        tail = smoothed_tail(tail - norm[:, 0], smoothing, k=k, vocab=vocab)
        # Q, the student's mass outside the top-k, as a sum of positive terms (no 1 − Σ q_K cancellation),
        # then log p̃_j = log q_j + log T − log Q on the tail.
        q_tail = tmp.copy_(q).scatter_(1, ids, 0.0).sum(dim=1).clamp_min(torch.finfo(out.dtype).tiny)
        torch.add(logq, (tail - torch.log(q_tail))[:, None], out=out).scatter_(1, ids, top)


class DistillLoss(nn.Module):
    """(1 − alpha)·objective + alpha·τ²·D(teacher_τ,smoothed ‖ student_τ), without tokens × V logits.

    ``divergence`` is forward_kl, reverse_kl or jsd (``beta`` as in trl's GKD: β = 0 forward KL, β = 1
    reverse KL, mixture M = β·p + (1−β)·q). ``teacher_smoothing`` s ∈ [0, 1) mixes the teacher with
    uniform. See the module docstring for the cached (top-k) teacher's tail. Statistics: the objective's
    (``loss`` is the mixed loss), plus ``objective`` (the token objective alone) and ``divergence`` (D).
    """

    def __init__(self, objective: TokenObjective, *, divergence: str = "forward_kl", alpha: float = 0.5,
                 temperature: float = 1.0, teacher_smoothing: float = 0.0, beta: float = 0.5,
                 chunk_size: int | None = None) -> None:
        super().__init__()
        DIVERGENCES.lookup(divergence)
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                       or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
        self.objective, self.divergence = objective, divergence
        self.chunk_size = chunk_size or objective.chunk_size
        self.alpha = check_range("distill_alpha", alpha, lo=0.0, hi=1.0)
        self.temperature = check_range("temperature", temperature, lo=0.0, lo_open=True)
        self.teacher_smoothing = check_range("teacher_smoothing", teacher_smoothing, lo=0.0, hi=1.0, hi_open=True)
        self.beta = check_range("beta", beta, lo=0.0, hi=1.0)

    def extra_repr(self) -> str:
        return (f"divergence={self.divergence}, alpha={self.alpha}, temperature={self.temperature}, "
                f"teacher_smoothing={self.teacher_smoothing}, beta={self.beta}")

    def forward(self, hidden: Tensor, weight: Tensor, labels: Tensor, teacher: OnlineTeacher | CachedTeacher,
                bias: Tensor | None = None, *, num_items_in_batch=None, return_stats: bool = False):
        """Loss from the student's hidden states (..., H), its head ``weight`` (V, H) and a teacher source."""
        spec = self.objective.spec(weight, bias)
        return head_loss(self.kernel(teacher, spec), hidden, labels, spec, num_items_in_batch=num_items_in_batch,
                         chunk_size=self.chunk_size, return_stats=return_stats)

    def kernel(self, teacher: OnlineTeacher | CachedTeacher, spec: LogitsSpec) -> DistillKernel:
        """The engine kernel for a student head described by a `LogitsSpec` (the trainers' entry: they pass it
        to `engine.head_loss` with this loss's `chunk_size`)."""
        if isinstance(teacher, CachedTeacher) and teacher.vocab() > spec.vocab:
            raise ValueError(f"the teacher cache has vocab_size {teacher.vocab()} but the student head has only "
                             f"{spec.vocab} rows")
        return DistillKernel(self, teacher, min(spec.vocab, teacher.vocab()))


@dataclass(frozen=True)
class DistillKernel:
    """The engine kernel: objective and divergence on one student logits chunk, one dloss/dz for both."""

    loss_fn: DistillLoss
    teacher: OnlineTeacher | CachedTeacher
    vocab: int

    def select(self, idx: Tensor, n_positions: int) -> DistillKernel:
        return DistillKernel(self.loss_fn, self.teacher.select(idx, n_positions), self.vocab)

    def __call__(self, z: Tensor, y: Tensor, start: int, ws: Workspace, *, need_grad: bool, need_stats: bool):
        fn, vocab = self.loss_fn, self.vocab
        alpha, tau = fn.alpha, fn.temperature
        rows = z.shape[0]
        d = dd = None
        if alpha > 0:
            logq, q, logp, tmp = (ws.get(name, rows, vocab=vocab) for name in ("logq", "q", "logp", "tmp"))
            log_softmax_(torch.div(z[:, :vocab], tau, out=logq), q, probs=True)
            self.teacher.log_probs_(logp, start, logq, q, tmp, temperature=tau, smoothing=fn.teacher_smoothing)
            d, dd = DIVERGENCES[fn.divergence](logq, q, logp, tmp, beta=fn.beta, need_grad=need_grad)
        obj_grad = need_grad and alpha < 1
        out, dz = objective_chunk(fn.objective, z, y, ws, need_grad=obj_grad, need_stats=need_stats)
        if need_stats:
            out["objective"] = out["loss"]
            out["divergence"] = d if d is not None else torch.zeros_like(out["loss"])
        if d is not None:
            out["loss"] = (1.0 - alpha) * out["loss"] + (alpha * tau * tau) * d
        if not need_grad:
            return out, None
        dz = dz.mul_(1.0 - alpha) if obj_grad else z.zero_()
        if dd is not None:
            dz[:, :vocab].add_(dd, alpha=alpha * tau)  # dD/dz = dD/du / τ, times α·τ²
        return out, dz
