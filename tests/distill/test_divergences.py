"""DistillLoss against the materialized float64 reference (values and gradients), trl's GKD, identities."""

import pytest
import torch

from ls_llm.objectives import build_objective
from ls_llm.objectives.distill import CachedTeacher, DistillLoss, OnlineTeacher
from ls_llm.objectives.distill_reference import reference_cached_distill_loss, reference_distill_loss
from ls_llm.objectives.topk import teacher_topk

DIVERGENCE_CASES = [("forward_kl", 0.5), ("reverse_kl", 0.5), ("jsd", 0.3), ("jsd", 0.0), ("jsd", 1.0)]


def _problem(dtype=torch.float64, *, n=(3, 7), hs=10, ht=14, vs=37, vt=37, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(*n, hs, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
    w = (torch.randn(vs, hs, generator=g, dtype=torch.float64) * 0.5).to(dtype).requires_grad_()
    b = (torch.randn(vs, generator=g, dtype=torch.float64) * 0.1).to(dtype).requires_grad_()
    ht_ = torch.randn(*n, ht, generator=g, dtype=torch.float64).to(dtype)
    wt = (torch.randn(vt, ht, generator=g, dtype=torch.float64) * 0.6).to(dtype)
    bt = (torch.randn(vt, generator=g, dtype=torch.float64) * 0.1).to(dtype)
    y = torch.randint(0, min(vs, vt), n, generator=g)
    y[0, 1] = y[-1, -1] = -100
    return h, w, b, ht_, wt, bt, y


def _grads(loss, *xs):
    return torch.autograd.grad(loss, xs)


def _ref_online(h, w, b, ht, wt, bt, y, **kw):
    h64, w64, b64 = (x.detach().double().requires_grad_() for x in (h, w, b))
    loss = reference_distill_loss(h64 @ w64.T + b64, ht.double() @ wt.double().T + bt.double(), y, **kw)
    return loss, _grads(loss, h64, w64, b64)


@pytest.mark.parametrize("name,beta", DIVERGENCE_CASES)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 3e-5)])
def test_online_matches_reference(name, beta, dtype, tol):
    h, w, b, ht, wt, bt, y = _problem(dtype)
    kw = dict(divergence=name, alpha=0.6, temperature=1.7, teacher_smoothing=0.2, beta=beta)
    loss_fn = DistillLoss(build_objective("label_smoothing", alpha=0.2), chunk_size=4, **kw)
    loss = loss_fn(h, w, y, OnlineTeacher(ht, wt, bt), b, num_items_in_batch=23)
    ref_loss, ref = _ref_online(h, w, b, ht, wt, bt, y, objective="label_smoothing", objective_params={"alpha": 0.2},
                                divergence_name=name, num_items_in_batch=23,
                                **{k: v for k, v in kw.items() if k != "divergence"})
    torch.testing.assert_close(loss.double(), ref_loss, atol=tol, rtol=tol)
    for g, r in zip(_grads(loss, h, w, b), ref):
        torch.testing.assert_close(g.double(), r, atol=tol, rtol=tol)


@pytest.mark.parametrize("name,beta", DIVERGENCE_CASES)
def test_gradcheck_float64(name, beta):
    h, w, b, ht, wt, bt, y = _problem(n=(2, 3), hs=4, ht=5, vs=7, vt=7)
    loss_fn = DistillLoss(build_objective("ce"), divergence=name, beta=beta, alpha=0.7, temperature=2.0,
                          teacher_smoothing=0.1, chunk_size=2)
    teacher = OnlineTeacher(ht, wt, bt)
    assert torch.autograd.gradcheck(lambda h_, w_, b_: loss_fn(h_, w_, y, teacher, b_), (h, w, b))


@pytest.mark.parametrize("beta", [0.0, 0.25, 0.5, 1.0])
def test_matches_trl_generalized_jsd(beta):
    """Our jsd(beta) at distill_alpha = 1 is τ² × trl's GKDTrainer.generalized_jsd_loss (same beta convention)."""
    from trl.experimental.gkd import GKDTrainer

    h, w, b, ht, wt, bt, y = _problem()
    tau = 1.5
    loss = DistillLoss(build_objective("ce"), divergence="jsd", beta=beta, alpha=1.0, temperature=tau)(
        h, w, y, OnlineTeacher(ht, wt, bt), b)
    trl_loss = GKDTrainer.generalized_jsd_loss((h @ w.T + b).detach(), ht @ wt.T + bt, labels=y, beta=beta,
                                               temperature=tau)
    torch.testing.assert_close(loss.detach(), tau**2 * trl_loss)


@pytest.mark.parametrize("name,beta", DIVERGENCE_CASES)
def test_divergence_of_a_model_from_itself_is_zero(name, beta):
    h, w, b, _, _, _, y = _problem()
    loss_fn = DistillLoss(build_objective("ce"), divergence=name, beta=beta, alpha=1.0, temperature=0.7, chunk_size=5)
    loss = loss_fn(h, w, y, OnlineTeacher(h.detach(), w.detach(), b.detach()), b)
    torch.testing.assert_close(loss, torch.zeros_like(loss), atol=1e-12, rtol=0)
    for g in _grads(loss, h, w, b):
        torch.testing.assert_close(g, torch.zeros_like(g), atol=1e-12, rtol=0)


def test_alpha_zero_is_the_plain_objective():
    h, w, b, ht, wt, bt, y = _problem()
    obj = build_objective("gce", q=0.5, chunk_size=4)
    plain = obj(h, w, y, b, num_items_in_batch=17)
    ours = DistillLoss(obj, alpha=0.0, teacher_smoothing=0.3)(h, w, y, OnlineTeacher(ht, wt, bt), b,
                                                             num_items_in_batch=17)
    torch.testing.assert_close(ours, plain, atol=0, rtol=0)
    for g, r in zip(_grads(ours, h, w, b), _grads(plain, h, w, b)):
        torch.testing.assert_close(g, r, atol=0, rtol=0)


def test_padded_heads_share_their_first_rows():
    """A teacher head with extra (padding) rows: D is over the shared first rows, as in the reference."""
    h, w, b, ht, wt, bt, y = _problem(vs=37, vt=45)
    loss = DistillLoss(build_objective("ce"), alpha=0.5, chunk_size=3)(h, w, y, OnlineTeacher(ht, wt, bt), b)
    ref_loss, ref = _ref_online(h, w, b, ht, wt, bt, y, alpha=0.5)
    torch.testing.assert_close(loss, ref_loss)
    for g, r in zip(_grads(loss, h, w, b), ref):
        torch.testing.assert_close(g, r)


def _cache(ht, wt, bt, y, k, tau):
    keep = y.reshape(-1) != -100
    ids, lp, tail = teacher_topk(ht.reshape(-1, ht.shape[-1])[keep], wt, bt, k=k, temperature=tau, chunk_size=4)
    return ids, lp.double(), tail.double()


@pytest.mark.parametrize("name,beta", DIVERGENCE_CASES)
@pytest.mark.parametrize("k", [1, 6])
def test_cached_matches_bucket_reference(name, beta, k):
    h, w, b, ht, wt, bt, y = _problem()
    ids, lp, tail = _cache(ht, wt, bt, y, k, 1.3)
    kw = dict(alpha=0.8, temperature=1.3, teacher_smoothing=0.15, beta=beta)
    loss = DistillLoss(build_objective("ce"), divergence=name, chunk_size=4, **kw)(
        h, w, y, CachedTeacher(ids, lp, tail, 37), b)
    h64, w64, b64 = (x.detach().clone().requires_grad_() for x in (h, w, b))
    ref_loss = reference_cached_distill_loss(h64 @ w64.T + b64, y, ids, lp, tail, vocab_size=37,
                                             divergence_name=name, **kw)
    torch.testing.assert_close(loss, ref_loss, atol=1e-10, rtol=1e-10)
    for g, r in zip(_grads(loss, h, w, b), _grads(ref_loss, h64, w64, b64)):
        torch.testing.assert_close(g, r, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name,beta", DIVERGENCE_CASES)
def test_cached_with_k_equal_v_is_online(name, beta):
    h, w, b, ht, wt, bt, y = _problem()
    kw = dict(divergence=name, alpha=0.5, temperature=0.8, teacher_smoothing=0.1, beta=beta, chunk_size=4)
    loss_fn = DistillLoss(build_objective("label_smoothing", alpha=0.1), **kw)
    online = loss_fn(h, w, y, OnlineTeacher(ht, wt, bt), b)
    ids, lp, tail = _cache(ht, wt, bt, y, 37, 0.8)
    assert torch.isneginf(tail).all()
    cached = loss_fn(h, w, y, CachedTeacher(ids, lp, tail, 37), b)
    torch.testing.assert_close(cached, online, atol=1e-6, rtol=1e-6)  # teacher_topk stores float32 log-probs
    for g, r in zip(_grads(cached, h, w, b), _grads(online, h, w, b)):
        torch.testing.assert_close(g, r, atol=1e-6, rtol=1e-6)


def test_stats_and_no_grad():
    h, w, b, ht, wt, bt, y = _problem()
    loss_fn = DistillLoss(build_objective("ce"), alpha=0.3, temperature=2.0, chunk_size=5)
    with torch.no_grad():
        loss, stats = loss_fn(h, w, y, OnlineTeacher(ht, wt, bt), b, return_stats=True)
    keep = y.reshape(-1) != -100
    zs, zt = (h @ w.T + b).reshape(-1, 37)[keep], (ht @ wt.T + bt).reshape(-1, 37)[keep]
    logq, logp = torch.log_softmax(zs / 2, -1), torch.log_softmax(zt / 2, -1)
    kl = (logp.exp() * (logp - logq)).sum()
    ce = torch.nn.functional.cross_entropy(zs, y.reshape(-1)[keep], reduction="sum")
    torch.testing.assert_close(stats["divergence"].double(), kl, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(stats["objective"].double(), ce, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(loss, (0.7 * ce + 0.3 * 4 * kl) / int(keep.sum()))
    assert set(stats.means()) >= {"divergence", "ce", "loss"}


@pytest.mark.parametrize("kwargs,field", [({"alpha": 1.5}, "distill_alpha"), ({"temperature": 0.0}, "temperature"),
                                          ({"teacher_smoothing": 1.0}, "teacher_smoothing"), ({"beta": -0.1}, "beta"),
                                          ({"divergence": "tvd"}, "divergence")])
def test_bad_parameters_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        DistillLoss(build_objective("ce"), **kwargs)


def test_mismatched_cache_is_an_error():
    h, w, b, ht, wt, bt, y = _problem()
    ids, lp, tail = _cache(ht, wt, bt, y, 3, 1.0)
    with pytest.raises(ValueError, match="does not match"):
        DistillLoss(build_objective("ce"))(h, w, y, CachedTeacher(ids[1:], lp[1:], tail[1:], 37), b)


def test_softcapped_student_and_teacher_match_reference():
    """The engine caps the student's logits (and chains dz through the cap); the teacher caps its own."""
    h, w, b, ht, wt, bt, y = _problem()
    loss_fn = DistillLoss(build_objective("ce", softcap=3.0), alpha=0.6, temperature=1.5, chunk_size=4)
    ours = loss_fn(h, w, y, OnlineTeacher(ht, wt, bt, softcap=2.0), b)
    cap = lambda z, c: c * torch.tanh(z / c)  # noqa: E731
    ref = reference_distill_loss(cap(h @ w.T + b, 3.0), cap(ht @ wt.T + bt, 2.0), y, alpha=0.6, temperature=1.5)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    g_ours = torch.autograd.grad(ours, (h, w, b))
    g_ref = torch.autograd.grad(ref, (h, w, b))
    for a, r in zip(g_ours, g_ref):
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-10)
