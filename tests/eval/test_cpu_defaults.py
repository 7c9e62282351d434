"""Defaults a new user meets first (issue 22): the backend that is installed, a CPU batch that fits memory."""

from __future__ import annotations

import importlib.util

import pytest

from ls_llm.evaluation import backends, cpu_batch
from ls_llm.evaluation.config import EvalConfig

QWEN_1_5B = {"num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2, "hidden_size": 1536,
             "vocab_size": 151936}


def test_cpu_batch_fits_half_the_free_memory():
    tokens, free, weights = 32768 + 2048, 24 * 2**30, 6 * 2**30
    per_sequence = 2 * 28 * 2 * 128 * 4 * tokens + 4 * 151936 * 2  # K and V, float32, every layer and position
    expected = (free - weights) // 2 // per_sequence
    assert 1 <= expected < 32
    assert cpu_batch.cpu_batch_size(QWEN_1_5B, tokens=tokens, free_bytes=free, weight_bytes=weights) == expected
    assert cpu_batch.cpu_batch_size(QWEN_1_5B, tokens=tokens, free_bytes=weights, weight_bytes=weights) == 1
    assert cpu_batch.cpu_batch_size(QWEN_1_5B, tokens=64, free_bytes=free, weight_bytes=weights) == 32


def test_hf_default_batch_is_an_integer_on_cpu_and_auto_elsewhere(tiny_checkpoint, capsys):
    cfg = EvalConfig(model=str(tiny_checkpoint), backend="hf", max_gen_toks=64)
    batch = cpu_batch.batch_size(cfg, "cpu")
    assert isinstance(batch, int) and 1 <= batch <= cpu_batch.MAX_CPU_BATCH
    assert "batch size" in capsys.readouterr().err
    assert cpu_batch.batch_size(cfg, "cuda") == "auto"
    assert cpu_batch.batch_size(EvalConfig(model=str(tiny_checkpoint), backend="hf", batch_size="3"), "cpu") == 3
    assert cpu_batch.batch_size(EvalConfig(model=str(tiny_checkpoint), backend="vllm"), None) == "auto"


def test_auto_backend_is_vllm_when_importable_else_hf_in_one_line(monkeypatch, capsys):
    cfg = EvalConfig(model="ckpt")
    assert cfg.backend == "auto"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    backends.resolve_backend(cfg)
    assert cfg.backend == "hf"
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    cfg = EvalConfig(model="ckpt")
    backends.resolve_backend(cfg)
    assert cfg.backend == "vllm" and capsys.readouterr().err == ""


def test_install_advice_works_from_an_installed_package():
    hint = backends.BACKENDS["vllm"].install_hint
    assert "make " not in hint and "-e " not in hint and ".[" not in hint
    assert "pip install" in hint and "--backend hf" in hint


@pytest.mark.parametrize("bad", ["0", "-1", "x"])
def test_bad_batch_size_is_refused(bad):
    with pytest.raises(ValueError, match="batch_size"):
        EvalConfig(model="ckpt", batch_size=bad)
