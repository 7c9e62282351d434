"""TEMPORARY stand-in for ls_llm.objectives (materialising, test-only). Removed once the engine lands."""

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class TokenStats:
    n_tokens: torch.Tensor
    ce_sum: torch.Tensor
    loss_sum: torch.Tensor
    correct_sum: torch.Tensor
    entropy_sum: torch.Tensor
    p_y_sum: torch.Tensor


def _ce(logp, y, p):
    return -logp.gather(-1, y[:, None])[:, 0]


def _ls(alpha):
    def f(logp, y, p):
        return (1 - alpha) * _ce(logp, y, p) - alpha * logp.mean(-1)
    return f


def _gce(q):
    def f(logp, y, p):
        return (1 - p.gather(-1, y[:, None])[:, 0] ** q) / q
    return f


class _Obj(nn.Module):
    PARAMS = {}

    def __init__(self, fn, z_loss=0.0, ignore_index=-100, softcap=None, chunk_size=None):
        super().__init__()
        self.fn, self.z_loss, self.ignore_index, self.softcap = fn, z_loss, ignore_index, softcap

    def _per_tok(self, hidden, weight, labels, bias):
        h = hidden.reshape(-1, hidden.shape[-1]).float()
        y = labels.reshape(-1)
        m = y != self.ignore_index
        logits = h[m] @ weight.float().T
        if bias is not None:
            logits = logits + bias
        if self.softcap:
            logits = self.softcap * torch.tanh(logits / self.softcap)
        logp = logits.log_softmax(-1)
        p = logp.exp()
        loss = self.fn(logp, y[m], p) + self.z_loss * logits.logsumexp(-1) ** 2
        return loss, logp, p, y[m], m

    def forward(self, hidden, weight, labels, bias=None, num_items_in_batch=None, return_stats=False):
        loss, logp, p, y, m = self._per_tok(hidden, weight, labels, bias)
        denom = m.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        out = loss.sum() / denom + 0.0 * weight.sum() + 0.0 * hidden.sum()
        if not return_stats:
            return out
        with torch.no_grad():
            st = TokenStats(m.sum().float(), _ce(logp, y, p).sum(), loss.sum(), (logp.argmax(-1) == y).sum().float(),
                            -(p * logp).sum(-1).sum(), p.gather(-1, y[:, None]).sum())
        return out, st

    def token_losses(self, hidden, weight, labels, bias=None):
        with torch.no_grad():
            loss, _, _, _, m = self._per_tok(hidden, weight, labels, bias)
            out = torch.zeros(labels.numel(), dtype=torch.float32)
            out[m.reshape(-1)] = loss.float()
            return out.view(labels.shape)


class _Reg:
    def __init__(self, params):
        self.PARAMS = params


OBJECTIVES = {"ce": _Reg({}), "label_smoothing": _Reg({"alpha": 0.1, "prior": "uniform"}), "gce": _Reg({"q": 0.7})}


def build_objective(name, **kw):
    if name not in OBJECTIVES:
        raise ValueError(f"objective={name!r} unknown")
    common = {k: kw.pop(k) for k in list(kw) if k in ("z_loss", "ignore_index", "softcap", "chunk_size")}
    for k in kw:
        if k not in OBJECTIVES[name].PARAMS:
            raise ValueError(f"objective {name!r} takes no parameter {k!r}")
    if name == "ce":
        return _Obj(_ce, **common)
    if name == "gce":
        return _Obj(_gce(kw.get("q", 0.7)), **common)
    return _Obj(_ls(kw.get("alpha", 0.1)), **common)
