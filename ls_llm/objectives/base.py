"""The token-objective contract, its registry and parameter validation.

A token objective is the per-token math only: given the softmax statistics of a chunk of logits it
returns the per-token loss and (when asked) writes dloss/dlogits into the chunk's buffer. The
engine (engine.py) owns chunking, the lm-head matmuls, softcapping, masking and reduction, so a new
objective is ~20 lines in losses.py plus a `@register` line.
"""

from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ls_llm.objectives.engine import LogitsSpec, Workspace, head_loss, logits_loss, token_outputs
from ls_llm.objectives.softmax import ChunkSoftmax, chunk_softmax
from ls_llm.registry import Registry


def _named(cls: type, name: str) -> type:
    cls.name = name
    return cls


# name -> objective class; `@register("name")` (losses.py) also gives the class its name.
OBJECTIVES = Registry("objective", entry=_named)

# Parameters every objective takes, with their defaults (engine settings, not objective math).
COMMON_PARAMS: dict[str, Any] = {"z_loss": 0.0, "ignore_index": -100, "softcap": None, "chunk_size": None}


def register(name: str) -> Callable[[type[TokenObjective]], type[TokenObjective]]:
    return OBJECTIVES.register(name, name=name)


def build_objective(name: str, **params: Any) -> TokenObjective:
    """Build a registered objective by name, e.g. ``build_objective("label_smoothing", alpha=0.1)``."""
    cls = OBJECTIVES.lookup(name)
    unknown = sorted(set(params) - set(cls.PARAMS) - set(COMMON_PARAMS))
    if unknown:
        takes = sorted(cls.PARAMS) + sorted(COMMON_PARAMS)
        raise ValueError(f"objective {name!r} takes no parameter {unknown[0]!r}; it takes {takes}")
    return cls(**params)


def check_range(name: str, value: Any, *, lo: float = -math.inf, hi: float = math.inf,
                lo_open: bool = False, hi_open: bool = False) -> float:
    """Return ``value`` as a float, or raise ValueError naming the parameter and the value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    bad_lo = value <= lo if lo_open else value < lo
    bad_hi = value >= hi if hi_open else value > hi
    if bad_lo or bad_hi:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return float(value)


class TokenObjective(nn.Module, metaclass=ABCMeta):
    """Base class: a token-level loss on next-token logits, evaluated without full logits.

    Subclasses set ``PARAMS`` (objective-specific parameters and defaults), implement
    ``token_loss`` and ``token_grad_``, and may set ``NEEDS_LOGP`` or override ``pre_softmax``.
    """

    name: ClassVar[str] = ""
    PARAMS: ClassVar[dict[str, Any]] = {}
    NEEDS_LOGP: ClassVar[bool] = False  # needs log p over the vocabulary (a second chunk buffer)

    def __init__(self, *, z_loss: float = 0.0, ignore_index: int = -100, softcap: float | None = None,
                 chunk_size: int | None = None, **params: Any) -> None:
        super().__init__()
        self.z_loss = check_range("z_loss", z_loss, lo=0.0)
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise ValueError(f"ignore_index must be an int, got {ignore_index!r}")
        self.ignore_index = ignore_index
        self.softcap = None if softcap is None else check_range("softcap", softcap, lo=0.0, lo_open=True)
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
        self.chunk_size = chunk_size
        self.params = {**self.PARAMS, **params}
        self.validate()

    # ---- per-objective math (override) -------------------------------------------------------
    def validate(self) -> None:
        """Check ``self.params``; raise ValueError naming the parameter and value."""

    def pre_softmax(self, z: Tensor) -> Tensor | None:
        """Per-token reduction of the raw (capped) logits needed later, computed before z is overwritten."""
        return None

    @abstractmethod
    def token_loss(self, sm: ChunkSoftmax, y: Tensor, aux: Tensor | None) -> Tensor:
        """Per-token loss (c,) in float32."""

    @abstractmethod
    def token_grad_(self, sm: ChunkSoftmax, y: Tensor, aux: Tensor | None, p_extra: Tensor | float) -> Tensor:
        """Write dloss/dz into a chunk buffer and return it. ``p_extra`` is added to the coefficient of
        p (it carries the z-loss gradient 2·z_loss·lse·p)."""

    # ---- shared by every objective ------------------------------------------------------------
    def full_loss(self, sm: ChunkSoftmax, y: Tensor, aux: Tensor | None) -> Tensor:
        loss = self.token_loss(sm, y, aux)
        return loss + self.z_loss * sm.lse.square() if self.z_loss else loss

    def full_grad_(self, sm: ChunkSoftmax, y: Tensor, aux: Tensor | None) -> Tensor:
        # d(z_loss·lse²)/dz = 2·z_loss·lse·p, folded into the coefficient of p.
        p_extra = 2.0 * self.z_loss * sm.lse if self.z_loss else 0.0
        return self.token_grad_(sm, y, aux, p_extra)

    def extra_repr(self) -> str:
        shown = {k: (v if not isinstance(v, Tensor) else f"tensor{tuple(v.shape)}") for k, v in self.params.items()}
        return ", ".join(f"{k}={v}" for k, v in {**shown, "z_loss": self.z_loss}.items())

    def spec(self, weight: Tensor, bias: Tensor | None = None) -> LogitsSpec:
        """The `LogitsSpec` this objective applies when called directly (its own softcap and ignore_index)."""
        return LogitsSpec(weight, bias, softcap=self.softcap, ignore_index=self.ignore_index)

    def forward(self, hidden: Tensor, weight: Tensor, labels: Tensor, bias: Tensor | None = None,
                num_items_in_batch: Tensor | int | None = None, *, return_stats: bool = False):
        """Loss from final hidden states (..., H) and the lm-head ``weight`` (V, H); labels aligned with hidden."""
        return head_loss(ObjectiveKernel(self), hidden, labels, self.spec(weight, bias),
                         num_items_in_batch=num_items_in_batch, chunk_size=self.chunk_size, return_stats=return_stats)

    def from_logits(self, logits: Tensor, labels: Tensor, num_items_in_batch: Tensor | int | None = None,
                    *, return_stats: bool = False):
        """The same loss and gradients from already-materialized logits (..., V)."""
        return logits_loss(ObjectiveKernel(self), logits, labels, softcap=self.softcap, ignore_index=self.ignore_index,
                           num_items_in_batch=num_items_in_batch, chunk_size=self.chunk_size,
                           return_stats=return_stats)

    @torch.no_grad()
    def token_losses(self, hidden: Tensor, weight: Tensor | None = None, labels: Tensor | None = None,
                     bias: Tensor | None = None, *, spec=None) -> Tensor:
        """Per-token objective losses (shape of ``labels``, 0 where ignored), without gradients."""
        spec = spec if spec is not None else self.spec(weight, bias)
        return token_outputs(ObjectiveKernel(self), hidden, spec, labels=labels, chunk_size=self.chunk_size)["loss"]


# ---- the token-objective kernel: what the engine runs for one TokenObjective -----------------------------------------------------------------------------

def objective_chunk(obj: TokenObjective, z: Tensor, y: Tensor, ws: Workspace, *, need_grad: bool,
                    need_stats: bool) -> tuple[dict[str, Tensor], Tensor | None]:
    """A token objective on one chunk of (capped) logits z: per-token loss (and statistics), dloss/dz."""
    aux = obj.pre_softmax(z)
    need_logp = obj.NEEDS_LOGP or need_stats
    sm = chunk_softmax(z, y, work=ws.get("exp", z.shape[0]) if need_logp else None, need_logp=need_logp)
    loss = obj.full_loss(sm, y, aux)
    out = {"loss": loss}
    if need_stats:
        out.update(ce=sm.ce, correct=(sm.z_y >= sm.m).to(loss.dtype), entropy=sm.entropy, p_y=sm.p_y)
    return out, (obj.full_grad_(sm, y, aux) if need_grad else None)


@dataclass(frozen=True)
class ObjectiveKernel:
    objective: TokenObjective

    def select(self, idx: Tensor, n_positions: int) -> ObjectiveKernel:
        return self

    def __call__(self, z, y, start, ws, *, need_grad, need_stats):
        return objective_chunk(self.objective, z, y, ws, need_grad=need_grad, need_stats=need_stats)


def as_prior(prior: Any) -> Tensor | None:
    """Validate a smoothing prior: "uniform" (-> None) or a probability vector."""
    if isinstance(prior, str):
        if prior != "uniform":
            raise ValueError(f"prior must be 'uniform' or a probability vector, got {prior!r}")
        return None
    if not isinstance(prior, (Tensor, Sequence)):
        raise ValueError(f"prior must be 'uniform' or a probability vector, got {type(prior).__name__}")
    vec = torch.as_tensor(prior, dtype=torch.float64).detach()
    if vec.ndim != 1 or vec.numel() == 0:
        raise ValueError(f"prior must be a 1-D probability vector, got shape {tuple(vec.shape)}")
    if not torch.isfinite(vec).all() or (vec < 0).any():
        raise ValueError("prior must be non-negative and finite")
    if abs(float(vec.sum()) - 1.0) > 1e-4:
        raise ValueError(f"prior must sum to 1, got sum {float(vec.sum()):.6g}")
    return vec
