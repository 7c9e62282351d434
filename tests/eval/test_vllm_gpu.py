"""The vLLM backend end to end on a tiny model. Needs a CUDA device and vllm: skipped otherwise, never faked."""

import json
from pathlib import Path

import pytest

from ls_llm.cli.eval import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "eval"
TOKENIZER = Path(__file__).resolve().parents[2] / "ls_llm" / "data" / "assets" / "arith_tokenizer"


@pytest.fixture
def vllm_checkpoint(tmp_path):
    """A random Qwen2 with head_dim 64 (what vLLM's attention kernels support), bf16."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    path = tmp_path / "tiny_qwen2_vllm"
    Qwen2ForCausalLM(config).to(torch.bfloat16).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.gpu
def test_vllm_backend_whole_path_and_resume(vllm_checkpoint, tmp_path):
    pytest.importorskip("vllm")
    out = tmp_path / "run"
    args = ["--model", str(vllm_checkpoint), "--backend", "vllm", "--suite", "math500,arc_challenge",
            "--limit", "2", "--num-samples", "2", "--max-gen-toks", "16", "--max-model-len", "1024",
            "--gpu-memory-utilization", "0.3", "--data-dir", str(FIXTURES / "upstream"), "--output", str(out)]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert {"math500", "arc_challenge"} <= set(results["results"])
    assert results["config"]["samples_generated"] == 2 * 2 * 2  # tasks x problems x samples
    for task in ("math500", "arc_challenge"):
        samples = [json.loads(line) for line in (out / f"samples_{task}.jsonl").read_text().splitlines()]
        assert len(samples) == 2 and all(len(s["resps"][0]) == 2 for s in samples)
    assert main(args) == 0  # resumed: everything replayed from the journal
    again = json.loads((out / "results.json").read_text())
    assert again["config"]["samples_generated"] == 0 and again["results"] == results["results"]
