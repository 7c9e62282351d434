"""Routed objectives: each token's loss and gradient from its own token objective, in one pass of the engine.

A ``RoutedKernel`` holds a tuple of token objectives and, per flat position, the index of the objective that
trains it (its *route*) and optionally a segment id (for per-segment statistics). It costs no extra matmul:
the engine forms each chunk's logits once, and the kernel hands each run of rows to its objective.

How rows are grouped: ``select`` sorts the selected tokens by route once (a stable sort, so tokens keep their
order within a route) and gives the engine that ``order``; the engine then forms chunks in sorted order, so a
chunk is one contiguous run per route and at most (routes − 1) chunks hold two routes. Each run is a
contiguous row slice of the chunk's logit buffer, so an objective computes on it in place, no gather and no
extra (rows, V) buffer; its dloss/dz is copied back into that slice when the objective formed it in the
softmax work buffer. With a single route in use nothing is reordered, and the computation is exactly the
unrouted one.

Statistics: besides the objectives' own (``loss``, ``ce``, ``correct``, ``entropy``, ``p_y``), for each segment
name ``s`` the per-token ``ce/s``, ``correct/s`` (the statistic where the token is in ``s``, else 0) and
``n_tokens/s`` (the indicator), so the trainer sums and logs them through its named path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ls_llm.objectives.base import TokenObjective, objective_chunk
from ls_llm.objectives.engine import Workspace, token_outputs

SEGMENT_STATS = ("ce", "correct")


@dataclass(frozen=True)
class RoutedKernel:
    """Engine kernel: token i is trained by ``objectives[route[i]]``; ``segment[i]`` (−1: none) names its
    segment among ``segment_names`` for the statistics. ``route`` and ``segment`` are per flat position
    (any value where the label is ignored)."""

    objectives: tuple[TokenObjective, ...]
    route: Tensor
    segment: Tensor | None = None
    segment_names: tuple[str, ...] = ()
    order: Tensor | None = None
    bounds: tuple[int, ...] | None = None  # after select: route k owns sorted tokens [bounds[k], bounds[k+1])

    def __post_init__(self):
        if not self.objectives:
            raise ValueError("a RoutedKernel needs at least one objective")
        if self.segment is None and self.segment_names:
            raise ValueError(f"segment_names={self.segment_names!r} given without per-token segment ids")

    def select(self, idx: Tensor, n_positions: int) -> RoutedKernel:
        for name, t in (("route", self.route), ("segment", self.segment)):
            if t is not None and t.numel() != n_positions:
                raise ValueError(f"{name} ids cover {t.numel()} positions but the batch has {n_positions}")
        route = self.route.reshape(-1).to(idx.device).index_select(0, idx).long()
        if route.numel() and (int(route.min()) < 0 or int(route.max()) >= len(self.objectives)):
            raise ValueError(f"route ids must be in [0, {len(self.objectives)}) on trained tokens, "
                             f"got {int(route.min())}..{int(route.max())}")
        segment = None if self.segment is None else self.segment.reshape(-1).to(idx.device).index_select(0, idx)
        counts = torch.bincount(route, minlength=len(self.objectives))
        order = None
        if int((counts > 0).sum()) > 1:
            route, order = torch.sort(route, stable=True)
            segment = None if segment is None else segment.index_select(0, order)
        bounds = (0, *torch.cumsum(counts, 0).tolist())
        return replace(self, route=route, segment=segment, order=order, bounds=bounds)

    def __call__(self, z: Tensor, y: Tensor, start: int, ws: Workspace, *, need_grad: bool, need_stats: bool):
        end = start + z.shape[0]
        runs = [(k, max(self.bounds[k], start) - start, min(self.bounds[k + 1], end) - start)
                for k in range(len(self.objectives))]
        runs = [r for r in runs if r[1] < r[2]] or [(0, 0, z.shape[0])]  # an empty chunk still names its outputs
        if len(runs) == 1:
            out, dz = objective_chunk(self.objectives[runs[0][0]], z, y, ws, need_grad=need_grad, need_stats=need_stats)
        else:
            parts = []
            for k, a, b in runs:
                zk = z[a:b]
                part, dk = objective_chunk(self.objectives[k], zk, y[a:b], ws, need_grad=need_grad,
                                           need_stats=need_stats)
                if dk is not None and dk.data_ptr() != zk.data_ptr():
                    zk.copy_(dk)  # formed in the softmax work buffer, which the next run reuses
                parts.append(part)
            out = {name: torch.cat([p[name] for p in parts]) for name in parts[0]}
            dz = z if need_grad else None
        if need_stats and self.segment_names:
            out.update(self._segment_stats(out, start, end))
        return out, dz

    def _segment_stats(self, out: dict[str, Tensor], start: int, end: int) -> dict[str, Tensor]:
        seg = self.segment[start:end]
        stats = {}
        for j, name in enumerate(self.segment_names):
            ind = (seg == j).to(out["ce"].dtype)
            stats.update({f"{s}/{name}": out[s] * ind for s in SEGMENT_STATS})
            stats[f"n_tokens/{name}"] = ind
        return stats


def routed_kernel(objectives: Sequence[TokenObjective], route: Tensor, segment: Tensor | None = None,
                  segment_names: Sequence[str] = ()) -> RoutedKernel:
    """A RoutedKernel over ``objectives``; objectives equal in name and parameters share one route, so that
    routing every token to the same objective is exactly the unrouted computation."""
    unique: list[TokenObjective] = []
    remap = []
    for obj in objectives:
        key = _key(obj)
        found = next((i for i, u in enumerate(unique) if _key(u) == key), None)
        if found is None:
            unique.append(obj)
            found = len(unique) - 1
        remap.append(found)
    if len(unique) < len(objectives):
        route = torch.as_tensor(remap, device=route.device)[route.long().clamp_min(0)]
    return RoutedKernel(tuple(unique), route, segment, tuple(segment_names))


def _key(obj: TokenObjective) -> tuple:
    params = tuple(sorted((k, (v.data_ptr(), tuple(v.shape)) if isinstance(v, Tensor) else v)
                          for k, v in obj.params.items()))
    return obj.name, params, obj.z_loss


def routed_token_losses(kernel: RoutedKernel, hidden: Tensor, labels: Tensor, spec, *,
                        chunk_size: int | None = None) -> Tensor:
    """Per-token routed losses shaped like ``labels`` (0 where ignored), without gradients."""
    return token_outputs(kernel, hidden, spec, labels=labels, chunk_size=chunk_size)["loss"]
