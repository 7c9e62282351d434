"""Multi-node as a cluster runs it (issue 23), here on one machine: two accelerate "machines" on the loopback
address (`--num_machines 2`, one process each, `--machine_rank 0|1`, `--main_process_ip 127.0.0.1`), as
slurm/train.slurm starts them on two nodes. DDP and ZeRO-3 end on the weights of one process trained on the same
global batch; a SIGTERM to one rank stops both after the same step with one checkpoint that both resume from."""

import os
import signal
import socket
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
FIX = ROOT / "tests" / "fixtures" / "trainers"
TOKENIZER = ROOT / "ls_llm" / "data" / "assets" / "arith_tokenizer"
CONFIGS = {"ddp": "cpu_ddp_2proc.yaml", "zero3": "cpu_zero3_2proc.yaml"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _argv(out: Path, batch: int, weights: str, *extra: str) -> list[str]:
    # SGD: Adam would turn float-rounding differences of near-zero gradients into visible updates.
    return [str(FIX / "tiny.yaml"), "--model_name_or_path", weights, "--model_init_from_config", "false",
            "--tokenizer_name_or_path", str(TOKENIZER), "--dataset_name", str(FIX / "arith_train.jsonl"),
            "--output_dir", str(out), "--per_device_train_batch_size", str(batch), "--optim", "sgd",
            "--learning_rate", "0.5", "--max_steps", "6", "--save_strategy", "no", *extra]


def _machines(strategy: str, argv: list[str], *, pause: dict | None = None) -> list[subprocess.Popen]:
    """Start machine 0 and machine 1 (each its own `accelerate launch`, one process) of one 2-node run.
    `pause`: environment for machine 1's worker (tests/pause_driver.py)."""
    port = str(_free_port())
    base = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false",
            "DS_ACCELERATOR": "cpu", "PYTHONUNBUFFERED": "1"}
    procs = []
    for rank in (0, 1):
        env = {**base, **(pause or {})} if rank == 1 else base
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "accelerate_configs" /
               CONFIGS[strategy]), "--num_machines", "2", "--num_processes", "2", "--machine_rank", str(rank),
               "--main_process_ip", "127.0.0.1", "--main_process_port", port,
               str(ROOT / "tests" / "pause_driver.py"), "ls_llm.trainers.sft:LsSFTTrainer.training_step", "train",
               *argv]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    return procs


def _finish(procs, timeout=600) -> list[tuple[int, str]]:
    return [(p.wait(timeout=timeout), p.stdout.read()) for p in procs]


def _strategy_available(strategy: str) -> None:
    if strategy == "zero3":
        pytest.importorskip("deepspeed")


def _assert_same(a: Path, b: Path) -> None:
    ours, ref = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert set(ours) == set(ref)
    for key, value in ref.items():
        torch.testing.assert_close(ours[key], value.to(ours[key].dtype), rtol=1e-4, atol=1e-6, msg=key)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    """Saved initial weights: zero.Init draws other random numbers than one process does, so all runs load these."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = tmp_path_factory.mktemp("tiny") / "model"
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(FIX / "tiny-qwen2")).save_pretrained(path)
    return str(path)


@pytest.mark.parametrize("strategy", ["ddp", "zero3"])
def test_two_machines_equal_one_process(tmp_path, weights, strategy):
    _strategy_available(strategy)
    for rc, out in _finish(_machines(strategy, _argv(tmp_path / "two", 2, weights))):
        assert rc == 0, out[-4000:]
    assert main(_argv(tmp_path / "one", 4, weights)) == 0
    _assert_same(tmp_path / "two", tmp_path / "one")


@pytest.mark.parametrize("strategy", ["ddp", "zero3"])
def test_sigterm_to_one_rank_checkpoints_both_and_they_resume(tmp_path, weights, strategy):
    """Machine 1's worker is paused inside step 3 and sent SIGTERM (machine 0's is not): both ranks finish step 3,
    write checkpoint-3 together, and stop; both machines then resume from it to the weights of one process trained
    straight through on the same global batch."""
    _strategy_available(strategy)
    out = tmp_path / "two"
    ready, go = tmp_path / "ready", tmp_path / "go"
    procs = _machines(strategy, _argv(out, 2, weights), pause={"READY": str(ready), "GO": str(go), "PAUSE_AT": "3"})
    deadline = time.time() + 300
    while not ready.exists():
        if any(p.poll() is not None for p in procs) or time.time() > deadline:
            pytest.fail("\n".join(text[-3000:] for _, text in _finish(procs)))
        time.sleep(0.1)
    os.kill(int(ready.read_text()), signal.SIGTERM)
    time.sleep(0.5)
    go.touch()
    (rc0, text0), (rc1, text1) = _finish(procs)
    assert rc0 != 0 and rc1 != 0, (text0[-3000:], text1[-3000:])
    assert f"ls-llm train: stopped by SIGTERM after step 3: checkpoint {out / 'checkpoint-3'} is complete" in text0
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-3"], text0[-3000:]
    assert incomplete_reason(out / "checkpoint-3") is None and not (out / "model.safetensors").exists()

    for rc, text in _finish(_machines(strategy, _argv(out, 2, weights, "--resume_from_checkpoint", "true"))):
        assert rc == 0, text[-4000:]
    assert main(_argv(tmp_path / "one", 4, weights)) == 0
    _assert_same(out, tmp_path / "one")
