"""Naive materialized objectives: full logits, plain autograd, formulas exactly as written in the
README's objective table. This is the obvious reference the tests compare the fused engine against,
and the "materialized path" of the benchmark (what a user would write without the engine).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ls_llm.registry import Registry

# name -> f(logp (n, V), y (n,), params) -> per-token loss (n,). logp = log_softmax(z).
_REF = Registry("objective")


def _pick(logp: Tensor, y: Tensor) -> Tensor:
    return logp.gather(1, y[:, None]).squeeze(1)


@_REF.register("ce")
def _ce(logp, y):
    return -_pick(logp, y)


@_REF.register("label_smoothing")
def _ls(logp, y, alpha=0.1, prior="uniform"):
    vocab = logp.shape[1]
    pi = torch.full((vocab,), 1.0 / vocab, dtype=logp.dtype) if isinstance(prior, str) else torch.as_tensor(prior)
    return (1 - alpha) * -_pick(logp, y) + alpha * (-(logp * pi.to(logp))).sum(1)


def _pi(logp, prior):
    vocab = logp.shape[1]
    return (torch.full((vocab,), 1.0 / vocab, dtype=logp.dtype) if isinstance(prior, str)
            else torch.as_tensor(prior)).to(logp)


@_REF.register("backward_correction")
def _bc(logp, y, noise_rate=0.1, prior="uniform"):
    # T⁻¹ℓ for T = (1−ε)I + ε·1πᵀ, written out: ℓ_y/(1−ε) − ε/(1−ε)·Σ_k π_k ℓ_k.
    return (-_pick(logp, y) - noise_rate * (-(logp * _pi(logp, prior))).sum(1)) / (1 - noise_rate)


@_REF.register("forward_correction")
def _fc(logp, y, noise_rate=0.1, prior="uniform"):
    return -torch.log((1 - noise_rate) * _pick(logp, y).exp() + noise_rate * _pi(logp, prior)[y])


@_REF.register("gce")
def _gce(logp, y, q=0.7):
    return (1 - _pick(logp, y).exp() ** q) / q


@_REF.register("sce")
def _sce(logp, y, alpha=0.1, beta=1.0, log_zero=-4.0):
    return alpha * -_pick(logp, y) - beta * log_zero * (1 - _pick(logp, y).exp())


@_REF.register("bootstrap_soft")
def _bsoft(logp, y, beta=0.95):
    entropy = -(logp.exp() * logp).sum(1)
    return beta * -_pick(logp, y) + (1 - beta) * entropy


@_REF.register("bootstrap_hard")
def _bhard(logp, y, beta=0.8):
    m = logp.detach().argmax(1)
    return beta * -_pick(logp, y) + (1 - beta) * -_pick(logp, m)


@_REF.register("dft")
def _dft(logp, y):
    return _pick(logp, y).exp().detach() * -_pick(logp, y)


@_REF.register("focal")
def _focal(logp, y, gamma=2.0):
    return (1 - _pick(logp, y).exp()) ** gamma * -_pick(logp, y)


def reference_token_losses(name: str, logits: Tensor, labels: Tensor, *, ignore_index: int = -100,
                           z_loss: float = 0.0, softcap: float | None = None, **params) -> Tensor:
    """Per-token losses (n_valid,) from full logits (..., V), differentiable by plain autograd."""
    z = logits.reshape(-1, logits.shape[-1])
    y = labels.reshape(-1)
    keep = y != ignore_index
    z, y = z[keep], y[keep]
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    logp = torch.log_softmax(z, dim=-1)
    loss = _REF.lookup(name)(logp, y, **params)
    if z_loss:
        loss = loss + z_loss * torch.logsumexp(z, dim=-1) ** 2
    return loss


def reference_loss(name: str, logits: Tensor, labels: Tensor, *, num_items_in_batch=None, **kwargs) -> Tensor:
    """Sum of per-token losses / num_items_in_batch (or the number of non-ignored tokens)."""
    losses = reference_token_losses(name, logits, labels, **kwargs)
    denom = num_items_in_batch if num_items_in_batch is not None else max(losses.numel(), 1)
    return losses.sum() / max(float(denom), 1.0)


def reference_linear_loss(name: str, hidden: Tensor, weight: Tensor, labels: Tensor, bias: Tensor | None = None,
                          **kwargs) -> Tensor:
    """The materialized path: logits = hidden @ weight.T (+ bias), then the objective on the logits."""
    logits = hidden @ weight.T
    if bias is not None:
        logits = logits + bias
    return reference_loss(name, logits, labels, **kwargs)
