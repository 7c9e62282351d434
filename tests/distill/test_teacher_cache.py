"""The teacher cache round-trips (float16 rounding only), resumes by skipping finished shards, and refuses a
cache built with other settings or left unfinished."""

from pathlib import Path

import pytest
import torch

from ls_llm.data.teacher_cache import CacheMeta, cache_row, cache_tensors, load_cache, write_cache
from ls_llm.objectives.topk import teacher_topk


def _rows(n_rows=5, k=3, vocab=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n_rows):
        n_tok = i % 3 + 1  # rows with 1..3 trained tokens
        ids, lp, tail = teacher_topk(torch.randn(n_tok, 4, generator=g), torch.randn(vocab, 4, generator=g), k=k)
        rows.append((ids, lp, tail, torch.randint(0, vocab, (n_tok,), generator=g)))
    return rows


def _meta(**kw):
    return CacheMeta(**{"teacher": "t", "top_k": 3, "temperature": 1.0, "vocab_size": 11, "n_rows": 5,
                        "shard_rows": 2, **kw})


def _compute(rows, calls, *, fail_at=None, dtype="float16"):
    def compute(start, stop):
        calls.append((start, stop))
        if fail_at is not None and start >= fail_at:
            raise KeyboardInterrupt("simulated interruption")
        return [cache_row(*rows[i], logprob_dtype=dtype) for i in range(start, stop)]

    return compute


def test_round_trip_and_resume(tmp_path):
    rows, calls = _rows(), []
    path = str(tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        write_cache(path, _meta(), _compute(rows, calls, fail_at=4), log=lambda m: None)
    with pytest.raises(ValueError, match="interrupted"):
        load_cache(path)
    calls.clear()
    assert write_cache(path, _meta(), _compute(rows, calls), log=lambda m: None) == 1
    assert calls == [(4, 5)]  # shards 0 and 1 were finished and are not recomputed
    data, meta = load_cache(path)
    assert meta == _meta() and len(data) == 5
    batch = cache_tensors([data[i] for i in range(5)], top_k=3)
    ids = torch.cat([r[0] for r in rows])
    lp = torch.cat([r[1] for r in rows])
    tail = torch.cat([r[2] for r in rows])
    assert torch.equal(batch["teacher_ids"], ids)
    assert batch["teacher_ids"].dtype == torch.int32 and batch["teacher_logprobs"].shape == (ids.shape[0], 3)
    torch.testing.assert_close(batch["teacher_logprobs"], lp.half().float(), atol=0, rtol=0)
    torch.testing.assert_close(batch["teacher_log_tail"], tail.half().float(), atol=0, rtol=0)
    torch.testing.assert_close(batch["teacher_logprobs"], lp, atol=0, rtol=2e-3)  # float16 rounding only
    assert torch.equal(batch["teacher_labels"], torch.cat([r[3] for r in rows]))
    assert write_cache(path, _meta(), _compute(rows, calls), log=lambda m: None) == 0  # complete: nothing to do
    # nothing but the cache: no staging folder or temporary file is left behind
    assert sorted(p.name for p in Path(path).rglob("*") if p.name.startswith(".") or "tmp" in p.name) == []
    assert sorted(p.name for p in Path(path).iterdir()) == ["meta.json", "shard-00000", "shard-00001", "shard-00002"]


def test_float32_cache_is_exact(tmp_path):
    rows, calls = _rows(), []
    path = str(tmp_path / "cache32")
    write_cache(path, _meta(logprob_dtype="float32"), _compute(rows, calls, dtype="float32"), log=lambda m: None)
    data, _ = load_cache(path)
    batch = cache_tensors([data[i] for i in range(5)], top_k=3)
    assert torch.equal(batch["teacher_logprobs"], torch.cat([r[1] for r in rows]))


def test_other_settings_are_refused(tmp_path):
    rows, calls = _rows(), []
    path = str(tmp_path / "cache")
    write_cache(path, _meta(), _compute(rows, calls), log=lambda m: None)
    with pytest.raises(ValueError, match="top_k=3"):
        write_cache(path, _meta(top_k=4), _compute(rows, calls), log=lambda m: None)
    with pytest.raises(ValueError, match="not a finished teacher cache"):
        load_cache(str(tmp_path / "missing"))
