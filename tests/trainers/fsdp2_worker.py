"""FSDP2 check, run as a script: 2 gloo ranks with raw `fully_shard` (lm_head sharded on its own) vs 1 process.

    python tests/trainers/fsdp2_worker.py OUT_DIR

Writes OUT_DIR/init.pt, OUT_DIR/fsdp.pt and OUT_DIR/single.pt (parameters after 2 SGD steps) for the test to compare.
"""

import functools
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

STEPS, LR, WORLD = 2, 0.5, 2


def _model():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from ls_llm.trainers.head import install_hidden_forward

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=150, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, tie_word_embeddings=False)
    model = Qwen2ForCausalLM(cfg)
    install_hidden_forward(model)
    return model


def _batches():
    # Global batch of 4 rows of different real lengths (padded labels -100), one per step.
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(STEPS):
        ids = torch.randint(0, 150, (4, 24), generator=g)
        labels = ids.clone()
        for row, n in enumerate((24, 7, 15, 3)):
            labels[row, n:] = -100
        out.append((ids, labels))
    return out


def _step(model, ids, labels, num_items, scale):
    from ls_llm.objectives import build_objective
    from ls_llm.trainers.sft import objective_head

    fn = functools.partial(objective_head, objective=build_objective("label_smoothing", alpha=0.1),
                           num_items_in_batch=num_items)
    loss, _ = model(input_ids=ids, labels=labels, ls_head_fn=fn)
    (loss * scale).backward()  # FSDP averages gradients over ranks: undo it, as the trainer does for DDP
    with torch.no_grad():
        for p in model.parameters():
            p -= LR * p.grad
            p.grad = None


def _rank(rank, out_dir, port):
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    model = _model()
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model.lm_head)
    fully_shard(model)
    assert isinstance(model.lm_head.weight, DTensor)  # outside its forward the head is a shard
    for ids, labels in _batches():
        num_items = int((labels[:, 1:] != -100).sum())
        rows = slice(2 * rank, 2 * rank + 2)
        _step(model, ids[rows], labels[rows], num_items, WORLD)
    full = {n: p.full_tensor() for n, p in model.named_parameters()}
    if rank == 0:
        torch.save(full, os.path.join(out_dir, "fsdp.pt"))
    dist.destroy_process_group()


def main(out_dir: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(out_dir, port), nprocs=WORLD, join=True)
    model = _model()
    torch.save({n: p.detach().clone() for n, p in model.named_parameters()}, os.path.join(out_dir, "init.pt"))
    for ids, labels in _batches():
        _step(model, ids, labels, int((labels[:, 1:] != -100).sum()), 1)
    torch.save({n: p.detach() for n, p in model.named_parameters()}, os.path.join(out_dir, "single.pt"))


if __name__ == "__main__":
    main(sys.argv[1])
