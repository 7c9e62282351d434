"""The vLLM tests on the CPU build: run with the evaluation environment (`make test-vllm`, `.ci/run`).

Every module here starts with `pytest.importorskip("vllm")`, so `make test` (the training environment, no vLLM)
reports them skipped. The checkpoints are tiny Qwen2 models built from a config with the shipped arithmetic
tokenizer; head_dim 64, which vLLM's CPU attention supports (16, the other tests' tiny models, it refuses).
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKENIZER = ROOT / "ls_llm" / "data" / "assets" / "arith_tokenizer"


def save_qwen2(path: Path, *, hidden=128, heads=2, kv_heads=1, dtype="float32", head_scale=20.0, seed=0,
               architecture=None) -> Path:
    """A random 2-layer Qwen2 (head_dim = hidden / heads) with the arithmetic tokenizer, saved to `path`.

    The lm_head is scaled up so that next-token distributions are peaked: greedy decoding and top-k then have
    few near-ties for two backends' different kernels to order differently.
    """
    import json

    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=2048, tie_word_embeddings=False,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(head_scale)
    model.to(getattr(torch, dtype)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    if architecture is not None:
        config_file = path / "config.json"
        config_file.write_text(json.dumps(json.loads(config_file.read_text()) | {"architectures": [architecture]}))
    return path


@pytest.fixture
def make_qwen2():
    return save_qwen2


@pytest.fixture(scope="session")
def qwen2_hd64(tmp_path_factory) -> Path:
    return save_qwen2(tmp_path_factory.mktemp("qwen2_hd64"))
