"""Every tensor the engine creates follows its inputs' device. On a CPU-only machine this is checked by making
`meta` the default device: a tensor created without an explicit device lands there and the next op that mixes it
with the CPU inputs fails, as a CUDA run would with a CPU tensor."""

import pytest
import torch

from ls_llm.objectives import build_objective
from ls_llm.objectives.distill import CachedTeacher, DistillLoss, OnlineTeacher
from ls_llm.objectives.topk import teacher_topk


@pytest.fixture
def meta_default():
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)


def _problem(all_ignored: bool):
    g = torch.Generator(device="cpu").manual_seed(0)
    h = torch.randn(2, 5, 8, generator=g, device="cpu").requires_grad_()
    w = torch.randn(13, 8, generator=g, device="cpu").requires_grad_()
    b = torch.randn(13, generator=g, device="cpu").requires_grad_()
    y = torch.randint(0, 13, (2, 5), generator=g, device="cpu")
    y[0, 0] = -100
    if all_ignored:
        y.fill_(-100)
    return h, w, b, y


@pytest.mark.parametrize("all_ignored", [False, True])
@pytest.mark.parametrize("name", ["label_smoothing", "forward_correction", "bootstrap_hard", "gce"])
def test_objective_follows_input_device(meta_default, name, all_ignored):
    h, w, b, y = _problem(all_ignored)
    obj = build_objective(name, chunk_size=3, softcap=4.0)
    loss, stats = obj(h, w, y, b, num_items_in_batch=torch.tensor(7, device="cpu"), return_stats=True)
    loss.backward()
    assert loss.device.type == "cpu" and all(v.device.type == "cpu" for v in stats.values())
    assert h.grad.device.type == w.grad.device.type == b.grad.device.type == "cpu"
    assert obj.from_logits((h @ w.T).detach().requires_grad_(), y).device.type == "cpu"
    assert obj.token_losses(h, w, y).device.type == "cpu"


@pytest.mark.parametrize("all_ignored", [False, True])
@pytest.mark.parametrize("cached", [False, True])
def test_distillation_follows_input_device(meta_default, cached, all_ignored):
    """Including a micro-batch with no trained token (its divergence sum must be a CPU zero, not a default-device
    one that cannot be concatenated with the others)."""
    h, w, b, y = _problem(all_ignored)
    g = torch.Generator(device="cpu").manual_seed(1)
    ht, wt = torch.randn(2, 5, 6, generator=g, device="cpu"), torch.randn(13, 6, generator=g, device="cpu")
    teacher = OnlineTeacher(ht, wt)
    if cached:
        keep = y.reshape(-1) != -100
        ids, lp, tail = teacher_topk(ht.reshape(-1, 6)[keep], wt, k=4)
        assert ids.device.type == lp.device.type == tail.device.type == "cpu"
        teacher = CachedTeacher(ids, lp, tail, 13)
    loss, stats = DistillLoss(build_objective("label_smoothing", alpha=0.1), alpha=0.5, chunk_size=3)(
        h, w, y, teacher, b, return_stats=True)
    loss.backward()
    assert loss.device.type == "cpu" and stats["divergence"].device.type == "cpu"
    assert h.grad.device.type == w.grad.device.type == "cpu"
    if all_ignored:
        assert float(loss) == 0.0 and float(stats["n_tokens"]) == 0.0
