"""`ls-llm distill-cache` with `teacher_cache_backend: vllm` on the vLLM CPU build equals the HF backend's cache
on the same bf16 teacher (same rows and trained tokens; top-k ids and log-probs to bf16 kernel differences), and
a teacher the CPU build refuses fails in one line before the data is prepared."""

from pathlib import Path

import pytest

pytest.importorskip("vllm")

import torch  # noqa: E402
import yaml  # noqa: E402

from ls_llm.cli import distill_cache  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "distill" / "arith_train.jsonl"
TOP_K = 8


def _recipe(tmp_path, teacher, cache, backend):
    recipe = tmp_path / f"{backend}.yaml"
    recipe.write_text(yaml.safe_dump(dict(
        model_name_or_path=str(teacher), teacher_model_name_or_path=str(teacher), dataset_name=str(DATA),
        assistant_only_loss=True, max_length=160, teacher_dtype="bfloat16", distill_top_k=TOP_K,
        cache_shard_rows=3, cache_logprob_dtype="float32", teacher_cache_dir=str(cache),
        teacher_cache_backend=backend, output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False,
        report_to="none", seed=0)))
    return str(recipe)


def test_vllm_cache_equals_hf_cache(make_qwen2, tmp_path, capsys):
    from ls_llm.data.teacher_cache import cache_tensors, load_cache

    teacher = make_qwen2(tmp_path / "teacher", dtype="bfloat16", seed=1)
    for backend in ("hf", "vllm"):
        assert distill_cache.main([_recipe(tmp_path, teacher, tmp_path / backend, backend)]) == 0
    (hf, hf_meta), (vl, vl_meta) = load_cache(str(tmp_path / "hf")), load_cache(str(tmp_path / "vllm"))
    assert hf_meta == vl_meta and hf_meta.n_rows == 8
    a, b = cache_tensors(list(hf), TOP_K), cache_tensors(list(vl), TOP_K)
    assert torch.equal(a["teacher_labels"], b["teacher_labels"]) and len(a["teacher_labels"]) > 100
    # Both run the teacher in bf16 with different kernels (vLLM's CPU attention and GEMMs vs torch's), so hidden
    # states differ by bf16 rounding and near-tied entries may swap places: ids are compared as sets, log-probs
    # matched by token id. The tolerance is two bf16 spacings at this peaked head's largest logits (|z| ~ 18,
    # spacing 0.125 in [16, 32)); measured: top-1 agreement 0.99, overlap 0.99, max |diff| 0.18, mean 0.024.
    assert (a["teacher_ids"][:, 0] == b["teacher_ids"][:, 0]).float().mean() >= 0.95
    same = a["teacher_ids"][:, :, None] == b["teacher_ids"][:, None, :]  # (n, k, k)
    assert same.any(-1).float().mean() >= 0.95
    rows, i, j = same.nonzero(as_tuple=True)
    hf_lp, vllm_lp = a["teacher_logprobs"][rows, i], b["teacher_logprobs"][rows, j]
    torch.testing.assert_close(hf_lp, vllm_lp, atol=0.25, rtol=0)
    assert (hf_lp - vllm_lp).abs().mean() < 0.05
    torch.testing.assert_close(a["teacher_log_tail"], b["teacher_log_tail"], atol=0.25, rtol=0)


def test_refused_teacher_fails_in_one_line_before_the_data_is_prepared(make_qwen2, tmp_path, capsys):
    teacher = make_qwen2(tmp_path / "teacher", hidden=64, heads=4, kv_heads=2, dtype="bfloat16")  # head_dim 16
    capsys.readouterr()  # transformers' progress bar while saving
    assert distill_cache.main([_recipe(tmp_path, teacher, tmp_path / "cache", "vllm")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "head_dim=16" in err[0] and "teacher_cache_backend: hf" in err[0], err
    assert not (tmp_path / "cache").exists()
