"""Routed objectives (objectives/routing.py) against a float64 materialized reference with per-token objectives."""

import pytest
import torch

from ls_llm.objectives import build_objective
from ls_llm.objectives.base import ObjectiveKernel
from ls_llm.objectives.engine import LogitsSpec, head_loss, logits_loss
from ls_llm.objectives.reference import reference_token_losses
from ls_llm.objectives.routing import routed_kernel, routed_token_losses

SPECS = [("ce", {}), ("label_smoothing", {"alpha": 0.3}), ("bootstrap_soft", {"beta": 0.6}), ("focal", {"gamma": 1.5})]


def _problem(*, n=(3, 11), hidden=8, vocab=29, seed=0, n_routes=4):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(*n, hidden, generator=g, dtype=torch.float64).requires_grad_()
    w = (torch.randn(vocab, hidden, generator=g, dtype=torch.float64) * 0.5).requires_grad_()
    b = (torch.randn(vocab, generator=g, dtype=torch.float64) * 0.1).requires_grad_()
    y = torch.randint(0, vocab, n, generator=g)
    y[0, 1] = y[-1, -1] = y[1, 2] = -100
    route = torch.randint(0, n_routes, n, generator=g)
    segment = torch.randint(0, 2, n, generator=g)
    return h, w, b, y, route, segment


def _objectives(specs=SPECS, **common):
    return [build_objective(name, **params, **common) for name, params in specs]


def _grads(loss, *xs):
    return torch.autograd.grad(loss, list(xs))


def _reference(h, w, b, y, route, specs=SPECS, *, softcap=None, z_loss=0.0):
    """Σ_i loss_{route(i)}(token i) / n_valid, each token through its own materialized objective."""
    h64, w64, b64 = (t.detach().clone().requires_grad_() for t in (h, w, b))
    logits = (h64 @ w64.T + b64).reshape(-1, w.shape[0])
    yf, rf = y.reshape(-1), route.reshape(-1)
    total = logits.new_zeros(())
    for k, (name, params) in enumerate(specs):
        labels = torch.where(rf == k, yf, torch.full_like(yf, -100))
        total = total + reference_token_losses(name, logits, labels, softcap=softcap, z_loss=z_loss, **params).sum()
    loss = total / int((yf != -100).sum())
    return loss, _grads(loss, h64, w64, b64)


@pytest.mark.parametrize("chunk", [1, 4, 7, 64])
@pytest.mark.parametrize("extra", [{}, {"softcap": 2.5}, {"z_loss": 1e-2}])
def test_routed_matches_per_token_reference(chunk, extra):
    h, w, b, y, route, _ = _problem()
    kernel = routed_kernel(_objectives(z_loss=extra.get("z_loss", 0.0)), route)
    spec = LogitsSpec(w, b, softcap=extra.get("softcap"))
    loss = head_loss(kernel, h, y, spec, chunk_size=chunk)
    ref_loss, ref = _reference(h, w, b, y, route, **extra)
    torch.testing.assert_close(loss, ref_loss, atol=1e-10, rtol=1e-10)
    for got, want in zip(_grads(loss, h, w, b), ref):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


def test_routed_from_logits_and_token_losses():
    h, w, b, y, route, _ = _problem(seed=3)
    kernel = routed_kernel(_objectives(), route)
    logits = (h.detach() @ w.detach().T + b.detach()).requires_grad_()
    loss = logits_loss(kernel, logits, y, chunk_size=5)
    ref_logits = logits.detach().clone().requires_grad_()
    yf, rf = y.reshape(-1), route.reshape(-1)
    per_token = torch.zeros(yf.shape, dtype=torch.float64)
    total = 0.0
    for k, (name, params) in enumerate(SPECS):
        labels = torch.where(rf == k, yf, torch.full_like(yf, -100))
        losses = reference_token_losses(name, ref_logits, labels, **params)
        per_token[labels != -100] = losses.detach()
        total = total + losses.sum()
    ref_loss = total / int((yf != -100).sum())
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(_grads(loss, logits)[0], _grads(ref_loss, ref_logits)[0])
    got = routed_token_losses(kernel, h.detach(), y, LogitsSpec(w.detach(), b.detach()), chunk_size=3)
    torch.testing.assert_close(got.reshape(-1), per_token)


@pytest.mark.parametrize("name,params", SPECS)
def test_one_objective_everywhere_is_the_unrouted_loss_exactly(name, params):
    h, w, b, y, route, segment = _problem(seed=1)
    objs = _objectives([(name, params)] * 3, chunk_size=4)  # three equal objectives: merged into one route
    kernel = routed_kernel(objs, route % 3, segment, ("reasoning", "answer"))
    spec = LogitsSpec(w, b)
    loss, stats = head_loss(kernel, h, y, spec, chunk_size=4, return_stats=True)
    plain, plain_stats = head_loss(ObjectiveKernel(objs[0]), h, y, spec, chunk_size=4, return_stats=True)
    assert torch.equal(loss, plain)
    for got, want in zip(_grads(loss, h, w, b), _grads(plain, h, w, b)):
        assert torch.equal(got, want)
    for key, value in plain_stats.items():
        assert torch.equal(stats[key], value), key


def test_segment_statistics():
    h, w, b, y, route, segment = _problem(seed=2)
    kernel = routed_kernel(_objectives(), route, segment, ("reasoning", "answer"))
    _, stats = head_loss(kernel, h, y, LogitsSpec(w, b), chunk_size=5, return_stats=True)
    logits = (h @ w.T + b).detach().reshape(-1, w.shape[0])
    yf, sf = y.reshape(-1), segment.reshape(-1)
    for j, name in enumerate(("reasoning", "answer")):
        keep = (yf != -100) & (sf == j)
        ce = -torch.log_softmax(logits[keep], -1).gather(1, yf[keep][:, None]).sum()
        correct = (logits[keep].argmax(-1) == yf[keep]).sum()
        assert float(stats[f"n_tokens/{name}"]) == int(keep.sum())
        torch.testing.assert_close(float(stats[f"ce/{name}"]), float(ce))
        assert float(stats[f"correct/{name}"]) == float(correct)
    means = stats.means()
    assert means["ce/answer"] == pytest.approx(float(stats["ce/answer"]) / float(stats["n_tokens/answer"]))
    assert means["token_accuracy/reasoning"] <= 1.0 and means["n_tokens/answer"] == float(stats["n_tokens/answer"])


def test_all_ignored_and_bad_routes():
    h, w, b, y, route, segment = _problem()
    kernel = routed_kernel(_objectives(), route, segment, ("reasoning", "answer"))
    loss, stats = head_loss(kernel, h, torch.full_like(y, -100), LogitsSpec(w, b), return_stats=True)
    assert float(loss.detach()) == 0.0 and float(stats["n_tokens/answer"]) == 0.0
    assert all(g.abs().max() == 0 for g in _grads(loss, h, w, b))
    with pytest.raises(ValueError, match="route ids must be in"):
        head_loss(routed_kernel(_objectives(), route + 10), h, y, LogitsSpec(w, b))
    with pytest.raises(ValueError, match="positions"):
        head_loss(routed_kernel(_objectives(), route[:1]), h, y, LogitsSpec(w, b))


def test_gradcheck_float64():
    h, w, b, y, route, _ = _problem(n=(2, 4), hidden=3, vocab=6)
    objs = _objectives([("ce", {}), ("label_smoothing", {"alpha": 0.2}), ("gce", {"q": 0.5}), ("sce", {})])
    kernel = routed_kernel(objs, route)
    assert torch.autograd.gradcheck(lambda h_, w_, b_: head_loss(kernel, h_, y, LogitsSpec(w_, b_), chunk_size=3),
                                    (h, w, b))
