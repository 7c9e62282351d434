"""Faults and user errors of `ls-llm train` (issue #14): a kill while a checkpoint is written, a finished run in
output_dir, and the bad inputs a new user tries. Each stops with exit 2, one line naming the file / field /
value, no traceback and no folder left behind; resume falls back to the newest complete checkpoint."""

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ls_llm.cli.train import main
from ls_llm.trainers.checkpoints import incomplete_reason, resolve_resume

ROOT = Path(__file__).resolve().parents[2]

# Real CLI preparation; SIGKILL arrives while checkpoint-KILL_AT is being written: its weights are on disk,
# its optimizer, scheduler, RNG and trainer_state are not.
KILL_DURING_SAVE = """
import os, signal, sys
from ls_llm.trainers.run import prepare_run

run = prepare_run("train", sys.argv[1:])
trainer, save = run.trainer, run.trainer._save_optimizer_and_scheduler

def save_then_die(output_dir):
    if trainer.state.global_step == int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    save(output_dir)

trainer._save_optimizer_and_scheduler = save_then_die
trainer.train()
"""


@pytest.fixture(autouse=True)
def _library_logs_to_this_stderr():
    # datasets' log handler keeps the stderr of the test that first imported it (closed by capsys since):
    # point it at this test's stderr, so a library log line is not a "--- Logging error ---" traceback.
    import logging

    for handler in logging.getLogger("datasets").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.stream = sys.stderr  # not setStream: it flushes the closed one



def _steps_logged(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.startswith("{'loss'"))


def _one_error_line(err: str, command: str = "train") -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"ls-llm {command}: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_killed_while_saving_resumes_from_last_complete_checkpoint(h, tmp_path, capsys):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, *h.cli_argv(out)], capture_output=True, text=True,
                          env={**os.environ, "KILL_AT": "4"}, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (out / "checkpoint-4" / "model.safetensors").is_file()  # a partial checkpoint beside a complete one
    assert incomplete_reason(out / "checkpoint-4") and incomplete_reason(out / "checkpoint-2") is None

    assert main(h.cli_argv(out, "--resume_from_checkpoint", "true")) == 0
    stdout = capsys.readouterr().out
    assert f"skipped incomplete {out / 'checkpoint-4'}" in stdout and "checkpoint-2" in stdout
    assert _steps_logged(stdout) == 4  # steps 3..6: resumed from step 2
    assert incomplete_reason(out / "checkpoint-4") is None and (out / "model.safetensors").is_file()


def test_resolve_resume_skips_empty_truncated_and_mismatched(tmp_path):
    def checkpoint(step, *, state_step=None, weights=b""):
        path = tmp_path / f"checkpoint-{step}"
        path.mkdir()
        if state_step is not None:
            (path / "trainer_state.json").write_text(json.dumps({"global_step": state_step}))
        if weights:
            (path / "model.safetensors").write_bytes(weights)
        return path

    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    whole = len(header).to_bytes(8, "little") + header + bytes(16)
    checkpoint(2, state_step=2, weights=whole)
    checkpoint(4, state_step=4, weights=whole[:-3])  # truncated weights
    checkpoint(6, state_step=5)  # state of another step
    checkpoint(8)  # empty: killed at the start of the save
    point = resolve_resume(str(tmp_path), "true")
    assert point.checkpoint == str(tmp_path / "checkpoint-2")
    assert [Path(p).name for p, _ in point.skipped] == ["checkpoint-8", "checkpoint-6", "checkpoint-4"]
    assert "truncated" in point.skipped[2][1] and not (tmp_path / "checkpoint-8").exists()
    with pytest.raises(ValueError, match="incomplete"):
        resolve_resume(str(tmp_path), str(checkpoint(10, state_step=10, weights=whole[:20])))
    with pytest.raises(ValueError, match="no complete checkpoint"):
        resolve_resume(str(tmp_path / "empty"), "true")


def test_finished_run_is_not_overwritten(h, tmp_path, capsys):
    out = tmp_path / "run"
    argv = h.cli_argv(out, "--max_steps", "2", "--save_strategy", "no")
    assert main(argv) == 0
    before = (out / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(argv + ["--learning_rate", "0.5"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "already holds a run" in line and "--overwrite_output_dir" in line
    assert (out / "model.safetensors").read_bytes() == before
    assert main(argv + ["--learning_rate", "0.5", "--overwrite_output_dir", "true"]) == 0
    assert (out / "model.safetensors").read_bytes() != before


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _recipe(h, tmp_path, text):
    return _write(tmp_path, "recipe.yaml", f"include: {h.FIXTURES / 'tiny.yaml'}\n{text}")


# case -> (extra argv, paths, recipe text or None, expected words in the error line)
USER_ERRORS = {
    "empty_jsonl": ([], {"dataset_name": lambda t: _write(t, "empty.jsonl", "")}, None, ["empty.jsonl", "empty"]),
    "malformed_line": ([], {"dataset_name": lambda t: _write(t, "bad.jsonl", '{"messages": []}\n{"messages": [\n')},
                       None, ["bad.jsonl", "line 2"]),
    "yaml_syntax": ([], {}, "alpha: [0.1\n", ["recipe.yaml", "not valid YAML", "line"]),
    "duplicate_key": ([], {}, "alpha: 0.1\nalpha: 0.2\n", ["recipe.yaml", "'alpha'", "twice"]),
    "batch_size_0": (["--per_device_train_batch_size", "0"], {}, None, ["per_device_train_batch_size", "0"]),
    "max_length_0": (["--max_length", "0"], {}, None, ["max_length", "0"]),
    "negative_lr": (["--learning_rate", "-1"], {}, None, ["learning_rate", "-1"]),
    "type_error": (["--per_device_train_batch_size", "abc"], {}, None, ["per_device_train_batch_size", "'abc'"]),
    "resume_nothing": (["--resume_from_checkpoint", "true"], {}, None, ["resume_from_checkpoint", "no complete"]),
}


@pytest.mark.parametrize("case", sorted(USER_ERRORS))
def test_user_error_is_one_line_exit_2_nothing_left(h, tmp_path, capsys, case):
    extra, paths, recipe, words = USER_ERRORS[case]
    argv = h.cli_argv(tmp_path / "run", *extra, **{k: make(tmp_path) for k, make in paths.items()})
    if recipe is not None:
        argv[0] = _recipe(h, tmp_path, recipe)
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert all(word in line for word in words), line
    assert not (tmp_path / "run").exists()


def test_debug_env_shows_the_traceback(h, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LS_LLM_DEBUG", "1")
    assert main(h.cli_argv(tmp_path / "run", "--max_length", "0")) == 2
    assert "Traceback" in capsys.readouterr().err


def _full_disk(limit_bytes: int):
    def limit():  # writes past the limit fail with EFBIG ("File too large"), as a full disk fails with ENOSPC
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return limit


def test_full_disk_mid_run_exits_2_and_removes_the_folder(h, tmp_path):
    out = tmp_path / "run"
    argv = h.cli_argv(out, "--max_steps", "1", "--save_strategy", "no")
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    proc = subprocess.run([sys.executable, "-m", "ls_llm.cli", "train", *argv], capture_output=True, text=True,
                          env=env, preexec_fn=_full_disk(100_000), timeout=300, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "File too large" in _one_error_line(proc.stderr)
    assert not out.exists()


def test_full_disk_while_saving_a_checkpoint_keeps_the_run_resumable(h, tmp_path, capsys, monkeypatch):
    """The disk fills while checkpoint-4 is written (after checkpoint-2): exit 2 with one line naming the file,
    the folder is kept for its complete checkpoint, and the resume skips the partial checkpoint-4."""
    import errno

    from ls_llm.trainers.sft import LsSFTTrainer

    save_rng = LsSFTTrainer._save_rng_state

    def full_disk_at_step_4(self, output_dir):
        if self.state.global_step == 4:
            raise OSError(errno.ENOSPC, "No space left on device", os.path.join(output_dir, "rng_state.pth"))
        save_rng(self, output_dir)

    out = tmp_path / "run"
    monkeypatch.setattr(LsSFTTrainer, "_save_rng_state", full_disk_at_step_4)
    assert main(h.cli_argv(out)) == 2
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert "No space left on device" in line and "checkpoint-4" in line
    assert "--resume_from_checkpoint true" in captured.out and incomplete_reason(out / "checkpoint-2") is None
    monkeypatch.setattr(LsSFTTrainer, "_save_rng_state", save_rng)
    assert main(h.cli_argv(out, "--resume_from_checkpoint", "true")) == 0
    stdout = capsys.readouterr().out
    assert "skipped incomplete" in stdout and _steps_logged(stdout) == 4


def test_trust_remote_code_reaches_from_config(h, tmp_path, monkeypatch):
    """`trust_remote_code: true` (SFTConfig's field) reaches the model loading, also from a config."""
    import transformers
    from trl import ModelConfig

    from ls_llm.trainers.loading import ModelLoadArguments, load_model

    seen = {}
    build = transformers.AutoModelForCausalLM.from_config

    def spy(config, **kwargs):
        seen.update(kwargs)
        return build(config, **{k: v for k, v in kwargs.items() if k != "trust_remote_code"})

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_config", spy)
    model_args = ModelConfig(model_name_or_path=str(h.FIXTURES / "tiny-qwen2" / "config.json"))
    args = h.config(tmp_path, trust_remote_code=True)  # a field of trl's SFTConfig, not of ModelConfig
    load_model(model_args, ModelLoadArguments(model_init_from_config=True), args, h.tokenizer())
    assert seen["trust_remote_code"] is True


def test_guarded_turns_user_errors_into_one_line(capsys):
    import errno

    from ls_llm.cli.errors import guarded

    class SafetensorError(Exception):  # how safetensors reports a failed write
        pass

    for err in (OSError(errno.ENOSPC, "No space left on device", "/x/model.safetensors"),
                SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),
                ValueError("alpha must be in [0, 1), got 1.5\n(second line)")):
        def fail(err=err):
            raise err

        assert guarded("train", fail) == 2
        assert _one_error_line(capsys.readouterr().err).count("No space left") <= 1
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        guarded("train", lambda: 1 / 0)
