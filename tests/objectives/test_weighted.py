"""Per-token weights (objectives/weighted.py) against a float64 materialized reference: Σ w·ℓ / Σ w."""

import pytest
import torch

from ls_llm.objectives import build_objective
from ls_llm.objectives.base import ObjectiveKernel
from ls_llm.objectives.engine import LogitsSpec, head_loss, logits_loss
from ls_llm.objectives.reference import reference_token_losses
from ls_llm.objectives.routing import routed_kernel
from ls_llm.objectives.weighted import WeightedKernel

SPECS = [("ce", {}), ("label_smoothing", {"alpha": 0.3}), ("gce", {"q": 0.7})]


def _problem(seed=0, n=(3, 11), hidden=8, vocab=29):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(*n, hidden, generator=g, dtype=torch.float64).requires_grad_()
    w = (torch.randn(vocab, hidden, generator=g, dtype=torch.float64) * 0.5).requires_grad_()
    b = (torch.randn(vocab, generator=g, dtype=torch.float64) * 0.1).requires_grad_()
    y = torch.randint(0, vocab, n, generator=g)
    if n[1] > 1:
        y[0, 1] = y[-1, -1] = -100
    weights = torch.tensor([0.0, 2.5, 0.3], dtype=torch.float64)[:n[0], None].expand(n).contiguous()
    route = torch.randint(0, len(SPECS), n, generator=g)
    return h, w, b, y, weights, route


def _reference(h, w, b, y, weights, route, softcap=None):
    h64, w64, b64 = (t.detach().clone().requires_grad_() for t in (h, w, b))
    logits = (h64 @ w64.T + b64).reshape(-1, w.shape[0])
    yf, rf, wf = y.reshape(-1), route.reshape(-1), weights.reshape(-1)
    total = logits.new_zeros(())
    for k, (name, params) in enumerate(SPECS):
        labels = torch.where(rf == k, yf, torch.full_like(yf, -100))
        losses = reference_token_losses(name, logits, labels, softcap=softcap, **params)
        total = total + (losses * wf[labels != -100]).sum()
    loss = total / wf[yf != -100].sum()
    return loss, torch.autograd.grad(loss, [h64, w64, b64])


@pytest.mark.parametrize("chunk", [1, 4, 64])
@pytest.mark.parametrize("softcap", [None, 2.5])
def test_weighted_routed_matches_reference(chunk, softcap):
    h, w, b, y, weights, route = _problem()
    kernel = WeightedKernel(routed_kernel([build_objective(n, **p) for n, p in SPECS], route), weights)
    denom = weights.reshape(-1)[y.reshape(-1) != -100].sum()
    loss, stats = head_loss(kernel, h, y, LogitsSpec(w, b, softcap=softcap), num_items_in_batch=denom,
                            chunk_size=chunk, return_stats=True)
    ref_loss, ref_grads = _reference(h, w, b, y, weights, route, softcap)
    torch.testing.assert_close(loss, ref_loss, atol=1e-10, rtol=1e-10)
    for got, want in zip(torch.autograd.grad(loss, [h, w, b]), ref_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    assert float(stats["weight"]) == pytest.approx(float(denom))


def test_weighted_from_logits_matches_reference():
    h, w, b, y, weights, route = _problem(seed=4)
    logits = (h.detach() @ w.detach().T + b.detach()).requires_grad_()
    kernel = WeightedKernel(routed_kernel([build_objective(n, **p) for n, p in SPECS], route), weights)
    denom = weights.reshape(-1)[y.reshape(-1) != -100].sum()
    loss = logits_loss(kernel, logits, y, num_items_in_batch=denom, chunk_size=5)
    ref_logits = logits.detach().clone().requires_grad_()
    yf, rf, wf = y.reshape(-1), route.reshape(-1), weights.reshape(-1)
    total = 0.0
    for k, (name, params) in enumerate(SPECS):
        labels = torch.where(rf == k, yf, torch.full_like(yf, -100))
        total = total + (reference_token_losses(name, ref_logits, labels, **params) * wf[labels != -100]).sum()
    ref = total / denom
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(torch.autograd.grad(loss, logits)[0], torch.autograd.grad(ref, ref_logits)[0])


def test_unit_weights_are_bitwise_unweighted():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(2, 9, 16, generator=g).requires_grad_()
    w = torch.randn(40, 16, generator=g).requires_grad_()
    y = torch.randint(0, 40, (2, 9), generator=g)
    y[1, :3] = -100
    obj = build_objective("label_smoothing", alpha=0.2)
    plain = head_loss(ObjectiveKernel(obj), h, y, LogitsSpec(w), num_items_in_batch=torch.tensor(15), chunk_size=4)
    ones = WeightedKernel(ObjectiveKernel(obj), torch.ones(2, 9))
    weighted = head_loss(ones, h, y, LogitsSpec(w), num_items_in_batch=torch.tensor(15.0), chunk_size=4)
    assert torch.equal(plain, weighted)
    for a, b in zip(torch.autograd.grad(plain, [h, w]), torch.autograd.grad(weighted, [h, w]), strict=True):
        assert torch.equal(a, b)


def test_small_weighted_count_is_not_clamped_to_one():
    """Σ w below 1 is a real denominator: the weighted mean of one token at w = 0.25 is that token's loss."""
    h, w, _, y, _, _ = _problem(seed=2, n=(1, 1))
    y[0, 0] = 3
    kernel = WeightedKernel(ObjectiveKernel(build_objective("ce")), torch.full((1, 1), 0.25, dtype=torch.float64))
    loss = head_loss(kernel, h, y, LogitsSpec(w), num_items_in_batch=torch.tensor(0.25, dtype=torch.float64))
    ref = reference_token_losses("ce", h.detach() @ w.detach().T, y).sum()
    torch.testing.assert_close(loss, ref)


def test_weight_shape_mismatch_is_refused():
    h, w, _, y, _, _ = _problem()
    with pytest.raises(ValueError, match="token weights cover"):
        head_loss(WeightedKernel(ObjectiveKernel(build_objective("ce")), torch.ones(4)), h, y, LogitsSpec(w))
