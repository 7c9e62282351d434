"""Per-token loss weights on any engine kernel: token i contributes w_i·ℓ_i and its gradient is w_i·dℓ_i/dz_i.

The trainer gives every token of a trace that trace's weight (trainers/weights.py) and divides by the weighted
count Σ w_i over the trained tokens of the global batch instead of the plain count, so the loss is

    L = Σ_i w_i ℓ_i / Σ_i w_i

over the whole optimizer step. The engine forms gradients in the forward, so row i of dloss/dz must be scaled:
dL/dz_i = w_i · dℓ_i/dz_i / Σ w. The kernel weights the (rows,) losses itself and hands the engine the weights
as ``row_weight``; the engine applies them on the small side, dL/dh_i = w_i (dz_i W) and dL/dW = dzᵀ (diag(w) h),
so weighting costs no pass over the (rows, V) chunk. A weight of exactly 1 multiplies by 1.0, which is exact in
floating point: the weighted computation with every w = 1 is the unweighted one bit for bit. The wrapper composes with any kernel, including a RoutedKernel that reorders tokens (its ``order`` is
applied to the weights too).

Statistics: the inner kernel's (unweighted ce, accuracy, ...), ``loss`` weighted as trained, and ``weight``
(w_i per token; its sum over the trained tokens is the weighted token count).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import Tensor

WEIGHT_STAT = "weight"


@dataclass(frozen=True)
class WeightedKernel:
    """Engine kernel: ``inner``'s per-token loss and dloss/dz times ``weight`` (per flat position before
    ``select``; per selected token in the engine's visiting order after)."""

    inner: object
    weight: Tensor
    order: Tensor | None = None

    def select(self, idx: Tensor, n_positions: int) -> WeightedKernel:
        if self.weight.numel() != n_positions:
            raise ValueError(f"token weights cover {self.weight.numel()} positions but the batch has {n_positions}")
        inner = self.inner.select(idx, n_positions)
        weight = self.weight.reshape(-1).to(idx.device).index_select(0, idx)
        order = getattr(inner, "order", None)
        if order is not None:
            weight = weight.index_select(0, order)
        return replace(self, inner=inner, weight=weight, order=order)

    @property
    def row_weight(self) -> Tensor:
        """Read by the engine after ``select``: it scales row i of dloss/dz by row_weight[i]."""
        return self.weight

    def __call__(self, z: Tensor, y: Tensor, start: int, ws, *, need_grad: bool, need_stats: bool):
        out, dz = self.inner(z, y, start, ws, need_grad=need_grad, need_stats=need_stats)
        w = self.weight[start:start + z.shape[0]].to(out["loss"].dtype)
        out["loss"] = out["loss"] * w
        if need_stats:
            out[WEIGHT_STAT] = w
        return out, dz
