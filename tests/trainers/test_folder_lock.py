"""Issue 23, case 1: two commands writing one run folder. The second writer is refused with one line naming the
folder and the first one's pid (exit 2), whatever the command; a dead owner's lock never blocks the next run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ls_llm.cli import main as ls_llm
from ls_llm.data.folder_lock import FolderLocked, folder_lock, lock_path

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "tests" / "pause_driver.py"


def _train_argv(h, out, *extra):
    from ls_llm.data.synthetic import tokenizer_path

    return ["train", str(h.FIXTURES / "tiny.yaml"), "--model_name_or_path",
            str(h.FIXTURES / "tiny-qwen2" / "config.json"), "--tokenizer_name_or_path", tokenizer_path(),
            "--dataset_name", str(h.FIXTURES / "arith_train.jsonl"), "--output_dir", str(out), *extra]


def start_paused(tmp_path, target: str, argv: list[str], cwd=ROOT) -> subprocess.Popen:
    """`ls-llm ARGV` in a subprocess, paused at the first call of `target` (once it is there)."""
    env = {**os.environ, "READY": str(tmp_path / "ready"), "GO": str(tmp_path / "go")}
    proc = subprocess.Popen([sys.executable, str(DRIVER), target, *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (tmp_path / "ready").exists():
        if proc.poll() is not None or time.time() > deadline:
            raise AssertionError(f"the first command did not get there: {proc.communicate()[1][-3000:]}")
        time.sleep(0.1)
    return proc


def refused_line(err: str, command: str, folder: Path, pid: int) -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"ls-llm {command}: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert str(folder) in lines[0] and f"pid {pid}" in lines[0], lines[0]
    return lines[0]


def test_second_train_into_a_running_folder_is_refused(h, tmp_path, capsys):
    out = tmp_path / "run"
    first = start_paused(tmp_path, "ls_llm.trainers.sft:LsSFTTrainer.training_step",
                         _train_argv(h, out, "--learning_rate", "3e-3"))
    try:
        assert ls_llm(_train_argv(h, out, "--learning_rate", "1e-4")) == 2
        refused_line(capsys.readouterr().err, "train", out, first.pid)
    finally:
        (tmp_path / "go").touch()
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]  # the first run is untouched and finishes
    assert (out / "model.safetensors").is_file() and not Path(lock_path(out)).exists()


def test_a_killed_owner_does_not_block_the_next_run(h, tmp_path):
    out = tmp_path / "run"
    first = start_paused(tmp_path, "ls_llm.trainers.sft:LsSFTTrainer.training_step", _train_argv(h, out))
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    assert Path(lock_path(out)).exists()  # stale: its owner is dead, the kernel released the lock
    assert ls_llm(_train_argv(h, out, "--max_steps", "2")) == 0
    assert not Path(lock_path(out)).exists()


def test_second_distill_cache_into_one_cache_is_refused(tmp_path, capsys):
    from ls_llm.data.synthetic import tokenizer_path

    teacher = tmp_path / "teacher"
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    Qwen2ForCausalLM(Qwen2Config(vocab_size=418, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                                 pad_token_id=0)).save_pretrained(teacher)
    AutoTokenizer.from_pretrained(tokenizer_path()).save_pretrained(teacher)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(dict(
        model_name_or_path=str(ROOT / "recipes" / "demo" / "distill-student" / "config.json"),
        model_init_from_config=True, tokenizer_name_or_path=tokenizer_path(),
        dataset_name=str(ROOT / "tests" / "fixtures" / "distill" / "arith_train.jsonl"), completion_only_loss=True,
        max_length=160, teacher_model_name_or_path=str(teacher), teacher_tokenizer_name_or_path=tokenizer_path(),
        output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, report_to="none", save_strategy="no",
        teacher_cache_dir=str(tmp_path / "cache"), distill_top_k=8, cache_shard_rows=3, max_steps=1)))
    first = start_paused(tmp_path, "ls_llm.data.teacher_cache:cache_row", ["distill-cache", str(recipe)])
    try:
        assert ls_llm(["distill-cache", str(recipe)]) == 2
        refused_line(capsys.readouterr().err, "distill-cache", tmp_path / "cache", first.pid)
    finally:
        (tmp_path / "go").touch()
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]


def test_second_sweep_on_a_running_cell_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # the smoke sweep's recipes name their model / tokenizer relative to the repository
    raw = yaml.safe_load((ROOT / "sweeps" / "smoke.yaml").read_text())
    raw["output_dir"] = str(tmp_path / "out")
    raw["recipe"] = str(ROOT / "recipes" / "demo" / "sweep_base.yaml")
    raw["distill"]["recipe"] = str(ROOT / "recipes" / "demo" / "sweep_distill.yaml")
    sweep = tmp_path / "smoke.yaml"
    sweep.write_text(yaml.safe_dump(raw))
    cell = "train-ce-answer0-s0"
    first = start_paused(tmp_path, "ls_llm.sweep.runner:train_cell", ["sweep", str(sweep), "--only", cell])
    try:
        assert ls_llm(["sweep", str(sweep), "--only", cell]) == 2
        refused_line(capsys.readouterr().err, "sweep", tmp_path / "out" / "cells" / cell, first.pid)
        assert (tmp_path / "out" / "cells" / cell / "argv.json").is_file()  # the first one's cell was not deleted
    finally:
        first.kill()
        first.wait(timeout=60)


def test_lock_is_exclusive_and_released(tmp_path):
    folder = tmp_path / "run"
    with folder_lock(folder):
        assert Path(lock_path(folder)).read_text().split()[0] == str(os.getpid())
        holder = subprocess.run([sys.executable, "-c", "import sys; from ls_llm.data.folder_lock import "
                                 "folder_lock\nwith folder_lock(sys.argv[1]): pass", str(folder)],
                                capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert holder.returncode != 0 and "FolderLocked" in holder.stderr and f"pid {os.getpid()}" in holder.stderr
    assert not Path(lock_path(folder)).exists() and not folder.exists()  # the lock creates no folder
    with folder_lock(folder), pytest.raises(FolderLocked):
        with folder_lock(folder):  # not re-entrant: a second writer in this process is refused too
            pass


def test_lock_leaves_no_folder_it_created(tmp_path):
    with folder_lock(tmp_path / "a" / "b" / "run"):
        assert (tmp_path / "a" / "b").is_dir()
    assert not (tmp_path / "a").exists()
    (tmp_path / "kept").mkdir()
    with folder_lock(tmp_path / "kept" / "run"):
        (tmp_path / "kept" / "run").mkdir()  # the run wrote its folder: it stays, and so does its parent
    assert (tmp_path / "kept" / "run").is_dir()


def test_only_rank_0_locks(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    with folder_lock(tmp_path / "run"):
        assert not Path(lock_path(tmp_path / "run")).exists()


def test_a_symlink_to_a_locked_folder_is_the_same_folder(tmp_path):
    """Two writers, one through a symlink to the other's folder: one lock (both were granted)."""
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    with folder_lock(tmp_path / "real" / "run"):
        os.symlink(tmp_path / "real" / "run", tmp_path / "runlink")
        with pytest.raises(FolderLocked), folder_lock(tmp_path / "runlink"):
            pass
        with pytest.raises(FolderLocked), folder_lock(tmp_path / "link" / "run"):
            pass
