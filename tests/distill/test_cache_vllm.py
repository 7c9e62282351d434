"""The vLLM cache backend: its conversion of vLLM's prompt log-probs agrees with the HF backend's `teacher_topk`
on the same logits (CPU, no vllm), its config checks, its meta-device data preparation, and end to end against
the HF backend on a GPU with vLLM installed (skipped otherwise, never faked)."""

import math
import types
from pathlib import Path

import pytest
import torch

from ls_llm.objectives.topk import teacher_topk
from ls_llm.trainers.distill_cache_vllm import TAIL_FLOOR, prompt_logprobs_to_cache


def _vllm_like(logits: torch.Tensor, tokens: list[int], n: int):
    """vLLM's `prompt_logprobs` for a row: None at position 0, then at position i the n most likely tokens of
    the distribution logits[i - 1] (float64 log-softmax) plus the prompt token i itself (so n or n + 1 entries)."""
    logp = torch.log_softmax(logits.double(), dim=-1)
    out = [None]
    for i in range(1, len(tokens)):
        top = torch.topk(logp[i - 1], n).indices.tolist()
        out.append({t: types.SimpleNamespace(logprob=logp[i - 1, t].item()) for t in {*top, tokens[i]}})
    return out


@pytest.mark.parametrize("k", [1, 3, 7])
def test_conversion_matches_hf_teacher_topk(k):
    g = torch.Generator().manual_seed(k)
    vocab, length = 29, 11
    tokens = torch.randint(0, vocab, (length,), generator=g).tolist()
    labels = [-100, -100, *tokens[2:5], -100, *tokens[6:]]  # a prompt, a masked token, a completion
    logits = 3 * torch.randn(length - 1, vocab, generator=g)  # logits[j]: hidden[j], predicting token j + 1
    prompt_logprobs = _vllm_like(logits, tokens, k)
    assert any(len(d) == k + 1 for d in prompt_logprobs[1:])  # the prompt token outside the top-k is exercised
    ids, lp, tail, kept = prompt_logprobs_to_cache(prompt_logprobs, labels, k=k, vocab_size=vocab)

    # The HF backend: hidden[j] -> labels[j + 1], kept where that label is trained; the head is the identity.
    shifted = torch.tensor(labels[1:])
    keep = shifted != -100
    ref_ids, ref_lp, ref_tail = teacher_topk(logits[keep], torch.eye(vocab), k=k)
    assert torch.equal(kept, shifted[keep])
    assert torch.equal(ids, ref_ids) and ids.dtype == torch.int32
    torch.testing.assert_close(lp, ref_lp, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tail, ref_tail, atol=1e-5, rtol=1e-4)


def test_out_of_vocab_ids_are_dropped_and_full_vocab_tail_is_minus_inf():
    lp = {0: -0.1, 1: -2.5, 2: -3.0, 5: -0.5}  # id 5 is a padded head row past the tokenizer's vocabulary (5)
    row = [None, {t: types.SimpleNamespace(logprob=v) for t, v in lp.items()}]
    ids, logprobs, tail, labels = prompt_logprobs_to_cache(row, [-100, 1], k=2, vocab_size=5)
    assert ids.tolist() == [[0, 1]] and labels.tolist() == [1]
    torch.testing.assert_close(logprobs, torch.tensor([[-0.1, -2.5]]))
    torch.testing.assert_close(tail, torch.tensor([math.log1p(-(math.exp(-0.1) + math.exp(-2.5)))]))
    with pytest.raises(ValueError, match="top_k=4"):  # only 3 in-vocabulary entries
        prompt_logprobs_to_cache(row, [-100, 1], k=4, vocab_size=5)
    full = torch.log_softmax(torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64), 0).tolist()
    row = [None, {t: types.SimpleNamespace(logprob=v) for t, v in enumerate(full)}]
    assert prompt_logprobs_to_cache(row, [-100, 2], k=3, vocab_size=3)[2].item() == -math.inf


def test_tail_is_clamped_when_top_k_mass_rounds_to_one():
    row = [None, {0: types.SimpleNamespace(logprob=0.0), 1: types.SimpleNamespace(logprob=-50.0)}]
    tail = prompt_logprobs_to_cache(row, [-100, 0], k=1, vocab_size=4)[2]
    assert tail.item() == pytest.approx(math.log(TAIL_FLOOR), rel=1e-6)
    empty = prompt_logprobs_to_cache(row, [-100, -100], k=1, vocab_size=4)
    assert [t.shape[0] for t in empty] == [0, 0, 0, 0]


def test_backend_field_and_temperature_are_validated(d, tmp_path):
    from ls_llm.trainers.distill_config import TEACHER_CACHE_BACKENDS
    from ls_llm.trainers.run import BUILDERS

    assert set(BUILDERS) == set(TEACHER_CACHE_BACKENDS)
    assert d.config(tmp_path).teacher_cache_backend == "hf"
    with pytest.raises(ValueError, match="teacher_cache_backend.*'torch'"):
        d.config(tmp_path, teacher_cache_backend="torch")
    with pytest.raises(ValueError, match="distill_temperature=2.0"):
        d.config(tmp_path, teacher_cache_backend="vllm", distill_temperature=2.0)
    d.config(tmp_path, teacher_cache_backend="hf", distill_temperature=2.0)
    d.config(tmp_path, teacher_cache_backend="vllm")


def test_missing_vllm_is_a_clear_error(monkeypatch):
    from ls_llm.trainers.distill_cache_vllm import import_vllm

    monkeypatch.setitem(__import__("sys").modules, "vllm", None)  # as if vllm were not installed
    with pytest.raises(ImportError, match="vllm>=0.30,<0.31"):
        import_vllm()


def test_meta_teacher_prepares_the_same_rows(d, tmp_path):
    from ls_llm.trainers.distill_cache import prepared_dataset
    from ls_llm.trainers.distill_cache_vllm import meta_teacher

    tok = d.tokenizer()
    teacher = d.tiny(len(tok))
    teacher.save_pretrained(tmp_path / "teacher")
    meta = meta_teacher(str(tmp_path / "teacher"))
    assert next(meta.parameters()).is_meta
    data = d.token_dataset([5, 9, 14], len(tok))
    args = d.config(tmp_path, teacher_cache_dir=str(tmp_path / "cache"))
    real, _ = prepared_dataset(args, teacher, tok, data)
    from_meta, collator = prepared_dataset(args, meta, tok, data)
    assert next(meta.parameters()).is_meta  # never moved or materialized
    assert real.to_list() == from_meta.to_list() and len(real) == 3


@pytest.mark.gpu
def test_vllm_cache_equals_hf_cache(d, tmp_path):
    pytest.importorskip("vllm")
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from vllm import LLM

    from ls_llm.data.teacher_cache import cache_tensors, load_cache
    from ls_llm.trainers.distill_cache import build_teacher_cache
    from ls_llm.trainers.distill_cache_vllm import build_teacher_cache_vllm

    tok = d.tokenizer()
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,  # head_dim 64
                         tie_word_embeddings=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    teacher = Qwen2ForCausalLM(config)
    with torch.no_grad():
        teacher.lm_head.weight.mul_(20)  # peaked distributions: few near-ties for bf16 to reorder
    path = tmp_path / "teacher"
    teacher.to(torch.bfloat16).save_pretrained(path)
    tok.save_pretrained(path)
    data = d.token_dataset([7, 30, 64, 5, 100], len(tok))
    common = dict(teacher_model_name_or_path=str(path), teacher_dtype="bfloat16", distill_top_k=8,
                  cache_shard_rows=2, cache_logprob_dtype="float32", use_cpu=False)
    hf_args = d.config(tmp_path, teacher_cache_dir=str(tmp_path / "hf"), **common)
    assert build_teacher_cache(hf_args, teacher.cuda().eval(), tok, data, log=lambda m: None) == 3
    del teacher
    torch.cuda.empty_cache()

    vllm_args = d.config(tmp_path, teacher_cache_dir=str(tmp_path / "vllm"), teacher_cache_backend="vllm", **common)
    llm = LLM(model=str(path), dtype="bfloat16", seed=0, max_logprobs=8, gpu_memory_utilization=0.3,
              enforce_eager=True)
    assert build_teacher_cache_vllm(vllm_args, tok, data, llm=llm, log=lambda m: None) == 3
    (hf, hf_meta), (vl, vl_meta) = load_cache(str(tmp_path / "hf")), load_cache(str(tmp_path / "vllm"))
    assert hf_meta == vl_meta
    a, b = cache_tensors(list(hf), 8), cache_tensors(list(vl), 8)
    assert torch.equal(a["teacher_labels"], b["teacher_labels"]) and a["teacher_ids"].shape[0] == 7 + 30 + 64 + 5 + 100 - 5
    # bf16 kernels differ between the backends: near-tied entries may swap, so compare by token id.
    assert (a["teacher_ids"][:, 0] == b["teacher_ids"][:, 0]).float().mean() >= 0.95
    same = a["teacher_ids"][:, :, None] == b["teacher_ids"][:, None, :]  # (n, k, k)
    assert same.any(-1).float().mean() >= 0.9
    rows, i, j = same.nonzero(as_tuple=True)
    torch.testing.assert_close(a["teacher_logprobs"][rows, i], b["teacher_logprobs"][rows, j], atol=0.1, rtol=0)
    torch.testing.assert_close(a["teacher_log_tail"], b["teacher_log_tail"], atol=0.1, rtol=0.05)


def test_cli_without_vllm_fails_clearly(d, tmp_path, monkeypatch, capsys):
    import yaml

    from ls_llm.cli import distill_cache

    monkeypatch.setitem(__import__("sys").modules, "vllm", None)  # as if vllm were not installed
    tok = d.tokenizer()
    d.tiny(len(tok)).save_pretrained(tmp_path / "teacher")
    tok.save_pretrained(tmp_path / "teacher")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(dict(
        model_name_or_path=str(tmp_path / "teacher"), teacher_model_name_or_path=str(tmp_path / "teacher"),
        tokenizer_name_or_path=str(tmp_path / "teacher"), teacher_tokenizer_name_or_path=str(tmp_path / "teacher"),
        dataset_name=str(Path(__file__).resolve().parents[1] / "fixtures" / "distill" / "arith_train.jsonl"),
        completion_only_loss=True, teacher_cache_dir=str(tmp_path / "cache"), teacher_cache_backend="vllm",
        output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, report_to="none")))
    assert distill_cache.main([str(recipe)]) == 2
    assert "pip install 'vllm>=0.30,<0.31'" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_rows_and_conversion_reproduce_the_hf_cache_on_chat_data(d, tmp_path):
    """The vLLM builder's path minus the engine, on completion-only chat data: meta-device preparation,
    `prompt_rows`, and the conversion of vLLM-shaped log-probs computed here from the teacher's full logits
    give the HF backend's cache (labels, ids exactly; log-probs and tail to float32 rounding)."""
    from datasets import load_dataset

    from ls_llm.data.teacher_cache import cache_tensors, load_cache
    from ls_llm.trainers.distill_cache import build_teacher_cache, prepared_dataset
    from ls_llm.trainers.distill_cache_vllm import meta_teacher, prompt_rows

    tok = d.tokenizer()
    teacher = d.tiny(len(tok), seed=1)
    with torch.no_grad():
        teacher.lm_head.weight.mul_(10)
    teacher.save_pretrained(tmp_path / "teacher")
    data = load_dataset("json", data_files=str(Path(__file__).resolve().parents[1] / "fixtures" / "distill"
                                               / "arith_train.jsonl"), split="train")
    args = d.config(tmp_path, teacher_cache_dir=str(tmp_path / "hf"), assistant_only_loss=True, distill_top_k=5,
                    cache_logprob_dtype="float32", max_length=160)
    build_teacher_cache(args, teacher, tok, data, log=lambda m: None)
    hf = cache_tensors(list(load_cache(str(tmp_path / "hf"))[0]), 5)

    prepared, collator = prepared_dataset(args, meta_teacher(str(tmp_path / "teacher")), tok, data)
    rows = []
    for ids, labels in prompt_rows(prepared, collator, 0, len(prepared)):
        assert -100 in labels  # the prompt is masked: completion-only alignment is exercised
        with torch.no_grad():
            logits = teacher(input_ids=torch.tensor([ids])).logits[0, :-1]
        rows.append(prompt_logprobs_to_cache(_vllm_like(logits, ids, 5), labels, k=5, vocab_size=len(tok)))
    assert torch.equal(torch.cat([r[3] for r in rows]), hf["teacher_labels"])
    assert torch.equal(torch.cat([r[0] for r in rows]), hf["teacher_ids"])
    torch.testing.assert_close(torch.cat([r[1] for r in rows]), hf["teacher_logprobs"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.cat([r[2] for r in rows]), hf["teacher_log_tail"], atol=1e-4, rtol=1e-3)
