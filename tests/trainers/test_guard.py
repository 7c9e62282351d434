"""Issue 23, cases 2 and 3: a run that diverges (non-finite loss or gradient) never reports success over NaN
weights, and a run told to stop (SIGTERM, SIGUSR1, SIGINT) finishes its step, writes a complete checkpoint, says
where to resume, and resumes to the very weights of an uninterrupted run."""

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ls_llm.cli.train import main
from ls_llm.trainers.checkpoints import incomplete_reason

ROOT = Path(__file__).resolve().parents[2]


def _argv(h, out, *extra):
    from ls_llm.data.synthetic import tokenizer_path

    return [str(h.FIXTURES / "tiny.yaml"), "--model_name_or_path", str(h.FIXTURES / "tiny-qwen2" / "config.json"),
            "--tokenizer_name_or_path", tokenizer_path(), "--dataset_name", str(h.FIXTURES / "arith_train.jsonl"),
            "--output_dir", str(out), *extra]


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("ls-llm train: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _all_finite(path: Path) -> bool:
    return all(torch.isfinite(t).all() for t in load_file(path).values())


@pytest.fixture
def nan_at_step_3(monkeypatch):
    """The loss of every micro-batch of optimizer step 3 is NaN (as a diverged run's is), through the real loss."""
    from ls_llm.trainers.sft import LsSFTTrainer

    compute_loss = LsSFTTrainer.compute_loss

    def poisoned(self, model, inputs, *args, **kwargs):
        out = compute_loss(self, model, inputs, *args, **kwargs)
        if self.state.global_step == 2:
            return (out[0] * float("nan"), *out[1:]) if isinstance(out, tuple) else out * float("nan")
        return out

    monkeypatch.setattr(LsSFTTrainer, "compute_loss", poisoned)


def test_nan_stops_with_one_line_and_keeps_the_last_good_checkpoint(h, tmp_path, capsys, nan_at_step_3):
    out = tmp_path / "run"
    assert main(_argv(h, out)) == 2
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert "step 3" in line and "nan" in line and "nan_policy" in line, line
    assert incomplete_reason(out / "checkpoint-2") is None and _all_finite(out / "checkpoint-2" / "model.safetensors")
    assert not (out / "model.safetensors").exists() and not (out / "checkpoint-4").exists()
    assert "model saved" not in captured.out


def test_nan_skip_step_leaves_the_weights_of_the_step_before(h, tmp_path, capsys, nan_at_step_3):
    """skip_step: step 3 is not applied, so the model after step 3 is the model after step 2, bit for bit; the
    loss curve shows step 3's loss as nan, not 0."""
    out = tmp_path / "run"
    assert main(_argv(h, out, "--nan_policy", "skip_step", "--max_steps", "3", "--save_steps", "1")) == 0
    captured = capsys.readouterr()
    after_2 = load_file(out / "checkpoint-2" / "model.safetensors")
    final = load_file(out / "model.safetensors")
    assert all(torch.equal(final[k], v) for k, v in after_2.items())
    assert "skipped 1 optimizer step(s)" in captured.out and "steps 3" in captured.out
    row = [r for r in captured.out.splitlines() if r.split()[:1] == ["3"]]
    assert row and "nan" in row[0] and "0.0000" not in row[0], captured.out


def test_diverging_learning_rate_is_stopped(h, tmp_path, capsys):
    """The issue's own case, no injection: learning_rate 1e6 exits 2 naming the step; nothing non-finite saved."""
    out = tmp_path / "run"
    assert main(_argv(h, out, "--learning_rate", "1e6", "--max_steps", "20")) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "step" in line and ("not finite" in line or "non-finite" in line), line
    assert not (out / "model.safetensors").exists()
    for checkpoint in out.glob("checkpoint-*"):
        assert _all_finite(checkpoint / "model.safetensors"), checkpoint


def test_loss_curve_prints_nan_as_nan():
    from ls_llm.trainers.metrics import loss_curve

    text = loss_curve([{"step": 1, "loss": 2.0}, {"step": 2, "loss": float("nan")}, {"step": 3, "loss": 1.0}])
    row = text.splitlines()[2]
    assert row.split()[:2] == ["2", "nan"] and "#" not in row
    assert math.isclose(float(text.splitlines()[1].split()[1]), 2.0)


def test_nan_policy_is_checked(h, tmp_path, capsys):
    assert main(_argv(h, tmp_path / "run", "--nan_policy", "ignore")) == 2
    assert "nan_policy" in _one_error_line(capsys.readouterr().err)


def test_guard_hook_exists_in_transformers():
    # The guard reads each step's gradient norm through this private Trainer method (ls_llm/trainers/guard.py):
    # fail loudly here if transformers renames it.
    from transformers import Trainer

    assert callable(getattr(Trainer, "_get_grad_norm", None))


# --- signals ------------------------------------------------------------------------------------------------------

def _launch(argv, env=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "ls_llm.cli", "train", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _signal_after_logged_steps(proc, signum, steps: int) -> None:
    seen = 0
    for line in proc.stdout:
        seen += line.startswith("{'loss'")
        if seen == steps:
            proc.send_signal(signum)
            return
    raise AssertionError(f"the run ended before step {steps}: {proc.stderr.read()[-2000:]}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT], ids=lambda s: s.name)
def test_signal_mid_training_checkpoints_and_resumes_bit_identically(h, tmp_path, capsys, signum):
    """A real signal from outside, mid-training, with no checkpoint due (save_strategy: no): the step is finished,
    checkpoint-N is written and named, exit 128+N; the resume ends on the uninterrupted run's weights exactly."""
    steps = ["--max_steps", "60", "--save_strategy", "no"]
    out = tmp_path / "stopped"
    proc = _launch(_argv(h, out, *steps))
    _signal_after_logged_steps(proc, signum, 2)
    rest, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, err[-3000:]
    line = [ln for ln in err.splitlines() if ln.startswith("ls-llm train: stopped by")]
    assert len(line) == 1 and "Traceback" not in err, err[-3000:]
    (checkpoint,) = out.glob("checkpoint-*")
    step = int(checkpoint.name.split("-")[1])
    assert 2 <= step < 60 and str(checkpoint) in line[0] and "--resume_from_checkpoint true" in line[0]
    assert signal.Signals(signum).name in line[0] and incomplete_reason(checkpoint) is None
    assert not (out / "model.safetensors").exists()  # not a finished run

    assert main(_argv(h, out, *steps, "--resume_from_checkpoint", "true")) == 0
    assert main(_argv(h, tmp_path / "straight", *steps)) == 0
    resumed, straight = load_file(out / "model.safetensors"), load_file(tmp_path / "straight" / "model.safetensors")
    assert all(torch.equal(resumed[k], v) for k, v in straight.items())


# Stops itself with SIGTERM while the run is still being prepared (the trainer, and its output folder, exist;
# training has not begun): there is nothing to save, so the folder this run created must not be left behind.
TERM_WHILE_PREPARING = """
import os, signal, sys
from ls_llm.cli.train import main
from ls_llm.trainers.sft import LsSFTTrainer

train = LsSFTTrainer.train

def term_then_train(self, *args, **kwargs):
    print("folder exists:", os.path.isdir(self.args.output_dir), file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    return train(self, *args, **kwargs)

LsSFTTrainer.train = term_then_train
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_before_training_leaves_no_folder(h, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", TERM_WHILE_PREPARING, *_argv(h, out)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-3000:]
    assert "ls-llm train: stopped by SIGTERM before training started" in proc.stderr
    assert not out.exists()


def test_second_ctrl_c_stops_at_once_a_repeated_sigterm_does_not(h, tmp_path):
    """torchrun and srun pass a stop on as SIGTERM to workers that got it already: that must not cost the
    checkpoint. A second Ctrl-C is the user's "now"."""
    out = tmp_path / "run"
    proc = _launch(_argv(h, out, "--max_steps", "400", "--save_strategy", "no"))
    _signal_after_logged_steps(proc, signal.SIGINT, 1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGINT and "Traceback" not in err, err[-3000:]
    assert "stopped by SIGINT after step" in err and len(list(out.glob("checkpoint-*"))) == 1

    proc = _launch(_argv(h, tmp_path / "twice", "--max_steps", "400", "--save_strategy", "no"))
    _signal_after_logged_steps(proc, signal.SIGINT, 1)
    time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGINT and "Traceback" not in err, err[-3000:]


def test_nan_under_gradient_accumulation_names_the_optimizer_step(h, tmp_path, capsys, nan_at_step_3):
    """A NaN in the micro-batches of optimizer step 3 (accumulation 2) stops at that step, not at a micro-batch."""
    out = tmp_path / "run"
    assert main(_argv(h, out, "--gradient_accumulation_steps", "2", "--per_device_train_batch_size", "2")) == 2
    assert "training diverged at step 3:" in _one_error_line(capsys.readouterr().err)
    assert incomplete_reason(out / "checkpoint-2") is None and _all_finite(out / "checkpoint-2" / "model.safetensors")


def test_nan_under_ddp_every_rank_stops_at_the_same_step(h, tmp_path):
    """Two gloo ranks: the gradient norm is reduced, so both ranks see the same non-finite norm and stop together
    (no rank is left waiting in a collective); nothing is saved as a model."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "accelerate_configs" / "cpu_ddp_2proc.yaml"), "--main_process_port", port, "-m", "ls_llm.cli",
           "train", *_argv(h, out, "--learning_rate", "1e6", "--max_steps", "20", "--per_device_train_batch_size", "2")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    lines = re.findall(r"ls-llm train: error: training diverged at step \d+", proc.stderr)
    assert len(lines) == 2 and lines[0] == lines[1], proc.stderr[-3000:]  # both ranks, the same step
    assert not (out / "model.safetensors").exists()
