"""Training metrics from the objective's `TokenStats`: token-weighted over a whole logging window.

Per micro-batch the trainer adds the detached sums (over every process) into one small vector; at each
logging step the vector becomes means. Summing first and dividing once makes the logged numbers independent
of how tokens were split into micro-batches, processes and accumulation steps.
"""

from __future__ import annotations

import torch

# TokenStats field -> logged name of its per-token mean. `n_tokens` is the divisor.
STAT_FIELDS: tuple[str, ...] = ("n_tokens", "loss_sum", "ce_sum", "correct_sum", "entropy_sum", "p_y_sum")
LOGGED_NAMES: dict[str, str] = {
    "loss_sum": "objective_loss",
    "ce_sum": "ce_loss",
    "correct_sum": "mean_token_accuracy",
    "entropy_sum": "entropy",
    "p_y_sum": "mean_p_y",
}


def pack_stats(stats) -> torch.Tensor:
    """A `TokenStats` as one float32 vector (one collective per micro-batch instead of six)."""
    return torch.stack([torch.as_tensor(getattr(stats, f), dtype=torch.float32).detach().reshape(()) for f in STAT_FIELDS])


def empty_stats(device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.zeros(len(STAT_FIELDS), dtype=torch.float32, device=device)


def summarize(sums: torch.Tensor) -> dict[str, float]:
    """Per-token means of an accumulated stats vector; {} when no token was seen."""
    values = dict(zip(STAT_FIELDS, sums.tolist(), strict=True))
    n = values["n_tokens"]
    if n <= 0:
        return {}
    return {name: values[field] / n for field, name in LOGGED_NAMES.items()}


def loss_curve(log_history: list[dict], *, width: int = 40, rows: int = 12) -> str:
    """A short text table of the logged training curve (at most `rows` evenly spaced logging steps)."""
    logs = [r for r in log_history if "loss" in r and "step" in r]
    if not logs:
        return "(no training steps were logged)"
    k = min(rows, len(logs))
    picks = sorted({round(i * (len(logs) - 1) / max(k - 1, 1)) for i in range(k)})
    top = max(r["loss"] for r in logs) or 1.0
    lines = [f"{'step':>6}  {'loss':>8}  {'ce':>8}  {'acc':>6}"]
    for i in picks:
        r = logs[i]
        bar = "#" * max(1, round(width * r["loss"] / top))
        lines.append(f"{r['step']:>6}  {r['loss']:>8.4f}  {r.get('ce_loss', float('nan')):>8.4f}  "
                     f"{r.get('mean_token_accuracy', float('nan')):>6.3f}  {bar}")
    return "\n".join(lines)
