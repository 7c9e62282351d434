"""The fused, chunked engine: one chunk loop and one autograd Function for every per-token head computation.

What changes from one use to another is a *kernel*: the per-chunk math. The engine owns everything else:

- which tokens count (labels equal to ``spec.ignore_index`` are dropped first);
- the chunk policy (``chunk_rows``) and the reused float32 buffers (``Workspace``);
- forming each chunk's logits, either z = h Wᵀ (+ b) from hidden states through the head (``LogitsSpec``),
  or rows of already-materialized logits;
- softcapping z = c·tanh(u/c) (Gemma 2), whose gradient dz/du = 1 − tanh²(u/c) it applies to the kernel's dz;
- turning the kernel's dloss/dz into input gradients at once, scaled on the small side:

      dL/dh_chunk = dz W         (rows × H, written once)
      dL/dW      += dzᵀ h_chunk   (V × H, float32 accumulator)
      dL/db      += Σ_rows dz

- reduction (Σ losses / num_items_in_batch) and the named statistics (sums over tokens);
- per-token gradient weights: a selected kernel may carry ``row_weight`` (one per selected token, in visiting
  order); row i of dloss/dz is then scaled by it, on the small side (rows of dL/dh and of h), never over V.

So the forward pass is the whole computation (three matmuls per chunk), backward only scales the stored
gradients by the incoming grad_output, and no more than one chunk of tokens × V logits is alive. Kernels:
the token objectives (``ObjectiveKernel`` in objectives/base.py: the engine knows no objective), objectives routed per token (objectives/routing.py), distillation
(objectives/distill.py) and the teacher's top-k (objectives/topk.py).

A kernel is called as ``kernel(z, y, start, ws, need_grad=..., need_stats=...)`` with the chunk's capped
float32 logits z (rows, V) (it may overwrite them), its targets y (rows,), the chunk's offset among the selected
tokens and the workspace; it returns per-token outputs by name (each (rows, ...); ``"loss"`` for a loss kernel,
statistics under their own names) and dloss/dz (rows, V) or None. ``kernel.select(idx, n_positions)`` binds it
to the selected tokens (a distillation teacher picks its rows there). A selected kernel may carry an ``order``
(a permutation of the selected tokens, or None): the engine then visits the tokens in that order, so a kernel
that groups tokens (objectives/routing.py) sees contiguous runs; outputs and gradients land on their positions.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch
from torch import Tensor

# Default working-set budget for one chunk of fp32 logits; 128 rows at V=151936 (~78 MB).
CHUNK_BYTES = 96 * 2**20


@dataclass(frozen=True)
class LogitsSpec:
    """What turns hidden states into logits: z = softcap(scale·(h Wᵀ + b)); labels equal to ``ignore_index``
    are not trained. Built once by the head adapter (trainers/head.py) or by an objective called directly."""

    weight: Tensor
    bias: Tensor | None = None
    scale: float = 1.0
    softcap: float | None = None
    ignore_index: int = -100

    @property
    def vocab(self) -> int:
        return int(self.weight.shape[0])

    def check(self, hidden: Tensor, labels: Tensor | None) -> None:
        if self.weight.ndim != 2 or self.weight.shape[0] == 0:
            raise ValueError(f"the lm head weight has shape {tuple(self.weight.shape)}: it is empty or not gathered "
                             "(a partitioned ZeRO-3 / FSDP parameter read outside its module's forward)")
        if hidden.shape[-1] != self.weight.shape[1]:
            raise ValueError(f"hidden size {hidden.shape[-1]} does not match weight of shape {tuple(self.weight.shape)}")
        if labels is not None and hidden.shape[:-1] != labels.shape:
            raise ValueError(f"labels of shape {tuple(labels.shape)} do not match hidden of shape {tuple(hidden.shape)}")
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise ValueError(f"bias must have shape ({self.weight.shape[0]},), got {tuple(self.bias.shape)}")


class TokenStats(dict):
    """Named sums over the trained tokens, detached float32: ``n_tokens`` and each kernel statistic
    (``loss``, ``ce``, ``correct``, ``entropy``, ``p_y``, and ``divergence`` for distillation)."""

    MEAN_NAMES = {"correct": "token_accuracy"}

    @staticmethod
    def divisor(name: str) -> str:
        """The count a sum is averaged over: ``n_tokens``, or ``n_tokens/<group>`` for ``<stat>/<group>`` (the
        per-segment statistics of objectives/routing.py). Counts themselves are not averaged."""
        stat, _, group = name.partition("/")
        return "n_tokens" if not group else f"n_tokens/{group}"

    def means(self) -> dict[str, float]:
        out = {}
        for k, v in self.items():
            if k.startswith("n_tokens"):
                out[k] = float(v)
                continue
            stat, sep, group = k.partition("/")
            out[self.MEAN_NAMES.get(stat, stat) + sep + group] = float(v) / max(float(self[self.divisor(k)]), 1.0)
        return out


def chunk_rows(vocab: int, chunk_size: int | None = None) -> int:
    """The one chunk policy: ``chunk_size`` tokens, or as many as fit CHUNK_BYTES of float32 logits (16–4096).
    Kernels that keep several (rows, V) buffers use the same rows: each chunk's dW update reads and writes the
    whole (V, H) accumulator, so fewer rows to save buffer memory costs more time than it saves (measured for
    distillation: ~1.3x slower at half the rows)."""
    return chunk_size or max(16, min(4096, CHUNK_BYTES // (4 * vocab)))


class Workspace:
    """Chunk buffers, allocated once per call and reused: fresh multi-MB allocations per chunk cost page faults
    on CPU and allocator churn on GPU. Every buffer follows the input's device."""

    def __init__(self, rows: int, vocab: int, *, dtype: torch.dtype, device: torch.device) -> None:
        self.shape, self.dtype, self.device = (rows, vocab), dtype, device
        self._bufs: dict[str, Tensor] = {}

    def get(self, name: str, rows: int, dtype: torch.dtype | None = None, vocab: int | None = None) -> Tensor:
        dtype = dtype or self.dtype
        key = f"{name}:{dtype}"
        if key not in self._bufs:
            shape = self.shape if vocab is None else (self.shape[0], vocab)
            self._bufs[key] = torch.empty(shape, dtype=dtype, device=self.device)
        return self._bufs[key][:rows]


def acc_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


# ---- where a chunk's logits come from and where dz goes -------------------------------------------------------

class _HeadSource:
    """z = h Wᵀ (+ b) for selected hidden states h (n, H); dz -> dL/dh, dL/dW, dL/db (times ``scale``)."""

    def __init__(self, h: Tensor, weight: Tensor, bias: Tensor | None, grads, scale: Tensor) -> None:
        self.acc = acc_dtype(weight)
        self.h, self.weight, self.bias, self.w_t = h.to(weight.dtype), weight, bias, weight.t()
        n, vocab = h.shape[0], weight.shape[0]
        self.g_h = torch.empty(h.shape, dtype=h.dtype, device=h.device) if grads[0] else None
        # The first chunk writes the V×H accumulator directly: no zero-fill pass over it.
        self.g_w = torch.empty(weight.shape, dtype=self.acc, device=weight.device) if grads[1] and n else None
        self.g_b = torch.zeros(vocab, dtype=self.acc, device=weight.device) if grads[2] and bias is not None else None
        self.scale = scale.to(self.acc)

    def logits_(self, z: Tensor, start: int, ws: Workspace) -> None:
        hc = self.h[start:start + z.shape[0]]
        low = self.weight.dtype != self.acc  # low-precision matmul (as the naive path), statistics in float32
        out = ws.get("z_lp", z.shape[0], self.weight.dtype) if low else z
        torch.mm(hc, self.w_t, out=out) if self.bias is None else torch.addmm(self.bias, hc, self.w_t, out=out)
        if low:
            z.copy_(out)

    def backprop_(self, dz: Tensor, start: int, ws: Workspace, row_weight: Tensor | None = None) -> None:
        # Per-row weights (objectives/weighted.py) scale dL/dz row by row; applied on the small side:
        # (diag(w) dz) W = diag(w) (dz W) and (diag(w) dz)ᵀ h = dzᵀ (diag(w) h).
        rows = dz.shape[0]
        if self.g_h is not None:
            dz_lp = dz if self.weight.dtype == self.acc else ws.get("z_lp", rows, self.weight.dtype).copy_(dz)
            g_h = torch.mm(dz_lp, self.weight).mul_(self.scale)
            self.g_h[start:start + rows] = g_h if row_weight is None else g_h.mul_(_column(row_weight, g_h.dtype))
        if self.g_w is not None:
            hc = self.h[start:start + rows].to(self.acc) * self.scale
            if row_weight is not None:
                hc.mul_(_column(row_weight, hc.dtype))
            torch.mm(dz.t(), hc, out=self.g_w) if start == 0 else self.g_w.addmm_(dz.t(), hc)
        if self.g_b is not None:
            dz_b = dz if row_weight is None else dz * _column(row_weight, dz.dtype)
            self.g_b.add_(dz_b.sum(dim=0) * self.scale)


def _column(row_weight: Tensor, dtype: torch.dtype) -> Tensor:
    return row_weight.to(dtype).unsqueeze(1)


class _LogitsSource:
    """Rows ``idx`` of materialized logits (N, V); dz -> dL/dlogits (times ``scale``), zero on other rows."""

    def __init__(self, flat: Tensor, idx: Tensor, need_grad: bool, scale: Tensor) -> None:
        self.flat, self.idx, self.scale = flat, idx, scale
        self.grad = torch.zeros_like(flat) if need_grad else None

    def logits_(self, z: Tensor, start: int, ws: Workspace) -> None:
        z.copy_(self.flat.index_select(0, self.idx[start:start + z.shape[0]]))

    def backprop_(self, dz: Tensor, start: int, ws: Workspace, row_weight: Tensor | None = None) -> None:
        dz.mul_(self.scale)
        if row_weight is not None:
            dz.mul_(_column(row_weight, dz.dtype))
        self.grad.index_copy_(0, self.idx[start:start + dz.shape[0]], dz.to(self.grad.dtype))


def _run(kernel, source, y: Tensor, *, n: int, vocab: int, rows: int, softcap: float | None, acc: torch.dtype,
         device, need_grad: bool, need_stats: bool) -> dict[str, Tensor]:
    """The chunk loop: per-token kernel outputs concatenated over chunks (gradients accumulate in ``source``)."""
    ws = Workspace(rows, vocab, dtype=acc, device=device)
    outs: dict[str, list[Tensor]] = defaultdict(list)
    row_weight = getattr(kernel, "row_weight", None)  # per selected token, in visiting order (objectives/weighted.py)
    for start in range(0, max(n, 1), rows):  # one empty chunk when n = 0, so every output name exists
        z = ws.get("z", min(rows, n - start))
        source.logits_(z, start, ws)
        tanh = None
        if softcap is not None:
            tanh = ws.get("tanh", z.shape[0])
            torch.tanh(z.div_(softcap), out=tanh)
            z.copy_(tanh).mul_(softcap)
        out, dz = kernel(z, y[start:start + z.shape[0]], start, ws, need_grad=need_grad, need_stats=need_stats)
        for name, value in out.items():
            outs[name].append(value)
        if dz is not None:
            if tanh is not None:
                dz.mul_(tanh.square_().neg_().add_(1.0))
            source.backprop_(dz, start, ws, None if row_weight is None else row_weight[start:start + dz.shape[0]])
    return {name: torch.cat(parts) for name, parts in outs.items()}


def _select(labels: Tensor, ignore_index: int) -> tuple[Tensor, bool]:
    valid = labels.reshape(-1) != ignore_index
    return valid.nonzero().squeeze(1), bool(valid.all())


def _apply_order(kernel, idx: Tensor, y: Tensor, all_valid: bool) -> tuple[Tensor, Tensor, bool]:
    """The selected tokens in the kernel's ``order`` (if any): rows are then gathered through idx."""
    order = getattr(kernel, "order", None)
    if order is None:
        return idx, y, all_valid
    return idx.index_select(0, order), y.index_select(0, order), False


def _check_labels(y: Tensor, vocab: int) -> None:
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= vocab):
        bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
        raise ValueError(f"labels must be in [0, {vocab}) or ignore_index, got {bad}")


def _denominator(num_items_in_batch, n_valid: int, *, dtype, device) -> Tensor:
    if num_items_in_batch is None:
        return torch.tensor(float(max(n_valid, 1)), dtype=dtype, device=device)
    # An all-ignored (or all-zero-weight) batch gives 0 / 1 = 0, never 0 / 0. Only an empty count is replaced: a
    # weighted count (objectives/weighted.py) may be a positive number below 1, which is a true denominator.
    denom = torch.as_tensor(num_items_in_batch, device=device).to(dtype)
    return torch.where(denom > 0, denom, torch.ones_like(denom))


class _FusedHeadLoss(torch.autograd.Function):
    """Σ kernel losses / denominator over the tokens whose label is not ignored; gradients formed in forward.

    ``x`` is hidden states (..., H) when ``weight`` is given, else materialized logits (..., V)."""

    @staticmethod
    def forward(ctx, x, weight, bias, labels, kernel, cfg, num_items, box, grad_enabled):
        flat = x.reshape(-1, x.shape[-1])
        idx, all_valid = _select(labels, cfg["ignore_index"])
        y = labels.reshape(-1) if all_valid else labels.reshape(-1).index_select(0, idx)
        vocab = int(weight.shape[0]) if weight is not None else int(x.shape[-1])
        _check_labels(y, vocab)
        kernel = kernel.select(idx, flat.shape[0])
        idx, y, all_valid = _apply_order(kernel, idx, y, all_valid)
        # forward() always runs with grad mode off: the caller's mode arrives as grad_enabled.
        grads = tuple(grad_enabled and ctx.needs_input_grad[i] for i in range(3))
        acc = acc_dtype(weight if weight is not None else x)
        denom = _denominator(num_items, y.numel(), dtype=acc, device=x.device)
        if weight is not None:
            h = flat if all_valid else flat.index_select(0, idx)
            source = _HeadSource(h, weight, bias, grads, 1.0 / denom)
        else:
            source = _LogitsSource(flat, idx, grads[0], 1.0 / denom)
        rows = min(chunk_rows(vocab, cfg["chunk_size"]), max(y.numel(), 1))
        outs = _run(kernel, source, y, n=y.numel(), vocab=vocab, rows=rows, softcap=cfg["softcap"], acc=acc,
                    device=x.device, need_grad=any(grads), need_stats=box is not None)
        loss = outs["loss"].sum() / denom
        ctx.save_for_backward(*_input_grads(source, x, flat, idx, all_valid, weight, bias, grads))
        if box is None:
            return loss
        stats = TokenStats(n_tokens=torch.tensor(float(y.numel()), device=x.device))
        stats.update({name: value.sum().float() for name, value in outs.items()})
        box["stats"] = stats
        ctx.mark_non_differentiable(*stats.values())
        return (loss, *stats.values())

    @staticmethod
    def backward(ctx, grad_loss, *unused):
        grads = ctx.saved_tensors
        if not torch.equal(grad_loss, torch.ones_like(grad_loss)):
            grads = tuple(g * grad_loss.to(g.dtype) for g in grads)
        grads = list(grads) + [None] * (3 - len(grads))
        g_x, g_w, g_b = (g if g is None or g.numel() else None for g in grads[:3])
        return g_x, g_w, g_b, None, None, None, None, None, None


def _input_grads(source, x, flat, idx, all_valid, weight, bias, grads) -> tuple[Tensor, Tensor, Tensor]:
    """The saved gradients of (x, weight, bias), an empty tensor standing for None (save_for_backward takes
    tensors only): dL/dh scattered back over ignored rows, a zero dL/dW when no token was left."""
    none = x.new_empty(0)
    if isinstance(source, _LogitsSource):
        return (none if source.grad is None else source.grad.view(x.shape)), none, none
    g_h = source.g_h
    if g_h is not None and not all_valid:
        g_h = torch.zeros_like(flat).index_copy_(0, idx, g_h)
    g_w = source.g_w if source.g_w is not None or not grads[1] else torch.zeros_like(weight)
    return ((none if g_h is None else g_h.view(x.shape)), (none if g_w is None else g_w.to(weight.dtype)),
            (none if source.g_b is None else source.g_b.to(bias.dtype)))


def _cfg(spec_or_softcap, ignore_index: int, chunk_size: int | None) -> dict:
    return {"softcap": spec_or_softcap, "ignore_index": ignore_index, "chunk_size": chunk_size}


def head_loss(kernel, hidden: Tensor, labels: Tensor, spec: LogitsSpec, *, num_items_in_batch=None,
              chunk_size: int | None = None, return_stats: bool = False):
    """Σ per-token kernel losses over non-ignored tokens / num_items_in_batch (or their count), from hidden
    states (..., H) through the head in ``spec``; with ``return_stats`` also the named ``TokenStats``."""
    spec.check(hidden, labels)
    weight, bias = spec.weight, spec.bias
    if spec.scale != 1.0:
        # z = scale·(h Wᵀ + b) = (scale·h) Wᵀ + scale·b: scale the (small) hidden, never the (V, H) weight.
        hidden = hidden * spec.scale
        bias = None if bias is None else bias * spec.scale
    box = {} if return_stats else None
    out = _FusedHeadLoss.apply(hidden, weight, bias, labels, kernel, _cfg(spec.softcap, spec.ignore_index, chunk_size),
                               num_items_in_batch, box, torch.is_grad_enabled())
    return (out[0], box["stats"]) if return_stats else out


def logits_loss(kernel, logits: Tensor, labels: Tensor, *, softcap: float | None = None, ignore_index: int = -100,
                num_items_in_batch=None, chunk_size: int | None = None, return_stats: bool = False):
    """The same loss from already-materialized logits (..., V)."""
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"labels of shape {tuple(labels.shape)} do not match logits of shape {tuple(logits.shape)}")
    box = {} if return_stats else None
    out = _FusedHeadLoss.apply(logits, None, None, labels, kernel, _cfg(softcap, ignore_index, chunk_size),
                               num_items_in_batch, box, torch.is_grad_enabled())
    return (out[0], box["stats"]) if return_stats else out


@torch.no_grad()
def token_outputs(kernel, hidden: Tensor, spec: LogitsSpec, *, labels: Tensor | None = None,
                  chunk_size: int | None = None) -> dict[str, Tensor]:
    """Per-token kernel outputs (no gradients) for every row of hidden (n, H), or, with ``labels``, shaped like
    the labels (0 where ignored)."""
    spec.check(hidden, labels)
    flat = hidden.reshape(-1, hidden.shape[-1])
    if labels is None:
        idx, y = None, torch.zeros(flat.shape[0], dtype=torch.long, device=flat.device)
    else:
        idx, _ = _select(labels, spec.ignore_index)
        y = labels.reshape(-1).index_select(0, idx)
        _check_labels(y, spec.vocab)
        kernel = kernel.select(idx, labels.numel())
        idx, y, _ = _apply_order(kernel, idx, y, False)
        flat = flat.index_select(0, idx)
    acc = acc_dtype(spec.weight)
    bias = spec.bias
    if spec.scale != 1.0:
        flat, bias = flat * spec.scale, (None if bias is None else bias * spec.scale)
    source = _HeadSource(flat, spec.weight, bias, (False, False, False), torch.ones((), device=flat.device))
    rows = min(chunk_rows(spec.vocab, chunk_size), max(flat.shape[0], 1))
    outs = _run(kernel, source, y, n=flat.shape[0], vocab=spec.vocab, rows=rows, softcap=spec.softcap, acc=acc,
                device=flat.device, need_grad=False, need_stats=False)
    if labels is None:
        return outs
    return {name: torch.zeros((labels.numel(), *v.shape[1:]), dtype=v.dtype, device=v.device).index_copy_(0, idx, v)
            .view(*labels.shape, *v.shape[1:]) for name, v in outs.items()}

