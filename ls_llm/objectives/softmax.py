"""Softmax statistics of one chunk of logits, computed in place in float32.

Everything here works on a (rows, V) float32 buffer that the engine owns and reuses across chunks:
the buffer is overwritten, never reallocated. On CPU each pass over a chunk costs a few ms, so the
passes are counted: amax, subtract, exp, sum — and `logsumexp` is avoided on purpose (it allocates
and is ~15x slower than these passes on the CPUs we measured).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ChunkSoftmax:
    """fp32 statistics of one chunk. ``e`` holds exp(z - m) (unnormalized: p = e * inv_s)."""

    e: Tensor  # (c, V) unnormalized probabilities; objectives overwrite it with their gradient
    inv_s: Tensor  # (c,) 1 / sum_k exp(z_k - m)
    m: Tensor  # (c,) max logit
    lse: Tensor  # (c,) logsumexp(z)
    z_y: Tensor  # (c,) logit of the target
    logp: Tensor | None = None  # (c, V) log p, only when an objective or a statistic needs it
    entropy: Tensor | None = None  # (c,) H(p), only when asked

    @property
    def logp_y(self) -> Tensor:
        return self.z_y - self.lse

    @property
    def p_y(self) -> Tensor:
        return torch.exp(self.logp_y)

    @property
    def ce(self) -> Tensor:
        return self.lse - self.z_y

    def rows(self) -> Tensor:
        return torch.arange(self.e.shape[0], device=self.e.device)


def chunk_softmax(z: Tensor, y: Tensor, *, work: Tensor | None, need_logp: bool) -> ChunkSoftmax:
    """Softmax statistics of logits ``z`` (c, V) for targets ``y`` (c,), destroying ``z``.

    With ``need_logp`` (entropy or an objective that uses log p), ``work`` receives exp(z - m) and
    ``z`` is turned into log p; H(p) = log s - sum_k e_k (z_k - m) / s comes from one batched dot.
    Without it, exp(z - m) is formed in ``z`` itself and ``work`` is untouched.
    """
    z_y = z.gather(1, y[:, None]).squeeze(1)
    m = z.amax(dim=1)
    z.sub_(m[:, None])
    if need_logp:
        if work is None:
            raise ValueError("chunk_softmax: need_logp=True needs a work buffer")
        e = torch.exp(z, out=work)
        s = e.sum(dim=1)
        dot = torch.bmm(e[:, None, :], z[:, :, None]).view(-1)
        log_s = torch.log(s)
        z.sub_(log_s[:, None])
        return ChunkSoftmax(e=e, inv_s=1.0 / s, m=m, lse=m + log_s, z_y=z_y, logp=z, entropy=log_s - dot / s)
    e = z.exp_()
    s = e.sum(dim=1)
    return ChunkSoftmax(e=e, inv_s=1.0 / s, m=m, lse=m + torch.log(s), z_y=z_y)


def write_grad_(
    sm: ChunkSoftmax,
    y: Tensor,
    *,
    p_coef: Tensor,
    y_coef: Tensor | float | None = None,
    extra_index: Tensor | None = None,
    extra_coef: Tensor | float | None = None,
    prior: Tensor | None = None,
    prior_coef: Tensor | float | None = None,
) -> Tensor:
    """Overwrite ``sm.e`` with ``p_coef * p - y_coef * onehot(y) - extra_coef * onehot(extra_index)
    - prior_coef * prior`` and return it. ``prior`` None with a ``prior_coef`` means uniform (1/V).

    Almost every token objective's gradient w.r.t. the logits has this form; see losses.py.
    """
    g = sm.e
    g.mul_((p_coef * sm.inv_s)[:, None])
    rows = sm.rows()
    if y_coef is not None:
        g.index_put_((rows, y), _neg(y_coef, g), accumulate=True)
    if extra_index is not None:
        g.index_put_((rows, extra_index), _neg(extra_coef, g), accumulate=True)
    if prior_coef is not None:
        coef = torch.as_tensor(prior_coef, dtype=g.dtype, device=g.device).expand(g.shape[0])
        if prior is None:
            g.sub_((coef / g.shape[1])[:, None])
        else:
            g.addr_(coef, prior, alpha=-1.0)
    return g


def _neg(coef: Tensor | float, like: Tensor) -> Tensor:
    return -torch.as_tensor(coef, dtype=like.dtype, device=like.device).expand(like.shape[0])
