"""A run killed mid-training (SIGKILL, after a checkpoint) and restarted with --resume_from_checkpoint ends
with the same parameters as an uninterrupted run with the same seed."""

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from ls_llm.cli.train import main

# Runs the real CLI preparation, then kills its own process at the end of step KILL_AT.
KILLER = """
import os, signal, sys
from transformers import TrainerCallback
from ls_llm.trainers.run import prepare_run

class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == int(os.environ["KILL_AT"]):
            os.kill(os.getpid(), signal.SIGKILL)

run = prepare_run("train", sys.argv[1:])
run.trainer.add_callback(Kill())
run.trainer.train()
"""


def _argv(h, out):
    from ls_llm.data.synthetic import tokenizer_path

    return [str(h.FIXTURES / "tiny.yaml"), "--model_name_or_path", str(h.FIXTURES / "tiny-qwen2" / "config.json"),
            "--tokenizer_name_or_path", tokenizer_path(), "--dataset_name", str(h.FIXTURES / "arith_train.jsonl"),
            "--output_dir", str(out), "--noise_type", "answer", "--noise_rho", "0.5"]


def _steps_logged(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.startswith("{'loss'"))


def test_killed_then_resumed_equals_uninterrupted(h, tmp_path, capsys):
    killed = tmp_path / "killed"
    env = {**os.environ, "KILL_AT": "3"}
    proc = subprocess.run([sys.executable, "-c", KILLER, *_argv(h, killed)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (killed / "checkpoint-2").is_dir() and not (killed / "checkpoint-4").exists()

    assert main(_argv(h, killed) + ["--resume_from_checkpoint", "true"]) == 0
    assert _steps_logged(capsys.readouterr().out) == 4  # steps 3..6 only: it resumed, it did not restart
    assert main(_argv(h, tmp_path / "straight")) == 0
    assert _steps_logged(capsys.readouterr().out) == 6
    resumed = load_file(killed / "model.safetensors")
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    initial = load_file(killed / "checkpoint-2" / "model.safetensors")
    for name, value in straight.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=1e-6, msg=name)
    assert any(not torch.equal(initial[n], straight[n]) for n in straight)
