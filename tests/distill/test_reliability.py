"""A teacher cache is content-addressed and checked before use (issue #14): a retrained teacher in the same
folder, changed data, a truncated shard or a broken meta.json are refused with the reason and the file named,
exit 2, before any training; `distill-cache` rewrites a corrupt shard."""

import json
from pathlib import Path

import pytest
import torch
import yaml

from ls_llm.data.teacher_cache import CacheMeta, cache_row, load_cache, write_cache

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "distill" / "arith_train.jsonl"
TOKENIZER = str(ROOT / "ls_llm" / "data" / "assets" / "arith_tokenizer")


def _teacher(d, path, seed=3):
    d.tiny(418, hidden=48, seed=seed).save_pretrained(path)
    d.tokenizer().save_pretrained(path)
    return str(path)


def _recipe(tmp_path, teacher, **kw):
    student = tmp_path / "student.json"
    student.write_text((ROOT / "recipes" / "demo" / "distill-student" / "config.json").read_text())
    recipe = dict(model_name_or_path=str(student), model_init_from_config=True, tokenizer_name_or_path=TOKENIZER,
                  dataset_name=str(FIXTURE), completion_only_loss=True, max_length=160,
                  teacher_model_name_or_path=teacher, teacher_tokenizer_name_or_path=TOKENIZER, distill_alpha=0.5,
                  output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=1, learning_rate=1e-3,
                  use_cpu=True, bf16=False, report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True,
                  dataloader_num_workers=0, seed=0, teacher_cache_dir=str(tmp_path / "cache"), distill_top_k=8,
                  cache_shard_rows=3)
    recipe.update(kw)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def _error_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"ls-llm {command}: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_cache_is_checked_before_use(d, tmp_path, capsys):
    from ls_llm.cli import distill, distill_cache

    teacher = _teacher(d, tmp_path / "teacher")
    recipe = _recipe(tmp_path, teacher)
    assert distill_cache.main([recipe]) == 0
    capsys.readouterr()

    # A shard truncated on disk: distill names it; distill-cache rewrites it; then distill trains.
    arrow = sorted((tmp_path / "cache" / "shard-00001").glob("*.arrow"))[0]
    arrow.write_bytes(arrow.read_bytes()[:100])
    assert distill.main([recipe]) == 2
    assert "shard-00001" in _error_line(capsys.readouterr().err, "distill") and not (tmp_path / "out").exists()
    assert distill_cache.main([recipe]) == 0
    assert "1 shard(s) written" in capsys.readouterr().out
    assert distill.main([recipe]) == 0
    capsys.readouterr()

    # Other training data against the same cache: refused before training, the reason named.
    changed = FIXTURE.read_text().replace("1", "2", 3)
    (tmp_path / "changed.jsonl").write_text(changed)
    assert distill.main([_recipe(tmp_path, teacher, dataset_name=str(tmp_path / "changed.jsonl"),
                                 output_dir=str(tmp_path / "out2"))]) == 2
    assert "prepared training data" in _error_line(capsys.readouterr().err, "distill")
    assert not (tmp_path / "out2").exists()

    # The teacher retrained in the same folder: both commands refuse the stale cache.
    _teacher(d, tmp_path / "teacher", seed=4)
    recipe = _recipe(tmp_path, teacher, output_dir=str(tmp_path / "out3"))
    assert distill_cache.main([recipe]) == 2
    assert "other teacher weights" in _error_line(capsys.readouterr().err, "distill-cache")
    assert distill.main([recipe]) == 2
    assert "other teacher weights" in _error_line(capsys.readouterr().err, "distill")
    assert not (tmp_path / "out3").exists()


def test_failed_distill_cache_leaves_no_folder(d, tmp_path, capsys):
    from ls_llm.cli import distill_cache

    teacher = _teacher(d, tmp_path / "teacher")
    assert distill_cache.main([_recipe(tmp_path, teacher, distill_top_k=10_000)]) == 2
    assert "distill_top_k" in _error_line(capsys.readouterr().err, "distill-cache")
    assert not (tmp_path / "cache").exists()


def test_vocabulary_mismatch_names_the_tokenizer(d, tmp_path, capsys):
    from ls_llm.cli import distill

    tok = d.tokenizer()
    tok.add_tokens(["<teacher-only>"])
    tok.save_pretrained(tmp_path / "teacher_tok")
    recipe = _recipe(tmp_path, _teacher(d, tmp_path / "teacher"), teacher_cache_dir=None,
                     teacher_tokenizer_name_or_path=str(tmp_path / "teacher_tok"))
    assert distill.main([recipe]) == 2
    assert str(tmp_path / "teacher_tok") in _error_line(capsys.readouterr().err, "distill")


def _small_cache(path):
    meta = CacheMeta(teacher="t", top_k=1, temperature=1.0, vocab_size=5, n_rows=2, shard_rows=1)
    row = cache_row(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1), torch.zeros(1), logprob_dtype="float32")
    write_cache(str(path), meta, lambda a, b: [row] * (b - a), log=lambda m: None)
    return path / "meta.json"


@pytest.mark.parametrize("broken, words", [
    (lambda m: m.write_text(json.dumps({**json.loads(m.read_text()), "extra": 1})), ["meta.json", "'extra'"]),
    (lambda m: m.write_text("{not json"), ["meta.json", "not valid JSON"]),
    (lambda m: m.write_text(json.dumps({**json.loads(m.read_text()), "shard_rows": 0})),
     ["meta.json", "shard_rows must be >= 1, got 0"]),
    (lambda m: m.write_text(json.dumps({**json.loads(m.read_text()), "top_k": "5"})),
     ["meta.json", "top_k must be int, got '5'"]),
    (lambda m: m.write_text(json.dumps({**json.loads(m.read_text()), "temperature": 0})),
     ["meta.json", "temperature must be > 0"]),
])
def test_broken_meta_names_the_file(tmp_path, broken, words):
    meta = _small_cache(tmp_path / "cache")
    broken(meta)
    with pytest.raises(ValueError) as info:
        load_cache(str(tmp_path / "cache"))
    assert all(word in str(info.value) for word in words), info.value
