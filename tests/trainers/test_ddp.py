"""Data parallel: 2 gloo processes (accelerate launch) x batch 2 give the same update as 1 process x batch 4.

(Were only one process started, it would train on 2 rows per step and the parameters would differ.)"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ls_llm.cli.train import main

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _argv(h, out, batch):
    from ls_llm.data.synthetic import tokenizer_path

    # SGD: Adam would turn float-rounding differences of near-zero gradients into visible updates.
    return [str(h.FIXTURES / "tiny.yaml"), "--model_name_or_path", str(h.FIXTURES / "tiny-qwen2" / "config.json"),
            "--tokenizer_name_or_path", tokenizer_path(), "--dataset_name", str(h.FIXTURES / "arith_train.jsonl"),
            "--output_dir", str(out), "--per_device_train_batch_size", str(batch), "--optim", "sgd",
            "--learning_rate", "0.5", "--max_steps", "2", "--save_strategy", "no"]


# Objectives routed by segment (objectives/routing.py): answer span smoothed with the answer-span prior.
ROUTED = ["--segment_objectives", json.dumps({"answer": {"objective": "label_smoothing", "alpha": 0.3,
                                                         "smoothing_prior": "answer"}})]

# Per-trace weights (trainers/weights.py) from a consensus column, mixed 0 / 0.5 / 1, on top of the routing above.
WEIGHTED = ["--dataset_name", str(ROOT / "tests" / "fixtures" / "trainers" / "arith_weighted.jsonl"),
            "--trace_weight_from", json.dumps({"column": "consensus_status",
                                               "map": {"agrees": 1.0, "no_majority": 0.5, "disagrees": 0.0}}), *ROUTED]


@pytest.mark.parametrize("extra", [[], ROUTED, WEIGHTED], ids=["unrouted", "routed", "weighted"])
def test_two_process_ddp_equals_one_process(h, tmp_path, extra):
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
              str(ROOT / "accelerate_configs" / "cpu_ddp_2proc.yaml"), "--main_process_port", str(_free_port()),
              "-m", "ls_llm.cli", "train", *_argv(h, tmp_path / "ddp", batch=2), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(launch, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert main([*_argv(h, tmp_path / "single", batch=4), *extra]) == 0
    ddp = load_file(tmp_path / "ddp" / "model.safetensors")
    single = load_file(tmp_path / "single" / "model.safetensors")
    for name, value in single.items():
        torch.testing.assert_close(ddp[name], value, rtol=1e-4, atol=1e-6, msg=name)
