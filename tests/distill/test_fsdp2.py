"""FSDP2 (raw `fully_shard`, gloo, 2 processes; student and teacher sharded, each lm_head on its own) equals
1 process. accelerate's FSDP falls back to DDP on CPU, so this uses torch directly (fsdp2_worker.py)."""

import os
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).with_name("fsdp2_worker.py")


def test_fsdp2_two_ranks_equal_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(WORKER), str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    init, fsdp, single = (torch.load(tmp_path / f"{n}.pt") for n in ("init", "fsdp", "single"))
    for name, value in single.items():
        torch.testing.assert_close(fsdp[name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert not torch.equal(init["lm_head.weight"], single["lm_head.weight"])
