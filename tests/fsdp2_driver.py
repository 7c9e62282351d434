"""The shared body of the FSDP2 worker scripts (tests/*/fsdp2_worker.py): 2 gloo ranks with raw `fully_shard`
(each decoder layer, the lm_head on its own, then the root) against 1 process, on the same 2 SGD steps.

A worker names its models (the first is trained; the others, e.g. a teacher, are sharded too) and its loss;
`run` writes OUT_DIR/init.pt, OUT_DIR/fsdp.pt and OUT_DIR/single.pt (the trained model's parameters) for the
`fsdp2_equals_one_process` fixture (tests/conftest.py) to compare. accelerate's FSDP falls back to DDP on CPU,
so this uses torch directly.
"""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

STEPS, LR, WORLD, VOCAB = 2, 0.5, 2, 150


def batches():
    """A global batch of 4 rows of different real lengths (padded labels -100) per step."""
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(STEPS):
        ids = torch.randint(0, VOCAB, (4, 24), generator=g)
        labels = ids.clone()
        for row, n in enumerate((24, 7, 15, 3)):
            labels[row, n:] = -100
        out.append((ids, labels))
    return out


def _step(models, loss_fn, ids, labels, num_items, scale):
    loss = loss_fn(models, ids, labels, num_items)
    (loss * scale).backward()  # FSDP averages gradients over ranks: undo it, as the trainers do
    with torch.no_grad():
        for p in models[0].parameters():
            p -= LR * p.grad
            p.grad = None


def _rank(rank, out_dir, port, models_fn, loss_fn):
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    models = models_fn()
    for model in models:
        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model.lm_head)
        fully_shard(model)
        assert isinstance(model.lm_head.weight, DTensor)  # outside its forward a head is a shard
    for ids, labels in batches():
        num_items = int((labels[:, 1:] != -100).sum())
        rows = slice(2 * rank, 2 * rank + 2)
        _step(models, loss_fn, ids[rows], labels[rows], num_items, WORLD)
    full = {n: p.full_tensor() for n, p in models[0].named_parameters()}
    if rank == 0:
        torch.save(full, os.path.join(out_dir, "fsdp.pt"))
    dist.destroy_process_group()


def run(out_dir: str, models_fn, loss_fn) -> None:
    """models_fn() -> [trained model, *other models]; loss_fn(models, ids, labels, num_items) -> loss.
    Both must be module-level functions of the worker script (the ranks are spawned processes)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(out_dir, port, models_fn, loss_fn), nprocs=WORLD, join=True)
    models = models_fn()
    torch.save({n: p.detach().clone() for n, p in models[0].named_parameters()}, os.path.join(out_dir, "init.pt"))
    for ids, labels in batches():
        _step(models, loss_fn, ids, labels, int((labels[:, 1:] != -100).sum()), 1)
    torch.save({n: p.detach() for n, p in models[0].named_parameters()}, os.path.join(out_dir, "single.pt"))
