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


@pytest.mark.gpu
@pytest.mark.parametrize("parallel", [[], ["--tensor-parallel-size", "2"], ["--data-parallel-size", "2"]])
def test_vllm_generate_on_gpus(vllm_checkpoint, tmp_path, parallel):
    """`ls-llm generate` on vLLM's GPU build, one GPU and (where two are present) tensor / data parallel: every
    problem gets its k samples, and a re-run replays them all from the journal."""
    pytest.importorskip("vllm")
    import torch

    if parallel and torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs")
    from ls_llm.cli.generate import main as generate

    out = tmp_path / "traces"
    args = ["--model", str(vllm_checkpoint), "--data", str(FIXTURES / "generate_problems.jsonl"), "--num-samples", "3",
            "--out", str(out), "--backend", "vllm", "--max-gen-toks", "16", "--max-model-len", "1024",
            "--gpu-memory-utilization", "0.3", "--temperature", "0.7", *parallel]
    assert generate(args) == 0
    rows = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    problems = {r["problem_id"] for r in rows}
    assert len(rows) == 3 * len(problems) and {r["sample_index"] for r in rows} == {0, 1, 2}
    assert generate(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["samples_generated"] == 0 and manifest["rows"] == len(rows)
