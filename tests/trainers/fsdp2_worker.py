"""FSDP2 check, run as a script: 2 gloo ranks with raw `fully_shard` (lm_head sharded on its own) vs 1 process
(tests/fsdp2_driver.py).

    python tests/trainers/fsdp2_worker.py OUT_DIR

Writes OUT_DIR/init.pt, OUT_DIR/fsdp.pt and OUT_DIR/single.pt (parameters after 2 SGD steps) for the test to compare.
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

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, tie_word_embeddings=False)
    model = Qwen2ForCausalLM(cfg)
    install_hidden_forward(model)
    return [model]


def _loss(models, ids, labels, num_items):
    from ls_llm.objectives import build_objective
    from ls_llm.trainers.sft import objective_head

    fn = functools.partial(objective_head, objective=build_objective("label_smoothing", alpha=0.1),
                           num_items_in_batch=num_items)
    loss, _ = models[0](input_ids=ids, labels=labels, ls_head_fn=fn)
    return loss


if __name__ == "__main__":
    run(sys.argv[1], _models, _loss)
