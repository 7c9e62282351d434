"""Shared builders for the trainer tests: a tiny Qwen2 from a config, the shipped arithmetic tokenizer,
the fixture traces, and a trainer factory. Tiny everything: hidden 32, 2 layers, a handful of steps."""

import json
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "trainers"

def tiny_model(vocab_size: int, seed: int = 0, **overrides):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
               tie_word_embeddings=False, pad_token_id=0)
    cfg.update(overrides)
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(Qwen2Config(**cfg))


def tokenizer():
    from transformers import AutoTokenizer

    from ls_llm.data.synthetic import tokenizer_path

    return AutoTokenizer.from_pretrained(tokenizer_path())


def message_rows(n: int = 24) -> list[dict]:
    with open(FIXTURES / "arith_train.jsonl") as f:
        return [json.loads(line) for line in f][:n]


def token_dataset(lengths, vocab_size, seed=0):
    """Pre-tokenized rows of the given lengths (random ids >= 3), so trl skips tokenization."""
    from datasets import Dataset

    g = torch.Generator().manual_seed(seed)
    rows = [{"input_ids": torch.randint(3, vocab_size, (n,), generator=g).tolist()} for n in lengths]
    return Dataset.from_list(rows)


def config(tmp_path, **kw):
    from ls_llm.trainers import LsSFTConfig

    base = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, max_steps=2, learning_rate=1e-2,
                logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, seed=0, data_seed=0,
                dataloader_num_workers=0, disable_tqdm=True, max_length=128, bf16=False)
    base.update(kw)
    return LsSFTConfig(**base)


def sgd_step(tmp_path, data, *, vocab=None, steps=1, **kw):
    """(trainer, parameter change, first logged metrics) of `steps` plain SGD steps (lr 1, no clipping) of a tiny
    model on `data`: the updates the routing and weighting tests compare."""
    from ls_llm.trainers import LsSFTTrainer

    tok = tokenizer()
    model = tiny_model(vocab or len(tok), seed=1)
    base = dict(max_steps=steps, optim="sgd", learning_rate=1.0, max_grad_norm=0.0, logging_steps=1,
                per_device_train_batch_size=4)
    trainer = LsSFTTrainer(model=model, args=config(tmp_path, **{**base, **kw}), train_dataset=data,
                           processing_class=tok)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    delta = {n: p.detach() - before[n] for n, p in model.named_parameters()}
    return trainer, delta, next(r for r in trainer.state.log_history if "ce_loss" in r)


def cli_argv(out, *extra, **paths):
    """`ls-llm train` arguments for the tiny recipe (tests/fixtures/trainers/tiny.yaml) into `out`; keyword
    arguments replace its model / tokenizer / data paths."""
    from ls_llm.data.synthetic import tokenizer_path

    values = {"model_name_or_path": str(FIXTURES / "tiny-qwen2" / "config.json"),
              "tokenizer_name_or_path": tokenizer_path(), "dataset_name": str(FIXTURES / "arith_train.jsonl"),
              "output_dir": str(out), **paths}
    argv = [str(FIXTURES / "tiny.yaml")]
    for key, value in values.items():
        argv += [f"--{key}", value]
    return argv + list(extra)


@pytest.fixture
def h():
    """The builders above, for test modules (importlib import mode cannot import conftest)."""
    import types

    return types.SimpleNamespace(tiny_model=tiny_model, tokenizer=tokenizer, message_rows=message_rows,
                                 token_dataset=token_dataset, config=config, FIXTURES=FIXTURES,
                                 sgd_step=sgd_step, cli_argv=cli_argv)


@pytest.fixture(autouse=True)
def _one_thread():
    # These models are tiny, so intra-op threads only add synchronisation; on a shared, oversubscribed
    # machine two spinning threads per op made steps ~20x slower. Restored after each test.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
