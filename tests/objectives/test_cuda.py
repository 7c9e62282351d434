"""The engine on CUDA in fp32 / bf16 / fp16 against the float64 CPU reference (run by scripts/device_check.sh).

Tolerance rule (Cut Cross-Entropy's): the fused result's error against float64 must be no worse than the naive
materialized torch path's error at the same dtype on the same device (times 2, plus a small absolute floor):
low precision may cost what it costs everyone, not more."""

import pytest
import torch

from ls_llm.objectives import OBJECTIVES, build_objective
from ls_llm.objectives.distill import CachedTeacher, DistillLoss, OnlineTeacher
from ls_llm.objectives.distill_reference import reference_distill_loss
from ls_llm.objectives.reference import reference_linear_loss
from ls_llm.objectives.topk import teacher_topk

pytestmark = pytest.mark.gpu
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# Every registered objective (a new one cannot be left out), with parameters away from 0 where its default would
# make it plain ce.
PARAMS = {"label_smoothing": {"alpha": 0.1}, "forward_correction": {"noise_rate": 0.2},
          "backward_correction": {"noise_rate": 0.2}, "gce": {"q": 0.7}, "focal": {"gamma": 2.0}}
CASES = {name: PARAMS.get(name, {}) for name in sorted(OBJECTIVES)}


def _problem(n=300, hidden=64, vocab=4099, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, hidden, generator=g, dtype=torch.float64)
    w = torch.randn(vocab, hidden, generator=g, dtype=torch.float64) * 0.3
    y = torch.randint(0, vocab, (n,), generator=g)
    y[::7] = -100
    return h, w, y


def _loss_grads(fn, h, w):
    h, w = h.detach().requires_grad_(), w.detach().requires_grad_()
    loss = fn(h, w)
    return [t.detach().double().cpu() for t in (loss, *torch.autograd.grad(loss, (h, w)))]


def _errors(got, ref):
    return [float((a - b).abs().max()) for a, b in zip(got, ref)]


def _check(fused, naive, exact, dtype):
    fused_err, naive_err = _errors(fused, exact), _errors(naive, exact)
    floor = 1e-6 if dtype == torch.float32 else 1e-3
    for what, f, n in zip(("loss", "dh", "dW"), fused_err, naive_err):
        assert f <= 2 * n + floor, f"{what}: fused error {f:.3g} vs naive {n:.3g} ({dtype})"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_objective_matches_float64(name, dtype):
    h, w, y = _problem()
    obj = build_objective(name, chunk_size=128, **CASES[name])
    exact = _loss_grads(lambda a, b: reference_linear_loss(name, a, b, y, **CASES[name]), h, w)
    hc, wc, yc = h.cuda().to(dtype), w.cuda().to(dtype), y.cuda()
    fused = _loss_grads(lambda a, b: obj(a, b, yc), hc, wc)
    naive = _loss_grads(lambda a, b: reference_linear_loss(name, a, b, yc, **CASES[name]), hc, wc)
    _check(fused, naive, exact, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cached", [False, True])
def test_distillation_matches_float64(dtype, cached):
    h, w, y = _problem()
    ht, wt, _ = _problem(hidden=48, seed=1)
    keep = y != -100
    loss_fn = DistillLoss(build_objective("label_smoothing", alpha=0.1), alpha=0.5, temperature=2.0, chunk_size=128)

    def run(hh, ww, teacher_h, teacher_w, yy, fused):
        if not fused:
            return lambda a, b: reference_distill_loss(a @ b.T, teacher_h @ teacher_w.T, yy, objective="label_smoothing",
                                                       objective_params={"alpha": 0.1}, alpha=0.5, temperature=2.0)
        teacher = OnlineTeacher(teacher_h, teacher_w)
        if cached:
            ids, lp, tail = teacher_topk(teacher_h[yy != -100], teacher_w, k=teacher_w.shape[0], temperature=2.0)
            teacher = CachedTeacher(ids, lp, tail, teacher_w.shape[0])
        return lambda a, b: loss_fn(a, b, yy, teacher)

    exact = _loss_grads(run(h, w, ht, wt, y, False), h, w)
    dev = [t.cuda() for t in (h, w, ht, wt)]
    lo = [t.to(dtype) for t in dev]
    fused = _loss_grads(run(*lo[:2], *lo[2:], y.cuda(), True), *lo[:2])
    naive = _loss_grads(run(*lo[:2], *lo[2:], y.cuda(), False), *lo[:2])
    assert keep.any()
    _check(fused, naive, exact, dtype)


def test_all_ignored_distillation_batch_on_cuda():
    h, w, y = _problem(n=12)
    y[:] = -100
    hc, wc = h.cuda().float().requires_grad_(), w.cuda().float().requires_grad_()
    teacher = CachedTeacher(torch.zeros(0, 4, dtype=torch.int32, device="cuda"), torch.zeros(0, 4, device="cuda"),
                            torch.zeros(0, device="cuda"), w.shape[0])
    loss, stats = DistillLoss(build_objective("ce"))(hc, wc, y.cuda(), teacher, return_stats=True)
    loss.backward()
    assert float(loss) == 0.0 and stats["divergence"].device.type == "cuda"
