"""The fused engine against the naive materialized float64 reference, for every objective."""

import pytest
import torch

from ls_llm.objectives import OBJECTIVES, build_objective
from ls_llm.objectives.reference import reference_linear_loss, reference_loss, reference_token_losses

# Non-default parameters, so a wrong default cannot hide a wrong formula.
CASES = {
    "ce": {},
    "label_smoothing": {"alpha": 0.3},
    "backward_correction": {"noise_rate": 0.4},
    "forward_correction": {"noise_rate": 0.3},
    "gce": {"q": 0.5},
    "sce": {"alpha": 0.2, "beta": 0.7, "log_zero": -3.0},
    "bootstrap_soft": {"beta": 0.6},
    "bootstrap_hard": {"beta": 0.7},
    "dft": {},
    "focal": {"gamma": 1.5},
}
EXTRA = {  # variants of the engine settings that every objective must also get right
    "plain": {},
    "z_loss": {"z_loss": 1e-2},
    "softcap": {"softcap": 3.0},
}


def test_every_objective_has_a_case():
    assert set(CASES) == set(OBJECTIVES)


def _problem(dtype, *, n=(3, 7), hidden=16, vocab=37, bias=True, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    h = (torch.randn(*n, hidden, generator=g, dtype=torch.float64) * scale).to(dtype).requires_grad_()
    w = (torch.randn(vocab, hidden, generator=g, dtype=torch.float64) * 0.5).to(dtype).requires_grad_()
    b = (torch.randn(vocab, generator=g, dtype=torch.float64) * 0.1).to(dtype).requires_grad_() if bias else None
    y = torch.randint(0, vocab, n, generator=g)
    y[0, 1] = -100
    y[-1, -1] = -100
    return h, w, b, y


def _grads(loss, *tensors):
    return torch.autograd.grad(loss, [t for t in tensors if t is not None])


def _truth(name, params, h, w, b, y, **kw):
    """Reference loss and gradients in float64 from the given inputs."""
    h64, w64 = h.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    b64 = None if b is None else b.detach().double().requires_grad_()
    loss = reference_linear_loss(name, h64, w64, y, b64, **params, **kw)
    return loss, _grads(loss, h64, w64, b64)


@pytest.mark.parametrize("extra", list(EXTRA))
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_fused_matches_reference(name, extra, dtype, tol):
    h, w, b, y = _problem(dtype)
    obj = build_objective(name, chunk_size=4, **CASES[name], **EXTRA[extra])  # 19 tokens: chunks 4,4,4,4,3
    loss = obj(h, w, y, b)
    got = _grads(loss, h, w, b)
    ref_loss, ref = _truth(name, CASES[name], h, w, b, y, **EXTRA[extra])
    torch.testing.assert_close(loss.double(), ref_loss, atol=tol, rtol=tol)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g.double(), r, atol=tol, rtol=tol)


@pytest.mark.parametrize("name", list(CASES))
def test_from_logits_matches_reference(name):
    h, w, b, y = _problem(torch.float64)
    logits = (h.detach() @ w.detach().T).requires_grad_()
    obj = build_objective(name, chunk_size=5, **CASES[name])
    loss = obj.from_logits(logits, y, num_items_in_batch=23)
    (got,) = _grads(loss, logits)
    ref_logits = logits.detach().clone().requires_grad_()
    ref_loss = reference_loss(name, ref_logits, y, num_items_in_batch=23, **CASES[name])
    (ref,) = _grads(ref_loss, ref_logits)
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(got, ref)


@pytest.mark.parametrize("name", [n for n in CASES if n != "dft"])
def test_gradcheck_float64(name):
    h, w, b, y = _problem(torch.float64, n=(2, 3), hidden=4, vocab=7)
    obj = build_objective(name, chunk_size=2, z_loss=1e-3, **CASES[name])
    assert torch.autograd.gradcheck(lambda h_, w_, b_: obj(h_, w_, y, b_), (h, w, b))
    logits = (h.detach() @ w.detach().T).requires_grad_()
    assert torch.autograd.gradcheck(lambda z: obj.from_logits(z, y), (logits,))


def test_dft_gradient_is_the_frozen_weight_derivative():
    """dft's value is sg(p_y)·ℓ_y, so its gradient is not d(value)/dx and gradcheck does not apply.
    At x0 it must equal the derivative of F(x) = Σ p_y(x0)·ℓ_y(x) / n, checked by central differences."""
    h, w, b, y = _problem(torch.float64, n=(2, 3), hidden=4, vocab=7)
    obj = build_objective("dft", chunk_size=2)
    got = _grads(obj(h, w, y, b), h, w, b)
    keep = y.reshape(-1) != -100
    with torch.no_grad():
        w0 = torch.log_softmax(h @ w.T + b, -1).reshape(-1, 7)[keep].gather(1, y.reshape(-1)[keep][:, None]).exp()

    def frozen(h_, w_, b_):
        logp = torch.log_softmax(h_ @ w_.T + b_, -1).reshape(-1, 7)[keep]
        return -(w0 * logp.gather(1, y.reshape(-1)[keep][:, None])).sum() / int(keep.sum())

    eps = 1e-6
    for i, x in enumerate((h, w, b)):
        flat = x.detach().reshape(-1)
        for j in range(0, flat.numel(), 3):
            args = [t.detach().clone() for t in (h, w, b)]
            args[i].view(-1)[j] += eps
            up = frozen(*args)
            args[i].view(-1)[j] -= 2 * eps
            down = frozen(*args)
            torch.testing.assert_close(got[i].reshape(-1)[j], (up - down) / (2 * eps), atol=1e-8, rtol=1e-6)


def test_negative_smoothing_and_vector_prior():
    h, w, b, y = _problem(torch.float64)
    prior = torch.softmax(torch.randn(37, dtype=torch.float64), 0)
    for params in ({"alpha": -0.5}, {"alpha": 0.2, "prior": prior}, {"alpha": -0.3, "prior": prior.tolist()}):
        obj = build_objective("label_smoothing", chunk_size=3, **params)
        loss = obj(h, w, y, b)
        ref_loss, ref = _truth("label_smoothing", params, h, w, b, y)
        torch.testing.assert_close(loss, ref_loss)
        for g, r in zip(_grads(loss, h, w, b), ref):
            torch.testing.assert_close(g, r)


def test_token_losses_and_stats_match_reference():
    h, w, b, y = _problem(torch.float64, bias=False)
    obj = build_objective("focal", gamma=2.0, chunk_size=6)
    per_tok = obj.token_losses(h, w, y)
    assert per_tok.shape == y.shape and not per_tok.requires_grad
    logits = h.detach() @ w.detach().T
    ref = reference_token_losses("focal", logits, y, gamma=2.0)
    torch.testing.assert_close(per_tok[y != -100], ref)
    assert (per_tok[y == -100] == 0).all()

    loss, stats = obj(h, w, y, return_stats=True)
    keep = y != -100
    logp = torch.log_softmax(logits[keep], -1)
    yk = y[keep]
    n = int(keep.sum())
    torch.testing.assert_close(float(stats["n_tokens"]), float(n))
    torch.testing.assert_close(float(stats["loss"]), float(ref.sum()), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(float(stats["ce"]), float(-logp.gather(1, yk[:, None]).sum()), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(float(stats["entropy"]), float(-(logp.exp() * logp).sum()), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(float(stats["p_y"]), float(logp.gather(1, yk[:, None]).exp().sum()), rtol=1e-6, atol=1e-6)
    assert float(stats["correct"]) == float((logits[keep].argmax(-1) == yk).sum())
    assert set(stats.means()) == {"loss", "ce", "token_accuracy", "entropy", "p_y", "n_tokens"}
