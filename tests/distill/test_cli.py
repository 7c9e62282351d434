"""`ls-llm distill` and `ls-llm distill-cache` end to end on tiny models and bad input (every shipped distill
recipe is read as the command reads it in tests/trainers/test_recipes.py)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "distill" / "arith_train.jsonl"


def _teacher(d, tmp_path, tokenizer=None):
    path = tmp_path / "teacher"
    d.tiny(418, hidden=48, seed=3).save_pretrained(path)
    (tokenizer or d.tokenizer()).save_pretrained(path)
    return str(path)


def _recipe(tmp_path, teacher, **kw):
    student = tmp_path / "student.json"
    student.write_text((ROOT / "recipes" / "demo" / "distill-student" / "config.json").read_text())
    recipe = dict(model_name_or_path=str(student), model_init_from_config=True,
                  tokenizer_name_or_path=str(ROOT / "ls_llm" / "data" / "assets" / "arith_tokenizer"),
                  dataset_name=str(FIXTURE), completion_only_loss=True, max_length=160,
                  teacher_model_name_or_path=teacher, distill_alpha=0.5, teacher_smoothing=0.1,
                  output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=2, learning_rate=1e-3,
                  use_cpu=True, bf16=False, report_to="none", save_strategy="no", logging_steps=1,
                  disable_tqdm=True, dataloader_num_workers=0, seed=0)
    recipe.update(kw)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def test_online_then_cached(d, tmp_path, capsys):
    from ls_llm.cli import distill, distill_cache

    teacher = _teacher(d, tmp_path)
    # Loaded from a qwen2 model folder, transformers 5 makes the shipped tokenizer a Qwen2Tokenizer with an
    # extra <|endoftext|>: name the tokenizer the teacher was trained with, as the demo recipe does.
    tok = {"teacher_tokenizer_name_or_path": str(ROOT / "ls_llm" / "data" / "assets" / "arith_tokenizer")}
    assert distill.main([_recipe(tmp_path, teacher, **tok)]) == 0
    assert (tmp_path / "out" / "model.safetensors").exists()
    cached = _recipe(tmp_path, teacher, teacher_cache_dir=str(tmp_path / "cache"), distill_top_k=16,
                     cache_shard_rows=3, output_dir=str(tmp_path / "out_cached"), **tok)
    assert distill_cache.main([cached]) == 0
    assert "3 shard(s) written" in capsys.readouterr().out  # 8 rows in shards of 3
    assert distill_cache.main([cached]) == 0
    assert "0 shard(s) written" in capsys.readouterr().out  # resumed: nothing left to do
    assert distill.main([cached]) == 0
    assert (tmp_path / "out_cached" / "model.safetensors").exists()


def test_other_tokenizer_fails_before_training(d, tmp_path, capsys):
    from ls_llm.cli import distill

    tok = d.tokenizer()
    tok.add_tokens(["<teacher-only>"])
    teacher = _teacher(d, tmp_path, tokenizer=tok)
    assert distill.main([_recipe(tmp_path, teacher)]) == 2
    err = capsys.readouterr().err
    assert "differs from the student's" in err and "<teacher-only>" in err
    assert not (tmp_path / "out").exists()
    assert distill.main([_recipe(tmp_path, str(tmp_path / "nowhere"))]) == 2
    assert "teacher_model_name_or_path" in capsys.readouterr().err


def test_two_process_ddp_equals_one_process(d, tmp_path):
    """2 gloo processes x batch 2 give the same update as 1 process x batch 4 (online teacher, JSD)."""
    import os
    import socket
    import subprocess
    import sys

    import torch
    from safetensors.torch import load_file

    from ls_llm.cli import distill

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tok = str(ROOT / "ls_llm" / "data" / "assets" / "arith_tokenizer")
    recipe = _recipe(tmp_path, _teacher(d, tmp_path), teacher_tokenizer_name_or_path=tok, optim="sgd",
                     learning_rate=0.5, distill_divergence="jsd", jsd_beta=0.3, logging_steps=10)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
              str(ROOT / "accelerate_configs" / "cpu_ddp_2proc.yaml"), "--main_process_port", str(port),
              "-m", "ls_llm.cli", "distill", recipe, "--per_device_train_batch_size", "2",
              "--output_dir", str(tmp_path / "ddp")]
    proc = subprocess.run(launch, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert distill.main([recipe, "--output_dir", str(tmp_path / "single")]) == 0
    ddp, single = load_file(tmp_path / "ddp" / "model.safetensors"), load_file(tmp_path / "single" / "model.safetensors")
    for name, value in single.items():
        torch.testing.assert_close(ddp[name], value, rtol=1e-4, atol=1e-6, msg=name)
