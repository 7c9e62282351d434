"""Token objectives for next-token prediction under label noise, fused with the lm head.

    from ls_llm.objectives import build_objective, OBJECTIVES
    obj = build_objective("label_smoothing", alpha=0.1)
    loss = obj(hidden, weight, labels, bias=None, num_items_in_batch=None)
    loss = obj.from_logits(logits, labels)
    loss = head_loss(ObjectiveKernel(obj), hidden, labels, LogitsSpec(weight, bias))  # engine.head_loss, base.ObjectiveKernel

torch only: this package knows nothing of transformers, trl or accelerate.
"""

from ls_llm.objectives import losses as _losses  # noqa: F401  (registers the objectives)
from ls_llm.objectives.base import COMMON_PARAMS, OBJECTIVES, TokenObjective, build_objective, register
from ls_llm.objectives.engine import LogitsSpec, TokenStats

__all__ = ["OBJECTIVES", "COMMON_PARAMS", "LogitsSpec", "TokenObjective", "TokenStats", "build_objective", "register"]
