"""slurm/train.slurm as SLURM runs it, with srun and scontrol stood in by tests/fixtures/fake_slurm (two "nodes" on
this machine, loopback address): a full run trains and saves; SLURM's warning signal (SIGUSR1 to the batch
script, `--signal=B:USR1@...`) reaches every training process, which checkpoint together; the job is requeued,
and the requeued job resumes from the checkpoint to the weights of one process trained straight through."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from ls_llm.cli.train import main
from ls_llm.trainers.checkpoints import incomplete_reason

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "trainers"
TOKENIZER = ROOT / "ls_llm" / "data" / "assets" / "arith_tokenizer"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keys(out: Path, batch: int) -> list[str]:
    return ["--model_name_or_path", str(FIX / "tiny-qwen2" / "config.json"), "--tokenizer_name_or_path",
            str(TOKENIZER), "--dataset_name", str(FIX / "arith_train.jsonl"), "--output_dir", str(out),
            "--per_device_train_batch_size", str(batch), "--optim", "sgd", "--learning_rate", "0.05",
            "--max_steps", "150", "--save_strategy", "no"]


def _sbatch(tmp_path: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{ROOT / 'tests' / 'fixtures' / 'fake_slurm'}:{os.environ['PATH']}",
           "SLURM_NNODES": "2", "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "node[1-2]", "GPUS_PER_NODE": "1",
           "SLURM_SUBMIT_DIR": str(tmp_path), "FAKE_SLURM_REQUEUED": str(tmp_path / "requeued"),
           "PYTHON": sys.executable, "MAIN_PORT": str(_free_port()), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    cmd = ["bash", str(ROOT / "slurm" / "train.slurm"), str(FIX / "tiny.yaml"),
           str(ROOT / "accelerate_configs" / "cpu_ddp_2proc.yaml"), *_keys(out, 2)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_slurm_script_preempted_requeued_and_resumed(tmp_path):
    out = tmp_path / "run"
    job = _sbatch(tmp_path, out)
    seen, log = 0, []
    for line in job.stdout:
        log.append(line)
        seen += line.startswith("{'loss'")
        if seen == 2:  # machine 0 and machine 1 each print their local rank 0's logs: both are training
            job.send_signal(signal.SIGUSR1)  # what SLURM sends the batch script before the time limit
            break
    log += job.stdout.readlines()
    text = "".join(log)
    assert job.wait(timeout=300) != 0, text[-4000:]
    assert (tmp_path / "requeued").read_text().split() == ["4242"], text[-4000:]
    (checkpoint,) = out.glob("checkpoint-*")
    assert incomplete_reason(checkpoint) is None and "stopped by SIGUSR1 after step" in text, text[-4000:]
    assert not (out / "model.safetensors").exists()

    again = _sbatch(tmp_path, out)  # the requeued job: same script, same arguments
    text = again.communicate(timeout=600)[0]
    assert again.returncode == 0 and f"resuming from {checkpoint}" in text, text[-4000:]
    assert main([str(FIX / "tiny.yaml"), *_keys(tmp_path / "one", 4)]) == 0
    ours, ref = load_file(out / "model.safetensors"), load_file(tmp_path / "one" / "model.safetensors")
    for key, value in ref.items():
        torch.testing.assert_close(ours[key], value, rtol=1e-4, atol=1e-5, msg=key)
