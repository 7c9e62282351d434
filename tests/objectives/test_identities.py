"""Identities between objectives, edge cases, precision, and input validation."""

import pytest
import torch
import torch.nn.functional as F

from ls_llm.objectives import OBJECTIVES, build_objective
from ls_llm.objectives.reference import reference_linear_loss


def _data(seed=0, n=(4, 9), hidden=12, vocab=53, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(*n, hidden, generator=g, dtype=dtype, requires_grad=True)
    w = (torch.randn(vocab, hidden, generator=g, dtype=dtype) * 0.4).requires_grad_()
    y = torch.randint(0, vocab, n, generator=g)
    y[1, :3] = -100
    return h, w, y


def _loss_and_grads(obj, h, w, y, **kw):
    loss = obj(h, w, y, **kw)
    return (loss, *torch.autograd.grad(loss, (h, w)))


def _assert_same(a, b):
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)


def test_label_smoothing_zero_is_ce():
    h, w, y = _data()
    _assert_same(_loss_and_grads(build_objective("label_smoothing", alpha=0.0), h, w, y),
                 _loss_and_grads(build_objective("ce"), h, w, y))


@pytest.mark.parametrize("alpha", [0.1, 0.45])
def test_uniform_label_smoothing_is_torch_cross_entropy(alpha):
    h, w, y = _data()
    ours = _loss_and_grads(build_objective("label_smoothing", alpha=alpha, chunk_size=7), h, w, y)
    torch_loss = F.cross_entropy((h @ w.T).reshape(-1, w.shape[0]), y.reshape(-1), label_smoothing=alpha)
    _assert_same(ours, (torch_loss, *torch.autograd.grad(torch_loss, (h, w))))


@pytest.mark.parametrize("eps", [0.0, 0.2, 0.6])
def test_backward_correction_is_negative_label_smoothing(eps):
    h, w, y = _data()
    _assert_same(_loss_and_grads(build_objective("backward_correction", noise_rate=eps), h, w, y),
                 _loss_and_grads(build_objective("label_smoothing", alpha=-eps / (1 - eps)), h, w, y))


def test_forward_correction_zero_is_ce():
    h, w, y = _data()
    _assert_same(_loss_and_grads(build_objective("forward_correction", noise_rate=0.0), h, w, y),
                 _loss_and_grads(build_objective("ce"), h, w, y))


@pytest.mark.parametrize("name,params", [("gce", {"q": 1e-7}), ("focal", {"gamma": 0.0}),
                                         ("bootstrap_soft", {"beta": 1.0}), ("bootstrap_hard", {"beta": 1.0}),
                                         ("sce", {"alpha": 1.0, "beta": 0.0})])
def test_limits_that_reduce_to_ce(name, params):
    h, w, y = _data()
    got = _loss_and_grads(build_objective(name, **params), h, w, y)
    ce = _loss_and_grads(build_objective("ce"), h, w, y)
    for a, b in zip(got, ce):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_all_ignored_is_exactly_zero(name):
    h, w, y = _data()
    b = torch.zeros(w.shape[0], dtype=w.dtype, requires_grad=True)
    y = torch.full_like(y, -100)
    obj = build_objective(name)
    for num_items in (None, 0, 5):
        loss = obj(h, w, y, b, num_items_in_batch=num_items)
        assert loss.item() == 0.0 and not torch.isnan(loss)
        for g in torch.autograd.grad(loss, (h, w, b)):
            assert torch.count_nonzero(g) == 0
        assert obj.from_logits((h @ w.T).detach(), y).item() == 0.0


@pytest.mark.parametrize("shape", [(23,), (2, 3, 5), (1, 1)])
def test_odd_shapes_match_reference(shape):
    g = torch.Generator().manual_seed(1)
    vocab = 97  # not a power of two
    h = torch.randn(*shape, 10, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(vocab, 10, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, vocab, shape, generator=g)
    obj = build_objective("sce", chunk_size=4)
    got = _loss_and_grads(obj, h, w, y)
    ref = reference_linear_loss("sce", h, w, y)
    _assert_same(got, (ref, *torch.autograd.grad(ref, (h, w))))


def test_num_items_in_batch_normalizes_and_accumulates():
    """Sum over micro-batches with a shared num_items_in_batch equals one batch (gradient accumulation)."""
    h, w, y = _data()
    obj = build_objective("gce", q=0.6, chunk_size=5)
    n = int((y != -100).sum())
    full = _loss_and_grads(obj, h, w, y)
    parts = [_loss_and_grads(obj, h[i:i + 1], w, y[i:i + 1], num_items_in_batch=torch.tensor(n)) for i in range(4)]
    loss = sum(p[0] for p in parts)
    torch.testing.assert_close(loss, full[0])
    torch.testing.assert_close(sum(torch.autograd.grad(obj(h[i:i + 1], w, y[i:i + 1], num_items_in_batch=n), w)[0]
                                   for i in range(4)), full[2])


def test_backward_scales_by_grad_output():
    h, w, y = _data()
    obj = build_objective("focal")
    (g1,) = torch.autograd.grad(obj(h, w, y), w)
    (g3,) = torch.autograd.grad(3.0 * obj(h, w, y), w)
    torch.testing.assert_close(g3, 3.0 * g1)


def test_no_grad_computes_no_gradient(monkeypatch):
    h, w, y = _data()
    obj = build_objective("label_smoothing", alpha=0.2)
    expected = obj(h, w, y).detach()

    def boom(*args, **kwargs):
        raise AssertionError("gradient work under torch.no_grad")

    monkeypatch.setattr(obj, "full_grad_", boom)
    with torch.no_grad():
        loss = obj(h, w, y)
    assert not loss.requires_grad
    torch.testing.assert_close(loss, expected)


def _bf16_errors(name, params, seed):
    """Mean abs errors vs an fp32 truth (per-token losses, grad of hidden, grad of weight) of the fused
    bf16 path and of the naive bf16 path. Mean errors over many elements, not a single rounded scalar."""
    from ls_llm.objectives.reference import reference_token_losses

    g = torch.Generator().manual_seed(seed)
    h32 = torch.randn(64, 64, generator=g)
    w32 = torch.randn(1000, 64, generator=g) * 0.3
    y = torch.randint(0, 1000, (64,), generator=g)

    def naive(h, w):
        return reference_token_losses(name, h @ w.T, y, **params)

    def fused(h, w):
        obj = build_objective(name, chunk_size=16, **params)
        return obj.token_losses(h, w, y), obj(h, w, y)

    def run(dtype, use_fused):
        h = h32.to(dtype).requires_grad_()
        w = w32.to(dtype).requires_grad_()
        if use_fused:
            per_tok, loss = fused(h, w)
        else:
            per_tok = naive(h, w)
            loss = per_tok.sum() / per_tok.numel()
        return [t.detach().float() for t in (per_tok, *torch.autograd.grad(loss, (h, w)))]

    truth = run(torch.float32, False)
    err = lambda xs: [float((a - b).abs().mean()) for a, b in zip(xs, truth)]  # noqa: E731
    return err(run(torch.bfloat16, True)), err(run(torch.bfloat16, False))


@pytest.mark.parametrize("name,params", [("ce", {}), ("label_smoothing", {"alpha": 0.1}),
                                         ("forward_correction", {"noise_rate": 0.2}), ("gce", {"q": 0.7}),
                                         ("bootstrap_soft", {"beta": 0.9}), ("focal", {"gamma": 2.0})])
def test_bf16_no_less_accurate_than_naive_bf16(name, params):
    fused, naive = zip(*(_bf16_errors(name, params, seed) for seed in range(3)))
    for i, what in enumerate(("token losses", "grad_hidden", "grad_weight")):
        f, n = sum(e[i] for e in fused), sum(e[i] for e in naive)
        assert f <= n, f"{what}: fused bf16 mean error {f:.3g} > naive bf16 mean error {n:.3g}"


@pytest.mark.parametrize("name,params,needle", [
    ("label_smoothing", {"alpha": 1.0}, "alpha"),
    ("label_smoothing", {"alpha": float("nan")}, "alpha"),
    ("label_smoothing", {"prior": "zipf"}, "prior"),
    ("label_smoothing", {"prior": [0.5, 0.6]}, "prior"),
    ("backward_correction", {"noise_rate": 1.0}, "noise_rate"),
    ("forward_correction", {"noise_rate": -0.1}, "noise_rate"),
    ("gce", {"q": 0.0}, "q"),
    ("gce", {"q": 1.5}, "q"),
    ("sce", {"log_zero": 0.0}, "log_zero"),
    ("sce", {"alpha": -1.0}, "alpha"),
    ("bootstrap_soft", {"beta": 1.2}, "beta"),
    ("bootstrap_hard", {"beta": -0.2}, "beta"),
    ("focal", {"gamma": -1.0}, "gamma"),
    ("ce", {"z_loss": -1.0}, "z_loss"),
    ("ce", {"softcap": 0.0}, "softcap"),
    ("ce", {"chunk_size": 0}, "chunk_size"),
    ("ce", {"alpha": 0.1}, "alpha"),
    ("nope", {}, "nope"),
])
def test_bad_parameters_name_the_field_and_value(name, params, needle):
    with pytest.raises(ValueError, match=needle):
        build_objective(name, **params)


def test_bad_inputs_are_clear_errors():
    h, w, y = _data()
    obj = build_objective("ce")
    with pytest.raises(ValueError, match="labels must be in"):
        obj(h, w, torch.full_like(y, 53))
    with pytest.raises(ValueError, match="hidden size"):
        obj(h, w[:, :5], y)
    with pytest.raises(ValueError, match="prior has length"):
        build_objective("label_smoothing", prior=[0.5, 0.5])(h, w, y)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_matches_cpu(dtype):
    h, w, y = _data(dtype=torch.float32)
    obj = build_objective("label_smoothing", alpha=0.1, chunk_size=8)
    cpu = _loss_and_grads(obj, h, w, y)
    hc = h.detach().to("cuda", dtype).requires_grad_()
    wc = w.detach().to("cuda", dtype).requires_grad_()
    gpu = _loss_and_grads(obj, hc, wc, y.to("cuda"))
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    for a, b in zip(gpu, cpu):
        torch.testing.assert_close(a.float().cpu(), b.float(), atol=tol, rtol=tol)


@pytest.mark.parametrize("name", ["forward_correction", "backward_correction"])
def test_corrections_with_a_noise_prior_match_reference(name):
    """Noise drawn from a prior π (e.g. the answer tokens), zeros included: the float64 materialized reference,
    and π uniform as a vector equals the default."""
    h, w, y = _data()
    vocab = w.shape[0]
    g = torch.Generator().manual_seed(5)
    prior = torch.rand(vocab, generator=g, dtype=torch.float64)
    prior[::3] = 0.0
    prior /= prior.sum()
    obj = build_objective(name, noise_rate=0.3, prior=prior, chunk_size=7)
    got = _loss_and_grads(obj, h, w, y)
    ref = reference_linear_loss(name, h, w, y, noise_rate=0.3, prior=prior)
    _assert_same(got, (ref, *torch.autograd.grad(ref, (h, w))))
    uniform = torch.full((vocab,), 1.0 / vocab, dtype=torch.float64)
    _assert_same(_loss_and_grads(build_objective(name, noise_rate=0.3, prior=uniform), h, w, y),
                 _loss_and_grads(build_objective(name, noise_rate=0.3), h, w, y))


def test_backward_correction_with_prior_is_label_smoothing_with_that_prior():
    h, w, y = _data()
    prior = torch.softmax(torch.randn(w.shape[0], generator=torch.Generator().manual_seed(2), dtype=torch.float64), 0)
    eps = 0.25
    _assert_same(_loss_and_grads(build_objective("backward_correction", noise_rate=eps, prior=prior), h, w, y),
                 _loss_and_grads(build_objective("label_smoothing", alpha=-eps / (1 - eps), prior=prior), h, w, y))
