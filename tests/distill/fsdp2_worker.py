"""FSDP2 distillation check, run as a script: 2 gloo ranks with raw `fully_shard` on student AND teacher (each
lm_head sharded on its own) vs 1 process.

    python tests/distill/fsdp2_worker.py OUT_DIR

Writes OUT_DIR/init.pt, OUT_DIR/fsdp.pt and OUT_DIR/single.pt (student parameters after 2 SGD steps).
"""

import functools
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

STEPS, LR, WORLD, VOCAB = 2, 0.5, 2, 150


def _models():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from ls_llm.trainers.head import install_hidden_forward

    def build(hidden, vocab, seed):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
                                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                             tie_word_embeddings=False))
        install_hidden_forward(model)
        return model

    teacher = build(48, VOCAB + 6, 5).eval().requires_grad_(False)  # padded teacher head
    return build(32, VOCAB, 0), teacher


def _batches():
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(STEPS):
        ids = torch.randint(0, VOCAB, (4, 24), generator=g)
        labels = ids.clone()
        for row, n in enumerate((24, 7, 15, 3)):
            labels[row, n:] = -100
        out.append((ids, labels))
    return out


def _step(student, teacher, ids, labels, num_items, scale):
    from ls_llm.objectives import build_objective
    from ls_llm.objectives.distill import DistillLoss
    from ls_llm.trainers.distill import _hidden_only, distill_head

    loss_fn = DistillLoss(build_objective("label_smoothing", alpha=0.1), divergence="jsd", beta=0.3, alpha=0.6,
                          temperature=1.5, teacher_smoothing=0.1)
    with torch.no_grad():
        teacher_hidden = teacher(input_ids=ids, labels=labels, ls_head_fn=_hidden_only)
    fn = functools.partial(distill_head, loss_fn=loss_fn, teacher_hidden=teacher_hidden, teacher_head=teacher.lm_head,
                           vocab_size=VOCAB, num_items_in_batch=num_items)
    loss, _, _ = student(input_ids=ids, labels=labels, ls_head_fn=fn)
    (loss * scale).backward()  # FSDP averages gradients over ranks: undo it, as the trainer does
    with torch.no_grad():
        for p in student.parameters():
            p -= LR * p.grad
            p.grad = None


def _rank(rank, out_dir, port):
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    student, teacher = _models()
    for model in (student, teacher):
        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model.lm_head)
        fully_shard(model)
    assert isinstance(teacher.lm_head.weight, DTensor)  # outside its forward the teacher's head is a shard
    for ids, labels in _batches():
        num_items = int((labels[:, 1:] != -100).sum())
        rows = slice(2 * rank, 2 * rank + 2)
        _step(student, teacher, ids[rows], labels[rows], num_items, WORLD)
    full = {n: p.full_tensor() for n, p in student.named_parameters()}
    if rank == 0:
        torch.save(full, os.path.join(out_dir, "fsdp.pt"))
    dist.destroy_process_group()


def main(out_dir: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(out_dir, port), nprocs=WORLD, join=True)
    student, teacher = _models()
    torch.save({n: p.detach().clone() for n, p in student.named_parameters()}, os.path.join(out_dir, "init.pt"))
    for ids, labels in _batches():
        _step(student, teacher, ids, labels, int((labels[:, 1:] != -100).sum()), 1)
    torch.save({n: p.detach() for n, p in student.named_parameters()}, os.path.join(out_dir, "single.pt"))


if __name__ == "__main__":
    main(sys.argv[1])
