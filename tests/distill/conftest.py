"""Tiny teacher / student Qwen2 models sharing the shipped arithmetic tokenizer, and a distillation config."""

import pytest
import torch


def tiny(vocab_size, *, hidden=32, layers=2, seed=0):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    return Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
                                        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=256, tie_word_embeddings=False, pad_token_id=0))


def tokenizer():
    from transformers import AutoTokenizer

    from ls_llm.data.synthetic import tokenizer_path

    return AutoTokenizer.from_pretrained(tokenizer_path())


def token_dataset(lengths, vocab_size, seed=0):
    from datasets import Dataset

    g = torch.Generator().manual_seed(seed)
    return Dataset.from_list([{"input_ids": torch.randint(3, vocab_size, (n,), generator=g).tolist()} for n in lengths])


def config(tmp_path, *, cls=None, **kw):
    from ls_llm.trainers.distill_config import LsDistillConfig

    cls = cls or LsDistillConfig
    base = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=2, max_steps=2, learning_rate=1e-2,
                logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, seed=0, data_seed=0,
                dataloader_num_workers=0, disable_tqdm=True, max_length=128, bf16=False,
                **({"teacher_model_name_or_path": "tiny-teacher"} if cls is LsDistillConfig else {}))
    base.update(kw)
    return cls(**base)


@pytest.fixture
def d():
    import types

    return types.SimpleNamespace(tiny=tiny, tokenizer=tokenizer, token_dataset=token_dataset, config=config)
