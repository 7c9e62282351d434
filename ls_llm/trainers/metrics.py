"""Training metrics from the objective's `TokenStats`: token-weighted over a whole logging window.

Per micro-batch the trainer adds the detached sums (over every process) into one small vector; at each
logging step the vector becomes means. Summing first and dividing once makes the logged numbers independent
of how tokens were split into micro-batches, processes and accumulation steps.
"""

from __future__ import annotations

import math

import torch

from ls_llm.objectives.engine import TokenStats

# Statistic name (a TokenStats key) -> logged name of its per-token mean. `n_tokens` is the divisor.
# Distillation reports the mixed loss as `loss` (Trainer logs it already) and the token objective as `objective`.
LOGGED_NAMES: dict[str, str] = {
    "loss": "objective_loss",
    "objective": "objective_loss",
    "ce": "ce_loss",
    "correct": "mean_token_accuracy",
    "entropy": "entropy",
    "p_y": "mean_p_y",
    "divergence": "distill_divergence",
    "weight": "trace_weight_token_share",  # Σ w / trained tokens: the weighted share of tokens (trainers/weights.py)
}
# Summed over the window and logged as counts, not averaged.
COUNTS = ("zero_weight_traces",)


class StatSums:
    """Named statistic sums accumulated over a logging window. Each micro-batch's `TokenStats` travels as one
    float32 vector in a fixed name order (one collective per micro-batch instead of one per statistic)."""

    def __init__(self) -> None:
        self.names: tuple[str, ...] | None = None
        self.sums: torch.Tensor | None = None

    def add(self, stats, *, reduce=None) -> None:
        names = tuple(stats)
        if self.names is not None and names != self.names:
            raise ValueError(f"statistics changed names within a logging window: {self.names} -> {names}")
        vec = torch.stack([torch.as_tensor(stats[k], dtype=torch.float32).detach().reshape(()) for k in names])
        vec = reduce(vec) if reduce is not None else vec
        self.names, self.sums = names, vec if self.sums is None else self.sums + vec

    def values(self) -> dict[str, float]:
        return {} if self.sums is None else dict(zip(self.names, self.sums.float().cpu().tolist(), strict=True))

    def pop_means(self) -> dict[str, float]:
        """Per-token means under their logged names, and reset; {} when no token was seen. A per-segment
        statistic ``ce/answer`` is averaged over ``n_tokens/answer`` and logged as ``ce_loss/answer``."""
        values = self.values()
        self.names = self.sums = None
        n = values.get("n_tokens", 0.0)
        if n <= 0:
            return {}
        skip = {"n_tokens", "loss"} if "objective" in values else {"n_tokens"}
        out = {}
        for k, v in values.items():
            if k in skip:
                continue
            if k.startswith("n_tokens/") or k in COUNTS:  # per-segment token counts etc.: counts over the window
                out[k] = v
                continue
            count = values[TokenStats.divisor(k)]
            if k in ("loss", "objective") and "weight" in values:
                count = values["weight"]  # a weighted run's loss is Σ w·ℓ / Σ w, as trained
            if count <= 0:  # no token of this segment in the window: no mean to log (not a 0)
                continue
            stat, sep, group = k.partition("/")
            out[LOGGED_NAMES.get(stat, stat) + sep + group] = v / count
        return out


def loss_curve(log_history: list[dict], *, width: int = 40, rows: int = 12) -> str:
    """A short text table of the logged training curve (at most `rows` evenly spaced logging steps)."""
    logs = [r for r in log_history if "loss" in r and "step" in r]
    if not logs:
        return "(no training steps were logged)"
    k = min(rows, len(logs))
    picks = sorted({round(i * (len(logs) - 1) / max(k - 1, 1)) for i in range(k)})
    # A non-finite loss prints as nan/inf with no bar (never as 0), and does not set the bars' scale.
    top = max((r["loss"] for r in logs if math.isfinite(r["loss"])), default=0.0) or 1.0
    lines = [f"{'step':>6}  {'loss':>8}  {'ce':>8}  {'acc':>6}"]
    for i in picks:
        r = logs[i]
        bar = "#" * max(1, round(width * r["loss"] / top)) if math.isfinite(r["loss"]) else "(non-finite)"
        lines.append(f"{r['step']:>6}  {r['loss']:>8.4f}  {r.get('ce_loss', float('nan')):>8.4f}  "
                     f"{r.get('mean_token_accuracy', float('nan')):>6.3f}  {bar}")
    if len(picks) < len(logs):
        lines.append(f"({len(picks)} of {len(logs)} logged steps shown, evenly spaced, first and last included)")
    return "\n".join(lines)
