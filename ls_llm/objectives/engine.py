"""The fused, chunked engine: token objectives through the lm head without the full logits.

Tokens whose label is ``ignore_index`` are dropped first. The rest are processed in chunks of
``rows`` tokens; for each chunk the engine forms the logits z = h Wᵀ (+ b) in a reused float32
buffer, asks the objective for per-token losses and dloss/dz, and immediately turns dz into the
gradients of the inputs:

    dL/dh_chunk = dz Wᵀᵀ = dz W         (rows × H, written once)
    dL/dW      += dzᵀ h_chunk           (V × H, float32 accumulator)
    dL/db      += Σ_rows dz

So the forward pass is the whole computation (three matmuls per chunk, as the three-matmul floor),
backward only scales the stored gradients by the incoming grad_output, and no more than one chunk of
tokens × V logits (two with log p, three with softcapping) is ever alive. Under torch.no_grad, or
when no input requires grad, only the losses are computed.

Softcapping z = c·tanh(u/c) (Gemma 2): dz/du = 1 − tanh²(u/c), applied to dz before the matmuls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from ls_llm.objectives.base import TokenObjective
from ls_llm.objectives.softmax import chunk_softmax


@dataclass
class TokenStats:
    """Sums over non-ignored tokens, detached, for logging (means via ``means``)."""

    n_tokens: Tensor
    loss_sum: Tensor  # the objective's per-token loss
    ce_sum: Tensor  # plain cross-entropy of the same tokens
    correct_sum: Tensor  # target has the largest logit (ties count as correct)
    entropy_sum: Tensor
    p_y_sum: Tensor

    def means(self) -> dict[str, float]:
        n = max(float(self.n_tokens), 1.0)
        return {"loss": float(self.loss_sum) / n, "ce": float(self.ce_sum) / n,
                "token_accuracy": float(self.correct_sum) / n, "entropy": float(self.entropy_sum) / n,
                "p_y": float(self.p_y_sum) / n, "n_tokens": float(self.n_tokens)}

    def astuple(self) -> tuple[Tensor, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    def __add__(self, other: TokenStats) -> TokenStats:
        return TokenStats(*(a + b for a, b in zip(self.astuple(), other.astuple())))


class _Workspace:
    """Chunk buffers, allocated once per call and reused: fresh multi-MB allocations per chunk cost
    page faults on CPU and allocator churn on GPU."""

    def __init__(self, rows: int, vocab: int, *, dtype: torch.dtype, device: torch.device) -> None:
        self.shape, self.dtype, self.device = (rows, vocab), dtype, device
        self._bufs: dict[str, Tensor] = {}

    def get(self, name: str, rows: int, dtype: torch.dtype | None = None) -> Tensor:
        dtype = dtype or self.dtype
        key = f"{name}:{dtype}"
        if key not in self._bufs:
            self._bufs[key] = torch.empty(self.shape, dtype=dtype, device=self.device)
        return self._bufs[key][:rows]


def _acc_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _chunk(obj: TokenObjective, z: Tensor, y: Tensor, ws: _Workspace, *, need_grad: bool,
           need_stats: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Losses (rows,), dloss/du (rows, V) or None, and stats rows (5, rows) or None for raw logits u in z."""
    rows = z.shape[0]
    tanh = None
    if obj.softcap is not None:
        tanh = ws.get("tanh", rows)
        torch.tanh(z.div_(obj.softcap), out=tanh)
        z.copy_(tanh).mul_(obj.softcap)
    aux = obj.pre_softmax(z)
    need_logp = obj.NEEDS_LOGP or need_stats
    sm = chunk_softmax(z, y, work=ws.get("exp", rows) if need_logp else None, need_logp=need_logp)
    loss = obj.full_loss(sm, y, aux)
    stats = None
    if need_stats:
        correct = (sm.z_y >= sm.m).to(loss.dtype)
        stats = torch.stack([loss, sm.ce, correct, sm.entropy, sm.p_y])
    if not need_grad:
        return loss, None, stats
    grad = obj.full_grad_(sm, y, aux)
    if tanh is not None:
        grad.mul_(tanh.square_().neg_().add_(1.0))
    return loss, grad, stats


def _select(labels: Tensor, ignore_index: int) -> tuple[Tensor, bool]:
    flat = labels.reshape(-1)
    valid = flat != ignore_index
    return valid.nonzero().squeeze(1), bool(valid.all())


def _check_labels(y: Tensor, vocab: int) -> None:
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= vocab):
        bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
        raise ValueError(f"labels must be in [0, {vocab}) or ignore_index, got {bad}")


def _denominator(num_items_in_batch, n_valid: int, like: Tensor) -> Tensor:
    if num_items_in_batch is None:
        return torch.tensor(float(max(n_valid, 1)), dtype=like.dtype, device=like.device)
    d = torch.as_tensor(num_items_in_batch, device=like.device).to(like.dtype)
    return d.clamp_min(1.0)  # an all-ignored batch gives 0 / 1 = 0, never 0 / 0


def _pack_stats(stats_rows: list[Tensor], n: int, dtype: torch.dtype, device) -> TokenStats:
    sums = torch.cat(stats_rows, dim=1).sum(dim=1) if stats_rows else torch.zeros(5, dtype=dtype, device=device)
    sums = sums.float()
    return TokenStats(torch.tensor(float(n), device=device), *sums.unbind(0))


def _fused_pass(obj: TokenObjective, h: Tensor, weight: Tensor, bias: Tensor | None, y: Tensor, *,
                grads: tuple[bool, bool, bool], need_stats: bool, scale: Tensor | None = None):
    """Chunk loop over selected tokens h (n, H). Returns losses (n,), stats, and the gradients of
    ``scale`` × Σ losses."""
    rows = min(obj.chunk_rows(weight.shape[0]), max(h.shape[0], 1))

    def per_chunk(z: Tensor, start: int, ws: _Workspace):
        return _chunk(obj, z, y[start:start + z.shape[0]], ws, need_grad=any(grads), need_stats=need_stats)

    losses, stats_rows, raw = chunk_loop(h, weight, bias, rows=rows, grads=grads, chunk_fn=per_chunk, scale=scale)
    return losses, _pack_stats(stats_rows, h.shape[0], _acc_dtype(weight), h.device), raw


ChunkFn = Callable[[Tensor, int, "_Workspace"], tuple[Tensor, Tensor | None, Tensor | None]]


def chunk_loop(h: Tensor, weight: Tensor, bias: Tensor | None, *, rows: int, grads: tuple[bool, bool, bool],
               chunk_fn: ChunkFn, scale: Tensor | None = None):
    """The lm-head chunk loop, shared by the token objectives and distillation (objectives/distill.py).

    For each chunk of ``rows`` tokens of h (n, H) it forms the float32 logits z in a reused buffer and calls
    ``chunk_fn(z, start, ws)`` -> (per-token losses, dloss/dz or None, stats rows or None); dz becomes the
    gradients of ``scale`` × Σ losses w.r.t. h / weight / bias at once. The scale is applied on the small
    side (h rows, dL/dh rows), never to a V-sized tensor. Returns (losses (n,), stats rows, (g_h, g_w, g_b)).
    """
    n, vocab = h.shape[0], weight.shape[0]
    acc = _acc_dtype(weight)
    ws = _Workspace(rows, vocab, dtype=acc, device=h.device)
    g_h = torch.empty(h.shape, dtype=h.dtype, device=h.device) if grads[0] else None
    # The first chunk writes the V×H accumulator directly: no zero-fill pass over it.
    g_w = torch.empty(weight.shape, dtype=acc, device=weight.device) if grads[1] and n else None
    g_b = torch.zeros(vocab, dtype=acc, device=weight.device) if grads[2] and bias is not None else None
    scale = torch.ones((), dtype=acc, device=h.device) if scale is None else scale.to(acc)
    losses, stats_rows = [], []
    w_t = weight.t()
    h = h.to(weight.dtype)
    for start in range(0, n, rows):
        hc = h[start:start + rows]
        z = ws.get("z", hc.shape[0])
        if weight.dtype == acc:
            torch.mm(hc, w_t, out=z) if bias is None else torch.addmm(bias, hc, w_t, out=z)
        else:  # low-precision matmul (input dtype, as the naive path), then statistics in float32
            z_lp = ws.get("z_lp", hc.shape[0], weight.dtype)
            torch.mm(hc, w_t, out=z_lp) if bias is None else torch.addmm(bias, hc, w_t, out=z_lp)
            z.copy_(z_lp)
        loss, dz, stats = chunk_fn(z, start, ws)
        losses.append(loss)
        if stats is not None:
            stats_rows.append(stats)
        if dz is None:
            continue
        if g_h is not None:
            dz_lp = dz if weight.dtype == acc else ws.get("z_lp", dz.shape[0], weight.dtype).copy_(dz)
            g_h[start:start + rows] = torch.mm(dz_lp, weight).mul_(scale)
        if g_w is not None:
            hc_scaled = hc.to(acc) * scale
            torch.mm(dz.t(), hc_scaled, out=g_w) if start == 0 else g_w.addmm_(dz.t(), hc_scaled)
        if g_b is not None:
            g_b.add_(dz.sum(dim=0) * scale)
    loss_vec = torch.cat(losses) if losses else torch.zeros(0, dtype=acc, device=h.device)
    return loss_vec, stats_rows, (g_h, g_w, g_b)


def finish_grads(g_h, g_w, g_b, *, flat_h: Tensor, idx: Tensor, all_valid: bool, shape_h, weight: Tensor,
                 bias: Tensor | None, want_w: bool):
    """Gradients of the selected tokens -> gradients of the inputs: dL/dh scattered back over ignored rows,
    a zero dL/dW when no token was left (not None), each in its input's dtype."""
    if g_h is not None:
        if not all_valid:
            g_h = torch.zeros_like(flat_h).index_copy_(0, idx, g_h)
        g_h = g_h.view(shape_h)
    if g_w is None and want_w:
        g_w = torch.zeros_like(weight)
    g_w = None if g_w is None else g_w.to(weight.dtype)
    g_b = None if g_b is None else g_b.to(bias.dtype)
    return g_h, g_w, g_b


class _FusedLinearObjective(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, obj, num_items, need_stats, grad_enabled):
        shape_h = hidden.shape
        flat_h = hidden.reshape(-1, shape_h[-1])
        idx, all_valid = _select(labels, obj.ignore_index)
        h = flat_h if all_valid else flat_h.index_select(0, idx)
        y = labels.reshape(-1) if all_valid else labels.reshape(-1).index_select(0, idx)
        _check_labels(y, weight.shape[0])
        # forward() always runs with grad mode off: the caller's mode arrives as grad_enabled.
        grads = tuple(grad_enabled and ctx.needs_input_grad[i] for i in range(3))
        denom = _denominator(num_items, y.numel(), flat_h.new_empty((), dtype=_acc_dtype(weight)))
        losses, stats, (g_h, g_w, g_b) = _fused_pass(obj, h, weight, bias, y, grads=grads,
                                                     need_stats=need_stats, scale=1.0 / denom)
        loss = losses.sum() / denom
        ctx.save_for_backward(*finish_grads(g_h, g_w, g_b, flat_h=flat_h, idx=idx, all_valid=all_valid,
                                            shape_h=shape_h, weight=weight, bias=bias, want_w=grads[1]))
        ctx.mark_non_differentiable(*stats.astuple())
        return (loss, *stats.astuple())

    @staticmethod
    def backward(ctx, grad_loss, *unused):
        g_h, g_w, g_b = ctx.saved_tensors
        if not torch.equal(grad_loss, torch.ones_like(grad_loss)):
            g_h, g_w, g_b = (None if g is None else g * grad_loss.to(g.dtype) for g in (g_h, g_w, g_b))
        return g_h, g_w, g_b, None, None, None, None, None


def fused_linear_objective(obj: TokenObjective, hidden: Tensor, weight: Tensor, labels: Tensor,
                           bias: Tensor | None = None, *, num_items_in_batch=None, return_stats: bool = False):
    """Sum of per-token objective losses over non-ignored tokens / num_items_in_batch (or their count)."""
    if hidden.shape[-1] != weight.shape[1]:
        raise ValueError(f"hidden size {hidden.shape[-1]} does not match weight of shape {tuple(weight.shape)}")
    if hidden.shape[:-1] != labels.shape:
        raise ValueError(f"labels of shape {tuple(labels.shape)} do not match hidden of shape {tuple(hidden.shape)}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    out = _FusedLinearObjective.apply(hidden, weight, bias, labels, obj, num_items_in_batch, return_stats,
                                      torch.is_grad_enabled())
    return (out[0], TokenStats(*out[1:])) if return_stats else out[0]


class _LogitsObjective(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, labels, obj, num_items, need_stats, grad_enabled):
        vocab = logits.shape[-1]
        flat = logits.reshape(-1, vocab)
        if flat.shape[0] != labels.numel():
            raise ValueError(f"labels of shape {tuple(labels.shape)} do not match logits of shape {tuple(logits.shape)}")
        idx, _ = _select(labels, obj.ignore_index)
        y = labels.reshape(-1).index_select(0, idx)
        _check_labels(y, vocab)
        need_grad = grad_enabled and ctx.needs_input_grad[0]
        acc = _acc_dtype(logits)
        rows = min(obj.chunk_rows(vocab), max(y.numel(), 1))
        ws = _Workspace(rows, vocab, dtype=acc, device=logits.device)
        grad = torch.zeros_like(flat) if need_grad else None
        losses, stats_rows = [], []
        for start in range(0, y.numel(), rows):
            ic = idx[start:start + rows]
            z = ws.get("z", ic.numel())
            z.copy_(flat.index_select(0, ic))
            loss, dz, stats = _chunk(obj, z, y[start:start + rows], ws, need_grad=need_grad, need_stats=need_stats)
            losses.append(loss)
            if stats is not None:
                stats_rows.append(stats)
            if dz is not None:
                grad.index_copy_(0, ic, dz.to(grad.dtype))
        loss_vec = torch.cat(losses) if losses else torch.zeros(0, dtype=acc, device=logits.device)
        denom = _denominator(num_items, y.numel(), loss_vec)
        if grad is not None:
            grad = grad.div_(denom.to(grad.dtype)).view(logits.shape)
        ctx.save_for_backward(grad)
        stats = _pack_stats(stats_rows, y.numel(), acc, logits.device)
        ctx.mark_non_differentiable(*stats.astuple())
        return (loss_vec.sum() / denom, *stats.astuple())

    @staticmethod
    def backward(ctx, grad_loss, *unused):
        (grad,) = ctx.saved_tensors
        return grad * grad_loss.to(grad.dtype), None, None, None, None, None


def logits_objective(obj: TokenObjective, logits: Tensor, labels: Tensor, *, num_items_in_batch=None,
                     return_stats: bool = False):
    out = _LogitsObjective.apply(logits, labels, obj, num_items_in_batch, return_stats, torch.is_grad_enabled())
    return (out[0], TokenStats(*out[1:])) if return_stats else out[0]


def fused_token_losses(obj: TokenObjective, hidden: Tensor, weight: Tensor, labels: Tensor,
                       bias: Tensor | None = None) -> Tensor:
    """Per-token objective losses shaped like ``labels`` (0 where ignored), no gradients."""
    flat_h = hidden.reshape(-1, hidden.shape[-1])
    idx, _ = _select(labels, obj.ignore_index)
    y = labels.reshape(-1).index_select(0, idx)
    _check_labels(y, weight.shape[0])
    losses, _, _ = _fused_pass(obj, flat_h.index_select(0, idx), weight, bias, y,
                               grads=(False, False, False), need_stats=False)
    out = torch.zeros(labels.numel(), dtype=losses.dtype, device=labels.device)
    return out.index_copy_(0, idx, losses).view(labels.shape)
