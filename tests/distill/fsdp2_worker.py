"""FSDP2 distillation check, run as a script: 2 gloo ranks with raw `fully_shard` on student AND teacher (each
lm_head sharded on its own) vs 1 process (tests/fsdp2_driver.py).

    python tests/distill/fsdp2_worker.py OUT_DIR

Writes OUT_DIR/init.pt, OUT_DIR/fsdp.pt and OUT_DIR/single.pt (student parameters after 2 SGD steps).
"""

import functools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for fsdp2_driver
from fsdp2_driver import VOCAB, run  # noqa: E402


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
    return [build(32, VOCAB, 0), teacher]


def _loss(models, ids, labels, num_items):
    from ls_llm.objectives import build_objective
    from ls_llm.objectives.distill import DistillLoss
    from ls_llm.trainers.distill import _hidden_only, distill_head

    student, teacher = models
    loss_fn = DistillLoss(build_objective("label_smoothing", alpha=0.1), divergence="jsd", beta=0.3, alpha=0.6,
                          temperature=1.5, teacher_smoothing=0.1)
    with torch.no_grad():
        teacher_hidden = teacher(input_ids=ids, labels=labels, ls_head_fn=_hidden_only)
    fn = functools.partial(distill_head, loss_fn=loss_fn, teacher_hidden=teacher_hidden, teacher_head=teacher.lm_head,
                           vocab_size=VOCAB, num_items_in_batch=num_items)
    loss, _ = student(input_ids=ids, labels=labels, ls_head_fn=fn)
    return loss


if __name__ == "__main__":
    run(sys.argv[1], _models, _loss)
